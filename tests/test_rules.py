"""The rules in SQL, at their boundaries, with values worked out by hand.

Each test stores a few transactions as the service role and reads
`is_fraud`/`evaluate_account` back. Only the rule under test is enabled where
other rules would also fire.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from pgfraud import db
from pgfraud.errors import AccountNotFound

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def store(conn, rows):
    """rows: (transaction_id, account_id, seconds after T0, amount text)."""
    db.store_transactions(
        conn,
        [
            {
                "transaction_id": tid,
                "account_id": account,
                "timestamp": T0 + timedelta(seconds=seconds),
                "amount": Decimal(amount),
            }
            for tid, account, seconds, amount in rows
        ],
    )
    conn.commit()


@pytest.fixture(autouse=True)
def seed_parameters(admin_conn):
    """These cases were worked out with the seed's parameters of below_average
    (0.9, 1) and velocity (3600 s, 5), not the measured defaults of 0007."""
    admin_conn.execute(
        "UPDATE rules SET parameters = CASE rule_id"
        ' WHEN \'below_average\' THEN \'{"factor": 0.9, "min_history": 1, "window_days": 0}\''
        " WHEN 'velocity' THEN '{\"window_seconds\": 3600, \"max_transactions\": 5}'"
        " ELSE parameters END"
    )
    admin_conn.commit()


def only(admin_conn, *rule_ids):
    admin_conn.execute("UPDATE rules SET enabled = (rule_id = ANY(%s))", (list(rule_ids),))


def fired(conn, account, rule_id=None):
    events = db.is_fraud(conn, account)
    conn.commit()
    return [
        (e["transaction_id"], e["rule_id"])
        for e in events
        if rule_id is None or e["rule_id"] == rule_id
    ]


def test_below_average_exact_boundary_does_not_fire(app_conn, admin_conn):
    # 0.9 x avg(13.00, 13.00) = 11.70 exactly; 11.70 < 11.70 is false.
    # (In float, 0.9 * 13.0 = 11.700000000000001, so 11.70 would fire.)
    only(admin_conn, "below_average")
    store(app_conn, [(1, 7, 0, "13.00"), (2, 7, 3600, "13.00"), (3, 7, 7200, "11.70")])
    assert fired(app_conn, 7) == []


def test_below_average_fires_just_below(app_conn, admin_conn):
    only(admin_conn, "below_average")
    store(app_conn, [(1, 7, 0, "13.00"), (2, 7, 3600, "13.00"), (3, 7, 7200, "11.69")])
    events = db.is_fraud(app_conn, 7)
    assert [(e["transaction_id"], e["rule_id"]) for e in events] == [(3, "below_average")]
    assert events[0]["observed"] == Decimal("11.69")
    assert events[0]["threshold"] == Decimal("11.7000")


def test_below_average_excludes_the_row_from_its_own_average(app_conn, admin_conn):
    # prior avg 100 -> threshold 90; 88 < 90 fires. Had 88 entered its own
    # average (96), the threshold would be 86.4 and it would not fire.
    only(admin_conn, "below_average")
    store(app_conn, [(1, 5, 0, "100.00"), (2, 5, 60, "100.00"), (3, 5, 120, "88.00")])
    events = db.is_fraud(app_conn, 5)
    assert [(e["transaction_id"], e["threshold"]) for e in events] == [(3, Decimal("90.0000"))]
    assert events[0]["reason"] == (
        "amount 88.00 is below 0.9 x the average 100.0000 of 2 prior transactions"
    )


def test_first_transaction_fires_no_history_rule_and_nothing_is_null(app_conn):
    # All rules enabled (the defaults); a lone 50.00 has no history and is below 10,000.
    store(app_conn, [(1, 3, 0, "50.00")])
    assert db.is_fraud(app_conn, 3) == []


def test_no_column_is_null_when_rules_fire(app_conn, admin_conn):
    # amount_spike is off by default since 0022: on here, at its parameters.
    admin_conn.execute("UPDATE rules SET enabled = true WHERE rule_id = 'amount_spike'")
    store(
        app_conn,
        # 1.00 < 0.9 x 100; 20000 > 5 x avg(100, 1, 50) and >= 10,000; gaps of 1 s.
        [(1, 3, 0, "100.00"), (2, 3, 1, "1.00"), (3, 3, 2, "50.00"), (4, 3, 3, "20000.00")],
    )
    events = db.is_fraud(app_conn, 3)
    assert {e["rule_id"] for e in events} == {
        "below_average",
        "rapid_succession",
        "large_amount",
        "amount_spike",
    }
    for event in events:
        assert all(value is not None for value in event.values()), event


def test_amount_spike_boundary(app_conn, admin_conn):
    # multiplier 5, min_history 3: prior 10, 20, 30 -> avg 20 -> threshold 100.
    only(admin_conn, "amount_spike")
    store(
        app_conn,
        [
            (1, 9, 0, "10.00"),
            (2, 9, 100, "20.00"),
            (3, 9, 200, "30.00"),
            (4, 9, 300, "100.00"),  # exactly 5 x 20: not above
            (5, 9, 400, "200.00"),  # prior avg (10+20+30+100)/4 = 40 -> 200 is not above
            (6, 9, 500, "360.01"),  # prior avg 360/5 = 72 -> 360 threshold; 360.01 fires
        ],
    )
    events = db.is_fraud(app_conn, 9)
    assert [(e["transaction_id"], e["threshold"]) for e in events] == [(6, Decimal("360.0000"))]


def test_amount_spike_needs_min_history(app_conn, admin_conn):
    only(admin_conn, "amount_spike")
    store(app_conn, [(1, 9, 0, "10.00"), (2, 9, 100, "10.00"), (3, 9, 200, "1000.00")])
    assert fired(app_conn, 9) == []


def test_large_amount_at_threshold_fires(app_conn, admin_conn):
    only(admin_conn, "large_amount")
    store(app_conn, [(1, 4, 0, "9999.99"), (2, 4, 100, "10000.00")])
    assert fired(app_conn, 4) == [(2, "large_amount")]


def test_velocity_counts_elapsed_window_and_only_the_past(app_conn, admin_conn):
    # window 3600 s, max 5: the 6th transaction within (t - 1h, t] fires.
    only(admin_conn, "velocity")
    store(
        app_conn,
        [
            (1, 2, 0, "1.00"),
            (2, 2, 600, "1.00"),
            (3, 2, 1200, "1.00"),
            (4, 2, 1800, "1.00"),
            (5, 2, 2400, "1.00"),
            (6, 2, 3000, "1.00"),  # 6 in (−600, 3000]: fires, observed 6
            (7, 2, 3600, "1.00"),  # window (0, 3600]: tx 1 at 0 is out -> 6 again: fires
            (8, 2, 7300, "1.00"),  # window (3700, 7300]: alone
        ],
    )
    events = db.is_fraud(app_conn, 2)
    assert [(e["transaction_id"], e["observed"]) for e in events] == [
        (6, Decimal(6)),
        (7, Decimal(6)),
    ]


def test_ties_in_time_are_broken_by_transaction_id(app_conn, admin_conn):
    # Same timestamp: id 11 sees id 10 as prior, id 10 does not see id 11.
    only(admin_conn, "below_average")
    store(app_conn, [(11, 6, 0, "10.00"), (10, 6, 0, "100.00")])
    assert fired(app_conn, 6) == [(11, "below_average")]


def test_rapid_succession_boundary(app_conn, admin_conn):
    # min gap 10 s: 9.999 s fires, exactly 10 s does not.
    only(admin_conn, "rapid_succession")
    db.store_transactions(
        app_conn,
        [
            {"transaction_id": 1, "account_id": 8, "timestamp": T0, "amount": Decimal(1)},
            {
                "transaction_id": 2,
                "account_id": 8,
                "timestamp": T0 + timedelta(seconds=10),
                "amount": Decimal(1),
            },
            {
                "transaction_id": 3,
                "account_id": 8,
                "timestamp": T0 + timedelta(seconds=19, milliseconds=999),
                "amount": Decimal(1),
            },
        ],
    )
    app_conn.commit()
    events = db.is_fraud(app_conn, 8)
    assert [(e["transaction_id"], e["observed"]) for e in events] == [(3, Decimal("9.999"))]


def test_verdicts_do_not_change_when_later_data_arrives(app_conn):
    store(app_conn, [(1, 1, 0, "100.00"), (2, 1, 60, "50.00")])
    before = db.is_fraud(app_conn, 1)
    store(app_conn, [(3, 1, 120, "1.00"), (4, 1, 121, "90000.00")])
    after = db.is_fraud(app_conn, 1)
    assert [e for e in after if e["transaction_id"] <= 2] == before
    assert len(before) == 1  # 50 < 0.9 x 100


def test_unknown_account_raises_account_not_found(app_conn):
    with pytest.raises(AccountNotFound):
        db.is_fraud(app_conn, 424242)


def test_batch_scoring_equals_per_account(app_conn):
    store(
        app_conn,
        [
            (1, 1, 0, "100.00"),
            (2, 1, 5, "10.00"),
            (3, 2, 0, "5.00"),
            (4, 2, 100, "50000.00"),
            (5, 3, 0, "7.00"),
        ],
    )
    batch = app_conn.execute("SELECT transaction_id, rule_id FROM score_transactions()").fetchall()
    per_account = [
        (e["transaction_id"], e["rule_id"]) for a in (1, 2, 3) for e in db.is_fraud(app_conn, a)
    ]
    assert batch == per_account
    assert batch == [
        (2, "below_average"),
        (2, "rapid_succession"),
        (4, "large_amount"),
    ]


def test_backtest_parameters_leave_live_rules_alone(app_conn):
    store(app_conn, [(1, 1, 0, "100.00"), (2, 1, 3600, "95.00")])
    candidate = app_conn.execute(
        "SELECT transaction_id, threshold FROM score_transactions(NULL, NULL, %s::jsonb)",
        ('{"below_average": {"factor": 0.99, "min_history": 1}}',),
    ).fetchall()
    assert candidate == [(2, Decimal("99.0000"))]
    assert db.is_fraud(app_conn, 1) == []


def test_set_rule_changes_parameters_and_refuses_unknown_keys(admin_conn):
    row = admin_conn.execute(
        "SELECT parameters FROM set_rule('velocity', NULL, %s::jsonb)", ('{"max_transactions": 3}',)
    ).fetchone()
    assert row[0] == {"window_seconds": 3600, "max_transactions": 3}
    import psycopg

    with pytest.raises(psycopg.Error) as info:
        admin_conn.execute("SELECT set_rule('velocity', NULL, '{\"speed\": 1}'::jsonb)")
    assert info.value.sqlstate == "PF001"


def test_amounts_and_times_come_back_exactly_in_any_time_zone(app_conn):
    db.store_transactions(
        app_conn,
        [
            {
                "transaction_id": 1,
                "account_id": 1,
                "timestamp": T0,
                "amount": Decimal("19.99"),
            }
        ],
    )
    app_conn.commit()
    for zone in ("UTC", "America/New_York", "Asia/Kathmandu"):
        app_conn.execute(f"SET TIME ZONE '{zone}'")
        rows = db.get_account_transactions(app_conn, 1, 10)
        assert rows[0]["ts"] == T0
        assert str(rows[0]["amount"]) == "19.99"
        text = app_conn.execute(
            "SELECT to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS') FROM transactions"
        ).fetchone()[0]
        assert text == "2024-01-01T00:00:00"
    app_conn.rollback()
