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

from pgfraud.errors import ConfigurationError

# The oldest PostgreSQL the schema runs on: 14 (extract() returns numeric, so
# round(extract(epoch ...), 3) works; CREATE OR REPLACE TRIGGER).
MIN_SERVER_VERSION_NUM = 140000

# Key of the advisory lock that serialises migrators (any fixed bigint).
MIGRATION_LOCK_KEY = 7_231_546_390_112_207
MIGRATION_NAME = re.compile(r"^\d{4}_[a-z][a-z0-9_]*\.sql$")


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


def _version_text(server_version_num: int) -> str:
    major = server_version_num // 10000
    if major >= 10:
        return f"{major}.{server_version_num % 10000}"
    return f"{major}.{server_version_num // 100 % 100}.{server_version_num % 100}"


def check_server_version(server_version_num: int) -> None:
    """Refuse a server older than MIN_SERVER_VERSION_NUM.

    ``server_version_num``: PostgreSQL's integer form (150004 for 15.4,
    90624 for 9.6.24). Errors: ConfigurationError, one line naming the version
    found and the one needed.
    """
    if server_version_num < MIN_SERVER_VERSION_NUM:
        raise ConfigurationError(
            f"PostgreSQL {_version_text(server_version_num)} found; pgfraud needs "
            f"PostgreSQL {_version_text(MIN_SERVER_VERSION_NUM).split('.')[0]} or later"
        )


# The code of every function in the schema, as PostgreSQL holds it (body,
# language, volatility, settings), in a stable order: equal before and after
# the function files are applied exactly when they changed no function.
FUNCTIONS_FINGERPRINT = (
    "SELECT md5(coalesce(string_agg(pg_get_functiondef(p.oid), E'\\n'"
    " ORDER BY p.oid::regprocedure::text), ''))"
    " FROM pg_proc AS p"
    " WHERE p.pronamespace = current_schema()::regnamespace AND p.prokind IN ('f', 'p')"
)


def migrate(conn: psycopg.Connection) -> list[str]:
    """Bring the database ``conn`` points at up to date; returns the migrations applied now.

    Needs a role that may create tables, types and roles (the database owner).
    Stored rule parameters are checked (validate_rules) after the function
    files, so a migration may add a rule that only the new files know.
    Errors: ConfigurationError for a server older than PostgreSQL 14 (nothing
    is applied); MigrationError naming the file that failed, or "the rules
    table" with the rule and parameter that fail validate_rules; nothing is
    applied then.
    """
    check_server_version(conn.info.server_version)
    applied_now: list[str] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_KEY,))
        # The rules trigger waits until the new function files are in (see below).
        conn.execute("SET LOCAL pgfraud.migrating = 'on'")
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
        code_before = conn.execute(FUNCTIONS_FINGERPRINT).fetchone()[0]
        conn.execute("SET LOCAL check_function_bodies = off")
        for f in function_files():
            _apply(conn, f)
        conn.execute("SET LOCAL check_function_bodies = on")
        code_changed = conn.execute(FUNCTIONS_FINGERPRINT).fetchone()[0] != code_before
        # Every stored rule against the schema of the functions just applied;
        # rows whose normalised form differs are rewritten.
        try:
            changed = conn.execute(
                "UPDATE rules AS r SET parameters = v.parameters"
                " FROM (SELECT s.rule_id, validate_rules(jsonb_build_object(s.rule_id,"
                " s.parameters)) -> s.rule_id AS parameters FROM rules AS s) AS v"
                " WHERE v.rule_id = r.rule_id AND v.parameters IS DISTINCT FROM r.parameters"
                " RETURNING r.rule_id"
            ).fetchall()
        except psycopg.Error as exc:
            raise MigrationError("the rules table", exc) from exc
        # The rules' triggers wait while migrating: score the stored history
        # once now if a migration ran, a rule changed or any function's code
        # changed (a release may change a rule without a migration; 0005 also
        # fills the running state of transactions stored before it). A restart
        # of the same release changes none of them and re-scores nothing.
        if applied_now or changed or code_changed:
            try:
                conn.execute("SELECT rescore_alerts(%s)", ("0005_create_alerts" in applied_now,))
            except psycopg.Error as exc:
                raise MigrationError("scoring the stored transactions", exc) from exc
    return applied_now
