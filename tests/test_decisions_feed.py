"""Decisions on the live feed (issue 17, faces): /decisions/stream, one
``decision`` event per decision, resumable from its position like
/alerts/stream, and `pgfraud decisions --follow`. Outcomes by hand from the
default policy: a first payment of 20.00 fires nothing (score 0, approve);
25000.00 fires large_amount only (50: review)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import requests

from pgfraud import db
from tests.test_feed import LARGE, Stream, post, serve  # noqa: F401 - the fixture

SMALL = {"account_id": 41, "transaction_id": 8001, "timestamp": "2024-06-01T11:00:00Z"}
SMALL["amount"] = "20.00"


def test_the_stream_carries_each_decision_also_one_without_alerts(app, serve):  # noqa: F811
    # Heartbeats far apart: an approve (no alert, so no notification) must
    # come from the stream's own reads, not a heartbeat.
    app.config["FEED_HEARTBEAT_S"] = 600
    base = serve(app)
    stream = Stream(f"{base}/decisions/stream")
    assert stream.next_message()["comment"] == "connected"
    assert post(base, SMALL).json()["decision"]["outcome"] == "approve"
    event = stream.next_event("decision", within=120)
    approve = json.loads(event["data"])
    assert (approve["transaction_id"], approve["outcome"], approve["score"]) == (8001, "approve", 0)
    assert approve["rules"] == [] and approve["timestamp"] == "2024-06-01T11:00:00.000Z"
    xact, _, tid = event["id"].partition("-")
    assert int(xact) > 0 and tid == "8001"
    answered = post(base, LARGE).json()["decision"]
    review = json.loads(stream.next_event("decision", within=120)["data"])
    # The event is the decision as answered (and as GET .../decision reads it).
    assert review == answered
    assert (review["outcome"], review["score"], review["rules"][0]["rule_id"]) == (
        "review",
        50,
        "large_amount",
    )
    stream.close()


def test_the_decision_stream_resumes_after_last_event_id(app, serve):  # noqa: F811
    base = serve(app)
    stream = Stream(f"{base}/decisions/stream")
    stream.next_message()
    post(base, SMALL)
    post(base, LARGE)
    first, second = stream.next_event("decision"), stream.next_event("decision")
    stream.close()
    resumed = Stream(f"{base}/decisions/stream", {"Last-Event-ID": first["id"]})
    assert resumed.next_event("decision")["id"] == second["id"]
    resumed.close()
    by_query = Stream(f"{base}/decisions/stream?last_event_id={first['id']}")
    assert json.loads(by_query.next_event("decision")["data"])["transaction_id"] == 9001
    by_query.close()
    bad = requests.get(f"{base}/decisions/stream", headers={"Last-Event-ID": "x"}, timeout=5)
    assert bad.status_code == 400
    assert bad.json()["error"]["field"] == "Last-Event-ID"
    unknown = requests.get(f"{base}/decisions/stream?outcome=review", timeout=5)
    assert unknown.status_code == 400
    assert unknown.json()["error"]["field"] == "outcome"


def test_the_position_given_at_open_loses_nothing(app, serve):  # noqa: F811
    base = serve(app)
    stream = Stream(f"{base}/decisions/stream")
    stream.next_message()
    opened = stream.next_event("position")
    stream.close()
    post(base, SMALL)
    resumed = Stream(f"{base}/decisions/stream", {"Last-Event-ID": opened["id"]})
    assert json.loads(resumed.next_event("decision")["data"])["transaction_id"] == 8001
    resumed.close()


def test_a_decision_held_back_by_an_older_transaction_comes_when_it_ends(
    app,
    serve,  # noqa: F811
    database,
):
    app.config["FEED_HEARTBEAT_S"] = 600
    base = serve(app)
    stream = Stream(f"{base}/decisions/stream")
    stream.next_message()
    older = db.connect(database.app_url)
    try:
        older.execute("SELECT pg_current_xact_id()")  # an open transaction with an id
        assert post(base, SMALL).status_code == 201
        # Held while the older transaction runs: the feed gives nothing yet.
        with db.connect(database.app_url, autocommit=True) as reader:
            start = (0, 0)
            assert db.get_decision_feed(reader, start) == []
        older.commit()
        event = stream.next_event("decision", within=120)
        assert json.loads(event["data"])["transaction_id"] == 8001
    finally:
        older.close()
        stream.close()


def test_decisions_follow_prints_new_decisions_with_the_filters(database):
    pgfraud = str(Path(sys.executable).with_name("pgfraud"))
    env = {**os.environ, "DATABASE_URL": database.admin_url}
    env.pop("PGFRAUD_APP_DATABASE_URL", None)
    proc = subprocess.Popen(
        [pgfraud, "decisions", "--follow", "--outcome", "review"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        assert proc.stderr.readline() == "-- following new decisions (Ctrl-C stops)\n"
        with db.connect(database.app_url) as conn:
            for row in (SMALL, LARGE):
                db.store_transactions(conn, [_record(row)])
                conn.commit()
        # The approve is filtered out; the review comes.
        assert proc.stdout.readline() == (
            "2024-06-01T12:00:00.000Z  account 42  transaction 9001  amount 25000.00"
            "  review  score 50  large_amount(50)\n"
        )
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    assert proc.stdout.read() == ""


def _record(row: dict) -> dict:
    from pgfraud.wire import parse_transaction, to_record

    return to_record(parse_transaction(row))
