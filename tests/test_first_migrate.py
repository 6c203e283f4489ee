"""The first migrate of an empty database says what it applied, as later ones
do (fresh-user trial: `make run` and `pgfraud db start` listed the migrations
only, or nothing, while `pgfraud migrate` after an upgrade named its function
files). `migrate`, `run` and `db start` print the same line."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from pgfraud.cli import main
from pgfraud.db.server import LocalServer

PGFRAUD = str(Path(sys.executable).with_name("pgfraud"))
ROOT = Path(__file__).resolve().parent.parent


def first_migrate_line() -> str:
    """What the first migrate of an empty database did, from the files on disk:
    every migration, then the count of function files and the first three."""
    migrations = sorted(p.stem for p in (ROOT / "db" / "migrations").glob("*.sql"))
    functions = sorted(p.name for p in (ROOT / "db" / "functions").glob("*.sql"))
    assert len(migrations) > 3 and len(functions) > 3
    return (
        f"migrated: {', '.join(migrations)}; {len(functions)} function files applied"
        f" ({', '.join(functions[:3])}, ...); stored transactions re-scored"
    )


@pytest.fixture
def empty_database(server_admin_url: str) -> Iterator[str]:
    name = f"pgfraud_empty_{os.getpid()}"
    with psycopg.connect(server_admin_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")
    url = server_admin_url.rsplit("/", 1)[0] + f"/{name}"
    try:
        yield url
    finally:
        with psycopg.connect(server_admin_url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_migrate_of_an_empty_database_names_its_function_files(empty_database, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", empty_database)
    monkeypatch.delenv("PGFRAUD_APP_DATABASE_URL", raising=False)
    first = CliRunner().invoke(main, ["migrate"])
    assert (first.exit_code, first.stdout) == (0, first_migrate_line() + "\n")
    again = CliRunner().invoke(main, ["migrate"])
    assert again.stdout == "migrated: already up to date\n"


@pytest.fixture
def local_home(tmp_path: Path) -> Iterator[dict[str, str]]:
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "PGFRAUD_API_TOKEN")}
    env["PGFRAUD_HOME"] = str(home)
    yield env
    LocalServer(home).destroy()


def test_db_start_on_a_new_home_says_what_it_applied(local_home):
    def start() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [PGFRAUD, "db", "start"], env=local_home, capture_output=True, text=True, timeout=180
        )

    try:
        first = start()
        assert first.returncode == 0, first.stderr
        assert first.stdout.splitlines()[0] == first_migrate_line()
        # Running and migrated: nothing to say about migrations.
        second = start()
        assert second.returncode == 0, second.stderr
        assert second.stdout.startswith("PostgreSQL running: "), second.stdout
        assert "migrated" not in second.stdout
    finally:
        subprocess.run([PGFRAUD, "db", "stop"], env=local_home, capture_output=True, timeout=60)
