"""The database side of pgfraud: schema (SQL files), migrations, the local server,
and the calls Python makes into the SQL functions.

Every query the Python side runs is a function here; each is one call into a
SQL function of ``db/functions``. Database errors become
:mod:`pgfraud.errors` exceptions in one place, :func:`wrap_errors`.
"""

from __future__ import annotations

import contextlib
import json
import random
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

import psycopg
import psycopg.sql
import simplejson
from psycopg import errors as pg_errors
from psycopg.abc import Buffer
from psycopg.adapt import Loader
from psycopg.rows import dict_row
from psycopg.types.json import set_json_loads

from pgfraud.ahead import read_ahead
from pgfraud.errors import (
    MAX_LISTED_ERRORS,
    SQLSTATE_ERRORS,
    ConfigurationError,
    DatabaseConflict,
    DatabaseFailed,
    DatabaseUnavailable,
    InvalidInput,
    NotOnCitus,
    PgfraudError,
    RuleChangeTimeout,
    RuleNotFound,
    TransactionConflict,
    redact,
)

# json and jsonb values from the database keep their numbers exact: decimals
# load as Decimal (0.123456789012345678 stays so), never float.
set_json_loads(lambda data: simplejson.loads(data, use_decimal=True))


def dumps_json(value: Any, indent: int | None = None, sort_keys: bool = False) -> str:
    """JSON text with Decimals written as exact JSON numbers (never through float)."""
    return simplejson.dumps(value, use_decimal=True, indent=indent, sort_keys=sort_keys)


# CHECK constraint of `transactions` -> the wire field it guards.
CONSTRAINT_FIELDS = {
    "transactions_amount_check": "amount",
    "transactions_ts_check": "timestamp",
    "transactions_account_id_check": "account_id",
    "transactions_transaction_id_check": "transaction_id",
}


# Who the writes of this process's connections are made for (`pgfraud
# --actor`): set for one command by the CLI (set_session_actor), None for
# everything else (the service names its caller per database transaction).
_session_actor: str | None = None


def set_session_actor(actor: str | None) -> None:
    """Make ``actor`` the ``pgfraud.actor`` of every connection :func:`connect`
    opens from now (None: none, the login is the actor). The CLI sets it for
    one command (``--actor``) and clears it after."""
    global _session_actor
    _session_actor = actor


def _option_value(value: str) -> str:
    """``value`` escaped for libpq's ``options`` (backslash before a space or backslash)."""
    return value.replace("\\", "\\\\").replace(" ", "\\ ")


def connect(url: str, **kwargs: Any) -> psycopg.Connection:
    """A psycopg connection to ``url`` (libpq URL), UTC session time zone, and
    the session actor (:func:`set_session_actor`) as ``pgfraud.actor``.

    Errors: DatabaseUnavailable when the server cannot be reached;
    ConfigurationError for a malformed URL. Neither quotes a password.
    """
    options = "-c timezone=UTC"
    if _session_actor:
        options += f" -c pgfraud.actor={_option_value(_session_actor)}"
    try:
        return psycopg.connect(url, options=options, **kwargs)
    except psycopg.ProgrammingError as exc:  # a malformed URL
        message = redact(_first_line(exc))
        raise ConfigurationError(f"the database URL is not valid: {message}") from None
    except psycopg.OperationalError as exc:
        # psycopg's message can quote the connection string: without its secrets.
        message = redact(_first_line(exc))
        raise DatabaseUnavailable(f"cannot connect to the database: {message}") from exc


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


_T = TypeVar("_T")

CONFLICT_RETRIES = 3  # times a conflicting transaction is run again (HTTP and CLI)
CONFLICT_BACKOFF_S = 0.05  # the jittered pause before retry n: 0 to this * 2**n seconds


def retry_conflicts(
    attempt: Callable[[], _T],
    *,
    retries: int = CONFLICT_RETRIES,
    backoff_s: float = CONFLICT_BACKOFF_S,
    on_retry: Callable[[DatabaseConflict], None] | None = None,
) -> _T:
    """``attempt()`` (one whole database transaction, connection included),
    run again after a jittered pause (0 to backoff_s * 2**n seconds before
    retry n) while it ends in DatabaseConflict (a deadlock, 40P01, or a
    serialization failure, 40001: nothing of it was stored), at most
    ``retries`` more times; ``on_retry(exc)`` is called before each pause.
    Then that DatabaseConflict, its message saying how many tries were made.
    The one retry of the service (HTTP) and the CLI."""
    for retry in range(retries + 1):
        try:
            return attempt()
        except DatabaseConflict as exc:
            if retry == retries:
                tries = "once" if retries == 0 else f"{retries + 1} times"
                raise DatabaseConflict(
                    "The database stopped this request because it conflicted with another "
                    "one running at the same time (a deadlock or a serialization failure), "
                    f"{tries}. Nothing was stored: send it again."
                ) from exc.__cause__
            if on_retry is not None:
                on_retry(exc)
            time.sleep(random.uniform(0, backoff_s * 2 ** (retry + 1)))
    raise AssertionError("unreachable")


@contextlib.contextmanager
def wrap_errors() -> Iterator[None]:
    """Turn psycopg errors raised in the block into pgfraud.errors exceptions.

    Branches on SQLSTATE (``pgcode``), never on message text. Project codes
    (class PF) map through SQLSTATE_ERRORS, with the column as ``field`` and a
    JSON DETAIL's ``row``; check violations become InvalidInput naming the
    field; unique violations TransactionConflict; deadlocks (40P01) and
    serialization failures (40001) DatabaseConflict (retryable); server
    failures (classes 58 and XX, such as a library that cannot be loaded)
    DatabaseFailed; lost connections and timeouts DatabaseUnavailable.
    Anything else is a PgfraudError (500) whose message carries no SQL.
    """
    try:
        yield
    except psycopg.Error as exc:
        raise translate_error(exc) from exc


def translate_error(exc: psycopg.Error) -> PgfraudError:
    """The pgfraud.errors exception for a psycopg error (see wrap_errors)."""
    diag = exc.diag
    sqlstate = exc.sqlstate or ""
    row = None
    if diag.message_detail:
        with contextlib.suppress(ValueError, TypeError, AttributeError):
            row = json.loads(diag.message_detail).get("row")
    if sqlstate in SQLSTATE_ERRORS:
        return SQLSTATE_ERRORS[sqlstate](diag.message_primary, field=diag.column_name, row=row)
    if isinstance(exc, pg_errors.CheckViolation):
        field = CONSTRAINT_FIELDS.get(diag.constraint_name or "")
        return InvalidInput(f"{field or 'a value'} is out of the allowed range", field=field)
    if isinstance(exc, pg_errors.UniqueViolation):
        return TransactionConflict(field="transaction_id")
    if isinstance(exc, pg_errors.DataError | pg_errors.NotNullViolation):
        return InvalidInput(diag.message_primary or "invalid value", field=diag.column_name)
    if sqlstate in RETRYABLE_SQLSTATES:
        return DatabaseConflict()
    if sqlstate[:2] in ("58", "XX"):
        return DatabaseFailed()
    if isinstance(exc, pg_errors.QueryCanceled | psycopg.OperationalError):
        return DatabaseUnavailable()
    return PgfraudError()


# Conflicts with concurrent transactions: running the transaction again may succeed.
RETRYABLE_SQLSTATES = ("40P01", "40001")  # deadlock_detected, serialization_failure


def describe_cause(exc: BaseException | None) -> str:
    """One line for the log about the database error behind ``exc``: its SQLSTATE
    and the server's message (never sent to a client: it may name SQL)."""
    while exc is not None and not isinstance(exc, psycopg.Error):
        exc = exc.__cause__
    if exc is None:
        return "no database error"
    return f"SQLSTATE {exc.sqlstate or 'none'}: {_first_line(exc)}"


