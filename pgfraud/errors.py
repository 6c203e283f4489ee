"""The error catalogue: one exception per way a request can fail.

Each class names its HTTP status and a stable ``code``; its docstring is the
default message (as in procrastinate's exceptions). The database raises the
project's own SQLSTATEs, in class ``PF`` (unused by PostgreSQL), and
:func:`pgfraud.db.wrap_errors` turns them (and PostgreSQL's own classes
below) into these classes by ``pgcode``, never by message text:

=======  ========================  ======
SQLSTATE error                     HTTP
=======  ========================  ======
PF001    invalid_input             400
PF002    account_not_found         404
PF003    transaction_conflict      409
PF004    rule_not_found            404
PF005    transaction_not_found     404
PF006    list_not_found            404
PF007    alert_not_found           404  (a time-order cursor naming no alert)
PF040    case_not_found            404
PF041    case_conflict             409  (assigning or closing a closed case)
40P01    database_conflict         503  (deadlock; retried first)
40001    database_conflict         503  (serialization failure; retried first)
58xxx    database_failed           503  (server system error, e.g. a library
XXxxx    database_failed           503   it cannot load; internal error)
08xxx    database_unavailable      503  (connection lost; also timeouts)
(none)   not_on_citus              501  (backtests, tuning and shadow rule
                                         comparisons on the Citus layout)
=======  ========================  ======

A `pgfraud` command exits 2 when what it was given is refused: malformed
or out of range (click's usage errors; InvalidInput from a command's
arguments or its input, ``exit_code`` 2 also when the database refuses
it; TransactionConflict: a row of the input conflicting with a stored
one) or naming nothing stored (``exit_code`` 2 on every ``*NotFound``: an
unknown rule, list, list entry, case, alert, transaction or account), and
when the schema is behind (SchemaBehind); 1 when the work failed otherwise
(``exit_code`` 1: the database unreachable or failing, a conflict left
after the retries, a time limit, a closed case). docs/operations.md, "Exit status", says the same.

A conflict (40P01, 40001) is retried: the service runs the request's
database transaction again a few times with jitter before it answers 503
database_conflict (pgfraud.service.database.write). A server failure is not
retried: the answer says the server failed and the cause is logged.
"""

from __future__ import annotations

import os
import re
from typing import Any

MAX_LISTED_ERRORS = 100  # problems listed in one error; the message says how many there were


class PgfraudError(Exception):
    """internal error"""

    code = "internal_error"
    status = 500
    exit_code = 1  # of a `pgfraud` command that stops on this error (see above)
    # Seconds for the Retry-After header, for a failure that passes (None: no header).
    retry_after: int | None = None

    def __init__(
        self,
        message: str | None = None,
        *,
        field: str | None = None,
        row: int | None = None,
        errors: list[dict[str, Any]] | None = None,
    ) -> None:
        # The docstring as one line: its line breaks and indentation are layout.
        self.message = message or " ".join((self.__doc__ or "").split())
        self.field = field
        self.row = row
        self.errors = (errors or [])[:MAX_LISTED_ERRORS]
        super().__init__(self.message)

    def to_dict(self) -> dict[str, Any]:
        """The JSON body of this error: ``{"error": {code, message, field?, row?, errors?}}``."""
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field is not None:
            body["field"] = self.field
        if self.row is not None:
            body["row"] = self.row
        if self.errors:
            body["errors"] = self.errors
        return {"error": body}


class InvalidInput(PgfraudError):
    """The input is not valid."""

    code = "invalid_input"
    status = 400
    exit_code = 2  # refused input


class MalformedJson(PgfraudError):
    """The body is not valid JSON."""

    code = "malformed_json"
    status = 400


class TooManyRows(PgfraudError):
    """Too many transactions in one request."""

    code = "too_many_rows"
    status = 413


class AccountNotFound(PgfraudError):
    """The account has no transactions."""

    code = "account_not_found"
    status = 404
    exit_code = 2  # the name or id given names nothing: refused input


class RuleNotFound(PgfraudError):
    """There is no rule with that id."""

    code = "rule_not_found"
    status = 404
    exit_code = 2  # the name or id given names nothing: refused input


class TransactionNotFound(PgfraudError):
    """No transaction with that id is stored."""

    code = "transaction_not_found"
    status = 404
    exit_code = 2  # the name or id given names nothing: refused input


class TransactionConflict(PgfraudError):
    """That transaction_id is already used by a transaction with other content."""

    code = "transaction_conflict"
    status = 409
    exit_code = 2  # a row of the input that conflicts with a stored one: refused input


