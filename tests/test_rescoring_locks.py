"""Re-scoring paths take their locks in one order: no deadlock between stores, labels
and reviews at shared merchants (issue 15, fault 3), and alerts stay exact.

Threads with real connections: two storers send out-of-order 20-row batches at
merchants 1-5 over 40 accounts, a reviewer reviews stored transactions and a
labeller labels them (known a little after each transaction), all at once, with
compromised_merchant on (delay 0, so every label and review changes verdicts).
The data spans the present (from 2 hours ago to 2 hours ahead), so a review,
known now, still re-scores the later rows at its merchant. Before the fix the
review and label triggers re-scored other accounts without locking their
account_states rows, meeting alert rows in any order, and a store re-scored its
own accounts and then its merchants' neighbours in a second pass: deadlocks.
"""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg

from pgfraud import db

ROUNDS = 10  # batches per storer; reviews and labels each


def _rows(rng: random.Random, first_id: int, base: datetime) -> list[dict]:
    return [
        {
            "account_id": rng.randint(1, 40),
            "transaction_id": first_id + i,
            # Out of time order within and across batches: late arrivals.
            "timestamp": base + timedelta(milliseconds=rng.randint(0, 4 * 3_600_000)),
            "amount": Decimal(rng.randint(100, 50_000)).scaleb(-2),
            "merchant_id": rng.randint(1, 5),
        }
        for i in range(20)
    ]


def test_stores_reviews_and_labels_at_shared_merchants_never_deadlock(admin_conn, database):
    admin_conn.execute(
        "UPDATE rules"
        " SET enabled = rule_id IN ('compromised_merchant', 'velocity', 'amount_spike'),"
        " parameters = CASE WHEN rule_id = 'compromised_merchant' THEN"
        ' \'{"window_days": 30, "delay_days": 0, "min_known_fraud": 1,'
        ' "min_fraud_share": 0.05}\'::jsonb ELSE parameters END'
    )
    admin_conn.commit()
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    # Some history first, so reviews and labels have transactions to name.
    with db.connect(database.app_url) as conn:
        db.store_transactions(conn, _rows(random.Random(0), 1, base) * 1)
        conn.commit()
    failures: list[str] = []
    start = threading.Barrier(4)

    def storer(seed: int) -> None:
        rng = random.Random(seed)
        with db.connect(database.app_url) as conn:
            start.wait()
            for n in range(ROUNDS):
                try:
                    db.store_transactions(conn, _rows(rng, seed * 100_000 + n * 20, base))
                    conn.commit()
                except Exception as exc:  # noqa: BLE001 - every failure is the finding
                    conn.rollback()
                    failures.append(f"store: {type(exc).__name__}: {exc}")

    def stored_ids(conn: psycopg.Connection) -> list[int]:
        ids = [r[0] for r in conn.execute("SELECT transaction_id FROM transactions")]
        conn.commit()
        return ids

    def reviewer() -> None:
        rng = random.Random(7)
        with db.connect(database.app_url) as conn:
            start.wait()
            for _ in range(ROUNDS):
                try:
                    tid = rng.choice(stored_ids(conn))
                    status = rng.choice(["confirmed_fraud", "false_positive"])
                    db.review_transaction(conn, tid, status, "", "analyst")
                    conn.commit()
                except Exception as exc:  # noqa: BLE001
                    conn.rollback()
                    failures.append(f"review: {type(exc).__name__}: {exc}")

    def labeller() -> None:
        rng = random.Random(8)
        with db.connect(database.admin_url) as conn:
            start.wait()
            for _ in range(ROUNDS):
                try:
                    tid = rng.choice(stored_ids(conn))
                    ts = conn.execute(
                        "SELECT ts FROM transactions WHERE transaction_id = %s", (tid,)
                    ).fetchone()[0]
                    known = ts + timedelta(milliseconds=rng.randint(0, 1_800_000))
                    db.store_labels(conn, [(tid, "skimming", known, None, None)])
                    conn.commit()
                except Exception as exc:  # noqa: BLE001
                    conn.rollback()
                    failures.append(f"label: {type(exc).__name__}: {exc}")

    threads = [
        threading.Thread(target=storer, args=(1,)),
        threading.Thread(target=storer, args=(2,)),
        threading.Thread(target=reviewer),
        threading.Thread(target=labeller),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    admin_conn.execute("SET jit = off")
    persisted = admin_conn.execute(
        "SELECT account_id, transaction_id, rule_id, observed, threshold, reason FROM alerts"
        " ORDER BY 1, 2, 3"
    ).fetchall()
    scratch = admin_conn.execute(
        "SELECT e.account_id, e.transaction_id, e.rule_id, e.observed, e.threshold, e.reason"
        " FROM account_states AS a"
        " CROSS JOIN LATERAL evaluate_account(a.account_id, active_rule_parameters()) AS e"
        " ORDER BY 1, 2, 3"
    ).fetchall()
    assert persisted == scratch
    assert admin_conn.execute("SELECT count(*) FROM transactions").fetchone()[0] == 420
    assert any(r[2] == "compromised_merchant" for r in persisted)


def test_a_late_row_stored_while_the_rule_is_switched_on_rescores_its_neighbours(
    admin_conn, database
):
    # Merchant 7: Y (account 3) at T0 + 1 h is stored. X (account 2) at T0, a
    # late arrival, is labelled fraud beforehand (known at its time). Connection
    # A switches compromised_merchant on (window 30 days, delay 0, 1 known fraud)
    # and has not committed; B stores X: it waits for A, then re-scores X's
    # merchant neighbours with the rule on: Y fires (A's own re-scoring ran
    # before X was stored).
    t0 = datetime(2024, 5, 1, tzinfo=UTC)
    admin_conn.execute("UPDATE rules SET enabled = false")
    admin_conn.commit()
    with db.connect(database.app_url) as conn:
        db.store_transactions(
            conn,
            [
                {
                    "account_id": 3,
                    "transaction_id": 2,
                    "timestamp": t0 + timedelta(hours=1),
                    "amount": "10.00",
                    "merchant_id": 7,
                }
            ],
        )
        conn.commit()
    db.store_labels(admin_conn, [(1, "skimming", t0, None, None)])
    admin_conn.commit()
    with psycopg.connect(database.admin_url) as a:
        a.execute(
            "SELECT set_rule('compromised_merchant', true, '{\"window_days\": 30,"
            ' "delay_days": 0, "min_known_fraud": 1, "min_fraud_share": 0}\')'
        )

        def store_x() -> None:
            with db.connect(database.app_url) as b:
                db.store_transactions(
                    b,
                    [
                        {
                            "account_id": 2,
                            "transaction_id": 1,
                            "timestamp": t0,
                            "amount": "10.00",
                            "merchant_id": 7,
                        }
                    ],
                )
                b.commit()

        thread = threading.Thread(target=store_x)
        thread.start()
        waiting = 0
        while waiting == 0 and thread.is_alive():
            waiting = admin_conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND backend_type = 'client backend' AND query LIKE '%store_transactions%'"
            ).fetchone()[0]
            admin_conn.commit()
        assert waiting == 1  # B waits for A's rule change
        a.commit()
        thread.join()
    fired = admin_conn.execute(
        "SELECT transaction_id FROM alerts WHERE rule_id = 'compromised_merchant'"
    ).fetchall()
    assert fired == [(2,)]