# -- the calls -------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def store_transactions(conn: psycopg.Connection, transactions: list[dict[str, Any]]) -> list[dict]:
    """Store validated transactions all-or-nothing (SQL ``store_transactions``).

    ``transactions``: dicts with account_id (int), transaction_id (int),
    timestamp (aware datetime, ms), amount (Decimal), optional merchant_id
    (int or None). Returns one dict per
    input, in order: ``{"row", "transaction_id", "status", "alerts"}`` with
    status ``stored`` or ``duplicate`` and the verdict: the transaction's
    alerts, scored in the same database transaction, as dicts ``{"alert_id",
    "rule_id", "rule_version", "observed", "threshold", "reason"}`` (decimals
    as strings; rule_version an int; [] when no rule fired), and
    ``"decision"``: the decision made when it was stored (see
    :func:`get_decision`; None for one stored before decisions existed).
    Runs in the caller's database transaction.
    Errors: TransactionConflict (row names the input index), InvalidInput.
    """
    if on_citus(conn):
        return _store_per_account(conn, transactions)
    payload = json.dumps(transactions, default=_jsonable)
    with wrap_errors():
        rows = conn.execute(
            "SELECT row_number, transaction_id, status, alerts::text, decision::text"
            " FROM store_transactions(%s::jsonb)",
            (payload,),
        ).fetchall()
    return _stored_rows(rows)


# Database (host, port, name) -> whether it has pgfraud's Citus layout.
_CITUS_LAYOUT: dict[tuple[str, int, str], bool] = {}


def on_citus(conn: psycopg.Connection) -> bool:
    """Whether ``conn``'s database has pgfraud's Citus layout (`pgfraud db distribute`).

    Asked once per database and process (the layout is made once, before
    the service runs on it), so the single-node path pays one query per process.
    """
    key = (conn.info.host, conn.info.port, conn.info.dbname)
    known = _CITUS_LAYOUT.get(key)
    if known is None:
        from pgfraud.db.citus import is_distributed

        with wrap_errors():
            known = _CITUS_LAYOUT[key] = is_distributed(conn)
    return known


def _single_node_only(conn: psycopg.Connection, what: str) -> None:
    """NotOnCitus naming ``what`` on the Citus layout: tuning and shadow rule
    comparisons run the rule code over every account at once (window passes
    and LANGUAGE sql over the distributed tables), which Citus cannot plan
    (docs/scaling.md); backtests run there per account."""
    if on_citus(conn):
        raise NotOnCitus(
            f"{what} do not run on pgfraud's Citus layout (docs/scaling.md):"
            " run them on a single-node copy of the data"
        )


def _store_per_account(conn: psycopg.Connection, transactions: list[dict[str, Any]]) -> list[dict]:
    """store_transactions on Citus: the batch split by account, each account's
    rows stored by SQL ``store_account_transactions`` (accounts in account_id
    order). All or nothing: in the caller's database transaction, or, on an
    autocommit connection, in one of its own when the batch has several
    accounts (one account: the single call, which Citus then runs on the
    account's worker). Rows and the ``row`` of an error are the input's
    indexes."""
    by_account: dict[int, list[int]] = {}
    for index, record in enumerate(transactions):
        by_account.setdefault(record["account_id"], []).append(index)
    if conn.autocommit and len(by_account) > 1:
        with wrap_errors(), conn.transaction():
            return _store_accounts(conn, transactions, by_account)
    return _store_accounts(conn, transactions, by_account)


def _store_accounts(
    conn: psycopg.Connection, transactions: list[dict[str, Any]], by_account: dict[int, list[int]]
) -> list[dict]:
    results: list[dict | None] = [None] * len(transactions)
    for account_id in sorted(by_account):
        indexes = by_account[account_id]
        payload = json.dumps([transactions[i] for i in indexes], default=_jsonable)
        try:
            with wrap_errors():
                rows = conn.execute(
                    "SELECT row_number, transaction_id, status, alerts::text, decision::text"
                    " FROM store_account_transactions(%s, %s::jsonb)",
                    (account_id, payload),
                ).fetchall()
        except PgfraudError as exc:
            if exc.row is not None and 0 <= exc.row < len(indexes):
                exc.row = indexes[exc.row]
            raise
        for stored in _stored_rows(rows):
            stored["row"] = indexes[stored["row"]]
            results[stored["row"]] = stored
    return [r for r in results if r is not None]


def _stored_rows(rows: list[tuple]) -> list[dict]:
    return [
        {
            "row": r[0],
            "transaction_id": r[1],
            "status": r[2],
            "alerts": json.loads(r[3]),
            "decision": json.loads(r[4]) if r[4] is not None else None,
        }
        for r in rows
    ]


def stage_transactions(conn: psycopg.Connection, rows: Iterable[tuple]) -> None:
    """COPY rows into this session's staging table (SQL ``create_staging_table``).

    ``rows``: (row_number, transaction_id, account_id, ts, amount) tuples, or
    with a sixth element merchant_id (int or None), already validated;
    row_number is what errors report (a CSV line, say).
    Follow with :func:`store_staged` in the same database transaction.
    Errors: InvalidInput for a value the table's constraints refuse.
    """
    with wrap_errors():
        conn.execute("SELECT create_staging_table()")
        with conn.cursor().copy(
            "COPY pg_temp.staged_transactions"
            " (row_number, transaction_id, account_id, ts, amount, merchant_id) FROM STDIN"
        ) as copy:
            for row in rows:
                copy.write_row(row if len(row) == 6 else (*row, None))


def store_staged(conn: psycopg.Connection) -> dict[str, int]:
    """Move the staged rows into ``transactions`` (SQL ``store_staged_transactions``).

    Returns ``{"stored": n, "duplicate": m}``. Errors: TransactionConflict
    (``row`` is the staged row_number). On the Citus layout (:func:`on_citus`)
    SQL ``store_staged_account_transactions``: ids per account, rows stored
    raw (scored afterwards by pgfraud.db.citus.score_pending).
    """
    if on_citus(conn):
        with wrap_errors():
            counts = conn.execute("SELECT * FROM store_staged_account_transactions()").fetchone()
        return {"stored": counts[0], "duplicate": counts[1]}
    with wrap_errors():
        counts = conn.execute(
            "SELECT count(*) FILTER (WHERE status = 'stored'),"
            " count(*) FILTER (WHERE status = 'duplicate')"
            " FROM store_staged_transactions()"
        ).fetchone()
    return {"stored": counts[0], "duplicate": counts[1]}


def copy_transactions(conn: psycopg.Connection, rows: Iterable[tuple]) -> dict[str, int]:
    """Store rows by COPY through the staging table, all-or-nothing and idempotent.

    :func:`stage_transactions` then :func:`store_staged`, in the caller's
    database transaction. Returns ``{"stored": n, "duplicate": m}``.
    Errors: TransactionConflict, InvalidInput.
    """
    stage_transactions(conn, rows)
    return store_staged(conn)


COPY_DIRECT = "COPY transactions (transaction_id, account_id, ts, amount, merchant_id) FROM STDIN"
COPY_STAGED = (
    "COPY pg_temp.staged_transactions"
    " (row_number, transaction_id, account_id, ts, amount, merchant_id) FROM STDIN"
)


def lift_statement_timeout(conn: psycopg.Connection) -> None:
    """No statement timeout for the rest of the caller's database transaction
    (SET LOCAL): a bulk load with its scoring on arrival may run for minutes,
    past the 30 s service logins have."""
    conn.execute("SET LOCAL statement_timeout = 0")


@contextlib.contextmanager
def rule_change_time(conn: psycopg.Connection, timeout_ms: int) -> Iterator[None]:
    """Run the block, a change of the rules (which re-scores the whole stored
    history: about 40 s at 10M rows), under a statement timeout of
    ``timeout_ms`` milliseconds (0: none) for the rest of the caller's
    database transaction alone (SET LOCAL), instead of the service's 10 s
    for ordinary statements. Enter it first in the transaction that changes
    the rules; when the change runs out of time the transaction must roll
    back whole (rules and alerts as they were). Errors: RuleChangeTimeout
    (503) when the limit was reached.
    """
    with wrap_errors():
        conn.execute("SELECT set_config('statement_timeout', %s, true)", (str(int(timeout_ms)),))
    try:
        yield
    except (DatabaseUnavailable, pg_errors.QueryCanceled) as exc:
        # Raised by a pgfraud.db call (wrapped) or by the caller's own statement.
        if isinstance(exc, pg_errors.QueryCanceled) or isinstance(
            exc.__cause__, pg_errors.QueryCanceled
        ):
            raise RuleChangeTimeout(
                f"the rule change did not finish within {timeout_ms / 1000:g} s "
                "(PGFRAUD_RULE_CHANGE_TIMEOUT_MS); nothing was changed"
            ) from exc
        raise


