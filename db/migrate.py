"""Apply the schema: migrations once each, in order; function files every time.

``db/migrations/NNNN_verb_object.sql`` run once, in file-name order, each
recorded in ``schema_migrations``; then every ``db/functions/*.sql`` is
re-applied (``CREATE OR REPLACE``). All of it runs in one database transaction
under an advisory lock, so two migrators cannot race and a failure leaves the
schema as it was.
"""

from __future__ import annotations

import re
from importlib import resources
from importlib.abc import Traversable

import psycopg

# Key of the advisory lock that serialises migrators (any fixed bigint).
MIGRATION_LOCK_KEY = 7_231_546_390_112_207
MIGRATION_NAME = re.compile(r"^\d{4}_[a-z][a-z0-9_]*\.sql$")

# Work a migration needs from the function files, run once after they are
# applied in the same database transaction, when that migration was applied
# now: 0005 scores the transactions already stored (alerts, account_states),
# 0008 re-scores them with the new rules.
AFTER_FUNCTIONS = {
    "0005_create_alerts": "SELECT rescore_alerts(true)",
    # 0008 adds rules and windows: the stored transactions are scored again.
    "0008_add_merchants": "SELECT rescore_alerts(false)",
}


def _sql_files(folder: str) -> list[Traversable]:
    root = resources.files("pgfraud.db") / folder
    return sorted(
        (f for f in root.iterdir() if f.name.endswith(".sql")),
        key=lambda f: f.name,
    )


def migration_files() -> list[Traversable]:
    """The migration files, in order; ValueError for a name not like NNNN_verb_object.sql."""
    files = _sql_files("migrations")
    for f in files:
        if not MIGRATION_NAME.match(f.name):
            raise ValueError(f"migration file name {f.name!r} is not NNNN_verb_object.sql")
    return files


def function_files() -> list[Traversable]:
    """The function files (one public function and its overloads each), in name order."""
    return _sql_files("functions")


class MigrationError(Exception):
    """A migration or function file failed; the database is left as it was."""

    def __init__(self, file_name: str, exc: psycopg.Error) -> None:
        self.file_name = file_name
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        super().__init__(f"{file_name}: {detail}")


def _apply(conn: psycopg.Connection, f: Traversable) -> None:
    try:
        conn.execute(f.read_text(encoding="utf-8"))
    except psycopg.Error as exc:
        raise MigrationError(f.name, exc) from exc


def migrate(conn: psycopg.Connection) -> list[str]:
    """Bring the database ``conn`` points at up to date; returns the migrations applied now.

    Needs a role that may create tables, types and roles (the database owner).
    Errors: MigrationError naming the file that failed; nothing is applied then.
    """
    applied_now: list[str] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_KEY,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version text NOT NULL CONSTRAINT schema_migrations_pkey PRIMARY KEY,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
        for f in migration_files():
            version = f.name.removesuffix(".sql")
            if version in done:
                continue
            _apply(conn, f)
            conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))
            applied_now.append(version)
        # Function files go in name order, and one may call another defined
        # later (as pg_dump does, bodies are checked when called, not created).
        conn.execute("SET LOCAL check_function_bodies = off")
        for f in function_files():
            _apply(conn, f)
        conn.execute("SET LOCAL check_function_bodies = on")
        for version in applied_now:
            if version in AFTER_FUNCTIONS:
                try:
                    conn.execute(AFTER_FUNCTIONS[version])
                except psycopg.Error as exc:
                    raise MigrationError(f"{version}.sql (after functions)", exc) from exc
    return applied_now
