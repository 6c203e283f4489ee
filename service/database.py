"""The service's one connection pool, and the connection a view borrows.

The pool is built lazily, once per process, on the first request (after a
WSGI server forks its workers, never at import time) and closed with the
process. Each view borrows a connection with :func:`transaction`, runs one
call in one database transaction, and gives it back committed or rolled back,
so a failed request cannot poison the next one.
"""

from __future__ import annotations

import atexit
import contextlib
import threading
from collections.abc import Iterator

import psycopg
from flask import Flask, current_app
from psycopg_pool import ConnectionPool, PoolTimeout

from pgfraud.errors import ConfigurationError, DatabaseUnavailable

_EXTENSION = "pgfraud_pool"
_lock = threading.Lock()


def init_app(app: Flask) -> None:
    """Register the (not yet opened) pool slot on the app."""
    app.extensions[_EXTENSION] = None


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
                open=True,
                name="pgfraud",
            )
            atexit.register(pool.close)
            app.extensions[_EXTENSION] = pool
    return pool


def close_pool(app: Flask) -> None:
    """Close the app's pool, if open (tests, shutdown)."""
    pool = app.extensions.get(_EXTENSION)
    if pool is not None:
        pool.close()
        app.extensions[_EXTENSION] = None


@contextlib.contextmanager
def transaction() -> Iterator[psycopg.Connection]:
    """A pooled connection inside one database transaction: committed when the
    block ends normally, rolled back when it raises. DatabaseUnavailable when no
    connection can be had."""
    try:
        with get_pool().connection() as conn, conn.transaction():
            yield conn
    except (PoolTimeout, psycopg.OperationalError) as exc:
        raise DatabaseUnavailable() from exc


@contextlib.contextmanager
def reading() -> Iterator[psycopg.Connection]:
    """A pooled connection in autocommit mode, for a view whose one statement
    only reads (each statement is its own snapshot; no BEGIN/COMMIT round
    trips). DatabaseUnavailable when no connection can be had."""
    try:
        with get_pool().connection() as conn:
            yield conn
    except (PoolTimeout, psycopg.OperationalError) as exc:
        raise DatabaseUnavailable() from exc