def any_stored(conn: psycopg.Connection, ids: list[int] | tuple[int, int]) -> bool:
    """Whether any of ``ids`` (a list) is stored, or any id in ``(low, high)``
    inclusive (a tuple). (``SELECT 1``: Citus cannot plan an empty select
    list in a subquery over a distributed table.)"""
    with wrap_errors():
        if isinstance(ids, tuple):
            query = (
                "SELECT EXISTS (SELECT 1 FROM transactions WHERE transaction_id BETWEEN %s AND %s)"
            )
            return conn.execute(query, ids).fetchone()[0]
        query = "SELECT EXISTS (SELECT 1 FROM transactions WHERE transaction_id = ANY(%s))"
        return conn.execute(query, (ids,)).fetchone()[0]


def store_copy_text(
    conn: psycopg.Connection,
    chunks: Callable[[bool], Iterable[str]],
    *,
    direct: bool,
    valid: Callable[[], bool] = lambda: True,
) -> dict[str, int] | None:
    """Store validated rows given as COPY text, all-or-nothing, in the caller's
    database transaction; the fast path of bulk loads.

    ``chunks(numbered)`` yields pieces of COPY text (tab-separated lines,
    ``transaction_id, account_id, ts, amount``; with ``numbered`` each line
    starts with its row_number, what errors report). It may be called twice.

    ``direct``: first try one COPY straight into ``transactions`` (inside a
    savepoint): when every id is new this is the whole load (every row
    ``stored``), as fast as PostgreSQL's own COPY. If an id is already stored
    (or appears twice), the attempt is rolled back and the rows go through
    the staging table and ``store_staged_transactions`` (duplicates counted,
    PF003 on conflicts), as they do at once when ``direct`` is false (use it
    when ids are likely stored already). No statement timeout applies to the
    load (SET LOCAL in the caller's transaction). Returns ``{"stored", "duplicate"}``,
    or None when ``valid()`` says, after a COPY, that the caller found bad
    rows (the caller then reports them and rolls back).
    Errors: TransactionConflict, InvalidInput.
    """
    lift_statement_timeout(conn)
    if direct:
        conn.execute("SAVEPOINT pgfraud_direct_copy")
        try:
            with conn.cursor() as cur:
                with cur.copy(COPY_DIRECT) as copy:
                    for chunk in read_ahead(chunks(False)):
                        copy.write(chunk)
                stored = cur.rowcount
            conn.execute("RELEASE SAVEPOINT pgfraud_direct_copy")
            return {"stored": stored, "duplicate": 0} if valid() else None
        except pg_errors.UniqueViolation:
            conn.execute("ROLLBACK TO SAVEPOINT pgfraud_direct_copy")
        except psycopg.Error as exc:
            raise translate_error(exc) from exc
    with wrap_errors():
        conn.execute("SELECT create_staging_table()")
        with conn.cursor().copy(COPY_STAGED) as copy:
            for chunk in read_ahead(chunks(True)):
                copy.write(chunk)
    return store_staged(conn) if valid() else None


def is_fraud(
    conn: psycopg.Connection,
    account_id: int,
    limit: int | None = None,
    after: tuple[datetime, int, str] | None = None,
) -> list[dict[str, Any]]:
    """Fraud events of one account (SQL ``is_fraud``, persisted alerts): dicts with
    transaction_id, account_id, ts (datetime), amount, rule_id, observed,
    threshold (Decimal), reason, in (ts, transaction_id, rule_id) order.

    ``limit``: at most that many (1..10000; None: all); ``after``: the
    (ts, transaction_id, rule_id) position to continue after.
    Errors: AccountNotFound when the account has no transactions; InvalidInput
    for a limit out of range.
    """
    after_ts, after_transaction, after_rule = after or (None, None, None)
    with wrap_errors(), conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT * FROM is_fraud(%s, %s, %s, %s, %s)",
            (account_id, limit, after_ts, after_transaction, after_rule),
            prepare=True,
        ).fetchall()


def get_alerts(
    conn: psycopg.Connection,
    *,
    account_id: int | None = None,
    rule_id: str | None = None,
    review_status: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    before: int | None = None,
    limit: int = 100,
    order: str = "raised",
    before_ts: datetime | None = None,
    outcome: str | None = None,
) -> list[dict[str, Any]]:
    """The alert queue (SQL ``get_alerts``): dicts with alert_id,
    transaction_id, account_id, ts, amount, rule_id, observed, threshold,
    reason, parameters, raised_at, review_status, review_note, reviewer,
    reviewed_at, outcome and overruled (the transaction's decision; None
    when it has none). ``order`` "raised": newest raised first, ``before``
    only alert_id below it (the next page); "time": newest transaction first
    (ts, then alert_id, descending), (``before_ts``, ``before``) the cursor.
    Filters (None: any): account, rule, review status
    (unreviewed/confirmed_fraud/false_positive), transaction time in
    [start, end), decision outcome (approve/review/decline). Errors:
    InvalidInput for a limit outside 1..10000, an unknown status, order or
    outcome, or half a time cursor.
    """
    with wrap_errors(), conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT * FROM get_alerts(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                account_id,
                rule_id,
                review_status,
                start,
                end,
                before,
                limit,
                order,
                before_ts,
                outcome,
            ),
        ).fetchall()


def count_alerts(
    conn: psycopg.Connection,
    *,
    account_id: int | None = None,
    rule_id: str | None = None,
    review_status: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    outcome: str | None = None,
) -> int:
    """How many alerts match get_alerts' filters over all its pages (SQL
    ``count_alerts``). Errors: InvalidInput for an unknown review status or
    outcome."""
    with wrap_errors():
        return conn.execute(
            "SELECT count_alerts(%s, %s, %s, %s, %s, %s)",
            (account_id, rule_id, review_status, start, end, outcome),
        ).fetchone()[0]


def get_alert_feed_start(conn: psycopg.Connection) -> str:
    """The live feed's position of now, ``'<xact>-0'`` (SQL ``get_alert_feed_start``)."""
    with wrap_errors():
        return conn.execute("SELECT get_alert_feed_start()").fetchone()[0]


def is_feed_position_ahead(conn: psycopg.Connection, position: tuple[int, int]) -> bool:
    """Whether a feed position (xact, id) lies past every database transaction
    begun so far (its xact above the current snapshot's xmax), so no event of
    this database can follow it. The alert and decision feeds share the xact
    numbering (64-bit transaction ids, ``xid8``). On Citus the first number is
    a time in milliseconds since 1970 UTC (SQL ``get_alert_feed``): ahead when
    it is past the clock's now."""
    if on_citus(conn):
        with wrap_errors():
            return conn.execute(
                "SELECT %s::numeric > floor(extract(epoch FROM clock_timestamp()) * 1000)",
                (position[0],),
            ).fetchone()[0]
    with wrap_errors():
        return conn.execute(
            "SELECT %s::text::xid8 > pg_snapshot_xmax(pg_current_snapshot())", (str(position[0]),)
        ).fetchone()[0]


def get_alert_feed(
    conn: psycopg.Connection, after: tuple[int, int], limit: int = 1000
) -> list[dict[str, Any]]:
    """Alerts raised after the feed position ``after`` = (xact, alert_id), in raise
    order, from finished database transactions only (SQL ``get_alert_feed``):
    dicts with event_id ('<xact>-<alert_id>', the next position), alert_id,
    transaction_id, account_id, ts, amount, rule_id, observed, threshold,
    reason, raised_at."""
    with wrap_errors(), conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT * FROM get_alert_feed(%s::text::xid8, %s, %s)",
            (str(after[0]), after[1], limit),
            prepare=True,
        ).fetchall()


def get_decision_feed(
    conn: psycopg.Connection, after: tuple[int, int], limit: int = 1000
) -> list[tuple[str, dict[str, Any]]]:
    """Decisions made after the feed position ``after`` = (xact, transaction_id),
    in the order of the database transactions that made them, from finished
    ones only (SQL ``get_decision_feed``): (event_id, decision) pairs, the
    event id ``'<xact>-<transaction_id>'`` being the next position and the
    decision as :func:`get_decision` answers it. Start from
    :func:`get_alert_feed_start`."""
    with wrap_errors():
        return conn.execute(
            "SELECT event_id, decision FROM get_decision_feed(%s::text::xid8, %s, %s)",
            (str(after[0]), after[1], limit),
            prepare=True,
        ).fetchall()


