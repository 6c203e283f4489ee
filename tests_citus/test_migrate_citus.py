"""`pgfraud migrate` on a Citus coordinator, then `pgfraud db distribute`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from pgfraud.db.migrate import migrate, pending


def test_migrate_runs_on_the_coordinator(cluster, coordinator):
    with psycopg.connect(cluster.coordinator_url) as conn:
        migrate(conn)
        conn.commit()
        assert not pending(conn)
        # The workers are Citus nodes of this coordinator.
        nodes = conn.execute(
            "SELECT count(*) FROM pg_dist_node WHERE noderole = 'primary'"
        ).fetchone()[0]
        assert nodes == 3


PER_ACCOUNT = {
    "transactions",
    "fraud_labels",
    "account_states",
    "alerts",
    "reviews",
    "decisions",
    "shadow_alerts",
    "cases",
    "case_alerts",
}
REFERENCE = {
    "rules",
    "rule_versions",
    "shadow_rules",
    "decision_policies",
    "decision_rule_sets",
    "lists",
    "list_entries",
    "api_tokens",
    "audit_log",
    "schema_code",
    "schema_migrations",
}


def _pgfraud(cluster, *args):
    env = {**os.environ, "DATABASE_URL": cluster.coordinator_url}
    return subprocess.run(
        [str(Path(sys.executable).parent / "pgfraud"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_distribute_makes_the_layout_and_migrate_still_works(cluster, coordinator):
    # (runs after the migrate test above: the database is migrated)
    done = _pgfraud(cluster, "db", "distribute")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("distributed: ")
    rows = coordinator.execute(
        "SELECT logicalrelid::regclass::text, partmethod, repmodel, colocationid,"
        " column_to_column_name(logicalrelid, partkey) FROM pg_dist_partition"
    ).fetchall()
    hashed = {r[0]: r for r in rows if r[1] == "h"}
    reference = {r[0] for r in rows if r[1] == "n" and r[2] == "t"}
    assert set(hashed) == PER_ACCOUNT
    assert reference == REFERENCE
    # One colocation group, all on account_id.
    assert {r[3] for r in hashed.values()} == {hashed["transactions"][3]}
    assert {r[4] for r in hashed.values()} == {"account_id"}
    # account_id is in every unique key of a per-account table.
    missing = coordinator.execute(
        "SELECT i.indexrelid::regclass::text FROM pg_index AS i"
        " JOIN pg_dist_partition AS d ON d.logicalrelid = i.indrelid AND d.partmethod = 'h'"
        " WHERE i.indisunique AND NOT EXISTS (SELECT FROM unnest(i.indkey) AS k(n)"
        "  JOIN pg_attribute AS a ON a.attrelid = i.indrelid AND a.attnum = k.n"
        "  WHERE a.attname = 'account_id')"
    ).fetchall()
    assert missing == []
    # A second run changes nothing; migrate then has nothing to do.
    again = _pgfraud(cluster, "db", "distribute")
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == "distributed: already distributed"
    migrated = _pgfraud(cluster, "migrate")
    assert migrated.returncode == 0, migrated.stderr
    # A transaction id is unique per account on Citus: the same id in two
    # accounts is two rows; twice in one account is refused. (Raw rows, with
    # the scoring triggers off, as a raw load does: scoring on arrival through
    # the workers' triggers does not work on Citus, docs/scaling.md.)
    raw = "SET LOCAL session_replication_role = replica"
    coordinator.execute("SET citus.propagate_set_commands = 'local'")
    with coordinator.transaction():
        coordinator.execute(raw)
        coordinator.execute(
            "INSERT INTO transactions (transaction_id, account_id, ts, amount, merchant_id)"
            " VALUES (1, 10, '2026-01-01T00:00:00Z', 5.00, 7),"
            " (1, 11, '2026-01-01T00:00:00Z', 5.00, 7)"
        )
    count = "SELECT count(*) FROM transactions WHERE transaction_id = 1"
    assert coordinator.execute(count).fetchone()[0] == 2
    with pytest.raises(psycopg.errors.UniqueViolation), coordinator.transaction():
        coordinator.execute(raw)
        coordinator.execute(
            "INSERT INTO transactions (transaction_id, account_id, ts, amount, merchant_id)"
            " VALUES (1, 10, '2026-01-02T00:00:00Z', 6.00, 7)"
        )


def test_migrate_gives_the_workers_a_role_the_coordinator_had_before(cluster, monkeypatch):
    """Roles belong to a server, and Citus propagates CREATE ROLE only from a
    database with the citus extension: pgfraud's roles made on the coordinator
    before (a plain pgfraud database beside it) were missing on the workers,
    and migrate failed at 0003 ("role pgfraud_app does not exist"). migrate
    now creates them there. The roles of the migrations exist on every node
    once any test migrated, so a role of this test's own stands for them."""
    from pgfraud.db import citus

    role = "pgfraud_role_check"
    workers = cluster.ports[1:]
    for port in cluster.ports:
        with psycopg.connect(cluster.url(port, "postgres"), autocommit=True) as conn:
            conn.execute(f"DROP ROLE IF EXISTS {role}")
    with psycopg.connect(cluster.url(database="postgres"), autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} NOLOGIN")  # no citus here: not propagated
    url = cluster.create_database("role_check")
    monkeypatch.setattr(citus, "ROLES", (*citus.ROLES, role))
    try:
        for port in workers:
            with psycopg.connect(cluster.url(port, "postgres")) as conn:
                has = conn.execute("SELECT count(*) FROM pg_roles WHERE rolname = %s", (role,))
                assert has.fetchone()[0] == 0
        with psycopg.connect(url) as conn:
            migrate(conn)
            conn.commit()
        for port in workers:
            with psycopg.connect(cluster.url(port, "postgres")) as conn:
                has = conn.execute(
                    "SELECT count(*) FROM pg_roles WHERE rolname = %s AND NOT rolcanlogin",
                    (role,),
                )
                assert has.fetchone()[0] == 1, port
    finally:
        for port in cluster.ports:
            with psycopg.connect(cluster.url(port, "postgres"), autocommit=True) as conn:
                conn.execute("DROP DATABASE IF EXISTS role_check WITH (FORCE)")
                conn.execute(f"DROP ROLE IF EXISTS {role}")