class ListNotFound(PgfraudError):
    """There is no list with that name, or the value is not on it."""

    code = "list_not_found"
    status = 404
    exit_code = 2  # the name or id given names nothing: refused input


class AlertNotFound(PgfraudError):
    """There is no alert with that id (it never existed, or a re-score removed it)."""

    code = "alert_not_found"
    status = 404
    exit_code = 2  # the name or id given names nothing: refused input


class CaseNotFound(PgfraudError):
    """There is no case with that id."""

    code = "case_not_found"
    status = 404
    exit_code = 2  # the name or id given names nothing: refused input


class CaseConflict(PgfraudError):
    """The case is closed: it cannot be assigned or closed again."""

    code = "case_conflict"
    status = 409


class DatabaseUnavailable(PgfraudError):
    """The database is not reachable or did not answer in time."""

    code = "database_unavailable"
    status = 503
    retry_after = 1


class DatabaseConflict(PgfraudError):
    """The database stopped this request because it conflicted with another one
    running at the same time (a deadlock or a serialization failure). Nothing was
    stored: send it again."""

    code = "database_conflict"
    status = 503
    retry_after = 1


class DatabaseFailed(PgfraudError):
    """The database server failed while answering: an internal error of the server,
    such as a library it cannot load. Its administrator must look at it."""

    code = "database_failed"
    status = 503


class RuleChangeTimeout(DatabaseUnavailable):
    """The rule change did not finish in time; nothing was changed."""

    code = "rule_change_timeout"


class TooManyStreams(PgfraudError):
    """Too many alert streams are open; try again later."""

    code = "too_many_streams"
    status = 503
    retry_after = 1


class TooBusy(PgfraudError):
    """As many heavy requests (backtests, rule changes) as allowed are running; try again later."""

    code = "too_busy"
    status = 429
    retry_after = 5


class TimeLimitExceeded(PgfraudError):
    """The work took longer than its time limit and was cancelled; nothing changed."""

    code = "time_limit_exceeded"
    status = 503


class NotOnCitus(PgfraudError):
    """Not available on pgfraud's Citus layout (docs/scaling.md); run it on a single node."""

    code = "not_on_citus"
    status = 501


class ConfigurationError(PgfraudError):
    """pgfraud is not set up as this command needs."""

    code = "configuration_error"
    status = 500


class SchemaBehind(ConfigurationError):
    """The database's schema is older than this pgfraud: run `pgfraud migrate`."""

    code = "schema_behind"
    status = 503
    exit_code = 2


# SQLSTATE -> error class, for the project's own codes (class PF).
SQLSTATE_ERRORS: dict[str, type[PgfraudError]] = {
    "PF001": InvalidInput,
    "PF002": AccountNotFound,
    "PF003": TransactionConflict,
    "PF004": RuleNotFound,
    "PF005": TransactionNotFound,
    "PF006": ListNotFound,
    "PF007": AlertNotFound,
    "PF040": CaseNotFound,
    "PF041": CaseConflict,
}


# A password in a connection URL (scheme://user:password@host) or a libpq
# key=value string (password=... or password='...').
_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s]*(?=@)", re.IGNORECASE)
_KEYWORD_PASSWORD = re.compile(r"(?P<head>\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s'\"]+)", re.I)
_SECRET_ENV = (
    "PGFRAUD_API_TOKEN",
    "PGFRAUD_USER_PASSWORD",
    "DATABASE_URL",
    "PGFRAUD_APP_DATABASE_URL",
)


_KNOWN_SECRETS: set[str] = set()


def add_secret(value: str | None) -> None:
    """Have :func:`redact` hide ``value`` (a token, a connection URL) from now on
    (values under 4 characters are ignored: they would blank ordinary text)."""
    if value and len(value) >= 4:
        _KNOWN_SECRETS.add(value)


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """``text`` with every secret replaced by ``***``: the whole values of
    PGFRAUD_API_TOKEN, PGFRAUD_USER_PASSWORD, DATABASE_URL,
    PGFRAUD_APP_DATABASE_URL and ``secrets``; then any password in a
    connection URL (``postgresql://user:***@host``) or a libpq ``password=``
    pair. For what goes to logs, error answers and standard output
    (psycopg's messages can quote the connection string)."""
    env = (os.environ.get(name) for name in _SECRET_ENV)
    # Longest first: a URL goes whole before a password inside it is replaced.
    for secret in sorted({*env, *_KNOWN_SECRETS, *secrets} - {None, ""}, key=len, reverse=True):
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    text = _URL_PASSWORD.sub(r"\g<head>***", text)
    return _KEYWORD_PASSWORD.sub(r"\g<head>***", text)
