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


def test_a_users_merchant_feature_rule_reaches_30_days(app_conn, admin_conn):
    store(app_conn)
    db.change_rule(admin_conn, "compromised_merchant", False)
    db.add_rule(admin_conn, "risky_shop", "merchant_fraud_30d >= 1", enabled=True)
    admin_conn.commit()
    # Delay 0: account 5 (T0 + 12 h) reads T0 too; 720 hours is 30 days.
    assert neighbours(admin_conn) == [(2, 2), (4, 3), (5, 6)]


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