def test_distribute_refuses_a_database_without_citus(cluster):
    with psycopg.connect(cluster.url(database="postgres"), autocommit=True) as conn:
        conn.execute("CREATE DATABASE plain")
    env = {**os.environ, "DATABASE_URL": cluster.url(database="plain")}
    done = subprocess.run(
        [str(Path(sys.executable).parent / "pgfraud"), "db", "distribute"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1
    assert "citus extension" in done.stderr


def test_distribute_refuses_what_citus_cannot_serve(cluster, tmp_path):
    """A coordinator missing from the Citus metadata (the reference tables'
    triggers act on its copy), a merchant rule on, or a shadow rule running:
    `pgfraud db distribute` says which, exit 1, and distributes nothing."""
    from tests_citus.pairs import run_pgfraud

    for port in cluster.ports:  # the database on every node, no node added yet
        with psycopg.connect(cluster.url(port, "postgres"), autocommit=True) as conn:
            conn.execute("CREATE DATABASE refused")
        with psycopg.connect(cluster.url(port, "refused"), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION citus")
    url = cluster.url(database="refused")
    assert run_pgfraud(url, "migrate").returncode == 0
    done = run_pgfraud(url, "db", "distribute")
    assert done.returncode == 1
    assert "the coordinator is not in the Citus metadata" in done.stderr
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT citus_set_coordinator_host('127.0.0.1', %s)", (cluster.ports[0],))
        conn.execute("SELECT citus_add_node('127.0.0.1', %s)", (cluster.ports[1],))
    assert run_pgfraud(url, "rule", "enable", "compromised_merchant").returncode == 0
    done = run_pgfraud(url, "db", "distribute")
    assert done.returncode == 1
    assert "rules reading other accounts' rows at a merchant are on (compromised_merchant)" in (
        done.stderr
    )
    assert run_pgfraud(url, "rule", "disable", "compromised_merchant").returncode == 0
    assert run_pgfraud(url, "rule", "shadow", "large_amount", "threshold=900").returncode == 0
    done = run_pgfraud(url, "db", "distribute")
    assert done.returncode == 1 and "shadow rules are running (large_amount)" in done.stderr
    with psycopg.connect(url, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM pg_dist_partition").fetchone()[0] == 0
    assert run_pgfraud(url, "rule", "drop-shadow", "large_amount").returncode == 0
    done = run_pgfraud(url, "db", "distribute")
    assert done.returncode == 0, done.stderr
