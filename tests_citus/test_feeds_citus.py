"""The live feeds through the Citus coordinator (issue 19).

On one node a feed position is a transaction id and the feed delivers only
what lies below the snapshot's xmin. On Citus each node numbers its own
transactions, is_alert_feed_held was a LANGUAGE sql function Citus cannot
plan, and a worker's scoring sends no notification, so the feeds failed
there. Now the position's first number is a time (milliseconds), rows come
in (time, id) order, and only those raised (decided) before the horizon, the
earliest open transaction on any node: a transaction left open holds the
feeds back, and nothing that commits late is skipped.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from pgfraud import db
from pgfraud.wire import parse_feed_position
from tests_citus.pairs import run_pgfraud


@pytest.fixture(scope="module")
def url(cluster):
    done = run_pgfraud(cluster.coordinator_url, "migrate")  # the roles, once per cluster
    assert done.returncode == 0, done.stderr
    url = cluster.create_database("feeds")
    for step in (["migrate"], ["db", "distribute"]):
        done = run_pgfraud(url, *step)
        assert done.returncode == 0, done.stderr
    return url


def _row(transaction_id: int, account_id: int) -> str:
    # 99,999.00 is far above large_amount's default threshold: one alert each.
    return json.dumps(
        [
            {
                "account_id": account_id,
                "transaction_id": transaction_id,
                "timestamp": "2024-03-01T12:00:00.000",
                "amount": "99999.00",
            }
        ]
    )


def _store(url: str, transaction_id: int, account_id: int) -> None:
    """One row stored and committed by the delegated call (on the account's worker)."""
    with psycopg.connect(url, autocommit=True) as conn:
        status = conn.execute(
            "SELECT status FROM store_account_transactions(%s, %s::jsonb)",
            (account_id, _row(transaction_id, account_id)),
        ).fetchone()[0]
        assert status == "stored"


def _read_until(conn, position, count: int, deadline_s: float = 60.0):
    """Feed rows after ``position`` until ``count`` came (the horizon trails the clock)."""
    got: list[dict] = []
    deadline = time.monotonic() + deadline_s
    while len(got) < count and time.monotonic() < deadline:
        rows = db.get_alert_feed(conn, position)
        for row in rows:
            position = parse_feed_position(row["event_id"])
            got.append(row)
        if len(got) < count:
            time.sleep(0.2)
    return got, position


def test_an_open_transaction_holds_the_feed_and_nothing_is_skipped(url):
    with psycopg.connect(url, autocommit=True) as conn:
        start = parse_feed_position(db.get_alert_feed_start(conn))
        holder = psycopg.connect(url)  # a transaction left open on the coordinator
        try:
            stored = holder.execute(
                "SELECT count(*) FROM store_account_transactions(101, %s::jsonb)",
                (_row(900001, 101),),
            ).fetchone()[0]
            assert stored == 1
            for n, account in enumerate((102, 103, 104, 105), start=2):
                _store(url, 900000 + n, account)
            # Four alerts are committed, but each was raised after the open
            # transaction began: none may pass it, or its own alert, raised
            # earlier, would come after a position beyond it and be skipped.
            assert db.get_alert_feed(conn, start) == []
            assert db.is_alert_feed_held(conn, start) is True  # a reader polls
            holder.commit()
        finally:
            holder.close()
        got, end = _read_until(conn, start, 5)
        assert sorted(row["transaction_id"] for row in got) == [900001 + n for n in range(5)]
        assert got[0]["transaction_id"] == 900001  # raised first
        keys = [parse_feed_position(row["event_id"]) for row in got]
        assert keys == sorted(keys) and len(set(keys)) == 5
        # Each event id is (the raise time in ms, the alert id).
        for row, (ms, alert_id) in zip(got, keys, strict=True):
            assert alert_id == row["alert_id"]
            assert ms == int(row["raised_at"].timestamp() * 1000)
        # Nothing more, and nothing again from the last position.
        assert db.get_alert_feed(conn, end) == []
        # The decisions feed: the five decisions, once each, in order.
        decisions = db.get_decision_feed(conn, start)
        assert sorted(d["transaction_id"] for _, d in decisions) == [900001 + n for n in range(5)]
        assert [d["outcome"] for _, d in decisions] == ["review"] * 5
        assert not db.is_feed_position_ahead(conn, end)
        assert db.is_feed_position_ahead(conn, (end[0] + 3_600_000, 0))


def test_decisions_sharing_a_position_come_in_one_page(url):
    """A transaction id is unique per account on Citus: two accounts'
    decisions of the same transaction id in the same millisecond share a
    feed position. A page of one ended between them, and the next page,
    after that position, skipped the second. Now a page holds every decision
    of its last position."""
    for account in (201, 202):
        _store(url, 4242, account)
    _store(url, 4243, 203)  # a decision after them
    with psycopg.connect(url, autocommit=True) as conn:
        # The same millisecond for both, earlier than every other decision here.
        conn.execute(
            "UPDATE decisions SET decided_at = '2001-01-01 00:00:00.123456+00'"
            " WHERE transaction_id = 4242 AND account_id IN (201, 202)"
        )
        before = (978307200000, 0)  # 2001-01-01 00:00:00.000 UTC in ms
        page = db.get_decision_feed(conn, before, limit=1)
        assert [(event_id, d["account_id"]) for event_id, d in page] == [
            ("978307200123-4242", 201),
            ("978307200123-4242", 202),
        ]
        after = db.get_decision_feed(conn, parse_feed_position(page[-1][0]), limit=1)
        assert [d["transaction_id"] for _, d in after] != [4242]
        assert after, "nothing after the shared position"


def test_pgfraud_alerts_follow_prints_alerts_raised_on_the_workers(url):
    follow = subprocess.Popen(
        [str(Path(sys.executable).parent / "pgfraud"), "alerts", "--follow", "--json"],
        env={**os.environ, "DATABASE_URL": url, "PGFRAUD_ACTOR": ""},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # Stored before the follower's start, an alert is in its first
        # listing; after it, in the feed: printed either way.
        deadline = time.monotonic() + 60
        for n, account in enumerate((201, 202, 203)):
            _store(url, 910000 + n, account)
        seen: set[int] = set()
        while len(seen) < 3 and time.monotonic() < deadline:
            line = follow.stdout.readline()
            if not line:
                break
            row = json.loads(line)
            if row["transaction_id"] >= 910000:
                seen.add(row["transaction_id"])
        assert seen == {910000, 910001, 910002}
    finally:
        follow.kill()
        follow.wait()
