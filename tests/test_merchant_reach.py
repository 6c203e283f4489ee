"""A change at a merchant re-scores only the rows that can read it (break-it).

A row stored late at a busy merchant, or a label or review of one, with
compromised_merchant on, re-scored every account that paid at that merchant
at any time after it (_merchant_neighbour_positions had no upper bound),
although a row at time ts reads the merchant's rows only in
[ts - window_days, ts - delay_days) (the users' merchant features: the 30
days before ts). Measured on a 170,000-row database (merchant 3: 7,800
rows): one row stored 10 months late there re-scored 475 accounts and
141,681 rows (2.6 s); a 20-row batch of such rows passed the service's 10 s
statement timeout and was answered 503. Now 184 accounts, 64,847 rows
(1.5 s): only accounts with a row at the merchant within the rules' reach.

Data, by hand (merchant 9; T0 = 2024-05-01T00:00Z; compromised_merchant
window_days 30, delay_days 1): account 1 pays at T0 (the change); account
2 at T0 + 10 days (reads T0: inside [ts - 30 d, ts - 1 d)); account 4 at
T0 + 30 days exactly (reads T0: the window's start is inclusive); account 3
at T0 + 30 days + 1 ms and T0 + 40 days (reads nothing of T0); account 5 at
T0 + 12 hours (before the delay: reads nothing of T0).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from pgfraud import db

T0 = datetime(2024, 5, 1, tzinfo=UTC)
MS = timedelta(milliseconds=1)


def store(conn):
    rows = [
        (1, 1, T0),
        (2, 2, T0 + timedelta(days=10)),
        (3, 4, T0 + timedelta(days=30)),
        (4, 3, T0 + timedelta(days=30) + MS),
        (5, 3, T0 + timedelta(days=40)),
        (6, 5, T0 + timedelta(hours=12)),
    ]
    db.store_transactions(
        conn,
        [
            {
                "transaction_id": tid,
                "account_id": account,
                "timestamp": ts,
                "amount": Decimal("10.00"),
                "merchant_id": 9,
            }
            for tid, account, ts in rows
        ],
    )
    conn.commit()


def neighbours(admin_conn):
    return admin_conn.execute(
        "SELECT account_id, from_transaction_id FROM _merchant_neighbour_positions("
        " ARRAY[9]::bigint[], ARRAY[%s]::timestamptz[]) ORDER BY account_id",
        (T0,),
    ).fetchall()


def test_only_accounts_within_compromised_merchants_window_are_neighbours(app_conn, admin_conn):
    store(app_conn)
    db.change_rule(
        admin_conn,
        "compromised_merchant",
        True,
        {"window_days": 30, "delay_days": 1, "min_known_fraud": 1, "min_fraud_share": 0.5},
    )
    admin_conn.commit()
    # Before the fix: [(2, 2), (3, 4), (4, 3)], account 3 re-scored for nothing.
    assert neighbours(admin_conn) == [(2, 2), (4, 3)]


def test_a_users_merchant_feature_rule_reaches_37_days(app_conn, admin_conn):
    store(app_conn)
    db.change_rule(admin_conn, "compromised_merchant", False)
    db.add_rule(admin_conn, "risky_shop", "merchant_fraud_30d >= 1", enabled=True)
    admin_conn.commit()
    # Delay 0: account 5 (T0 + 12 h) reads T0 too; 888 hours is 37 days
    # (merchant_surge_7d's base), so account 3's row at T0 + 30 d + 1 ms is
    # in reach and its row at T0 + 40 d is not.
    assert neighbours(admin_conn) == [(2, 2), (3, 4), (4, 3), (5, 6)]


def test_alerts_stay_exact_after_a_late_row_and_a_label_at_the_merchant(app_conn, admin_conn):
    store(app_conn)
    db.change_rule(
        admin_conn,
        "compromised_merchant",
        True,
        {"window_days": 30, "delay_days": 1, "min_known_fraud": 1, "min_fraud_share": 0.3},
    )
    admin_conn.commit()
    # Transaction 1 known as fraud at T0 + 2 h: from T0 + 1 d 2 h on, merchant
    # 9's window holds 1 known fraud among its rows.
    admin_conn.execute(
        "INSERT INTO fraud_labels (transaction_id, scenario, known_at) VALUES (1, 'x', %s)",
        (T0 + timedelta(hours=2),),
    )
    admin_conn.commit()
    # A row stored late, before everything else at the merchant.
    db.store_transactions(
        app_conn,
        [
            {
                "transaction_id": 7,
                "account_id": 6,
                "timestamp": T0 - timedelta(days=1),
                "amount": Decimal("10.00"),
                "merchant_id": 9,
            }
        ],
    )
    app_conn.commit()
    query = (
        "SELECT transaction_id, rule_id, observed FROM alerts"
        " WHERE rule_id = 'compromised_merchant' ORDER BY transaction_id"
    )
    live = admin_conn.execute(query).fetchall()
    admin_conn.execute("SELECT rescore_alerts(false)")
    admin_conn.commit()
    assert admin_conn.execute(query).fetchall() == live
    # By hand: account 2's row (T0 + 10 d) reads rows 7 (T0 - 1 d), 1 (T0,
    # fraud) and 6 (T0 + 12 h): share 1/3 >= 0.3; account 4's row (T0 + 30 d)
    # reads 1, 6 and 2 (7 is 31 days before): 1/3; account 3's rows read no
    # known fraud in their windows.
    assert [r[0] for r in live] == [2, 3]


def test_a_neighbour_is_rescored_only_up_to_its_last_row_within_reach(app_conn, admin_conn):
    """A neighbour account is re-scored from its first row that can read the
    change to its last one (the change's time + the rules' reach), not to its
    end (gap from last round: a back-dated batch at a busy merchant re-scored
    each neighbour's whole later history, and could pass the statement
    timeout). Its later rows are not touched, and the rows in between are
    exact (as rescore_alerts from scratch).

    By hand (window_days 30, delay_days 1, min_known_fraud 1, share 0.3;
    transaction 1 at T0 known fraud from T0 + 2 h): account 2 pays at merchant
    9 at T0 + 10 d (2) and T0 + 20 d (21), and at merchant 8 at T0 + 100 d
    (20). A change at merchant 9 at T0 reaches (T0 + 1 d, T0 + 30 d]: account
    2 from 2 to 21, account 4 at 3 only.
    """
    store(app_conn)
    db.store_transactions(
        app_conn,
        [
            {
                "transaction_id": tid,
                "account_id": 2,
                "timestamp": ts,
                "amount": Decimal("10.00"),
                "merchant_id": merchant,
            }
            for tid, ts, merchant in [
                (21, T0 + timedelta(days=20), 9),
                (20, T0 + timedelta(days=100), 8),
            ]
        ],
    )
    app_conn.commit()
    db.change_rule(
        admin_conn,
        "compromised_merchant",
        True,
        {"window_days": 30, "delay_days": 1, "min_known_fraud": 1, "min_fraud_share": 0.3},
    )
    admin_conn.commit()
    positions = admin_conn.execute(
        "SELECT account_id, from_transaction_id, until_transaction_id"
        " FROM _merchant_neighbour_positions(ARRAY[9]::bigint[], ARRAY[%s]::timestamptz[])"
        " ORDER BY account_id",
        (T0,),
    ).fetchall()
    assert positions == [(2, 2, 21), (4, 3, 3)]
    admin_conn.execute(
        "INSERT INTO fraud_labels (transaction_id, scenario, known_at) VALUES (1, 'x', %s)",
        (T0 + timedelta(hours=2),),
    )
    admin_conn.commit()
    query = (
        "SELECT transaction_id, observed FROM alerts"
        " WHERE account_id = 2 AND rule_id = 'compromised_merchant' ORDER BY transaction_id"
    )
    # Row 2 reads 1 (fraud) and 6 of merchant 9: 1/2; row 21 reads 1, 6, 2: 1/3.
    assert admin_conn.execute(query).fetchall() == [
        (2, Decimal("0.5000")),
        (21, Decimal("0.3333")),
    ]
    # A marker on account 2's row beyond the reach: a re-score of it would
    # delete it (no rule fires 'marker'), so it stays only if that row is
    # left alone.
    admin_conn.execute(
        "INSERT INTO alerts (transaction_id, account_id, ts, amount, rule_id, observed,"
        " threshold, reason, parameters, rule_version, raised_rule_version)"
        " VALUES (20, 2, %s, 10.00, 'marker', NULL, NULL, 'marker', '{}', 1, 1)",
        (T0 + timedelta(days=100),),
    )
    admin_conn.commit()
    # Row 7 stored late at merchant 9 (T0 - 1 d): reaches (T0, T0 + 29 d].
    db.store_transactions(
        app_conn,
        [
            {
                "transaction_id": 7,
                "account_id": 6,
                "timestamp": T0 - timedelta(days=1),
                "amount": Decimal("10.00"),
                "merchant_id": 9,
            }
        ],
    )
    app_conn.commit()
    # Row 2 now reads 7, 1, 6: 1/3; row 21 reads 7, 1, 6, 2: 1/4 < 0.3, gone.
    assert admin_conn.execute(query).fetchall() == [(2, Decimal("0.3333"))]
    # Before the fix account 2 was re-scored to its end and the marker deleted.
    assert admin_conn.execute(
        "SELECT transaction_id FROM alerts WHERE rule_id = 'marker'"
    ).fetchall() == [(20,)]
    # Exact: a re-score from scratch changes nothing but the marker.
    admin_conn.execute("DELETE FROM alerts WHERE rule_id = 'marker'")
    live = admin_conn.execute(
        "SELECT transaction_id, rule_id, observed FROM alerts ORDER BY 1, 2"
    ).fetchall()
    admin_conn.execute("SELECT rescore_alerts(false)")
    assert (
        admin_conn.execute(
            "SELECT transaction_id, rule_id, observed FROM alerts ORDER BY 1, 2"
        ).fetchall()
        == live
    )
    admin_conn.commit()
