"""Test fixtures: one throwaway PostgreSQL for the session, a fresh database per test.

The server is the project's own local server (pgfraud.db.server) in a
temporary folder, so the tests also exercise the way `make run` gets its
PostgreSQL, as root (setpriv) or as a normal user. The schema is migrated once
into a template database; each test gets a copy (CREATE DATABASE … TEMPLATE),
and connects as the service's real login role, so a missing GRANT fails a test.

With PGFRAUD_TEST_DATABASE_URL set (an owner/superuser URL of a server you
run), that server is used instead of starting one.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from pgfraud import db
from pgfraud.config import Database
from pgfraud.db.migrate import migrate
from pgfraud.db.server import APP_USER, LocalServer

TEMPLATE = "pgfraud_test_template"
_counter = itertools.count()


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def _with_user(url: str, user: str, password: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit(parts._replace(netloc=f"{user}:{password}@{host}{port}"))


@pytest.fixture(scope="session")
def server_admin_url() -> Iterator[str]:
    """Owner URL of the test server's maintenance database `postgres`."""
    external = os.environ.get("PGFRAUD_TEST_DATABASE_URL")
    if external:
        yield _with_database(external, "postgres")
        return
    # As root the server runs as another user, so the folder must be reachable by it.
    base = Path(tempfile.mkdtemp(prefix="pgfraud-test-", dir="/tmp"))
    os.chmod(base, 0o755)
    server = LocalServer(base / "home")
    server.start()
    try:
        yield server.url(admin=True, database="postgres")
    finally:
        server.destroy()
        shutil.rmtree(base, ignore_errors=True)


APP_PASSWORD = "test-service-password"


@pytest.fixture(scope="session")
def template(server_admin_url: str) -> str:
    """Create the migrated template database and the service login role once."""
    with psycopg.connect(server_admin_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {TEMPLATE}")
        conn.execute(f"CREATE DATABASE {TEMPLATE}")
    with db.connect(_with_database(server_admin_url, TEMPLATE)) as conn:
        migrate(conn)
        conn.commit()
        db.create_app_user(conn, APP_USER, APP_PASSWORD, False)
        conn.commit()
    return TEMPLATE


@pytest.fixture
def database(server_admin_url: str, template: str) -> Iterator[Database]:
    """A fresh migrated database for one test: owner URL and service-role URL."""
    name = f"pgfraud_test_{os.getpid()}_{next(_counter)}"
    with psycopg.connect(server_admin_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {template}")
    admin_url = _with_database(server_admin_url, name)
    try:
        yield Database(admin_url=admin_url, app_url=_with_user(admin_url, APP_USER, APP_PASSWORD))
    finally:
        with psycopg.connect(server_admin_url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def app_conn(database: Database) -> Iterator[psycopg.Connection]:
    """A connection as the service's login role (autocommit off)."""
    with db.connect(database.app_url) as conn:
        yield conn


@pytest.fixture
def admin_conn(database: Database) -> Iterator[psycopg.Connection]:
    """A connection as the database owner (autocommit on), for setting up rules."""
    with db.connect(database.admin_url, autocommit=True) as conn:
        yield conn


@pytest.fixture
def app(database: Database):
    """The Flask app, connected as the service's login role to a fresh database."""
    from pgfraud.service import create_app
    from pgfraud.service.database import close_pool
    from pgfraud.service.feed import stop_listener

    app = create_app({"TESTING": True, "DATABASE_URL": database.app_url})
    yield app
    stop_listener(app)
    close_pool(app)


@pytest.fixture
def client(app):
    return app.test_client()
