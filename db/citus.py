"""The distributed layout on a Citus coordinator (`pgfraud db distribute`).

Run once on a migrated database whose server has the citus extension
(``CREATE EXTENSION citus`` and its workers added). docs/scaling.md
describes the layout:

- per-account tables (PER_ACCOUNT) are hash-distributed on ``account_id`` and
  colocated with ``transactions``, so every statement of one account's
  scoring runs on one worker. Citus needs the distribution column in every
  unique key, so keys that lacked it get ``account_id`` first: on Citus a
  transaction id is unique per account, not across accounts.
- ``fraud_labels`` gets an ``account_id`` column (filled from
  ``transactions``) and is distributed the same way.
- the small, shared tables (REFERENCE) become reference tables: a copy on
  every node, written with two-phase commit.

Triggers on distributed tables need ``citus.enable_unsafe_triggers`` (set
here for this session); they then run on the workers, per shard.

Errors: ConfigurationError when the citus extension is missing, when the
schema is behind (run `pgfraud migrate` first), when the coordinator is not
in the Citus metadata (the reference tables' triggers act on its copy), or
when a rule reading the merchant features is on or a shadow rule runs
(neither is scored on Citus). A second run changes nothing.
"""

from __future__ import annotations

import re

import psycopg

from pgfraud.errors import ConfigurationError, PgfraudError

# The per-account functions Citus runs on the account's worker: a call
# ``SELECT ... FROM f(account, ...)`` outside a transaction block is sent to
# the worker holding the account's shards (create_distributed_function with
# distribution_arg_name p_account_id, colocated with transactions).
DELEGATED = (
    "store_account_transactions(bigint, jsonb)",
    "score_account(bigint, timestamptz)",
)

# Statement triggers that cannot run on Citus: a trigger on a distributed
# table runs per shard on its worker, where a query of other tables is a
# distributed query from a shard ("cannot execute a distributed query from
# a query on a shard"). `pgfraud db distribute` turns them off. So an INSERT
# or COPY into transactions through the coordinator stores raw rows, scored
# later per account (score_pending); store_account_transactions scores its
# own rows, and opens cases itself (_open_account_cases). An UPDATE or
# DELETE of transactions is not re-scored: score_account(account) repairs.
OFF_ON_CITUS = (
    ("transactions", "transactions_score_inserted"),
    ("transactions", "transactions_score_updated"),
    ("transactions", "transactions_score_deleted"),
    ("transactions", "transactions_score_truncated"),
    ("alerts", "alerts_open_cases"),
    # Labels and reviews re-score the merchant rules' readers, which the
    # per-account path on Citus does not run (docs/scaling.md).
    ("fraud_labels", "fraud_labels_rescore_inserted"),
    ("fraud_labels", "fraud_labels_rescore_updated"),
    ("fraud_labels", "fraud_labels_rescore_deleted"),
    ("fraud_labels", "fraud_labels_rescore_truncated"),
    ("reviews", "reviews_rescore_inserted"),
    ("reviews", "reviews_rescore_updated"),
    ("reviews", "reviews_rescore_deleted"),
    ("reviews", "reviews_rescore_truncated"),
    # The audit trail (a reference table) cannot be written from a shard: on
    # Citus review_transaction writes a review's entry itself, on the
    # coordinator (the same row audit_change would write).
    ("reviews", "reviews_audit"),
    ("cases", "cases_audit"),
    ("case_alerts", "case_alerts_audit"),
)

# Reference tables, in an order where each one's foreign keys, and the tables
# its triggers write, are on the workers already.
REFERENCE = (
    "audit_log",
    "decision_rule_sets",
    "rule_versions",
    "rules",
    "shadow_rules",
    "decision_policies",
    "lists",
    "list_entries",
    "api_tokens",
    "schema_code",
    "schema_migrations",
)

# Per-account tables: (table, primary key on Citus). ``transactions`` first:
# the others are colocated with it. case_alerts after cases (its foreign key).
PER_ACCOUNT = (
    ("transactions", "account_id, transaction_id"),
    ("fraud_labels", "account_id, transaction_id"),
    ("account_states", "account_id"),
    ("alerts", "account_id, alert_id"),
    ("reviews", "account_id, review_id"),
    ("decisions", "account_id, transaction_id"),
    ("shadow_alerts", "account_id, ts, transaction_id, rule_id"),
    ("cases", "account_id, case_id"),
    ("case_alerts", "account_id, transaction_id, rule_id"),
)


def is_citus(conn: psycopg.Connection) -> bool:
    """Whether the connected database has the citus extension."""
    return bool(
        conn.execute("SELECT EXISTS (SELECT FROM pg_extension WHERE extname = 'citus')").fetchone()[
            0
        ]
    )


