"""Apply the schema: migrations once each, in order; function files every time.

``db/migrations/NNNN_verb_object.sql`` run once, in file-name order, each
recorded in ``schema_migrations``; then every ``db/functions/*.sql`` is
re-applied (``CREATE OR REPLACE``) and what was applied recorded in
``schema_code``. All of it runs in one database transaction under an advisory
lock, so two migrators cannot race and a failure leaves the schema as it was.
When nothing is pending (:func:`pending`: no migration, no changed function
file, no function changed by hand) migrate only reads. Every other command
checks (:func:`check_schema`) and never changes the schema.
"""

from __future__ import annotations

import contextlib
import hashlib
import random
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import resources
from importlib.abc import Traversable

import psycopg
from psycopg.types.json import Jsonb

from pgfraud.errors import ConfigurationError, SchemaBehind

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


def _on_citus(conn: psycopg.Connection) -> bool:
    """Whether ``conn``'s database has the citus extension (a Citus coordinator)."""
    return bool(
        conn.execute("SELECT EXISTS (SELECT FROM pg_extension WHERE extname = 'citus')").fetchone()[
            0
        ]
    )


def _statements(text: str) -> list[str]:
    """The SQL statements of a file (sqlparse knows dollar quotes and comments)."""
    import sqlparse  # only on Citus

    return [s for s in (part.strip() for part in sqlparse.split(text)) if s.rstrip(";").strip()]


def _apply(conn: psycopg.Connection, f: Traversable, one_by_one: bool = False) -> None:
    """Run one file; ``one_by_one`` (on Citus) runs its statements one at a time:
    Citus refuses a file of several commands when it propagates one of them
    ("cannot insert multiple commands into a prepared statement")."""
    try:
        text = f.read_text(encoding="utf-8")
        for statement in _statements(text) if one_by_one else [text]:
            conn.execute(statement)
    except psycopg.errors.LockNotAvailable:
        raise  # migrate rolls back and tries again
    except psycopg.Error as exc:
        raise MigrationError(f.name, exc) from exc


def _normalise_rules(conn: psycopg.Connection) -> list[tuple[str]]:
    """Rewrite the stored rules whose normalised parameters differ; their ids."""
    return conn.execute(
        "UPDATE rules AS r SET parameters = v.parameters"
        " FROM (SELECT s.rule_id, validate_rules(jsonb_build_object(s.rule_id,"
        " s.parameters)) -> s.rule_id AS parameters FROM rules AS s) AS v"
        " WHERE v.rule_id = r.rule_id AND v.parameters IS DISTINCT FROM r.parameters"
        " RETURNING r.rule_id"
    ).fetchall()


def _normalise_rules_citus(conn: psycopg.Connection) -> list[tuple[str]]:
    """As _normalise_rules, in two steps: Citus refuses a STABLE function over
    a reference table's columns inside an UPDATE."""
    rows = conn.execute(
        "SELECT v.rule_id, v.parameters FROM (SELECT s.rule_id, s.parameters AS old,"
        " validate_rules(jsonb_build_object(s.rule_id, s.parameters)) -> s.rule_id AS parameters"
        " FROM rules AS s) AS v WHERE v.parameters IS DISTINCT FROM v.old"
    ).fetchall()
    for rule_id, parameters in rows:
        conn.execute(
            "UPDATE rules SET parameters = %s WHERE rule_id = %s", (Jsonb(parameters), rule_id)
        )
    return [(rule_id,) for rule_id, _ in rows]


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
# The same, without _custom_rule_events (users' rules regenerate it, see
# _compile_custom_rules): recorded in schema_code after every migrate, so a
# function changed, added or dropped by hand since then shows as drift.
RECORDED_FINGERPRINT = FUNCTIONS_FINGERPRINT + " AND p.proname <> '_custom_rule_events'"

# Tables whose writes are scored by triggers that take the shared side of the
# rule-change lock (stores, labels, reviews) or its exclusive side (rules),
# in the order a writer takes them: a store writes transactions and then
# (`pgfraud load --label-column`) fraud_labels; none takes one of them after
# a later one. A migrate that changes anything takes them all first, in this
# order, before any advisory lock or DDL (see migrate).
WRITER_TABLES = ("transactions", "fraud_labels", "reviews", "rules")

# How long migrate waits for one lock before it rolls back and tries again
# (below PostgreSQL's default deadlock_timeout of 1 s, so in any lock cycle
# migrate gives way first, never a store), the pause between tries (jittered
# up to twice this), and how long it keeps trying (seconds).
LOCK_TIMEOUT_MS = 500
RETRY_PAUSE_S = 0.2
LOCK_WAIT_S = 300.0