def is_alert_feed_held(conn: psycopg.Connection, after: tuple[int, int]) -> bool:
    """Whether committed alerts after the feed position ``after`` = (xact, alert_id)
    are not delivered yet: held by an older running database transaction, or
    committed since the last read (SQL ``is_alert_feed_held``): then read the
    feed again soon."""
    with wrap_errors():
        return conn.execute(
            "SELECT is_alert_feed_held(%s::text::xid8, %s)", (str(after[0]), after[1]), prepare=True
        ).fetchone()[0]


def review_transaction(
    conn: psycopg.Connection,
    transaction_id: int,
    status: str,
    note: str = "",
    reviewer: str | None = None,
) -> dict[str, Any]:
    """Record an analyst's decision on a stored transaction (SQL ``review_transaction``).

    ``status``: confirmed_fraud or false_positive; ``reviewer`` None: the
    database login. Returns the review: review_id, transaction_id,
    account_id, status, note, reviewer, reviewed_at. Errors:
    TransactionNotFound, InvalidInput (naming status, note or reviewer).
    """
    with wrap_errors(), conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT * FROM review_transaction(%s, %s, %s, %s)",
            (transaction_id, status, note, reviewer),
        ).fetchone()


# A page of is_fraud's events in their wire form, built by PostgreSQL: keys in
# fraud_event's order (ts as "timestamp"), timestamps ISO 8601 UTC with
# milliseconds and Z, decimals as exact strings; row_to_json writes compact JSON.
# One row more than the page is read: it tells whether a next page exists.
_EVENTS_JSON = """
SELECT count(*) FILTER (WHERE e.n <= %(limit)s),
       '[' || coalesce(string_agg(row_to_json(w)::text, ',' ORDER BY e.n)
                       FILTER (WHERE e.n <= %(limit)s), '') || ']',
       count(*) > %(limit)s,
       min(e.ts) FILTER (WHERE e.n = %(limit)s),
       min(e.transaction_id) FILTER (WHERE e.n = %(limit)s),
       min(e.rule_id) FILTER (WHERE e.n = %(limit)s)
FROM is_fraud(%(account)s, %(limit)s + 1, %(after_ts)s, %(after_transaction)s, %(after_rule)s)
         WITH ORDINALITY
         AS e(transaction_id, account_id, ts, amount, rule_id, observed, threshold, reason, n)
CROSS JOIN LATERAL (
    SELECT e.transaction_id, e.account_id,
           to_char(e.ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS "timestamp",
           round(e.amount, 2)::text AS amount, e.rule_id, e.observed::text AS observed,
           e.threshold::text AS threshold, e.reason
) AS w
"""


class _TextAsBytes(Loader):
    """A text value as the UTF-8 bytes PostgreSQL sent, not decoded: JSON made by
    PostgreSQL goes into a response as it came."""

    def load(self, data: Buffer) -> bytes:
        return bytes(data)


# The attribute of a pooled connection holding its cursor for _EVENTS_JSON.
_EVENTS_CURSOR = "_pgfraud_events_cursor"


def _events_cursor(conn: psycopg.Connection) -> psycopg.Cursor:
    """The connection's own cursor for _EVENTS_JSON, made on its first use and
    kept with the connection (an attribute of it: it goes when the connection
    does, a broken one included). Reusing one cursor for the same query keeps
    psycopg's adapters for it (a new cursor built them again on every request:
    about a third of the client's time per call), and its text columns load
    as bytes (:class:`_TextAsBytes`). It holds its last result until the next
    call: at most one page per pooled connection."""
    cursor = getattr(conn, _EVENTS_CURSOR, None)
    if cursor is None or cursor.closed:
        cursor = conn.cursor()
        cursor.adapters.register_loader("text", _TextAsBytes)
        setattr(conn, _EVENTS_CURSOR, cursor)
    return cursor


def is_fraud_json(
    conn: psycopg.Connection,
    account_id: int,
    limit: int,
    after: tuple[datetime, int, str] | None = None,
) -> tuple[int, bytes, tuple[datetime, int, str] | None]:
    """A page of one account's fraud events (SQL ``is_fraud``), serialised by
    PostgreSQL (the hot path of ``GET /is_fraud``; :func:`is_fraud` gives dicts).

    Returns ``(count, events, last)``: ``events`` is a JSON array (UTF-8
    bytes, as PostgreSQL sent them) of at most ``limit`` (1..10000) objects
    {transaction_id, account_id, timestamp (ISO, ms, Z), amount (2 places),
    rule_id, observed, threshold (exact decimal strings, or null), reason}, in
    (ts, transaction_id, rule_id) order, after the position ``after``;
    ``last`` is the position of the page's last event when a next page
    exists, else None. The statement is prepared once per connection and run
    on the connection's own cursor (:func:`_events_cursor`).
    Errors: AccountNotFound; InvalidInput for a limit out of range.
    """
    after_ts, after_transaction, after_rule = after or (None, None, None)
    params = {
        "account": account_id,
        "limit": limit,
        "after_ts": after_ts,
        "after_transaction": after_transaction,
        "after_rule": after_rule,
    }
    with wrap_errors():
        row = _events_cursor(conn).execute(_EVENTS_JSON, params, prepare=True).fetchone()
    count, events, more, last_ts, last_transaction, last_rule = row
    return count, events, (last_ts, last_transaction, last_rule.decode()) if more else None


def get_account_transactions(conn: psycopg.Connection, account_id: int, limit: int) -> list[dict]:
    """An account's latest transactions, newest first (SQL ``get_account_transactions``).

    Errors: AccountNotFound, InvalidInput (limit outside 1..10000).
    """
    with wrap_errors(), conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT * FROM get_account_transactions(%s, %s)", (account_id, limit)
        ).fetchall()


def add_rule(
    conn: psycopg.Connection,
    rule_id: str,
    expression: str,
    description: str | None = None,
    enabled: bool = False,
) -> dict[str, Any]:
    """Add or replace a user's rule (SQL ``add_rule``), in the caller's transaction.

    ``expression``: a boolean SQL expression over the features of
    ``rule_features`` (see docs/rules.md); off unless ``enabled``. Returns the rule:
    rule_id, enabled, parameters ({}), description, expression. Errors:
    InvalidInput naming rule_id, expression or description.
    """
    with wrap_errors(), conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT * FROM add_rule(%s, %s, %s, %s)", (rule_id, expression, description, enabled)
        ).fetchone()


def get_rules(conn: psycopg.Connection) -> list[dict[str, Any]]:
    """The rule catalogue (SQL ``get_rules``): rule_id, enabled, parameters, description."""
    with wrap_errors(), conn.cursor(row_factory=dict_row) as cur:
        return cur.execute("SELECT * FROM get_rules()").fetchall()


def check_health(conn: psycopg.Connection) -> dict[str, Any]:
    """Server version and migrations applied, from SQL ``check_health`` (PL/pgSQL, so
    a server that cannot run pgfraud's functions is not healthy). Errors:
    DatabaseUnavailable if the server does not answer, DatabaseFailed when it
    fails (a library it cannot load, say)."""
    with wrap_errors():
        row = conn.execute("SELECT * FROM check_health()").fetchone()
    return {"server_version": row[0], "migrations": row[1]}


def create_app_user(
    conn: psycopg.Connection,
    user: str,
    password: str,
    read_only: bool,
    idle_timeout_ms: int = 60_000,
) -> str:
    """Create or update a login role (SQL ``create_app_user``); needs the owner's
    connection. The role also gets ``idle_timeout_ms`` as its
    idle_in_transaction_session_timeout (0: none): a transaction it leaves open
    and idle is ended after that, so it cannot hold the live feeds back longer.

    Errors: InvalidInput for a bad name, a password under 12 characters or a
    negative timeout.
    """
    if idle_timeout_ms < 0:
        raise InvalidInput("idle transaction timeout must be 0 or more", field="idle_timeout_ms")
    with wrap_errors():
        name = conn.execute(
            "SELECT create_app_user(%s, %s, %s)", (user, password, read_only)
        ).fetchone()[0]
        conn.execute(
            psycopg.sql.SQL("ALTER ROLE {} SET idle_in_transaction_session_timeout = {}").format(
                psycopg.sql.Identifier(name), psycopg.sql.Literal(f"{idle_timeout_ms}ms")
            )
        )
        return name