def is_distributed(conn: psycopg.Connection) -> bool:
    """Whether ``conn``'s database has pgfraud's Citus layout (transactions distributed)."""
    return is_citus(conn) and bool(
        conn.execute(
            "SELECT EXISTS (SELECT FROM pg_dist_partition"
            " WHERE logicalrelid = to_regclass('transactions') AND partmethod = 'h')"
        ).fetchone()[0]
    )


# A function file's statements that place its function: the rest (a trigger
# on a table) stays on the coordinator.
_FUNCTION_DDL = re.compile(
    r"(\s|--[^\n]*\n)*(CREATE OR REPLACE FUNCTION|COMMENT ON FUNCTION|REVOKE|GRANT)\b"
)


def disable_shard_triggers(conn: psycopg.Connection) -> None:
    """Turn off OFF_ON_CITUS's triggers (on the distributed tables and their
    shards): `db distribute` does, and `pgfraud migrate` again after the
    function files, which create some of them anew (CREATE OR REPLACE
    TRIGGER turns a trigger back on)."""
    for table, trigger in OFF_ON_CITUS:
        conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER {trigger}")


# Indexes only the Citus layout reads by: an alert by its id alone (the
# primary key there starts with account_id) and alerts in raise order (the
# raised order and the live feeds there, by raised_at: docs/scaling.md).
CITUS_INDEXES = (
    "CREATE INDEX IF NOT EXISTS alerts_alert_id_idx ON alerts (alert_id)",
    "CREATE INDEX IF NOT EXISTS alerts_raised_at_idx ON alerts (raised_at, alert_id)",
)


def create_indexes(conn: psycopg.Connection) -> None:
    """CITUS_INDEXES, on the distributed tables (so on every shard); each is
    made once (`db distribute`, then `pgfraud migrate` for a layout made by
    an earlier release)."""
    for statement in CITUS_INDEXES:
        conn.execute(statement)


# The roles the migrations grant to (0003_create_roles.sql).
ROLES = ("pgfraud_app", "pgfraud_readonly")


def place_roles(conn: psycopg.Connection) -> None:
    """Create on every worker (NOLOGIN) each of ROLES that the coordinator
    has and the worker has not.

    Roles belong to a server, not a database, and Citus propagates a CREATE
    ROLE only when it runs in a database with the citus extension. A role
    made on the coordinator before (a plain pgfraud database on the same
    server, or by hand) is missing on the workers, and the migrations'
    GRANTs, which Citus sends there, fail ("role pgfraud_app does not
    exist"). Run by migrate on a Citus coordinator before the migrations;
    each worker's CREATE ROLE runs in its own transaction and only where the
    role is missing, so a second run does nothing. Errors: PgfraudError
    naming the worker that refuses."""
    for role in ROLES:
        here = conn.execute("SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = %s)", (role,))
        if not here.fetchone()[0]:
            continue  # the migration creates it, and Citus propagates that
        command = (
            "DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = "
            f"'{role}') THEN CREATE ROLE {role} NOLOGIN; END IF; END$$"
        )
        rows = conn.execute(
            "SELECT nodename, nodeport, success, result FROM run_command_on_workers(%s)",
            ("SET citus.enable_ddl_propagation = off; " + command,),
        ).fetchall()
        for node, port, success, result in rows:
            if not success:
                raise PgfraudError(f"the role {role} on the worker {node}:{port}: {result}")


def place_functions(conn: psycopg.Connection, files: list[tuple[str, str]]) -> None:
    """Put the function files on every worker too, and delegate DELEGATED.

    ``files``: (name, text) of each function file, as applied on the
    coordinator (in name order). Run by migrate on a distributed database,
    in its transaction: each file goes to the workers with
    ``run_command_on_workers`` (their own transactions; CREATE OR REPLACE,
    so a second run is harmless), with DDL propagation off there as on the
    coordinator. A delegated function's call runs on a worker, and every
    function it calls must be there. Errors: PgfraudError naming the file
    and the worker when a worker refuses one.
    """
    from pgfraud.db.migrate import _statements

    for name, text in files:
        # The functions only: a trigger a file makes is on a table, whose
        # shards Citus gives the trigger (and whose locks migrate holds).
        wanted = [s.rstrip().rstrip(";") for s in _statements(text) if _FUNCTION_DDL.match(s)]
        if not wanted:
            continue
        rows = conn.execute(
            "SELECT nodename, nodeport, success, result FROM run_command_on_workers(%s)",
            (
                "SET citus.enable_ddl_propagation = off; SET check_function_bodies = off; "
                + ";\n".join(wanted),
            ),
        ).fetchall()
        for node, port, success, result in rows:
            if not success:
                first = (result or "").strip().splitlines()[0] if (result or "").strip() else ""
                raise PgfraudError(f"{name} on the worker {node}:{port}: {first}")
    # The users' rules, compiled into one function on the coordinator
    # (_compile_custom_rules, on migrate and on a rule change).
    generated = conn.execute(
        "SELECT pg_get_functiondef(p.oid) FROM pg_proc AS p"
        " WHERE p.proname = '_custom_rule_events' AND p.pronamespace = 'public'::regnamespace"
    ).fetchall()
    for (definition,) in generated:
        rows = conn.execute(
            "SELECT nodename, nodeport, success, result FROM run_command_on_workers(%s)",
            ("SET citus.enable_ddl_propagation = off; " + definition,),
        ).fetchall()
        for node, port, success, result in rows:
            if not success:
                raise PgfraudError(f"_custom_rule_events on the worker {node}:{port}: {result}")
    for signature in DELEGATED:
        conn.execute(
            "SELECT create_distributed_function(%s, 'p_account_id',"
            " colocate_with => 'transactions')",
            (signature,),
        )


