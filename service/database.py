"""The service's one connection pool, and the connection a view borrows.

The pool is built lazily, once per process, on the first request (after a
WSGI server forks its workers, never at import time) and closed with the
process. Each view borrows a connection with :func:`transaction`, runs one
call in one database transaction, and gives it back committed or rolled back,
so a failed request cannot poison the next one.

After a database restart the pooled connections are dead. The pool checks
each connection as it is handed out (its socket; an empty query when the
server has sent something or closed it); the first dead one
found makes the pool check all its idle connections, and the request waits
for a fresh one (about a second, psycopg_pool's back-off) instead of failing.
A read that still loses its connection mid-way (:func:`read`) is tried once
more on a fresh connection.

Reads and writes share the pool, but writes may hold at most POOL_MAX_SIZE
less POOL_READ_RESERVE connections (default 8 - 2 = 6) at once: a bulkhead,
so that stores queued behind a rule change's exclusive lock (each waits on
its pooled connection) cannot take every connection and starve the reads
(GET /is_fraud, /alerts, /health, the streams), which take no lock. A write
waits for one of its share (a semaphore of the process, no round trip) up
to the statement timeout (STATEMENT_TIMEOUT_MS: the writes ahead of it wait
at most that long for a lock), then for a connection up to POOL_TIMEOUT_S;
then it answers DatabaseUnavailable (503 database_unavailable, Retry-After). With
POOL_MAX_SIZE 1 nothing is reserved (writes take the one connection). At most
WRITE_QUEUE_MAX writes (default 8) wait for a slot at once in a process; one
more is answered 503 database_unavailable at once instead of waiting: each
waiting request holds one of the WSGI server's threads (32 per worker under
`pgfraud run`), and a flood of waiting stores would otherwise take them all,
so that reads, /health and the streams went unanswered.

While the database is down, requests answer 503 database_unavailable within
OUTAGE_WAIT_S (0.5 s), the first of an outage too, not after POOL_TIMEOUT_S:
a request that has waited OUTAGE_WAIT_S for a connection asks whether the
database is down or the pool merely busy, which one direct connection
attempt tells (at most one a second for the process; requests asking
meanwhile share its answer). Down: 503 at once. Up: the request waits the
rest of POOL_TIMEOUT_S. (A stream reads the tokens and the feed each turn:
at 5 s a wait it fell silent for 10-50 s, and a store waited up to 30 s,
under load.) The pool gives up a failed
reconnection after OUTAGE_WAIT_S (``reconnect_timeout``), and the next
request that needs a connection starts a new one at once, so the pool is back
within a request of the database's return, not after psycopg_pool's
back-off, which doubles up to half a minute and more.

A request whose database transaction is stopped by a conflict with another
one (a deadlock, 40P01, or a serialization failure, 40001) is run again:
:func:`read` and :func:`write` retry the whole transaction up to
CONFLICT_RETRIES times (default 3), after a jittered pause that grows each
time (CONFLICT_BACKOFF_S, default 0.05 s: 0-0.1 s, 0-0.2 s, 0-0.4 s), then
answer DatabaseConflict (503 database_conflict). This is safe because the
request's input is parsed before the first try and every write is
idempotent (a stored transaction is a duplicate the second time; a rule
change or review sets the same values), and a conflict rolls the whole
transaction back. A server failure (DatabaseFailed) is never retried.
"""

from __future__ import annotations

import atexit
import contextlib
import math
import select
import threading
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import psycopg
from flask import Flask, current_app, g, has_request_context
from psycopg import errors as pg_errors
from psycopg_pool import ConnectionPool, PoolTimeout

from pgfraud.db import retry_conflicts, translate_error
from pgfraud.errors import (
    ConfigurationError,
    DatabaseUnavailable,
    TimeLimitExceeded,
    TooBusy,
)

