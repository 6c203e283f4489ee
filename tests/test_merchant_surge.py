"""merchant_surge_7d: a surge of payments at the merchant against its own past.

Data, by hand (merchant 9; T0 = 2024-05-01T00:00Z; every row 10.00).
Other accounts (2, 3, 4) pay at merchant 9 at T0 + 3 d - 1 ms, T0 + 3 d,
T0 + 10 d, 11 d, 12 d, 20 d, T0 + 33 d - 1 ms, T0 + 33 d, 35 d, 39 d.
Account 1 pays there at R = T0 + 17 d - 2 ms, Q = T0 + 17 d and P = T0 + 40 d.

merchant_surge_7d = n x S / max(B x 7 d, S), n the merchant's rows in
[ts - 7 d, ts), B those in [ts - 37 d, ts - 7 d), S the time from the
first of B to ts - 7 d; NULL when B = 0 or S < 7 d:

- R: base ends at T0 + 10 d - 2 ms and starts at T0 + 3 d - 1 ms (its
  first row): S = 7 d - 1 ms, under 7 days: NULL.
- Q: base [T0 - 20 d, T0 + 10 d) holds T0 + 3 d - 1 ms and T0 + 3 d (B = 2),
  S = 7 d + 1 ms; the last week [T0 + 10 d, T0 + 17 d) holds 10 d, 11 d,
  12 d and R (n = 4): 4 x (7 d + 1 ms) / (14 d) = 2.00000033 -> 2.0000.
- P: base [T0 + 3 d, T0 + 33 d) (T0 + 3 d - 1 ms is 1 ms too old) holds
  3 d, 10 d, 11 d, 12 d, R, Q, 20 d, 33 d - 1 ms (B = 8), S = 30 d; the last
  week [T0 + 33 d, T0 + 40 d) holds 33 d, 35 d, 39 d (n = 3):
  3 x 30 / max(8 x 7, 30) = 90 / 56 = 1.607142... -> 1.6071.

A row stored late at T0 + 5 d (account 5) is in P's base, 35 days before P
(beyond the 30 days the merchant features read before): B = 9, so
90 / 63 = 1.428571... -> 1.4286, and P's alert under `merchant_surge_7d >=
1.5` goes away on arrival (before the reach was raised to 888 hours, P was
not re-scored and kept a stale alert).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from pgfraud import db

T0 = datetime(2024, 5, 1, tzinfo=UTC)
MS = timedelta(milliseconds=1)
DAY = timedelta(days=1)

OTHERS = [
    (11, 2, T0 + 3 * DAY - MS),
    (12, 3, T0 + 3 * DAY),
    (13, 4, T0 + 10 * DAY),
    (14, 2, T0 + 11 * DAY),
    (15, 3, T0 + 12 * DAY),
    (16, 4, T0 + 20 * DAY),
    (17, 2, T0 + 33 * DAY - MS),
    (18, 3, T0 + 33 * DAY),
    (19, 4, T0 + 35 * DAY),
    (20, 2, T0 + 39 * DAY),
]
OWN = [(1, 1, T0 + 17 * DAY - 2 * MS), (2, 1, T0 + 17 * DAY), (3, 1, T0 + 40 * DAY)]


def store(conn, rows):
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


def surge_values(conn):
    """{transaction_id: the merchant_surge_7d its reason shows} of account 1's alerts."""
    rows = conn.execute(
        "SELECT transaction_id, reason FROM alerts WHERE account_id = 1 AND rule_id = 'show'"
        " ORDER BY transaction_id"
    ).fetchall()
    conn.commit()
    return {tid: reason.split("merchant_surge_7d = ")[1] for tid, reason in rows}


def test_merchant_surge_by_hand(app_conn, admin_conn):
    db.change_rule(admin_conn, "compromised_merchant", False)
    db.add_rule(admin_conn, "show", "merchant_id = 9 OR merchant_surge_7d >= 0", enabled=True)
    admin_conn.commit()
    store(app_conn, OTHERS + OWN)
    assert surge_values(app_conn) == {1: "null", 2: "2.0000", 3: "1.6071"}


def test_a_late_row_up_to_37_days_back_rescored_on_arrival(app_conn, admin_conn):
    # Under `merchant_surge_7d >= 1.5`, by hand: Q (2.0000), P (1.6071) and
    # 20 (T0 + 39 d: base [2 d, 32 d) holds the 8 rows from 3 d - 1 ms to
    # 20 d, S = 29 d + 1 ms; its week [32 d, 39 d) holds 17, 18, 19:
    # 3 x (29 d + 1 ms) / 56 d = 1.5536) fire; 16, 17, 18, 19 stay under 1
    # (0.5714, 0, 0.4107, 0.8929) and R is NULL. The late row 21 at T0 + 5 d
    # joins each base: Q 4 x (7 d + 1 ms) / 21 d = 1.3333, P 90 / 63 =
    # 1.4286, 20 3 x (29 d + 1 ms) / 63 d = 1.3810: none fires any more,
    # P and 20 being 35 and 34 days after the late row.
    db.change_rule(admin_conn, "compromised_merchant", False)
    db.add_rule(admin_conn, "surge", "merchant_surge_7d >= 1.5", enabled=True)
    admin_conn.commit()
    store(app_conn, OTHERS + OWN)
    query = "SELECT transaction_id FROM alerts WHERE rule_id = 'surge' ORDER BY transaction_id"
    assert [r[0] for r in admin_conn.execute(query).fetchall()] == [2, 3, 20]
    admin_conn.commit()
    store(app_conn, [(21, 5, T0 + 5 * DAY)])
    assert admin_conn.execute(query).fetchall() == []
    admin_conn.commit()
    admin_conn.execute("SELECT rescore_alerts(false)")
    admin_conn.commit()
    assert admin_conn.execute(query).fetchall() == []


def test_the_validator_accepts_it_and_it_reads_the_merchant(admin_conn):
    assert admin_conn.execute(
        "SELECT check_rule_expression(' merchant_surge_7d >= 4 '),"
        " _reads_merchant_features('merchant_surge_7d >= 4')"
    ).fetchone() == ("merchant_surge_7d >= 4", True)
