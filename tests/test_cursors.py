"""Paging cursors hold epoch milliseconds computed with integers (issue 15, fault 6).

``int(total_seconds() * 1000)`` is 1 ms low for about a quarter of the
millisecond timestamps of 2004 and 2038: the cursor then pointed before the
page's last event, so ``/is_fraud/<id>?limit=1`` returned the same event
forever and ``/accounts/<id>/history`` skipped the rows of that millisecond.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import example, given
from hypothesis import strategies as st

from pgfraud.wire import (
    MAX_MS,
    MIN_MS,
    format_event_cursor,
    format_history_cursor,
    from_epoch_ms,
    parse_event_cursor,
    parse_history_cursor,
    parse_transaction,
    to_epoch_ms,
)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# 12 transactions, 3 in each of 2004-03-01T12:00:00.001Z .. .004Z (the issue's example).
TIMES = [f"2004-03-01T12:00:00.00{1 + i // 3}Z" for i in range(12)]


def test_the_issues_timestamp_is_exact():
    ts = datetime(2004, 3, 1, 12, 0, 0, 1000, tzinfo=UTC)
    # 2004-03-01T12:00:00Z is 1078142400 s after the epoch (12478 days + 12 h).
    assert 12478 * 86400 + 12 * 3600 == 1078142400
    assert to_epoch_ms(ts) == 1078142400001
    assert format_event_cursor(ts, 5, "large_amount") == "1078142400001.5.large_amount"
    assert format_history_cursor(ts, 5) == "1078142400001.5"


@given(st.integers(min_value=MIN_MS, max_value=MAX_MS - 1), st.integers(0, 2**63 - 1))
@example(1078142400001, 5)  # 2004-03-01T12:00:00.001Z: float maths made it ...000
@example(2178144000001, 5)  # 2039-01-09: the 2038-2039 stretch of the issue
def test_cursor_round_trip_over_the_whole_wire_range(ms, transaction_id):
    ts = EPOCH + timedelta(milliseconds=ms)  # the reference: timedelta is exact
    assert to_epoch_ms(ts) == ms
    assert from_epoch_ms(ms) == ts
    assert parse_event_cursor(format_event_cursor(ts, transaction_id, "velocity")) == (
        ts,
        transaction_id,
        "velocity",
    )
    assert parse_history_cursor(format_history_cursor(ts, transaction_id)) == (ts, transaction_id)
    # The wire's own two spellings of that instant agree with it.
    iso = ts.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    for spelling in (ms, str(ms), iso):
        record = {"account_id": 1, "transaction_id": 1, "timestamp": spelling, "amount": "1"}
        assert parse_transaction(record).timestamp == ts


@given(st.integers(min_value=MIN_MS, max_value=MAX_MS - 1), st.integers(0, 999))
def test_sub_millisecond_digits_truncate_toward_the_past(ms, micros):
    assert to_epoch_ms(from_epoch_ms(ms) + timedelta(microseconds=micros)) == ms


def _store_the_example(client, admin_conn):
    # Only large_amount on (threshold 10000): each transaction raises exactly one event.
    admin_conn.execute("UPDATE rules SET enabled = (rule_id = 'large_amount')")
    batch = [
        {"account_id": 7, "transaction_id": i + 1, "timestamp": ts, "amount": "20000"}
        for i, ts in enumerate(TIMES)
    ]
    response = client.post("/store_data", json=batch)
    assert response.status_code == 201, response.get_json()


def test_is_fraud_paged_one_at_a_time_reaches_every_event_once(client, admin_conn):
    _store_the_example(client, admin_conn)
    seen = []
    url = "/is_fraud/7?limit=1"
    while url is not None and len(seen) <= 24:  # a looping cursor fails, never hangs
        page = client.get(url).get_json()
        seen += [(e["transaction_id"], e["timestamp"]) for e in page["events"]]
        url = page["next"]
    assert seen == [(i + 1, TIMES[i]) for i in range(12)]


def test_history_paged_one_at_a_time_reaches_every_transaction_once(client, admin_conn):
    _store_the_example(client, admin_conn)
    seen = []
    url = "/accounts/7/history?limit=1"
    while url is not None and len(seen) <= 24:
        page = client.get(url).get_json()
        seen += [t["transaction_id"] for t in page["transactions"]]
        url = page["next"]
    assert seen == list(range(12, 0, -1))  # newest first: ties in time by id, descending
