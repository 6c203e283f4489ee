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

Errors: ConfigurationError when the citus extension is missing, or when the
schema is behind (run `pgfraud migrate` first). A second run changes nothing.
"""

from __future__ import annotations

import psycopg

from pgfraud.errors import ConfigurationError

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
