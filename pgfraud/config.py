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