def distributed_tables(conn: psycopg.Connection) -> dict[str, str]:
    """Table name -> Citus kind ('distributed' or 'reference') for pgfraud's tables already done."""
    rows = conn.execute(
        "SELECT logicalrelid::regclass::text,"
        " CASE partmethod WHEN 'h' THEN 'distributed' ELSE 'reference' END"
        " FROM pg_dist_partition"
        # Citus local tables (a foreign key to a reference table adds them) are not done.
        " WHERE partmethod = 'h' OR repmodel = 't'"
    ).fetchall()
    return dict(rows)


def distribute(conn: psycopg.Connection) -> list[str]:
    """Make the distributed layout; returns the tables changed now (empty when done before).

    ``conn`` is an owner (superuser) connection to the coordinator, in
    autocommit mode (each table is one Citus operation, committed on its own).
    """
    if not is_citus(conn):
        raise ConfigurationError(
            "the citus extension is not in this database:"
            " CREATE EXTENSION citus on a Citus coordinator first"
        )
    if conn.execute("SELECT to_regclass('transactions') IS NULL").fetchone()[0]:
        raise ConfigurationError("the schema is not there yet: run `pgfraud migrate` first")
    if not conn.execute("SELECT EXISTS (SELECT FROM pg_dist_node WHERE groupid = 0)").fetchone()[0]:
        # The reference tables' triggers act on the coordinator's copy (_on_worker_copy).
        raise ConfigurationError(
            "the coordinator is not in the Citus metadata:"
            " SELECT citus_set_coordinator_host('<its host>', <its port>) first"
        )
    live = conn.execute(
        "SELECT string_agg(rule_id, ', ' ORDER BY rule_id) FROM rules WHERE enabled"
        " AND (rule_id = 'compromised_merchant'"
        "      OR (expression IS NOT NULL AND _reads_merchant_features(expression)))"
    ).fetchone()[0]
    if live:
        raise ConfigurationError(
            f"rules reading other accounts' rows at a merchant are on ({live}),"
            " which pgfraud on Citus does not score: `pgfraud rule disable` them first"
        )
    shadows = conn.execute(
        "SELECT string_agg(rule_id, ', ' ORDER BY rule_id) FROM shadow_rules"
    ).fetchone()[0]
    if shadows:
        raise ConfigurationError(
            f"shadow rules are running ({shadows}), which pgfraud on Citus does not score:"
            " `pgfraud rule drop-shadow` them first"
        )
    conn.execute("SET citus.enable_unsafe_triggers = on")
    done = distributed_tables(conn)
    changed: list[str] = []
    for table in REFERENCE:
        if table in done:
            continue
        # The rows copied to the workers must not fire the triggers there
        # (an audit entry per copied rule, written from inside the copy).
        conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
        conn.execute("SELECT create_reference_table(%s)", (table,))
        conn.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")
        changed.append(table)
    for table, key in PER_ACCOUNT:
        if table in done:
            continue
        # Rows rewritten or copied here must not fire the re-scoring triggers.
        conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
        with conn.transaction():
            if table == "fraud_labels":
                conn.execute("ALTER TABLE fraud_labels ADD COLUMN IF NOT EXISTS account_id bigint")
                conn.execute(
                    "UPDATE fraud_labels AS l SET account_id = t.account_id"
                    " FROM transactions AS t WHERE t.transaction_id = l.transaction_id"
                )
                conn.execute("ALTER TABLE fraud_labels ALTER COLUMN account_id SET NOT NULL")
            pkey = conn.execute(
                "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
                " WHERE conrelid = %s::regclass AND contype = 'p'",
                (table,),
            ).fetchone()
            if pkey is not None and pkey[1] != f"PRIMARY KEY ({key})":
                # Foreign keys into the old key would block the drop; none
                # point at the per-account keys changed here.
                conn.execute(f"ALTER TABLE {table} DROP CONSTRAINT {pkey[0]}")
                conn.execute(f"ALTER TABLE {table} ADD CONSTRAINT {pkey[0]} PRIMARY KEY ({key})")
        if table == "transactions":
            conn.execute("SELECT create_distributed_table('transactions', 'account_id')")
        else:
            conn.execute(
                "SELECT create_distributed_table(%s, 'account_id',"
                " colocate_with => 'transactions')",
                (table,),
            )
        conn.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")
        changed.append(table)
    disable_shard_triggers(conn)
    create_indexes(conn)
    if changed:
        _forget_shard_row_types(conn)
    return changed