def set_database_idle_timeout(conn: psycopg.Connection, idle_timeout_ms: int) -> None:
    """The connected database's default idle_in_transaction_session_timeout
    (``ALTER DATABASE``; 0: none), for every login without a setting of its own;
    needs the database's owner. Errors: InvalidInput for a negative value."""
    if idle_timeout_ms < 0:
        raise InvalidInput("idle transaction timeout must be 0 or more", field="idle_timeout_ms")
    with wrap_errors():
        name = conn.execute("SELECT current_database()").fetchone()[0]
        conn.execute(
            psycopg.sql.SQL(
                "ALTER DATABASE {} SET idle_in_transaction_session_timeout = {}"
            ).format(psycopg.sql.Identifier(name), psycopg.sql.Literal(f"{idle_timeout_ms}ms"))
        )


def get_feed_holder(conn: psycopg.Connection, min_age_ms: int = 10_000) -> dict | None:
    """The session holding the live feeds back (SQL ``get_feed_holder``): the
    oldest other session with a transaction id open at least ``min_age_ms``,
    as ``{"pid": int, "held_ms": int, "state": str | None}``; None when none.
    Raises DatabaseUnavailable and the like (wrap_errors)."""
    with wrap_errors():
        row = conn.execute(
            "SELECT pid, held_ms, state FROM get_feed_holder(%s)", (min_age_ms,)
        ).fetchone()
    if row is None:
        return None
    if isinstance(row, dict):
        return dict(row)
    return {"pid": row[0], "held_ms": row[1], "state": row[2]}


def count_transactions(conn: psycopg.Connection) -> int:
    """How many transactions are stored (an estimate-free count)."""
    with wrap_errors():
        return conn.execute("SELECT count(*) FROM transactions").fetchone()[0]


def get_latest(conn: psycopg.Connection) -> tuple[int | None, datetime | None]:
    """The largest stored transaction_id and the latest ts (None, None when empty)."""
    with wrap_errors():
        row = conn.execute("SELECT max(transaction_id), max(ts) FROM transactions").fetchone()
    return row[0], row[1]


def store_labels(conn: psycopg.Connection, labels: Iterable[tuple[Any, ...]]) -> dict[str, int]:
    """Upsert ground-truth labels into ``fraud_labels`` by COPY.

    Each label is ``(transaction_id, scenario)`` or ``(transaction_id, scenario,
    known_at, line, path)`` (the last three may be None): ``known_at`` (an aware
    datetime) is when the label became known, None meaning when it is stored
    (now, or for a label stored before, the time it was first known);
    ``line`` and ``path`` only name where it came from in an error. A label
    already stored for a transaction is replaced (its known_at kept unless
    one is given); when one transaction is labelled twice in the input, the
    later label wins. Needs the owner's connection (labels are not the
    service's data). Runs in the caller's database transaction. Returns
    counts over the distinct transactions labelled: ``{"given": rows given,
    "labels": distinct transactions, "new": not labelled before, "replaced":
    labelled before, "changed": replaced with another scenario, "matched":
    the transaction is stored, "unmatched": it is not (evaluate ignores
    those)}``. Errors: InvalidInput for a scenario name the table refuses,
    and for a ``known_at`` before its stored transaction's time (field
    ``known_at``, ``row`` its line; every such label listed, nothing stored).
    """
    with wrap_errors(), conn.transaction():
        conn.execute(
            "CREATE TEMPORARY TABLE staged_labels ("
            " position bigint NOT NULL, transaction_id bigint NOT NULL, scenario text NOT NULL,"
            " known_at timestamptz"
            ") ON COMMIT DROP"
        )
        given = 0
        origins: list[tuple[int | None, Any]] = []
        with conn.cursor().copy(
            "COPY staged_labels (position, transaction_id, scenario, known_at) FROM STDIN"
        ) as copy:
            for label in labels:
                transaction_id, scenario = label[0], label[1]
                known_at = label[2] if len(label) > 2 else None
                origins.append(
                    (label[3] if len(label) > 3 else None, label[4] if len(label) > 4 else None)
                )
                given += 1
                copy.write_row((given, transaction_id, scenario, known_at))
        early = conn.execute(
            "SELECT s.position, s.transaction_id, s.known_at, t.ts"
            " FROM staged_labels AS s JOIN transactions AS t USING (transaction_id)"
            " WHERE s.known_at < t.ts ORDER BY s.position LIMIT %s",
            (MAX_LISTED_ERRORS,),
        ).fetchall()
        if early:
            errors = []
            for position, transaction_id, known_at, ts in early:
                line, path = origins[position - 1]
                where = f"{path}: " if path else ""
                errors.append(
                    {
                        "row": line if line is not None else position,
                        "field": "known_at",
                        "message": f"{where}known_at {format_time(known_at)} is before the time"
                        f" {format_time(ts)} of transaction {transaction_id}",
                    }
                )
            first = errors[0]
            raise InvalidInput(
                f"line {first['row']}: {first['message']}; nothing was stored"
                if len(errors) == 1
                else f"{len(errors)} labels are known before their transactions' times;"
                " nothing was stored",
                field="known_at",
                row=first["row"],
                errors=errors if len(errors) > 1 else None,
            )
        if on_citus(conn):
            counts = _upsert_labels_citus(conn, origins)
        else:
            counts = conn.execute(
                "WITH latest AS ("
                " SELECT DISTINCT ON (s.transaction_id) s.transaction_id, s.scenario, s.known_at"
                " FROM staged_labels AS s ORDER BY s.transaction_id, s.position DESC"
                "), classified AS ("
                " SELECT l.transaction_id, l.scenario, f.scenario AS previous,"
                " coalesce(l.known_at, f.known_at, now()) AS known_at,"
                " EXISTS (SELECT 1 FROM transactions AS t"
                " WHERE t.transaction_id = l.transaction_id) AS matched"
                " FROM latest AS l LEFT JOIN fraud_labels AS f USING (transaction_id)"
                "), upserted AS ("
                " INSERT INTO fraud_labels AS f (transaction_id, scenario, known_at)"
                " SELECT c.transaction_id, c.scenario, c.known_at FROM classified AS c"
                " ON CONFLICT ON CONSTRAINT fraud_labels_pkey"
                " DO UPDATE SET scenario = excluded.scenario, known_at = excluded.known_at"
                # An unchanged label is left alone (its trigger re-scores nothing).
                " WHERE (f.scenario, f.known_at)"
                " IS DISTINCT FROM (excluded.scenario, excluded.known_at)"
                ")"
                " SELECT count(*), count(*) FILTER (WHERE c.previous IS NULL),"
                " count(*) FILTER (WHERE c.previous IS DISTINCT FROM c.scenario"
                " AND c.previous IS NOT NULL),"
                " count(*) FILTER (WHERE c.matched)"
                " FROM classified AS c"
            ).fetchone()
        conn.execute("DROP TABLE staged_labels")
    labelled, new, changed, matched = counts
    return {
        "given": given,
        "labels": labelled,
        "new": new,
        "replaced": labelled - new,
        "changed": changed,
        "matched": matched,
        "unmatched": labelled - matched,
    }


