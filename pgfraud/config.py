"""Where the database is, read from the environment.

``DATABASE_URL`` set: that server, for everything (migrations need a role that
owns the schema; give the service a login made by ``pgfraud db create-user``
through ``PGFRAUD_APP_DATABASE_URL``). Not set: the project's local server in
``PGFRAUD_HOME`` (default ``./.pgfraud``), see :mod:`pgfraud.db.server`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pgfraud.db.server import LocalServer, running
from pgfraud.errors import ConfigurationError


def home() -> Path:
    """The folder of the local server's data and secrets: PGFRAUD_HOME or ./.pgfraud."""
    return Path(os.environ.get("PGFRAUD_HOME") or Path.cwd() / ".pgfraud").absolute()


def external_url() -> str | None:
    """DATABASE_URL when set (non-empty), else None."""
    return os.environ.get("DATABASE_URL") or None


@dataclass(frozen=True)
class Database:
    """Connection URLs: ``admin_url`` owns the schema, ``app_url`` is the service's login."""

    admin_url: str
    app_url: str
    server: LocalServer | None = None


def describe() -> Database:
    """The database as configured, without starting anything."""
    url = external_url()
    if url:
        return Database(admin_url=url, app_url=os.environ.get("PGFRAUD_APP_DATABASE_URL") or url)
    server = LocalServer(home())
    return Database(admin_url=server.url(admin=True), app_url=server.url(), server=server)


@contextlib.contextmanager
def database() -> Iterator[Database]:
    """The configured database, reachable for the duration of the block.

    With DATABASE_URL: that server, nothing started. Without: the local
    server, started if it was not running and stopped again afterwards.
    """
    url = external_url()
    if url:
        yield describe()
        return
    with running(home()) as server:
        yield Database(admin_url=server.url(admin=True), app_url=server.url(), server=server)


def no_database_message() -> str:
    """What to do when a command needs stored data and this folder has no database."""
    return (
        f"no pgfraud database in {home()}: this command works on the database made by "
        "`make run` (or `pgfraud db start`) in the project's folder; run it from that folder, "
        "set PGFRAUD_HOME to that folder's .pgfraud, or set DATABASE_URL"
    )


@contextlib.contextmanager
def existing_database() -> Iterator[Database]:
    """As :func:`database`, but never creates a local server: for commands that work on
    stored data (load, load-labels, evaluate, generate into the database).

    Errors: ConfigurationError (saying what to do) when DATABASE_URL is not
    set and ``home()`` holds no local database.
    """
    if not external_url() and not LocalServer(home()).initialized:
        raise ConfigurationError(no_database_message())
    with database() as described:
        yield described


RULE_CHANGE_TIMEOUT_MS = 600_000


IDLE_TRANSACTION_TIMEOUT_MS = 60_000


def idle_transaction_timeout_ms() -> int:
    """idle_in_transaction_session_timeout of the roles pgfraud creates (the
    service's, `pgfraud db create-user`'s) and of the local server's database,
    in milliseconds: PGFRAUD_IDLE_TRANSACTION_TIMEOUT_MS, default 60,000
    (60 s); 0 means none. A transaction left open and idle past it is ended by
    the server, so it cannot hold the live feeds back for longer.

    Errors: ConfigurationError naming the variable when it is not an integer
    from 0 to 2,147,483,647.
    """
    text = os.environ.get("PGFRAUD_IDLE_TRANSACTION_TIMEOUT_MS")
    if not text:
        return IDLE_TRANSACTION_TIMEOUT_MS
    try:
        value = int(text.strip())
    except ValueError:
        value = -1
    if not 0 <= value <= 2_147_483_647:
        raise ConfigurationError(
            "PGFRAUD_IDLE_TRANSACTION_TIMEOUT_MS must be an integer number of milliseconds "
            f"from 0 (none) to 2147483647; got {text!r}"
        )
    return value


def rule_change_timeout_ms() -> int:
    """How long one rule change (re-scoring the stored history) may run, in
    milliseconds: PGFRAUD_RULE_CHANGE_TIMEOUT_MS, default 600,000 (10 minutes;
    a change re-scores 10M rows in about 40 s); 0 means no limit. It replaces
    the statement timeout for that database transaction alone (SET LOCAL).

    Errors: ConfigurationError naming the variable when it is not an integer
    from 0 to 2,147,483,647.
    """
    text = os.environ.get("PGFRAUD_RULE_CHANGE_TIMEOUT_MS")
    if not text:
        return RULE_CHANGE_TIMEOUT_MS
    try:
        value = int(text.strip())
    except ValueError:
        value = -1
    if not 0 <= value <= 2_147_483_647:
        raise ConfigurationError(
            "PGFRAUD_RULE_CHANGE_TIMEOUT_MS must be an integer number of milliseconds "
            f"from 0 (no limit) to 2147483647; got {text!r}"
        )
    return value