def _forget_shard_row_types(conn: psycopg.Connection) -> None:
    """Drop the functions that now return a shard's row type, and have the next
    migrate re-apply every function file.

    Citus turns a table into a distributed one by renaming it to a shard on
    the coordinator and making a new table of the old name; a function that
    returned the table's row type then returns the shard's. The caller runs
    migrate next (`pgfraud db distribute` does), which re-creates them.
    """
    stale = conn.execute(
        "SELECT p.oid::regprocedure::text FROM pg_proc AS p"
        " JOIN pg_type AS t ON t.oid = p.prorettype"
        # (Citus hides shards from pg_class: the type's own name is used.)
        " WHERE p.pronamespace = 'public'::regnamespace AND t.typrelid <> 0"
        " AND t.typname ~ '_[0-9]+$'"
        " AND NOT EXISTS (SELECT FROM pg_dist_partition AS d WHERE d.logicalrelid = t.typrelid)"
    ).fetchall()
    for (signature,) in stale:
        conn.execute(f"DROP FUNCTION {signature}")
    conn.execute("UPDATE schema_code SET file_digests = '{}'::jsonb")


PENDING = (
    # Accounts with a transaction that has no decision: stored raw (a COPY or
    # INSERT through the coordinator) and not scored yet. A colocated
    # anti-join on account_id: each worker answers for its shards.
    "SELECT t.account_id, min(t.ts) FROM transactions AS t"
    " WHERE NOT EXISTS (SELECT FROM decisions AS d"
    "  WHERE d.account_id = t.account_id AND d.transaction_id = t.transaction_id)"
    " GROUP BY t.account_id ORDER BY t.account_id"
)


def score_pending(url: str, connections: int = 4) -> dict[str, int]:
    """Score the accounts that have raw, unscored rows, per account, in parallel.

    On the Citus layout an INSERT or COPY through the coordinator stores rows
    without scoring them (OFF_ON_CITUS); `pgfraud load`, `generate --to
    copy/insert` and `pgfraud db score-pending` then call this. An account
    is pending while one of its transactions has no decision (every scored
    row has one). Each pending account is scored by ``SELECT
    score_account(account, earliest undecided time)`` on its own
    connection in autocommit, so Citus runs the call on the account's worker
    (delegated): its alerts from that time on are made equal to the rule
    code's result and its undecided rows get their decision, one account per
    database transaction. ``connections`` calls run at once. Idempotent: a
    second run (or one after an interruption) scores only what is still
    pending. Returns ``{"accounts": scored, "alerts": new alerts}``.
    Errors: the pgfraud.errors exception of the first failed call
    (DatabaseConflict is retried as elsewhere).
    """
    from concurrent.futures import ThreadPoolExecutor

    from pgfraud import db

    with db.connect(url, autocommit=True) as conn, db.wrap_errors():
        pending = conn.execute(PENDING).fetchall()
    if not pending:
        return {"accounts": 0, "alerts": 0}
    chunks = [pending[i :: max(1, connections)] for i in range(max(1, connections))]

    def run(accounts: list[tuple[int, object]]) -> int:
        new = 0
        with db.connect(url, autocommit=True) as conn:
            for account_id, from_ts in accounts:

                def attempt(account_id=account_id, from_ts=from_ts) -> int:
                    with db.wrap_errors():
                        return conn.execute(
                            "SELECT score_account(%s, %s)", (account_id, from_ts)
                        ).fetchone()[0]

                new += db.retry_conflicts(attempt)
        return new

    with ThreadPoolExecutor(max_workers=len(chunks)) as pool:
        alerts = sum(pool.map(run, [c for c in chunks if c]))
    return {"accounts": len(pending), "alerts": alerts}