@dataclass(frozen=True)
class Pending:
    """What `pgfraud migrate` would change: migrations not yet applied (names),
    function files new, changed or gone since it last ran (names), and whether
    the database's functions differ from what it left (changed by hand)."""

    migrations: list[str]
    function_files: list[str]
    functions_drifted: bool

    def __bool__(self) -> bool:
        return bool(self.migrations or self.function_files or self.functions_drifted)

    def describe(self) -> str:
        """One phrase for people: what is behind."""
        parts = []
        if self.migrations:
            n = len(self.migrations)
            parts.append(
                f"{n} migration{'s' if n != 1 else ''} pending ({', '.join(self.migrations)})"
            )
        if self.function_files:
            n = len(self.function_files)
            listed = ", ".join(self.function_files[:3]) + (", ..." if n > 3 else "")
            parts.append(f"{n} function file{'s' if n != 1 else ''} not applied ({listed})")
        if self.functions_drifted and not self.function_files:
            parts.append("the database's functions differ from what migrate applied")
        return "; ".join(parts)


@dataclass
class Done:
    """What one `pgfraud migrate` did besides the migrations it applied (filled
    by :func:`migrate`): the function files it applied because they were new,
    changed or gone (names), whether it re-applied them because the database's
    functions had been changed by hand, the rules whose stored parameters it
    rewrote, and whether it re-scored the stored transactions."""

    function_files: list[str] = field(default_factory=list)
    functions_drifted: bool = False
    rules_rewritten: list[str] = field(default_factory=list)
    rescored: bool = False

    def describe(self) -> list[str]:
        """Phrases for people, one per thing done ([] when nothing was)."""
        parts = []
        if self.function_files:
            n = len(self.function_files)
            listed = ", ".join(self.function_files[:3]) + (", ..." if n > 3 else "")
            parts.append(f"{n} function file{'s' if n != 1 else ''} applied ({listed})")
        elif self.functions_drifted:
            parts.append("functions re-applied (the database's differed from what migrate applied)")
        if self.rules_rewritten:
            parts.append(f"stored parameters rewritten: {', '.join(self.rules_rewritten)}")
        if self.rescored:
            parts.append("stored transactions re-scored")
        return parts


def _file_digests() -> dict[str, str]:
    return {
        f.name: hashlib.sha256(f.read_text(encoding="utf-8").encode()).hexdigest()
        for f in function_files()
    }


def pending(conn: psycopg.Connection) -> Pending:
    """What the database ``conn`` points at lacks of the installed pgfraud's
    schema, found by reading only (schema_migrations, schema_code, pg_proc):
    no lock but plain reads, no DDL, no write. Any login that may read those
    tables (owner, pgfraud_app, pgfraud_readonly) may call it. Runs in the
    caller's transaction (autocommit or not).
    """
    versions = [f.name.removesuffix(".sql") for f in migration_files()]
    if conn.execute("SELECT to_regclass('schema_migrations') IS NULL").fetchone()[0]:
        return Pending(versions, sorted(_file_digests()), True)
    done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
    missing = [v for v in versions if v not in done]
    recorded_digests: dict[str, str] = {}
    recorded_fingerprint = None
    if conn.execute("SELECT to_regclass('schema_code') IS NOT NULL").fetchone()[0]:
        row = conn.execute("SELECT file_digests, functions_fingerprint FROM schema_code").fetchone()
        if row is not None:
            recorded_digests, recorded_fingerprint = row
    digests = _file_digests()
    files = sorted(
        name
        for name in digests.keys() | recorded_digests.keys()
        if digests.get(name) != recorded_digests.get(name)
    )
    drifted = conn.execute(RECORDED_FINGERPRINT).fetchone()[0] != recorded_fingerprint
    return Pending(missing, files, drifted)


def check_schema(conn: psycopg.Connection) -> None:
    """Refuse to work on a database whose schema is behind the installed
    pgfraud (:func:`pending`), reading only: every command but ``migrate``
    (and ``run`` and ``db start``, which migrate) calls this instead of
    changing the schema, so it takes no DDL lock and no rule-change lock.
    Errors: SchemaBehind, one line saying what is behind and to run
    ``pgfraud migrate`` (the CLI exits 2).
    """
    behind = pending(conn)
    if behind:
        raise SchemaBehind(
            f"the database's schema is behind this pgfraud ({behind.describe()}): "
            "run `pgfraud migrate`"
        )


