"""SQL store_transactions as a psql user calls it (issue 7, faults 1 and 4).

A timestamp without an offset is UTC whatever the session's TimeZone, and
every amount reads back with 2 decimal places, on every path.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import psycopg
import pytest

from pgfraud import db

ROW = (
    '{{"account_id": 5000010, "transaction_id": 9000000702,'
    ' "timestamp": "{ts}", "amount": {amount}}}'
)


def store_sql(conn, ts="2024-01-01T00:00:00", amount='"2.00"', zone="America/New_York"):
    conn.execute(f"SET timezone = '{zone}'")
    conn.execute(
        "SELECT * FROM store_transactions(%s::jsonb)", (f"[{ROW.format(ts=ts, amount=amount)}]",)
    )
    conn.commit()
    return conn.execute(
        "SELECT ts, amount::text, current_setting('timezone') FROM transactions"
        " WHERE transaction_id = 9000000702"
    ).fetchone()


@pytest.mark.parametrize(
    "ts, zone, expected",
    [
        ("2024-01-01T00:00:00", "America/New_York", datetime(2024, 1, 1, tzinfo=UTC)),
        ("2024-01-01 00:00:00", "Asia/Kathmandu", datetime(2024, 1, 1, tzinfo=UTC)),
        (
            "2024-07-01T12:30:00.123",
            "America/New_York",
            datetime(2024, 7, 1, 12, 30, 0, 123000, UTC),
        ),
        # With an offset, the offset counts, not the session's zone.
        ("2024-01-01T00:00:00+01:00", "America/New_York", datetime(2023, 12, 31, 23, tzinfo=UTC)),
        ("2024-01-01T00:00:00Z", "Asia/Kathmandu", datetime(2024, 1, 1, tzinfo=UTC)),
    ],
)
def test_a_timestamp_without_offset_is_utc_in_any_session_zone(app_conn, ts, zone, expected):
    stored_ts, _, session_zone = store_sql(app_conn, ts=ts, zone=zone)
    assert stored_ts == expected
    assert session_zone == zone  # the function's own UTC does not leak into the session


def test_sql_http_and_the_same_row_again_agree(app_conn, client):
    # Stored through SQL in New York, the same row over HTTP is a duplicate, not a conflict.
    store_sql(app_conn)
    response = client.post(
        "/store_data",
        json={
            "account_id": 5000010,
            "transaction_id": 9000000702,
            "timestamp": "2024-01-01T00:00:00",
            "amount": "2.00",
        },
    )
    assert (response.status_code, response.get_json()["status"]) == (200, "duplicate")


@pytest.mark.parametrize(
    "amount, expected",
    [('"13"', "13.00"), ("13", "13.00"), ('"12.340"', "12.34"), ("12.5", "12.50"), ('"0"', "0.00")],
)
def test_amounts_are_stored_with_two_places(app_conn, client, amount, expected):
    _, stored_amount, _ = store_sql(app_conn, amount=amount)
    assert stored_amount == expected
    body = client.get("/accounts/5000010/transactions").get_json()
    assert body["transactions"][0]["amount"] == expected
    rows = db.get_account_transactions(app_conn, 5000010, 10)
    assert str(rows[0]["amount"]) == expected


def test_more_than_two_places_are_refused_not_rounded(app_conn):
    with pytest.raises(psycopg.errors.CheckViolation):
        store_sql(app_conn, amount='"12.345"')
    app_conn.rollback()
    assert app_conn.execute("SELECT count(*) FROM transactions").fetchone() == (0,)


def test_copy_path_stores_two_places(app_conn):
    counts = db.copy_transactions(
        app_conn, [(2, 1, 1, datetime(2024, 1, 1, tzinfo=UTC), Decimal("13"))]
    )
    app_conn.commit()
    assert counts == {"stored": 1, "duplicate": 0}
    assert app_conn.execute("SELECT amount::text FROM transactions").fetchone() == ("13.00",)


def test_rules_read_the_same_in_any_session_zone(app_conn):
    # velocity across New York's DST change (2024-03-10 07:00Z): the window is elapsed
    # seconds. At 06:30Z, 07:00Z, 07:30Z with a 3600 s window and max 1: the 2nd sees
    # (06:00, 07:00] -> 2 transactions; the 3rd (06:30, 07:30] -> 2 (06:30 is exactly
    # 3600 s before, outside the half-open window). 2 > 1: both fire, observed 2.
    times = ["2024-03-10T06:30:00Z", "2024-03-10T07:00:00Z", "2024-03-10T07:30:00Z"]
    db.store_transactions(
        app_conn,
        [
            {"transaction_id": i, "account_id": 1, "timestamp": t, "amount": Decimal("10.00")}
            for i, t in enumerate(times)
        ],
    )
    app_conn.commit()
    rules = '{"velocity": {"window_seconds": 3600, "max_transactions": 1}}'
    for zone in ("UTC", "America/New_York", "Asia/Kathmandu"):
        app_conn.execute(f"SET timezone = '{zone}'")
        fired = app_conn.execute(
            "SELECT transaction_id, observed FROM evaluate_account(1, %s::jsonb)", (rules,)
        ).fetchall()
        assert fired == [(1, Decimal("2")), (2, Decimal("2"))], zone


def test_a_row_stored_before_scale_2_reads_back_with_two_places(database, client):
    # A row written by hand (or before the store functions wrote scale 2): 13, not 13.00.
    with db.connect(database.admin_url, autocommit=True) as conn:
        conn.execute("INSERT INTO transactions VALUES (1, 7, '2024-01-01Z', 13)")
        conn.execute("INSERT INTO transactions VALUES (2, 7, '2024-01-01T01:00Z', 20000.5)")
    body = client.get("/accounts/7/transactions").get_json()
    assert [t["amount"] for t in body["transactions"]] == ["20000.50", "13.00"]
    events = client.get("/is_fraud/7").get_json()["events"]
    # amount_spike needs 3 prior transactions (min_history 3); large_amount fires at 10000.
    assert [(e["rule_id"], e["amount"]) for e in events] == [("large_amount", "20000.50")]


def _store(conn, *rows):
    """store_transactions of these rows (dicts), as (row_number, status) pairs;
    or the error as (sqlstate, column, detail, constraint)."""
    import json

    try:
        result = conn.execute(
            "SELECT row_number, status FROM store_transactions(%s::jsonb)", (json.dumps(rows),)
        ).fetchall()
    except psycopg.Error as exc:
        conn.rollback()
        return (
            exc.sqlstate,
            exc.diag.column_name,
            exc.diag.message_detail,
            exc.diag.constraint_name,
        )
    conn.commit()
    return result


def test_one_transaction_and_a_batch_answer_alike(app_conn):
    # One transaction takes a path of its own (no staging table); its answers
    # and errors are those of the batch path.
    a = {"account_id": 7, "transaction_id": 70, "timestamp": "2024-01-01T00:00:00Z", "amount": "5"}
    b = dict(a, transaction_id=71)
    assert _store(app_conn, a) == [(0, "stored")]
    assert app_conn.execute(
        "SELECT amount::text FROM transactions WHERE transaction_id = 70"
    ).fetchone() == ("5.00",)
    assert _store(app_conn, a) == [(0, "duplicate")]
    assert _store(app_conn, a, b) == [(0, "duplicate"), (1, "stored")]
    # The same id with another amount: PF003, naming the row.
    other = dict(a, amount="6")
    assert _store(app_conn, other) == (
        "PF003",
        "transaction_id",
        '{"row" : 0, "transaction_id" : 70}',
        None,
    )
    assert _store(app_conn, dict(b, transaction_id=72), other) == (
        "PF003",
        "transaction_id",
        '{"row" : 1, "transaction_id" : 70}',
        None,
    )
    # A missing field and a negative amount: the table's own errors, alike.
    missing = {k: v for k, v in dict(a, transaction_id=73).items() if k != "account_id"}
    assert (
        _store(app_conn, missing)[:2] == _store(app_conn, b, missing)[:2] == ("23502", "account_id")
    )
    negative = dict(a, transaction_id=74, amount="-1")
    single, batch = _store(app_conn, negative), _store(app_conn, b, negative)
    assert single[0] == batch[0] == "23514"
    assert single[3] == batch[3] == "transactions_amount_check"
    assert app_conn.execute("SELECT count(*) FROM transactions").fetchone() == (2,)