def _upsert_labels_citus(
    conn: psycopg.Connection, origins: list[tuple[int | None, Any]]
) -> tuple[int, int, int, int]:
    """store_labels' upsert on the Citus layout: (labelled, new, changed, matched).

    There fraud_labels carries account_id (its distribution column) and a
    transaction id is unique per account, so each label takes the account of
    the stored transaction with its id. A label whose id is in no account
    is counted unmatched and not stored (it has no account to live in); an
    id stored in several accounts is refused (InvalidInput, field
    transaction_id, its line). Each step reads the session's staging table
    and one distributed table, which Citus plans on the coordinator.
    """
    conn.execute(
        "CREATE TEMPORARY TABLE latest_labels ON COMMIT DROP AS"
        " SELECT DISTINCT ON (s.transaction_id) s.position, s.transaction_id, s.scenario,"
        " s.known_at, NULL::bigint AS account_id, NULL::text AS previous,"
        " NULL::timestamptz AS previous_known_at"
        " FROM staged_labels AS s ORDER BY s.transaction_id, s.position DESC"
    )
    owners = conn.execute(
        "SELECT t.transaction_id, min(t.account_id), count(*) FROM transactions AS t"
        " WHERE t.transaction_id IN (SELECT l.transaction_id FROM latest_labels AS l)"
        " GROUP BY t.transaction_id"
    ).fetchall()
    shared = sorted(o[0] for o in owners if o[2] > 1)
    if shared:
        position = conn.execute(
            "SELECT position FROM latest_labels WHERE transaction_id = %s", (shared[0],)
        ).fetchone()[0]
        line, path = origins[position - 1]
        row = line if line is not None else position
        where = f"{path}: " if path else ""
        raise InvalidInput(
            f"line {row}: {where}transaction_id {shared[0]} is stored in several accounts"
            " (on Citus an id is unique per account), so its label names no one transaction;"
            " nothing was stored",
            field="transaction_id",
            row=row,
        )
    conn.execute(
        "CREATE TEMPORARY TABLE label_owners (transaction_id bigint, account_id bigint)"
        " ON COMMIT DROP"
    )
    with conn.cursor().copy("COPY label_owners (transaction_id, account_id) FROM STDIN") as copy:
        for transaction_id, account_id, _ in owners:
            copy.write_row((transaction_id, account_id))
    conn.execute(
        "UPDATE latest_labels AS l SET account_id = o.account_id"
        " FROM label_owners AS o WHERE o.transaction_id = l.transaction_id"
    )
    previous = conn.execute(
        "SELECT f.transaction_id, f.scenario, f.known_at FROM fraud_labels AS f"
        " WHERE (f.account_id, f.transaction_id) IN"
        " (SELECT o.account_id, o.transaction_id FROM label_owners AS o)"
    ).fetchall()
    conn.execute(
        "CREATE TEMPORARY TABLE label_previous (transaction_id bigint, scenario text,"
        " known_at timestamptz) ON COMMIT DROP"
    )
    with conn.cursor().copy(
        "COPY label_previous (transaction_id, scenario, known_at) FROM STDIN"
    ) as copy:
        for row in previous:
            copy.write_row(row)
    conn.execute(
        "UPDATE latest_labels AS l SET previous = p.scenario, previous_known_at = p.known_at"
        " FROM label_previous AS p WHERE p.transaction_id = l.transaction_id"
    )
    conn.execute(
        "INSERT INTO fraud_labels AS f (account_id, transaction_id, scenario, known_at)"
        " SELECT l.account_id, l.transaction_id, l.scenario,"
        " coalesce(l.known_at, l.previous_known_at, now())"
        " FROM latest_labels AS l WHERE l.account_id IS NOT NULL"
        " ON CONFLICT ON CONSTRAINT fraud_labels_pkey"
        " DO UPDATE SET scenario = excluded.scenario, known_at = excluded.known_at"
        " WHERE (f.scenario, f.known_at) IS DISTINCT FROM (excluded.scenario, excluded.known_at)"
    )
    return conn.execute(
        "SELECT count(*), count(*) FILTER (WHERE l.previous IS NULL),"
        " count(*) FILTER (WHERE l.previous IS DISTINCT FROM l.scenario"
        " AND l.previous IS NOT NULL),"
        " count(*) FILTER (WHERE l.account_id IS NOT NULL)"
        " FROM latest_labels AS l"
    ).fetchone()


def format_time(value: datetime) -> str:
    """UTC ISO 8601 with milliseconds and Z (as on the wire)."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def evaluate_rules(
    conn: psycopg.Connection,
    rules: dict[str, Any] | None,
    start: datetime | None,
    end: datetime | None,
) -> list[dict[str, Any]]:
    """Precision and recall per rule and scenario (SQL ``evaluate_rules``).

    ``rules``: {rule_id: parameters} to measure (None: the enabled rules),
    checked by SQL ``validate_rules`` (InvalidInput naming rule and parameter);
    ``start``/``end``: the time range [start, end) (None: unbounded). Rows:
    rule_id, scenario, labelled, flagged, true_positives, precision_ratio,
    recall_ratio (Decimal, 4 places, None when undefined).
    """
    with wrap_errors(), conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT * FROM evaluate_rules(%s::jsonb, %s, %s)",
            (dumps_json(rules) if rules is not None else None, start, end),
        ).fetchall()


def _json_numbers(value: Any) -> str:
    """JSON text of dicts, lists, strings, booleans, None, ints and Decimals, with
    Decimals written as exact JSON numbers (rule parameters are numbers)."""
    if isinstance(value, dict):
        items = (f"{json.dumps(str(k))}: {_json_numbers(v)}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_json_numbers(v) for v in value) + "]"
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise InvalidInput("parameters must be finite numbers", field="parameters")
        return format(value, "f")
    return json.dumps(value)


def get_account_history(
    conn: psycopg.Connection,
    account_id: int,
    limit: int = 100,
    before: tuple[datetime, int] | None = None,
) -> list[dict[str, Any]]:
    """One account's transactions, newest first, with their alerts and latest review
    (SQL ``get_account_history``): dicts with transaction_id, account_id, ts,
    amount (Decimal), alerts (list of {alert_id, rule_id, observed, threshold,
    reason}, decimals as strings), review_status, decision ({outcome, score,
    score_outcome, overruled, lists: [{list_name, kind}]}, None when it has
    none). ``before``: the (ts,
    transaction_id) position to continue after (the next page).
    Errors: AccountNotFound, InvalidInput (limit outside 1..10000).
    """
    before_ts, before_transaction = before or (None, None)
    with wrap_errors(), conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT * FROM get_account_history(%s, %s, %s, %s)",
            (account_id, limit, before_ts, before_transaction),
        ).fetchall()


def get_account_reviews(
    conn: psycopg.Connection, account_id: int, limit: int = 100
) -> list[dict[str, Any]]:
    """The review history of one account, newest first (SQL ``get_account_reviews``):
    dicts with review_id, transaction_id, account_id, status, note, reviewer,
    reviewed_at. Errors: InvalidInput (limit outside 1..10000)."""
    with wrap_errors(), conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT * FROM get_account_reviews(%s, %s)", (account_id, limit)
        ).fetchall()


def get_overview(conn: psycopg.Connection) -> dict[str, Any]:
    """The overview (SQL ``get_overview``): {until, hours: [{hour, transactions,
    alerts}] (24, oldest first), by_rule: [{rule_id, alerts, unreviewed}],
    backlog: {unreviewed, confirmed_fraud, false_positive}}."""
    with wrap_errors():
        return conn.execute("SELECT get_overview()").fetchone()[0]


def backtest_rules(
    conn: psycopg.Connection,
    rules: dict[str, Any] | None,
    start: datetime | None,
    end: datetime | None,
) -> list[dict[str, Any]]:
    """evaluate_rules plus the transactions in range and flagged per 1,000 (SQL
    ``backtest_rules``), callable by the service's role. ``rules``:
    {rule_id: parameters} (None: the enabled rules); [start, end) the
    transaction time (None: unbounded). Rows: rule_id, scenario, labelled,
    flagged, true_positives, precision_ratio, recall_ratio, transactions,
    flagged_per_1000 (Decimal or None). Errors: InvalidInput.
    """
    with wrap_errors(), conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT * FROM backtest_rules(%s::jsonb, %s, %s)",
            (_json_numbers(rules) if rules is not None else None, start, end),
        ).fetchall()


def evaluate_decisions(
    conn: psycopg.Connection,
    rules: dict[str, Any] | None,
    policy: dict[str, Any] | None,
    start: datetime | None,
    end: datetime | None,
) -> dict[str, Any]:
    """A backtest of decisions (SQL ``evaluate_decisions`` and
    ``resolve_backtest_policy``), callable by the service's role.

    ``rules``: {rule_id: parameters} as :func:`backtest_rules` takes them (None:
    the enabled rules); ``policy``: a candidate ``{review_threshold,
    decline_threshold, default_score, rule_scores}`` merged over the policy in
    force (None: that policy); [start, end) the transaction time (None:
    unbounded). Returns ``{"policy": the policy that ran (based_on,
    thresholds, default_score, every rule's score), "outcomes": [{outcome
    (approve, review, decline, review_or_decline), transactions, per_1000,
    overruled, labelled, fraud, precision_ratio, recall_ratio}]}`` (Decimal
    or None). Errors: InvalidInput naming rule and parameter or the policy
    field, RuleNotFound for a score of an unknown rule.
    """
    rules_json = _json_numbers(rules) if rules is not None else None
    policy_json = _json_numbers(policy) if policy is not None else None
    with conn.cursor(row_factory=dict_row) as cur:
        try:
            with wrap_errors():
                resolved = cur.execute(
                    "SELECT resolve_backtest_policy(%s::jsonb) AS policy", (policy_json,)
                ).fetchone()["policy"]
        except (InvalidInput, RuleNotFound) as exc:  # named as a field of the policy
            field = f"policy.{exc.field}" if exc.field else "policy"
            raise type(exc)(f"policy: {exc.message}", field=field) from None
        with wrap_errors():
            outcomes = cur.execute(
                "SELECT * FROM evaluate_decisions(%s::jsonb, %s::jsonb, %s, %s)",
                (rules_json, policy_json, start, end),
            ).fetchall()
    return {"policy": resolved, "outcomes": outcomes}


def change_rule(
    conn: psycopg.Connection,
    rule_id: str,
    enabled: bool | None = None,
    parameters: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Turn a rule on/off and/or merge parameters (SQL ``change_rule``, set_rule for
    the service role); re-scores the stored history. Returns rule_id, enabled,
    parameters, description. Errors: RuleNotFound, InvalidInput (the
    validator's message naming rule and parameter)."""
    with wrap_errors(), conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT * FROM change_rule(%s, %s, %s::jsonb)",
            (
                rule_id,
                enabled,
                _json_numbers(parameters) if parameters is not None else None,
            ),
        ).fetchone()