def _lock_writer_tables(conn: psycopg.Connection) -> None:
    """SHARE ROW EXCLUSIVE on the writer tables that exist, in WRITER_TABLES'
    order: waits for writers in progress to commit (they need nothing migrate
    holds yet) and holds new ones at their first statement, before their
    triggers ask for the rule-change lock. Plain reads go on."""
    for table in WRITER_TABLES:
        if conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()[0]:
            conn.execute(f"LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE")


def _distributed(conn: psycopg.Connection) -> bool:
    from pgfraud.db import citus as citus_layout

    return citus_layout.is_distributed(conn)


def _rescore_per_account(conn: psycopg.Connection) -> None:
    """Migrate's re-score on the Citus layout: the set-based rescore_alerts
    joins every account's rows and Citus cannot plan it ("could not create
    distributed plan"), so each account that has transactions is scored from
    scratch by score_account, in migrate's one database transaction (each
    call's statements routed to the account's shard by the coordinator): the
    same alerts and account states, all or nothing. Decisions stay as they
    were answered; a row without one gets it (as score_account does)."""
    accounts = [
        row[0]
        for row in conn.execute(
            "SELECT DISTINCT account_id FROM transactions ORDER BY account_id"
        ).fetchall()
    ]
    for account in accounts:
        conn.execute("SELECT score_account(%s, NULL)", (account,))


@contextlib.contextmanager
def one_migrator(conn: psycopg.Connection) -> Iterator[None]:
    """Hold the migrators' advisory lock (MIGRATION_LOCK_KEY) at session level
    for the block: a second `pgfraud migrate` (or `run`, `db start`) waits
    for the first to finish everything it does, the login role and database
    settings after the schema included, then finds nothing pending. (Without
    it two at once both ran ALTER ROLE ... SET and one failed with "tuple
    concurrently updated", XX000.) Only migrators take this lock: stores,
    reads and rule changes never wait on it. ``conn`` must not be inside a
    transaction block it wants to keep open (the wait commits nothing)."""
    conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
    if not conn.autocommit:
        conn.commit()
    try:
        yield
    finally:
        # Ending the session frees it too: a lost connection is no error here.
        with contextlib.suppress(psycopg.Error):
            conn.rollback()
            conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))
            if not conn.autocommit:
                conn.commit()


def migrate(
    conn: psycopg.Connection, lock_wait_s: float = LOCK_WAIT_S, done: Done | None = None
) -> list[str]:
    """Bring the database ``conn`` points at up to date; returns the migrations
    applied now, and fills ``done`` (when given) with what else it did.

    Needs a role that may create tables, types and roles (the database owner).
    With nothing pending (:func:`pending`) it only reads: no lock that a store,
    label, review or rule change waits on, no DDL. Otherwise, in one database
    transaction: the migrators' advisory lock; the writer tables locked in the
    writers' order (WRITER_TABLES) before any rule-change lock or DDL, so a
    store in progress finishes first and none deadlocks with it; each lock
    waited for at most LOCK_TIMEOUT_MS, then everything rolled back and tried
    again after a pause, for up to ``lock_wait_s`` seconds (stores queued
    behind a try wait at most that long); then the migrations, the function
    files, the stored rules checked, and a re-score if anything changed.
    Stored rule parameters are checked (validate_rules) after the function
    files, so a migration may add a rule that only the new files know.
    Errors: ConfigurationError for a server older than PostgreSQL 14 (nothing
    is applied), or when the locks could not be had in ``lock_wait_s``;
    MigrationError naming the file that failed, or "the rules table" with the
    rule and parameter that fail validate_rules; nothing is applied then.
    """
    check_server_version(conn.info.server_version)
    with conn.transaction():
        if not pending(conn):
            return []
    deadline = time.monotonic() + lock_wait_s
    while True:
        try:
            return _migrate_locked(conn, done if done is not None else Done())
        except psycopg.errors.LockNotAvailable:
            if time.monotonic() >= deadline:
                raise ConfigurationError(
                    f"migrate could not take its locks within {lock_wait_s:g} s "
                    "(long-running writes or reads of the tables): try again"
                ) from None
            time.sleep(RETRY_PAUSE_S * (1 + random.random()))