T = TypeVar("T")
_EXTENSION = "pgfraud_pool"
_WRITES = "pgfraud_pool_writes"  # the process's semaphore of write connections
_WRITE_QUEUE = "pgfraud_pool_write_queue"  # the writes waiting for one (_Queue)
_lock = threading.Lock()
OUTAGE_WAIT_S = 0.5  # the wait for a pooled connection while the database is down
_OUTAGE = "pgfraud_pool_outage"  # _Outage of the process


def init_app(app: Flask) -> None:
    """Register the (not yet opened) pool slot on the app."""
    app.extensions[_EXTENSION] = None
    app.extensions[_WRITES] = None


class _Queue:
    """A count of the threads waiting for a write slot, at most ``limit``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.waiting = 0
        self._lock = threading.Lock()

    def join(self) -> bool:
        """Count one more waiter; False (not counted) when ``limit`` already wait."""
        with self._lock:
            if self.waiting >= self.limit:
                return False
            self.waiting += 1
            return True

    def leave(self) -> None:
        with self._lock:
            self.waiting -= 1


def write_share(config) -> int:
    """How many of the pool's connections writes may hold at once: POOL_MAX_SIZE
    less POOL_READ_RESERVE, at least 1."""
    return max(1, int(config["POOL_MAX_SIZE"]) - int(config["POOL_READ_RESERVE"]))


def get_pool() -> ConnectionPool:
    """The process's pool for ``DATABASE_URL``; ConfigurationError when it is unset."""
    app = current_app
    pool = app.extensions.get(_EXTENSION)
    if pool is not None:
        return pool
    with _lock:
        pool = app.extensions.get(_EXTENSION)
        if pool is None:
            url = app.config.get("DATABASE_URL")
            if not url:
                raise ConfigurationError("DATABASE_URL is not set")
            timeout = int(app.config["STATEMENT_TIMEOUT_MS"])
            pool = ConnectionPool(
                url,
                min_size=1,
                max_size=int(app.config["POOL_MAX_SIZE"]),
                kwargs={
                    "options": f"-c timezone=UTC -c statement_timeout={timeout}",
                    # Reads are one statement: no BEGIN/COMMIT round trips for them.
                    "autocommit": True,
                },
                timeout=float(app.config["POOL_TIMEOUT_S"]),
                # A failed reconnection is given up soon and started afresh by
                # the next request (see the module docstring).
                reconnect_timeout=OUTAGE_WAIT_S,
                check=lambda conn: _check_connection(pool, conn),
                open=True,
                name="pgfraud",
            )
            atexit.register(pool.close)
            app.extensions[_WRITES] = threading.BoundedSemaphore(write_share(app.config))
            app.extensions[_WRITE_QUEUE] = _Queue(int(app.config["WRITE_QUEUE_MAX"]))
            app.extensions[_OUTAGE] = _Outage(url)
            app.extensions[_EXTENSION] = pool
    return pool


def _check_connection(pool: ConnectionPool, conn: psycopg.Connection) -> None:
    """The pool's check on checkout, without a round trip when the connection
    is healthy. An idle connection has nothing to read: when its socket is
    readable, the server has closed it or said something (a restart's
    "terminating connection"), and only then is it checked with an empty
    query (ConnectionPool.check_connection). A connection broken by a server
    restart is not handed out; the pool's other idle connections are checked
    at once (ConnectionPool.check) so the retry finds a good one instead of
    each stale connection costing a back-off of its own. (An empty query on
    every checkout cost a round trip per request.)"""
    try:
        if conn.closed or _readable(conn.fileno()):
            ConnectionPool.check_connection(conn)
    except (psycopg.Error, OSError, ValueError):
        pool.check()
        raise psycopg.OperationalError("the connection was lost") from None


def _readable(fd: int) -> bool:
    """Whether the socket ``fd`` has something to read now (poll, not select:
    any descriptor number, select() refuses those of 1024 and above)."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


def close_pool(app: Flask) -> None:
    """Close the app's pool, if open (tests, shutdown)."""
    pool = app.extensions.get(_EXTENSION)
    if pool is not None:
        pool.close()
        app.extensions[_EXTENSION] = None
        app.extensions[_WRITES] = None
        app.extensions[_WRITE_QUEUE] = None


