"""Scoring through the Citus coordinator equals single-node pgfraud (issue 19).

The same generated transactions, shuffled (late arrivals), go into a plain
PostgreSQL database and into a distributed one on the test cluster, by the
COPY path (`pgfraud load`: raw COPY, then per-account scoring) and by the API
path (POST /store_data in batches: per-account stores). Their alerts,
decisions, account states and cases must be the same rows
(tests_citus.compare reads them without ids and times).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from tests_citus.compare import compare


def _pgfraud(url: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(Path(sys.executable).parent / "pgfraud"), *args],
        env={**os.environ, "DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.fixture(scope="module")
def databases(cluster):
    """(single-node URL, distributed URL): fresh databases for this module."""
    with psycopg.connect(cluster.url(database="postgres"), autocommit=True) as conn:
        conn.execute("CREATE DATABASE single_node")
    single = cluster.url(database="single_node")
    distributed = cluster.create_database("scored")
    for url, steps in ((single, [["migrate"]]), (distributed, [["migrate"], ["db", "distribute"]])):
        for step in steps:
            done = _pgfraud(url, *step)
            assert done.returncode == 0, done.stderr
    return single, distributed


def test_alerts_and_decisions_equal_single_node(databases):
    single, distributed = databases
    result = compare(single, distributed, num_transactions=1500, seed=11, accounts=12, batch=40)
    assert result["equal"] == {
        "alerts": True,
        "decisions": True,
        "account_states": True,
        "cases": True,
    }, result.get("first_difference")
    alerts, _ = result["counts"]["alerts"]
    decisions, _ = result["counts"]["decisions"]
    # Both sets (COPY and API) of 1,500 rows each: one decision per row; the
    # legacy mix raises alerts (a comparison of nothing proves nothing).
    assert decisions == 3000
    assert alerts > 100


def test_a_raw_insert_is_scored_by_score_pending(databases):
    _, distributed = databases
    with psycopg.connect(distributed, autocommit=True) as conn:
        # Stored raw through the coordinator (the scoring trigger is off on Citus).
        conn.execute(
            "INSERT INTO transactions (transaction_id, account_id, ts, amount)"
            " VALUES (1, 777, '2024-03-01T00:00:00Z', 10.00),"
            " (2, 777, '2024-03-01T00:00:03Z', 11.00)"
        )
        assert conn.execute("SELECT count(*) FROM alerts WHERE account_id = 777").fetchone()[0] == 0
    done = _pgfraud(distributed, "db", "score-pending")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "scored per account: 1 account, 1 new alert"
    with psycopg.connect(distributed) as conn:
        # Hand-worked: the second row is 3 s after the first, under
        # rapid_succession's 10 s; one decision per row.
        assert conn.execute(
            "SELECT transaction_id, rule_id, observed::text FROM alerts WHERE account_id = 777"
        ).fetchall() == [(2, "rapid_succession", "3.000")]
        assert conn.execute(
            "SELECT transaction_id, outcome FROM decisions WHERE account_id = 777"
            " ORDER BY transaction_id"
        ).fetchall() == [(1, "approve"), (2, "review")]
    again = _pgfraud(distributed, "db", "score-pending")
    assert again.stdout.strip() == "scored per account: 0 accounts, 0 new alerts"


def test_labels_take_their_account_on_citus(databases, tmp_path):
    _, distributed = databases
    with psycopg.connect(distributed, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO transactions (transaction_id, account_id, ts, amount)"
            " VALUES (900, 778, '2024-03-01T00:00:00Z', 10.00),"
            " (901, 778, '2024-03-02T00:00:00Z', 10.00), (901, 779, '2024-03-02T00:00:00Z', 9.00)"
        )
    labels = tmp_path / "labels.csv"
    labels.write_text("transaction_id,scenario\n900,card_testing\n")
    done = _pgfraud(distributed, "load-labels", str(labels))
    assert done.returncode == 0, done.stderr
    with psycopg.connect(distributed) as conn:
        assert conn.execute(
            "SELECT account_id, transaction_id, scenario FROM fraud_labels"
            " WHERE transaction_id = 900"
        ).fetchall() == [(778, 900, "card_testing")]
    # An id stored in two accounts names no one transaction: refused, one line, exit 2.
    labels.write_text("transaction_id,scenario\n900,card_testing\n901,card_testing\n")
    refused = _pgfraud(distributed, "load-labels", str(labels))
    assert refused.returncode == 2
    assert refused.stderr.count("\n") == 1
    assert "901 is stored in several accounts" in refused.stderr


def test_a_batch_over_two_accounts_is_all_or_nothing(databases):
    from pgfraud.service import create_app

    _, distributed = databases
    client = create_app({"TESTING": True, "DATABASE_URL": distributed}).test_client()
    stored = client.post(
        "/store_data",
        json={
            "account_id": 884,
            "transaction_id": 5,
            "timestamp": "2024-03-01T00:00:00Z",
            "amount": "5.00",
        },
    )
    assert stored.status_code == 201, stored.get_data(as_text=True)
    # Account 883's row would be stored first (account order), then 884's
    # conflicts (other amount): nothing of the request may stay.
    refused = client.post(
        "/store_data",
        json=[
            {
                "account_id": 884,
                "transaction_id": 5,
                "timestamp": "2024-03-01T00:00:00Z",
                "amount": "6.00",
            },
            {
                "account_id": 883,
                "transaction_id": 6,
                "timestamp": "2024-03-01T00:00:00Z",
                "amount": "1.00",
            },
        ],
    )
    assert refused.status_code == 409, refused.get_data(as_text=True)
    error = refused.get_json()["error"]
    assert (error["code"], error["field"], error["row"]) == (
        "transaction_conflict",
        "transaction_id",
        0,
    )
    with psycopg.connect(distributed) as conn:
        assert (
            conn.execute("SELECT count(*) FROM transactions WHERE account_id = 883").fetchone()[0]
            == 0
        )
        assert (
            conn.execute(
                "SELECT count(*) FROM decisions WHERE account_id IN (883, 884)"
            ).fetchone()[0]
            == 1
        )
