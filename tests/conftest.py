"""Test fixtures: one throwaway PostgreSQL for the session, a fresh database per test.

The server comes from testing.postgresql (the design card's test stack): a
PostgreSQL in a temporary folder, initdb run once per session and copied for
every further server a test starts (its cached-initdb factory, see
:func:`postgresql_factory`). Binaries are the project's own choice
(pgfraud.db.server.find_bindir: PGFRAUD_PG_BIN first, so the suite runs on
another major version by pointing that at its bin folder). PostgreSQL refuses
to run as root; as root, initdb and postgres run through small wrapper
scripts that hand the folder to the server user and exec the binary with
setpriv, as pgfraud.db.server does for the local server.

The schema is migrated once into a template database; each test gets a copy
(CREATE DATABASE … TEMPLATE), and connects as the service's real login role,
so a missing GRANT fails a test.

With PGFRAUD_TEST_DATABASE_URL set (an owner/superuser URL of a server you
run), that server is used instead of starting one (tests that restart a
server still start their own, so they need server binaries).
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
import testing.postgresql

from pgfraud import db
from pgfraud.config import Database
from pgfraud.db.migrate import migrate
from pgfraud.db.server import APP_USER, _server_user, find_bindir

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


def pytest_report_header(config) -> str:
    """Which PostgreSQL the tests run on (CI runs them on two major versions)."""
    if os.environ.get("PGFRAUD_TEST_DATABASE_URL"):
        return "PostgreSQL: the server of PGFRAUD_TEST_DATABASE_URL"
    bindir = find_bindir()
    version = subprocess.run(
        [str(bindir / "postgres"), "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return f"PostgreSQL: {version} from {bindir}"


# As root: hand testing.postgresql's folder (the parent of -D) to the server
# user, then run the binary as that user. exec keeps the pid, so stopping the
# server signals postgres itself.
_WRAPPER = """#!/bin/sh
set -e
prev=""
for arg in "$@"; do
    if [ "$prev" = "-D" ]; then chown -R {uid}:{gid} "$(dirname "$arg")"; fi
    prev="$arg"
done
exec setpriv --reuid={uid} --regid={gid} --init-groups {binary} "$@"
"""


def _programs(folder: Path) -> dict[str, str]:
    """initdb= and postgres= for testing.postgresql: the binaries, or root wrappers."""
    bindir = find_bindir()
    user = _server_user()
    if user is None:
        return {"initdb": str(bindir / "initdb"), "postgres": str(bindir / "postgres")}
    programs = {}
    for name in ("initdb", "postgres"):
        path = folder / name
        path.write_text(_WRAPPER.format(uid=user.pw_uid, gid=user.pw_gid, binary=bindir / name))
        path.chmod(0o755)
        programs[name] = str(path)
    return programs


@pytest.fixture(scope="session")
def postgresql_factory() -> Iterator[testing.postgresql.PostgresqlFactory]:
    """testing.postgresql's factory with a cached initdb: each server it makes
    starts from a copy of one initialised cluster (UTF8, C locale, UTC)."""
    folder = Path(tempfile.mkdtemp(prefix="pgfraud-test-bin-", dir="/tmp"))
    os.chmod(folder, 0o755)
    factory = testing.postgresql.PostgresqlFactory(
        cache_initialized_db=True,
        initdb_args="-U postgres -A trust -E UTF8 --locale=C --no-sync",
        postgres_args="-h 127.0.0.1 -F -c logging_collector=off -c timezone=UTC",
        **_programs(folder),
    )
    try:
        yield factory
    finally:
        factory.clear_cache()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def server_admin_url(request) -> Iterator[str]:
    """Owner URL of the test server's maintenance database `postgres`."""
    external = os.environ.get("PGFRAUD_TEST_DATABASE_URL")
    if external:
        yield _with_database(external, "postgres")
        return
    server = request.getfixturevalue("postgresql_factory")()
    try:
        yield server.url(database="postgres")
    finally:
        server.stop()


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