def _name_actor(conn: psycopg.Connection) -> None:
    """Name the request's caller (its token's name, ``g.identity``) as the actor
    of the open database transaction's writes (``pgfraud.actor``, SET LOCAL,
    which SQL ``current_actor()`` reads: reviews, rule, policy, list and token
    changes, the audit trail). Nothing when everything is open (no token
    configured): the actor is then the service's database login."""
    identity = g.get("identity") if has_request_context() else None
    if identity is not None:
        conn.execute("SELECT set_config('pgfraud.actor', %s, true)", (identity.name,))


class _Outage:
    """Whether the database is down, as the process last found (see the module
    docstring): asked when a request has waited OUTAGE_WAIT_S for a pooled
    connection, answered by one direct connection attempt at most once a
    second for the process, and cleared by the next connection the pool hands
    out."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.down = False
        self._probed_at = -math.inf
        self._lock = threading.Lock()

    def is_down(self) -> bool:
        """Down, or is the pool only busy? A direct connection attempt
        (connect_timeout 2 s) tells, unless one did less than a second ago;
        requests that ask meanwhile wait for that attempt and share its
        answer."""
        with self._lock:
            if time.monotonic() - self._probed_at >= 1.0:
                try:
                    psycopg.connect(self.url, connect_timeout=2).close()
                except psycopg.Error:
                    self.down = True
                else:
                    self.down = False  # up: the pool is busy, or reconnecting
                self._probed_at = time.monotonic()
            return self.down


@contextlib.contextmanager
def _pooled(pool: ConnectionPool) -> Iterator[psycopg.Connection]:
    """``pool.connection()``, waited for up to POOL_TIMEOUT_S in all; after the
    first OUTAGE_WAIT_S, only if the database is up (:meth:`_Outage.is_down`).
    PoolTimeout when none comes, at once when the database is down."""
    outage: _Outage = current_app.extensions[_OUTAGE]
    full = float(current_app.config["POOL_TIMEOUT_S"])
    first = min(full, OUTAGE_WAIT_S)
    with contextlib.ExitStack() as stack:
        try:
            conn = stack.enter_context(pool.connection(timeout=first))
        except PoolTimeout:
            if full <= first or outage.is_down():
                raise
            conn = stack.enter_context(pool.connection(timeout=full - first))
        outage.down = False
        yield conn


@contextlib.contextmanager
def _connection(*, writes: bool) -> Iterator[psycopg.Connection]:
    """A pooled connection (autocommit); for a write, first one of the writes'
    share (see the module docstring), waited for up to the statement timeout
    (the writes ahead are stores queued behind a lock, say, each of which
    waits at most that long), then a connection, up to POOL_TIMEOUT_S as any
    request. PoolTimeout when either does not come in time."""
    pool = get_pool()
    if not writes:
        with _pooled(pool) as conn:
            yield conn
        return
    wait_s = int(current_app.config["STATEMENT_TIMEOUT_MS"]) / 1000
    share = current_app.extensions[_WRITES]
    if not share.acquire(blocking=False):  # the common case: a slot free, no wait
        queue = current_app.extensions[_WRITE_QUEUE]
        if not queue.join():
            raise DatabaseUnavailable(
                "too many writes are waiting for the database; try again shortly"
            )
        try:
            acquired = share.acquire(timeout=wait_s)
        finally:
            queue.leave()
        if not acquired:
            raise PoolTimeout(
                f"couldn't get a write connection after {wait_s:.2f} sec "
                f"({write_share(current_app.config)} are writing)"
            )
    try:
        with _pooled(pool) as conn:
            yield conn
    finally:
        share.release()


@contextlib.contextmanager
def transaction(*, actor: bool = False) -> Iterator[psycopg.Connection]:
    """A pooled connection inside one database transaction: committed when the
    block ends normally, rolled back when it raises. With ``actor``, a
    transaction that writes: the caller is named as its actor first
    (:func:`_name_actor`), on a connection of the writes' share (a transaction
    without ``actor`` only reads). DatabaseUnavailable when no connection can
    be had."""
    try:
        with _connection(writes=actor) as conn, conn.transaction():
            if actor:
                _name_actor(conn)
            yield conn
    except PoolTimeout as exc:
        raise DatabaseUnavailable() from exc
    except psycopg.Error as exc:  # at COMMIT, or not wrapped by pgfraud.db
        raise translate_error(exc) from exc


@contextlib.contextmanager
def reading() -> Iterator[psycopg.Connection]:
    """A pooled connection in autocommit mode, for a view whose one statement
    only reads (each statement is its own snapshot; no BEGIN/COMMIT round
    trips). DatabaseUnavailable when no connection can be had."""
    try:
        with _connection(writes=False) as conn:
            yield conn
    except PoolTimeout as exc:
        raise DatabaseUnavailable() from exc
    except psycopg.Error as exc:  # not wrapped by pgfraud.db
        raise translate_error(exc) from exc


@contextlib.contextmanager
def single_statement() -> Iterator[psycopg.Connection]:
    """A pooled connection of the writes' share in autocommit mode, for a view
    whose one statement writes: a statement (one SQL function call) is atomic
    on its own, so it needs no BEGIN/COMMIT round trips (two of the three a
    single-row POST made). DatabaseUnavailable when no connection can be had."""
    try:
        with _connection(writes=True) as conn:
            yield conn
    except PoolTimeout as exc:
        raise DatabaseUnavailable() from exc
    except psycopg.Error as exc:  # not wrapped by pgfraud.db
        raise translate_error(exc) from exc


def _connection_lost(exc: DatabaseUnavailable) -> bool:
    """True when ``exc`` wraps a lost connection, not a timeout (statement or pool)."""
    cause = exc.__cause__
    return isinstance(cause, psycopg.OperationalError) and not isinstance(
        cause, pg_errors.QueryCanceled | PoolTimeout
    )


def retrying_conflicts(attempt: Callable[[], T]) -> T:
    """``attempt()``, run again after a jittered pause while it ends in
    DatabaseConflict, at most CONFLICT_RETRIES more times; then that
    DatabaseConflict, its message saying how many tries were made
    (:func:`pgfraud.db.retry_conflicts`, the CLI's retry too)."""
    return retry_conflicts(
        attempt,
        retries=int(current_app.config["CONFLICT_RETRIES"]),
        backoff_s=float(current_app.config["CONFLICT_BACKOFF_S"]),
        on_retry=lambda exc: current_app.logger.info(
            "retrying after a database conflict (%s)", exc.__cause__
        ),
    )


_single_statement = single_statement  # write()'s parameter of that name hides it


def write(work: Callable[[psycopg.Connection], T], *, single_statement: bool = False) -> T:
    """Run ``work(conn)`` in one database transaction (:func:`transaction`, the
    caller named as its actor), or, with ``single_statement``, on an autocommit
    connection (a single statement is atomic on its own: no BEGIN/COMMIT round
    trips; stores of transactions, which record no actor). A conflict with a concurrent
    transaction (deadlock, serialization failure) rolls it back, and ``work`` runs
    again from the start (see the module docstring), so ``work`` must be
    idempotent and do nothing but database calls. Errors: DatabaseConflict when
    every try conflicted; DatabaseUnavailable; DatabaseFailed; whatever ``work``
    raises."""

    def attempt() -> T:
        with _single_statement() if single_statement else transaction(actor=True) as conn:
            return work(conn)

    return retrying_conflicts(attempt)


def read(work: Callable[[psycopg.Connection], T]) -> T:
    """Run an idempotent read ``work(conn)`` on an autocommit connection
    (:func:`reading`: one statement, no BEGIN/COMMIT round trips); if the
    connection is lost on the way (a restart between the pool's check and the
    query), run it once more on a fresh connection; conflicts are retried as
    in :func:`write`. DatabaseUnavailable when that fails too, or on a timeout
    (never retried)."""

    def attempt() -> T:
        try:
            with reading() as conn:
                return work(conn)
        except DatabaseUnavailable as exc:
            if not _connection_lost(exc):
                raise
        with reading() as conn:
            return work(conn)

    return retrying_conflicts(attempt)


def take_rule_change_slot(conn: psycopg.Connection) -> None:
    """Take one of MAX_RULE_CHANGES slots for an owner's change under the
    exclusive rule-change lock (SQL ``take_rule_change_slot``), for the rest of
    ``conn``'s transaction: rule changes, shadows, the decision policy, list
    entries. A budget apart from the backtests' MAX_HEAVY, so an analyst's
    backtests never refuse an owner's change.

    Errors: TooBusy (429, Retry-After) when every slot is taken."""
    slots = int(current_app.config["MAX_RULE_CHANGES"])
    if conn.execute("SELECT take_rule_change_slot(%s)", (slots,)).fetchone()[0] is None:
        raise TooBusy(
            f"{slots} rule change{'s are' if slots != 1 else ' is'} running (rule, shadow, "
            "policy and list changes: PGFRAUD_MAX_RULE_CHANGES); try again later"
        )


@contextlib.contextmanager
def heavy_transaction(
    what: str, *, limit: str = "HEAVY_TIMEOUT_MS"
) -> Iterator[psycopg.Connection]:
    """:func:`transaction` for heavy work (``what``: "backtest", "tune", "rule
    change"): first a slot (a rule change: one of MAX_RULE_CHANGES, see
    :func:`take_rule_change_slot`; anything else, a backtest: one of
    MAX_HEAVY, SQL ``take_heavy_slot``; advisory locks of the database, so
    each bound holds across worker processes), then the work, under the
    statement timeout of the config key ``limit`` (HEAVY_TIMEOUT_MS for
    backtests, which only read; a rule change sets its own
    RULE_CHANGE_TIMEOUT_MS inside, see routes._rule_change), with
    application_name ``pgfraud <what>`` (pg_stat_activity). The slot is
    freed when the transaction ends.

    Errors: TooBusy (429, Retry-After) when every slot is taken;
    TimeLimitExceeded when a statement runs past the limit (rolled back:
    nothing changed); DatabaseUnavailable as :func:`transaction`.
    """
    slots = int(current_app.config["MAX_HEAVY"])
    limit_ms = int(current_app.config[limit])
    try:
        with transaction(actor=True) as conn:
            if what == "rule change":
                take_rule_change_slot(conn)
            elif conn.execute("SELECT take_heavy_slot(%s)", (slots,)).fetchone()[0] is None:
                raise TooBusy(
                    f"{slots} backtest{'s are' if slots != 1 else ' is'} running "
                    f"(PGFRAUD_MAX_HEAVY); try the {what} again later"
                )
            # Named in pg_stat_activity while it runs ("pgfraud backtest", "pgfraud
            # tune", "pgfraud rule change"): a client that goes away is not seen
            # until the answer is written (docs/operations.md), so an operator
            # can find such work and cancel it; both revert when it ends.
            conn.execute(
                "SELECT set_config('statement_timeout', %s, true),"
                " set_config('application_name', %s, true)",
                (str(limit_ms), f"pgfraud {what}"),
            )
            yield conn
    except DatabaseUnavailable as exc:
        if isinstance(exc.__cause__, pg_errors.QueryCanceled):
            raise TimeLimitExceeded(
                f"the {what} ran past its time limit of {limit_ms / 1000:g} s "
                f"({'PGFRAUD_' if limit == 'HEAVY_TIMEOUT_MS' else ''}{limit}) and was "
                "cancelled; nothing changed"
            ) from None
        raise
