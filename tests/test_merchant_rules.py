"""Windows, equal times and the merchant rules in SQL, with values worked out by hand.

Also: alerts stay equal to the rules from scratch when what compromised_merchant
reads changes outside the row's account (labels, reviews, another account's
late transaction at the merchant).
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from pgfraud import db

T0 = datetime(2024, 3, 1, tzinfo=UTC)
DAY = 86_400


def store(conn, rows):
    """rows: (transaction_id, account_id, seconds after T0, amount text, merchant_id)."""
    db.store_transactions(
        conn,
        [
            {
                "transaction_id": tid,
                "account_id": account,
                "timestamp": T0 + timedelta(seconds=seconds),
                "amount": Decimal(amount),
                "merchant_id": merchant,
            }
            for tid, account, seconds, amount, merchant in rows
        ],
    )
    conn.commit()


def only(admin_conn, rules):
    """Enable exactly these rules ({rule_id: parameters})."""
    admin_conn.execute(
        "UPDATE rules SET enabled = (rule_id = ANY(%s)),"
        " parameters = coalesce((%s::jsonb) -> rule_id, parameters)",
        (list(rules), json.dumps(rules)),
    )
    admin_conn.commit()


def alerts(conn, account):
    rows = conn.execute(
        "SELECT transaction_id, rule_id, observed, threshold, reason FROM alerts"
        " WHERE account_id = %s ORDER BY ts, transaction_id, rule_id",
        (account,),
    ).fetchall()
    scratch = conn.execute(
        "SELECT transaction_id, rule_id, observed, threshold, reason"
        " FROM evaluate_account(%s, active_rule_parameters())",
        (account,),
    ).fetchall()
    conn.commit()
    assert rows == scratch
    return rows


def test_amount_spike_averages_over_window_days(app_conn, admin_conn):
    # Whole past before 11.0 days: (100 + 10 + 10) / 3 = 40, x3 = 120: 50 does not fire.
    # In the 2 days before it (after day 9): 10 and 10, average 10, x3 = 30: 50 fires.
    only(admin_conn, {"amount_spike": {"multiplier": 3, "min_history": 2, "window_days": 2}})
    store(
        app_conn,
        [
            (1, 5, 0, "100.00", None),
            (2, 5, 10 * DAY, "10.00", None),
            (3, 5, 10.5 * DAY, "10.00", None),
            (4, 5, 11 * DAY, "50.00", None),
        ],
    )
    assert alerts(app_conn, 5) == [
        (
            4,
            "amount_spike",
            Decimal("50.00"),
            Decimal("30.0000"),
            "amount 50.00 is above 3 x the average 10.0000 of 2 prior transactions in 2 days",
        )
    ]
    only(admin_conn, {"amount_spike": {"multiplier": 3, "min_history": 2, "window_days": 0}})
    assert alerts(app_conn, 5) == []


def test_below_average_window_needs_min_history_inside_it(app_conn, admin_conn):
    # 5.00 at day 20: only one prior transaction in the last 3 days (40.00 at
    # day 18), below min_history 2, so the windowed rule does not fire.
    only(admin_conn, {"below_average": {"factor": 0.5, "min_history": 2, "window_days": 3}})
    store(
        app_conn,
        [
            (11, 6, 0, "40.00", None),
            (12, 6, DAY, "40.00", None),
            (13, 6, 18 * DAY, "40.00", None),
            (14, 6, 20 * DAY, "5.00", None),
            (15, 6, 20.5 * DAY, "5.00", None),
        ],
    )
    # 15: in the 3 days before it 40.00 and 5.00, average 22.50, x0.5 = 11.25 > 5.00.
    assert [(t, r, th) for t, r, _, th, _ in alerts(app_conn, 6)] == [
        (15, "below_average", Decimal("11.2500"))
    ]


def test_equal_times_are_same_timestamp_not_rapid_succession(app_conn, admin_conn):
    only(
        admin_conn,
        {"rapid_succession": {"min_gap_seconds": 10}, "same_timestamp": {"max_transactions": 1}},
    )
    store(
        app_conn,
        [(21, 7, 0, "1.00", None), (22, 7, 0, "1.00", None), (23, 7, 5, "1.00", None)],
    )
    # 22: a second transaction at the same instant; 23: 5 s after the
    # latest earlier time (0 s), equal times not counted as gaps.
    assert alerts(app_conn, 7) == [
        (
            22,
            "same_timestamp",
            Decimal("2"),
            Decimal("1"),
            "2 transactions at exactly 2024-03-01T00:00:00.000Z (this one included);"
            " the limit is 1",
        ),
        (
            23,
            "rapid_succession",
            Decimal("5.000"),
            Decimal("10"),
            "5.000 seconds since the previous transaction; the minimum is 10",
        ),
    ]


def test_a_reason_does_not_depend_on_the_writers_time_zone(app_conn, admin_conn):
    # Stored by a session in New York, compared with a from-scratch run in UTC.
    only(admin_conn, {"same_timestamp": {"max_transactions": 1}})
    admin_conn.execute("SET TIME ZONE 'America/New_York'")
    admin_conn.execute(
        "INSERT INTO transactions (transaction_id, account_id, ts, amount)"
        " VALUES (31, 9, '2024-03-01T00:00:00Z', 1), (32, 9, '2024-03-01T00:00:00Z', 1)"
    )
    admin_conn.commit()
    reason = (
        "2 transactions at exactly 2024-03-01T00:00:00.000Z (this one included); the limit is 1"
    )
    assert alerts(app_conn, 9) == [(32, "same_timestamp", Decimal("2"), Decimal("1"), reason)]


def test_new_merchant_large_needs_a_first_visit_and_a_large_amount(app_conn, admin_conn):
    only(admin_conn, {"new_merchant_large": {"multiplier": 2, "min_history": 2}})
    store(
        app_conn,
        [
            (31, 8, 0, "10.00", 1),
            (32, 8, 100, "10.00", 1),
            # Not a first visit: 25.00 > 2 x 10.00 does not matter.
            (33, 8, 200, "25.00", 1),
            # First visit at 2; average (10 + 10 + 25) / 3 = 15, x2 = 30: 31.00 fires.
            (34, 8, 300, "31.00", 2),
            # Second visit at 2: no; unknown merchant: no.
            (35, 8, 400, "500.00", 2),
            (36, 8, 500, "500.00", None),
        ],
    )
    assert alerts(app_conn, 8) == [
        (
            34,
            "new_merchant_large",
            Decimal("31.00"),
            Decimal("30.0000"),
            "first payment at merchant 2; amount 31.00 is above 2 x the average 15.0000"
            " of 3 prior transactions",
        )
    ]


def test_new_merchant_large_with_unused_days_counts_a_merchant_unused_for_days_as_new(
    app_conn, admin_conn
):
    only(admin_conn, {"new_merchant_large": {"multiplier": 2, "min_history": 2, "unused_days": 1}})
    store(
        app_conn,
        [
            (41, 9, 0, "10.00", 1),
            (42, 9, 100, "10.00", 2),
            # Merchant 1 used half a day before: not new (25.00 > 2 x 10.00 does not matter).
            (43, 9, 0.5 * DAY, "25.00", 1),
            # Last used 1.5 days before: new; average (10 + 10 + 25) / 3 = 15, x2 = 30.
            (44, 9, 2 * DAY, "40.00", 1),
            # Last used exactly 1 day before, outside (ts - 1 day, ts]: new;
            # average 85 / 4 = 21.25, x2 = 42.5.
            (45, 9, 3 * DAY, "100.00", 1),
            # Used 1 second before: not new.
            (46, 9, 3 * DAY + 1, "500.00", 1),
        ],
    )
    assert alerts(app_conn, 9) == [
        (
            44,
            "new_merchant_large",
            Decimal("40.00"),
            Decimal("30.0000"),
            "no payment at merchant 1 in the last 1 days; amount 40.00 is above 2 x the"
            " average 15.0000 of 3 prior transactions",
        ),
        (
            45,
            "new_merchant_large",
            Decimal("100.00"),
            Decimal("42.5000"),
            "no payment at merchant 1 in the last 1 days; amount 100.00 is above 2 x the"
            " average 21.2500 of 4 prior transactions",
        ),
    ]


def test_new_merchant_run_sums_the_payments_in_a_row_at_new_merchants(app_conn, admin_conn):
    only(
        admin_conn,
        {"new_merchant_run": {"multiplier": 1.2, "max_run": 3, "unused_days": 1, "min_history": 2}},
    )
    store(
        app_conn,
        [
            (61, 12, 0, "10.00", 1),
            (62, 12, 100, "10.00", 1),  # merchant 1 used 100 s before: not new
            # New, but the run is this one alone (62 was not new): never fires.
            (63, 12, 200, "13.00", 2),
            # Run 64, 63: (12 + 13) / 2 = 12.5, not above 1.2 x 33 / 3 = 13.2.
            (64, 12, 300, "12.00", 3),
            # Run 65, 64, 63 (max_run 3); average 45 / 4 = 11.25, x1.2 = 13.5:
            # 2 long (20 + 12) / 2 = 16 and 3 long 45 / 3 = 15 both above; 3 is shown.
            (65, 12, 400, "20.00", 4),
            (66, 12, 500, "1.00", 2),  # merchant 2 used 300 s before: not new
            # Merchant 1 unused for 2 days: new, but 66 before it was not: a run of 1.
            (67, 12, 2 * DAY, "30.00", 1),
            # Run 68, 67: (5 + 30) / 2 = 17.5 above 1.2 x 96 / 7 = 16.457..., though 5.00 is small.
            (68, 12, 2 * DAY + 10, "5.00", 5),
        ],
    )
    assert alerts(app_conn, 12) == [
        (
            65,
            "new_merchant_run",
            Decimal("15.0000"),
            Decimal("13.5000"),
            "3 payments in a row (this one included) at merchants not used in the last 1 days,"
            " together 45.00: an average 15.0000 above 1.2 x the average 11.2500 of 4 prior"
            " transactions",
        ),
        (
            68,
            "new_merchant_run",
            Decimal("17.5000"),
            Decimal("16.4571"),
            "2 payments in a row (this one included) at merchants not used in the last 1 days,"
            " together 35.00: an average 17.5000 above 1.2 x the average 13.7143 of 7 prior"
            " transactions",
        ),
    ]


def test_compromised_merchant_follows_labels_reviews_and_late_rows(app_conn, admin_conn):
    only(
        admin_conn,
        {
            "compromised_merchant": {
                "window_days": 10,
                "delay_days": 1,
                "min_known_fraud": 2,
                "min_fraud_share": 0.5,
            }
        },
    )
    store(
        app_conn,
        [
            (101, 51, 0, "1.00", 900),
            (102, 52, 0.5 * DAY, "1.00", 900),
            (103, 53, DAY, "1.00", 900),
            # Account 60 at day 2.25: it reads merchant 900 in [day -7.75, day 1.25): 101..103.
            (201, 60, 2.25 * DAY, "1.00", 900),
            # Account 61 at day 1.5 reads [.., day 0.5): 101 only (102 is not before 0.5).
            (202, 61, 1.5 * DAY, "1.00", 900),
        ],
    )
    assert alerts(app_conn, 60) == []

    def label(tid, known_days):
        admin_conn.execute(
            "INSERT INTO fraud_labels (transaction_id, scenario, known_at)"
            " VALUES (%s, 'skimming', %s)",
            (tid, T0 + timedelta(days=known_days)),
        )
        admin_conn.commit()

    def review(tid, status, days):
        # A review recorded at a given time (the owner, by hand): its known_at.
        admin_conn.execute(
            "INSERT INTO reviews (transaction_id, account_id, status, reviewer, reviewed_at)"
            " SELECT transaction_id, account_id, %s, 'analyst', %s FROM transactions"
            " WHERE transaction_id = %s",
            (status, T0 + timedelta(days=days), tid),
        )
        admin_conn.commit()

    # 201 reads what was known before day 2.25 - 1 = day 1.25.
    label(101, 0.2)
    assert alerts(app_conn, 60) == []  # 1 known fraud: under min_known_fraud 2
    label(103, 1.3)  # known after day 1.25: 201 does not count it
    assert alerts(app_conn, 60) == []
    label(102, 0.6)
    reason = (
        "merchant 900: {} of its {} transactions from 10 to 1 days before are known fraud"
        " (as known then); the limits are 2 and a share of 0.5"
    )
    assert alerts(app_conn, 60) == [
        (201, "compromised_merchant", Decimal("0.6667"), Decimal("0.5"), reason.format(2, 3))
    ]
    assert alerts(app_conn, 61) == []  # the reporting delay hides 102 from 202

    # A review entered now (years after these transactions) changes nothing.
    db.review_transaction(app_conn, 102, "false_positive", "", "analyst")
    app_conn.commit()
    assert alerts(app_conn, 60) == [
        (201, "compromised_merchant", Decimal("0.6667"), Decimal("0.5"), reason.format(2, 3))
    ]
    # One recorded at day 0.7 overrules 102's label for 201.
    review(102, "false_positive", 0.7)
    assert alerts(app_conn, 60) == []
    # 103 confirmed at day 1.0 (its label came later): known fraud for 201 again.
    review(103, "confirmed_fraud", 1.0)
    assert alerts(app_conn, 60) == [
        (201, "compromised_merchant", Decimal("0.6667"), Decimal("0.5"), reason.format(2, 3))
    ]

    # A late transaction of another account, already labelled (known at day
    # 1.15), at day 1.1: 3 known of 4 for 201.
    label(104, 1.15)
    store(app_conn, [(104, 54, 1.1 * DAY, "1.00", 900)])
    assert alerts(app_conn, 60) == [
        (201, "compromised_merchant", Decimal("0.7500"), Decimal("0.5"), reason.format(3, 4))
    ]
    # Removing it (the owner, by hand) re-scores 201 too.
    admin_conn.execute("DELETE FROM transactions WHERE transaction_id = 104")
    admin_conn.commit()
    assert alerts(app_conn, 60) == [
        (201, "compromised_merchant", Decimal("0.6667"), Decimal("0.5"), reason.format(2, 3))
    ]
    # (alerts() checks each against a from-scratch evaluation.)


def test_compromised_merchant_sees_a_concurrent_store_at_the_merchant(
    app_conn, admin_conn, database
):
    # Two known-fraud payments at merchant 910 on day 0; window 10 days, delay 0.5 day.
    # A (account 71, day 2, not fraud) and B (account 72, day 3) store at once, A first:
    # from scratch B reads 101, 102 and A's 301: 2 known of 3 = 0.6667 (share 0.6 fires).
    # Had B scored without A's uncommitted row it would say 2 of 2 = 1.0000.
    only(
        admin_conn,
        {
            "compromised_merchant": {
                "window_days": 10,
                "delay_days": 0.5,
                "min_known_fraud": 2,
                "min_fraud_share": 0.6,
            }
        },
    )
    store(app_conn, [(101, 61, 0, "1.00", 910), (102, 62, 0.1 * DAY, "1.00", 910)])
    admin_conn.execute(
        "INSERT INTO fraud_labels (transaction_id, scenario, known_at)"
        " SELECT transaction_id, 'x', ts FROM transactions WHERE transaction_id IN (101, 102)"
    )
    admin_conn.commit()
    store_a = [(301, 71, 2 * DAY, "1.00", 910)]
    db.store_transactions(app_conn, [_record(*row) for row in store_a])  # A: not committed yet
    result: list = []

    def store_b() -> None:
        with db.connect(database.app_url) as other:
            result.append(db.store_transactions(other, [_record(302, 72, 3 * DAY, "1.00", 910)]))
            other.commit()

    b = threading.Thread(target=store_b)
    b.start()
    b.join(timeout=1.0)
    assert b.is_alive()  # B waits for A's merchant lock ...
    app_conn.commit()
    b.join(timeout=30)
    assert not b.is_alive()  # ... and scores once A has committed
    reason = (
        "merchant 910: 2 of its 3 transactions from 10 to 0.5 days before are known fraud"
        " (as known then); the limits are 2 and a share of 0.6"
    )
    assert alerts(app_conn, 72) == [
        (302, "compromised_merchant", Decimal("0.6667"), Decimal("0.6"), reason)
    ]
    assert result[0][0]["alerts"][0]["observed"] == "0.6667"


def _record(tid, account, seconds, amount, merchant):
    return {
        "transaction_id": tid,
        "account_id": account,
        "timestamp": T0 + timedelta(seconds=seconds),
        "amount": Decimal(amount),
        "merchant_id": merchant,
    }
