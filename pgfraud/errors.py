"""The error catalogue: one exception per way a request can fail.

Each class names its HTTP status and a stable ``code``; its docstring is the
default message (as in procrastinate's exceptions). The database raises the
project's own SQLSTATEs, in class ``PF`` (unused by PostgreSQL), and
:func:`pgfraud.db.wrap_errors` turns them into these classes by ``pgcode``,
never by message text:

=======  ========================  ======
SQLSTATE error                     HTTP
=======  ========================  ======
PF001    invalid_input             400
PF002    account_not_found         404
PF003    transaction_conflict      409
PF004    rule_not_found            404
PF005    transaction_not_found     404
PF006    list_not_found            404
=======  ========================  ======
"""

from __future__ import annotations

from typing import Any

MAX_LISTED_ERRORS = 100  # problems listed in one error; the message says how many there were


class PgfraudError(Exception):
    """internal error"""

    code = "internal_error"
    status = 500

    def __init__(
        self,
        message: str | None = None,
        *,
        field: str | None = None,
        row: int | None = None,
        errors: list[dict[str, Any]] | None = None,
    ) -> None:
        self.message = message or (self.__doc__ or "").strip()
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


class RuleNotFound(PgfraudError):
    """There is no rule with that id."""

    code = "rule_not_found"
    status = 404


class TransactionNotFound(PgfraudError):
    """No transaction with that id is stored."""

    code = "transaction_not_found"
    status = 404


class TransactionConflict(PgfraudError):
    """That transaction_id is already used by a transaction with other content."""

    code = "transaction_conflict"
    status = 409


class ListNotFound(PgfraudError):
    """There is no list with that name, or the value is not on it."""

    code = "list_not_found"
    status = 404


class DatabaseUnavailable(PgfraudError):
    """The database is not reachable or did not answer in time."""

    code = "database_unavailable"
    status = 503


class TooManyStreams(PgfraudError):
    """Too many alert streams are open; try again later."""

    code = "too_many_streams"
    status = 503


class ConfigurationError(PgfraudError):
    """pgfraud is not set up as this command needs."""

    code = "configuration_error"
    status = 500


# SQLSTATE -> error class, for the project's own codes (class PF).
SQLSTATE_ERRORS: dict[str, type[PgfraudError]] = {
    "PF001": InvalidInput,
    "PF002": AccountNotFound,
    "PF003": TransactionConflict,
    "PF004": RuleNotFound,
    "PF005": TransactionNotFound,
    "PF006": ListNotFound,
}