def _migrate_locked(conn: psycopg.Connection, report: Done) -> list[str]:
    applied_now: list[str] = []
    with conn.transaction():
        # Only migrators wait for this one (for as long as the other runs).
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_KEY,))
        conn.execute("SELECT set_config('lock_timeout', %s, true)", (f"{LOCK_TIMEOUT_MS}ms",))
        # Another migrator may have done it all while this one waited.
        behind = pending(conn)
        if not behind:
            return []
        report.function_files = behind.function_files
        report.functions_drifted = behind.functions_drifted
        report.rules_rewritten, report.rescored = [], False  # a try before may have set them
        _lock_writer_tables(conn)
        # The rules trigger waits until the new function files are in (see below).
        conn.execute("SET LOCAL pgfraud.migrating = 'on'")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version text NOT NULL CONSTRAINT schema_migrations_pkey PRIMARY KEY,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
        citus = _on_citus(conn)
        if citus:
            from pgfraud.db import citus as citus_layout

            try:
                citus_layout.place_roles(conn)
            except psycopg.Error as exc:
                raise MigrationError("the roles on the workers", exc) from exc
        for f in migration_files():
            version = f.name.removesuffix(".sql")
            if version in done:
                continue
            _apply(conn, f, citus)
            conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))
            applied_now.append(version)
        # Tables a migration just created (an empty database) are locked too.
        _lock_writer_tables(conn)
        # Function files go in name order, and one may call another defined
        # later (as pg_dump does, bodies are checked when called, not created).
        code_before = conn.execute(FUNCTIONS_FINGERPRINT).fetchone()[0]
        conn.execute("SET LOCAL check_function_bodies = off")
        if citus:
            # Applied on the coordinator only here (Citus would propagate them
            # while a table's row type still names a shard); on the
            # distributed layout they go to the workers below (place_functions).
            conn.execute("SET LOCAL citus.enable_ddl_propagation = off")
        for f in function_files():
            _apply(conn, f, citus)
        conn.execute("SET LOCAL check_function_bodies = on")
        if citus:
            conn.execute("SET LOCAL citus.enable_ddl_propagation = on")
            from pgfraud.db import citus as citus_layout

            if citus_layout.is_distributed(conn):
                # The per-account functions run on the workers (delegated):
                # the function files go there too.
                try:
                    citus_layout.place_functions(
                        conn, [(f.name, f.read_text(encoding="utf-8")) for f in function_files()]
                    )
                    # The function files made some shard-unsafe triggers anew.
                    citus_layout.disable_shard_triggers(conn)
                    citus_layout.create_indexes(conn)
                except psycopg.Error as exc:
                    raise MigrationError("placing the functions on the workers", exc) from exc
        code_changed = conn.execute(FUNCTIONS_FINGERPRINT).fetchone()[0] != code_before
        # Every stored rule against the schema of the functions just applied;
        # rows whose normalised form differs are rewritten.
        try:
            changed = (_normalise_rules_citus if citus else _normalise_rules)(conn)
        except psycopg.Error as exc:
            raise MigrationError("the rules table", exc) from exc
        # The rules' triggers wait while migrating: score the stored history
        # once now if a migration ran, a rule changed or any function's code
        # changed (a release may change a rule without a migration; 0005 also
        # fills the running state of transactions stored before it). A restart
        # of the same release changes none of them and re-scores nothing.
        report.rules_rewritten = [row[0] for row in changed]
        if applied_now or changed or code_changed:
            report.rescored = True
            try:
                if citus and _distributed(conn):
                    _rescore_per_account(conn)
                else:
                    conn.execute(
                        "SELECT rescore_alerts(%s)", ("0005_create_alerts" in applied_now,)
                    )
            except psycopg.errors.LockNotAvailable:
                raise
            except psycopg.Error as exc:
                raise MigrationError("scoring the stored transactions", exc) from exc
        conn.execute(
            # Values computed first: Citus refuses a STABLE function (now())
            # in the DO UPDATE SET of a reference table.
            "INSERT INTO schema_code AS s (file_digests, functions_fingerprint, applied_at)"
            " VALUES (%s, %s, %s)"
            " ON CONFLICT ON CONSTRAINT schema_code_pkey DO UPDATE"
            " SET file_digests = excluded.file_digests,"
            " functions_fingerprint = excluded.functions_fingerprint,"
            " applied_at = excluded.applied_at",
            (
                Jsonb(_file_digests()),
                conn.execute(RECORDED_FINGERPRINT).fetchone()[0],
                conn.execute("SELECT now()").fetchone()[0],
            ),
        )
    return applied_now