# -- rule versions and shadow rules (issue 18) -------------------------------


def get_rule_versions(conn: psycopg.Connection, rule_id: str) -> list[dict[str, Any]]:
    """Every version of a rule, newest first (SQL ``get_rule_versions``): rule_id,
    version, enabled, parameters, expression, description, valid_from, actor.
    Errors: RuleNotFound when the rule has no version (never existed)."""
    with wrap_errors(), conn.cursor(row_factory=dict_row) as cur:
        return cur.execute("SELECT * FROM get_rule_versions(%s)", (rule_id,)).fetchall()


def shadow_rule(
    conn: psycopg.Connection, rule_id: str, parameters: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Put a rule in shadow with candidate parameters merged over its live ones (SQL
    ``shadow_rule``), in the caller's transaction; a shadow already there starts
    again. Returns rule_id, parameters (the whole set), live_version,
    started_at, started_by. Errors: RuleNotFound, InvalidInput (the validator's
    message naming rule and parameter, as for a live change)."""
    with wrap_errors(), conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT * FROM shadow_rule(%s, %s::jsonb)",
            (rule_id, _json_numbers(parameters) if parameters is not None else None),
        ).fetchone()


def promote_shadow_rule(conn: psycopg.Connection, rule_id: str) -> dict[str, Any]:
    """Make a rule's shadow live (SQL ``promote_shadow_rule``: switched on with the
    shadow's parameters, the history re-scored as any rule change) and remove the
    shadow. Returns the rule: rule_id, enabled, parameters, description,
    expression. Errors: RuleNotFound when the rule has no shadow."""
    with wrap_errors(), conn.cursor(row_factory=dict_row) as cur:
        return cur.execute("SELECT * FROM promote_shadow_rule(%s)", (rule_id,)).fetchone()


def drop_shadow_rule(conn: psycopg.Connection, rule_id: str) -> dict[str, Any]:
    """End a rule's shadow (SQL ``drop_shadow_rule``); its shadow alerts go. Returns
    the removed shadow. Errors: RuleNotFound when the rule has no shadow."""
    with wrap_errors(), conn.cursor(row_factory=dict_row) as cur:
        return cur.execute("SELECT * FROM drop_shadow_rule(%s)", (rule_id,)).fetchone()


def compare_shadow_rules(conn: psycopg.Connection, rule_id: str | None = None) -> list[dict]:
    """Shadow against live per shadow rule (SQL ``compare_shadow_rules``) over the
    transactions stored since it started: rule_id, live_enabled, live_version,
    live_parameters, shadow_parameters, started_at, started_by, transactions,
    labelled, live_alerts, shadow_alerts, live_per_1000, shadow_per_1000 (Decimal,
    2 places), live_true_positives, shadow_true_positives, live_precision,
    live_recall, shadow_precision, shadow_recall (Decimal, 4 places, or None)."""
    _single_node_only(conn, "shadow rule comparisons")
    with wrap_errors(), conn.cursor(row_factory=dict_row) as cur:
        return cur.execute("SELECT * FROM compare_shadow_rules(%s)", (rule_id,)).fetchall()


# -- decisions, policy and lists (issue 17) ----------------------------------


def get_decision(conn: psycopg.Connection, transaction_id: int) -> dict[str, Any]:
    """The decision made when a transaction was stored, as answered (SQL
    ``get_decision``): ``{transaction_id, account_id, timestamp, amount,
    merchant_id, outcome, score, score_outcome, overruled, rules: [{rule_id,
    score, observed, threshold, reason}], lists: [entry], policy: {policy_id,
    review_threshold, decline_threshold}, rule_set_id, decided_at}``.
    Errors: TransactionNotFound when there is none."""
    with wrap_errors():
        return conn.execute("SELECT get_decision(%s)", (transaction_id,)).fetchone()[0]


def get_decisions(
    conn: psycopg.Connection,
    outcome: str | None = None,
    account_id: int | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    before: tuple[datetime, int] | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Decisions newest transaction time first (SQL ``get_decisions``), filtered by
    outcome, account and transaction time [start, end), strictly before the
    (timestamp, transaction_id) ``before``; at most ``limit`` (1..10000).
    Errors: InvalidInput naming outcome or limit."""
    before_ts, before_id = before if before is not None else (None, None)
    with wrap_errors():
        rows = conn.execute(
            "SELECT d FROM get_decisions(%s, %s, %s, %s, %s, %s, %s) AS d",
            (outcome, account_id, start, end, before_ts, before_id, limit),
        ).fetchall()
    return [r[0] for r in rows]


def get_decision_policy(conn: psycopg.Connection) -> dict[str, Any]:
    """The decision policy in force now (SQL ``get_decision_policy``):
    ``{policy_id, review_threshold, decline_threshold, default_score,
    rule_scores: {rule_id: score}, effective_from, set_by}`` (integers)."""
    with wrap_errors():
        return conn.execute("SELECT get_decision_policy()").fetchone()[0]


def set_decision_policy(
    conn: psycopg.Connection, changes: dict[str, Any] | str, actor: str | None = None
) -> dict[str, Any]:
    """A new version of the policy from now (SQL ``set_decision_policy``):
    ``changes`` ``{review_threshold, decline_threshold, default_score,
    rule_scores: {rule_id: int}}`` (each optional; integers), or that as JSON
    text. Returns the policy now in force. Errors: InvalidInput naming the
    field (not an integer in range, decline below review), RuleNotFound."""
    text = changes if isinstance(changes, str) else _json_numbers(changes)
    with wrap_errors():
        row = conn.execute("SELECT set_decision_policy(%s::jsonb, %s)", (text, actor)).fetchone()
    return row[0]


def get_lists(conn: psycopg.Connection) -> list[dict[str, Any]]:
    """Every list (SQL ``get_lists``): ``[{list_name, subject, kind, description,
    created_by, created_at, entries}]``, entries the number in force now."""
    with wrap_errors():
        return conn.execute("SELECT get_lists()").fetchone()[0]


def get_list(conn: psycopg.Connection, list_name: str) -> dict[str, Any]:
    """One list with its entries in force now (SQL ``get_list``). Errors:
    ListNotFound."""
    with wrap_errors():
        return conn.execute("SELECT get_list(%s)", (list_name,)).fetchone()[0]


def create_list(
    conn: psycopg.Connection,
    list_name: str,
    subject: str,
    kind: str,
    description: str = "",
    actor: str | None = None,
) -> dict[str, Any]:
    """Create an allow/block list of accounts or merchants (SQL ``create_list``,
    idempotent). Errors: InvalidInput naming the field."""
    with wrap_errors():
        return conn.execute(
            "SELECT create_list(%s, %s, %s, %s, %s)", (list_name, subject, kind, description, actor)
        ).fetchone()[0]


def add_list_entry(
    conn: psycopg.Connection,
    list_name: str,
    value: int,
    reason: str,
    expires_at: datetime | None = None,
    actor: str | None = None,
) -> dict[str, Any]:
    """Put an account/merchant id on a list from now (SQL ``add_list_entry``).
    Errors: ListNotFound (field list_name) for an unknown list; InvalidInput
    naming the field (expiry not in the future, empty reason)."""
    with wrap_errors():
        return conn.execute(
            "SELECT add_list_entry(%s, %s, %s, %s, %s)",
            (list_name, value, reason, expires_at, actor),
        ).fetchone()[0]


def remove_list_entry(
    conn: psycopg.Connection, list_name: str, value: int, actor: str | None = None
) -> dict[str, Any]:
    """Take a value off a list from now (SQL ``remove_list_entry``). Errors:
    ListNotFound (no such list, or the value is not on it)."""
    with wrap_errors():
        return conn.execute(
            "SELECT remove_list_entry(%s, %s, %s)", (list_name, value, actor)
        ).fetchone()[0]


def tune_rules(
    conn: psycopg.Connection,
    periods: tuple[datetime, datetime, datetime, datetime],
    max_alerts_per_1000: Decimal | None,
    min_precision: Decimal | None,
    candidates: list[str] | None,
    min_marginal_precision: Decimal | None = None,
) -> dict[str, Any]:
    """Choose rules and parameters from labels (SQL ``tune_rules``); changes nothing.

    ``periods``: (train_from, train_to, valid_from, valid_to), each range
    [from, to); ``min_marginal_precision``: the least share of fraud among the
    new alerts of each rule added (None: SQL's default, 0.5). Returns
    tune_rules' object with exact numbers (Decimal, int): chosen, live,
    search, figures (backtest_rules rows per set and period).
    Errors: InvalidInput naming the field (train_from, train_to, valid_from,
    valid_to, max_alerts_per_1000, min_precision, min_marginal_precision,
    candidates).
    """
    from pgfraud.wire import loads_json

    _single_node_only(conn, "tuning runs")
    with wrap_errors():
        text = conn.execute(
            "SELECT tune_rules(%s, %s, %s, %s, %s, %s, %s, %s)::text",
            (*periods, max_alerts_per_1000, min_precision, candidates, min_marginal_precision),
        ).fetchone()[0]
    return loads_json(text)


def _act_as(conn: psycopg.Connection, actor: str | None) -> None:
    """Record the writes of this database transaction as made for ``actor``
    (``pgfraud.actor``, transaction-local; read by SQL ``current_actor()``);
    None leaves the setting as it is (the service's per-request actor, or the
    login)."""
    if actor is not None:
        set_actor(conn, actor)


def get_cases(
    conn: psycopg.Connection,
    status: str | None = None,
    assignee: str | None = None,
    account_id: int | None = None,
    before: int | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Cases newest first (SQL ``get_cases``), filtered by status (open,
    assigned, closed), assignee and account, with case_id below ``before``;
    at most ``limit`` (1..10000). Each ``{case_id, account_id, status,
    assignee, assigned_by, assigned_at, resolution, note, opened_at,
    closed_at, closed_by, alert_count, transaction_count}``. Errors:
    InvalidInput naming status or limit."""
    with wrap_errors():
        rows = conn.execute(
            "SELECT c FROM get_cases(%s, %s, %s, %s, %s) AS c",
            (status, assignee, account_id, before, limit),
        ).fetchall()
    return [r[0] for r in rows]


def get_case(conn: psycopg.Connection, case_id: int) -> dict[str, Any]:
    """One case with its alerts (SQL ``get_case``). Errors: CaseNotFound."""
    with wrap_errors():
        return conn.execute("SELECT get_case(%s)", (case_id,)).fetchone()[0]


def assign_case(
    conn: psycopg.Connection, case_id: int, assignee: str, actor: str | None = None
) -> dict[str, Any]:
    """Assign a case that is not closed to ``assignee`` (SQL ``assign_case``),
    made for ``actor`` (None: current_actor()). Returns the case. Errors:
    InvalidInput naming assignee, CaseNotFound, CaseConflict (closed)."""
    with wrap_errors():
        _act_as(conn, actor)
        return conn.execute("SELECT assign_case(%s, %s)", (case_id, assignee)).fetchone()[0]


def close_case(
    conn: psycopg.Connection,
    case_id: int,
    resolution: str,
    note: str = "",
    actor: str | None = None,
) -> dict[str, Any]:
    """Close a case as ``fraud`` or ``not_fraud`` (SQL ``close_case``), reviewing
    its transactions (confirmed_fraud / false_positive) for ``actor`` (None:
    current_actor()), or as ``withdrawn`` when none of its alerts is raised
    any more, reviewing nothing. Returns the case with ``reviewed``
    (transactions reviewed). Errors: InvalidInput naming resolution (also
    withdrawn while an alert is raised) or note, CaseNotFound, CaseConflict
    (already closed)."""
    with wrap_errors():
        _act_as(conn, actor)
        return conn.execute(
            "SELECT close_case(%s, %s, %s)", (case_id, resolution, note)
        ).fetchone()[0]


# -- actors, tokens and the audit trail (issue 18) ----------------------------


def set_actor(conn: psycopg.Connection, actor: str) -> None:
    """Name ``actor`` as who the writes of the caller's open database transaction
    are made for (``pgfraud.actor``, SET LOCAL: read by SQL ``current_actor``;
    it ends with the transaction)."""
    with wrap_errors():
        conn.execute("SELECT set_config('pgfraud.actor', %s, true)", (actor,))


def add_api_token(
    conn: psycopg.Connection,
    token_name: str,
    role: str,
    secret_sha256: bytes,
    actor: str | None = None,
) -> dict[str, Any]:
    """Store a named token's name, role (analyst or owner) and the SHA-256
    digest of its secret (SQL ``add_api_token``). Returns ``{token_name,
    role, created_by, created_at, revoked_by, revoked_at}``. Errors:
    InvalidInput naming token_name (malformed, "default", in use) or role."""
    with wrap_errors():
        return conn.execute(
            "SELECT add_api_token(%s, %s, %s, %s)", (token_name, role, secret_sha256, actor)
        ).fetchone()[0]


def revoke_api_token(
    conn: psycopg.Connection, token_name: str, actor: str | None = None
) -> dict[str, Any]:
    """Revoke the live token ``token_name`` (SQL ``revoke_api_token``); returns
    it as :func:`add_api_token`. Errors: InvalidInput naming token_name when
    no live token has that name."""
    with wrap_errors():
        return conn.execute("SELECT revoke_api_token(%s, %s)", (token_name, actor)).fetchone()[0]


def get_api_tokens(conn: psycopg.Connection, include_revoked: bool = False) -> list[dict]:
    """The named tokens without secrets (SQL ``get_api_tokens``), live ones
    unless ``include_revoked``: ``[{token_name, role, created_by,
    created_at, revoked_by, revoked_at}]``."""
    with wrap_errors():
        return conn.execute("SELECT get_api_tokens(%s)", (include_revoked,)).fetchone()[0]


def get_api_token_digests(conn: psycopg.Connection) -> list[tuple[str, str, bytes | None]]:
    """(name, role, SHA-256 digest) of every named token (SQL
    ``get_api_token_digests``), what the service checks bearer tokens
    against; the digest is None for a revoked token."""
    with wrap_errors():
        rows = conn.execute(
            "SELECT token_name, role, secret_sha256 FROM get_api_token_digests()"
        ).fetchall()
    return [(name, role, bytes(d) if d is not None else None) for name, role, d in rows]


def get_audit(
    conn: psycopg.Connection,
    *,
    actor: str | None = None,
    object_kind: str | None = None,
    object_key: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    before: int | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """The audit trail newest first (SQL ``get_audit``): dicts with audit_id,
    at (datetime), actor, action (insert, update, delete), object_kind,
    object_key, before, after (the row as a dict, or None), alerts_added,
    alerts_removed (int, or None when the change re-scored nothing).
    Filters (None: any): actor, object kind and key, time of the change in
    [start, end); ``before``: only audit_id below it (the next page).
    Errors: InvalidInput naming limit (outside 1..10000)."""
    with wrap_errors(), conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT * FROM get_audit(%s, %s, %s, %s, %s, %s, %s)",
            (actor, object_kind, start, end, before, limit, object_key),
        ).fetchall()
