"""The HTTP faces of score on arrival, through a real HTTP server and client:
paged /is_fraud, /alerts, review, and the server-sent events feed (live,
resumable, heartbeat, clean disconnect, surviving a PostgreSQL restart)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
import requests
import waitress

from pgfraud import db
from pgfraud.cli import prepare
from pgfraud.config import Database
from pgfraud.db.server import LocalServer
from pgfraud.service.feed import stop_listener
from pgfraud.wire import parse_feed_position

LARGE = {
    "account_id": 42,
    "transaction_id": 9001,
    "timestamp": "2024-06-01T12:00:00Z",
    "amount": "25000.00",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def serve():
    """serve(app) -> base URL of the app under waitress in a thread, on 127.0.0.1."""
    servers = []

    def start(app) -> str:
        port = free_port()
        server = waitress.create_server(app, host="127.0.0.1", port=port, threads=8)
        threading.Thread(target=server.run, daemon=True).start()
        servers.append((server, app))
        return f"http://127.0.0.1:{port}"

    yield start
    for server, app in servers:
        # End the streams first (stopping the listener wakes them), so that no
        # request is left running on a closed server: waitress would write to
        # a file descriptor that a later test's connection may have reused.
        stop_listener(app)
        deadline = time.monotonic() + 5
        while server.task_dispatcher.active_count and time.monotonic() < deadline:
            time.sleep(0.05)
        server.close()


class Stream:
    """A server-sent events client: events and comments, read line by line."""

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        self.response = requests.get(url, stream=True, timeout=(5, 10), headers=headers or {})
        self.lines = self.response.iter_lines(decode_unicode=True)

    def next_message(self, within: float | None = None) -> dict[str, str]:
        """The next event (id, event, data) or comment (comment), up to its blank
        line; AssertionError when ``within`` seconds pass first (the stream
        writes a blank line every second or so, so the bound is checked)."""
        message: dict[str, str] = {}
        deadline = None if within is None else time.monotonic() + within
        for line in self.lines:
            if deadline is not None and time.monotonic() > deadline:
                raise AssertionError(f"nothing came within {within} s")
            if line == "":
                if message:
                    return message
                continue
            if line.startswith(":"):
                message.setdefault("comment", line[1:].strip())
                continue
            field, _, value = line.partition(":")
            message[field] = value.lstrip()
        raise AssertionError("the stream ended")

    def next_event(self, kind: str = "alert", within: float | None = None) -> dict[str, str]:
        """The next event of type ``kind`` (the stream's position events skipped)."""
        deadline = None if within is None else time.monotonic() + within
        while True:
            left = None if deadline is None else deadline - time.monotonic()
            message = self.next_message(left)
            if message.get("event") == kind:
                return message

    def close(self) -> None:
        self.response.close()


def post(base: str, body, **headers) -> requests.Response:
    return requests.post(f"{base}/store_data", json=body, timeout=10, headers=headers)


def test_a_post_answers_with_its_alert_and_the_stream_carries_it(app, serve):
    base = serve(app)
    stream = Stream(f"{base}/alerts/stream")
    assert stream.next_message()["comment"] == "connected"
    response = post(base, LARGE)
    assert response.status_code == 201
    (alert,) = response.json()["alerts"]
    assert (alert["rule_id"], alert["observed"], alert["threshold"]) == (
        "large_amount",
        "25000.00",
        "10000",
    )
    event = stream.next_event()
    assert event["event"] == "alert"
    data = json.loads(event["data"])
    assert (data["alert_id"], data["transaction_id"], data["rule_id"], data["amount"]) == (
        alert["alert_id"],
        9001,
        "large_amount",
        "25000.00",
    )
    assert data["timestamp"] == "2024-06-01T12:00:00.000Z"
    stream.close()
    # And it is in the queue.
    queue = requests.get(f"{base}/alerts", timeout=10).json()
    assert [(a["alert_id"], a["review_status"]) for a in queue["alerts"]] == [
        (alert["alert_id"], "unreviewed")
    ]


def test_the_stream_resumes_after_last_event_id(app, serve):
    base = serve(app)
    stream = Stream(f"{base}/alerts/stream")
    stream.next_message()
    post(base, LARGE)
    post(base, {**LARGE, "transaction_id": 9002, "account_id": 43})
    first, second = stream.next_event(), stream.next_event()
    stream.close()
    resumed = Stream(f"{base}/alerts/stream", {"Last-Event-ID": first["id"]})
    assert resumed.next_event()["id"] == second["id"]
    resumed.close()
    by_query = Stream(f"{base}/alerts/stream?last_event_id={first['id']}")
    assert json.loads(by_query.next_event()["data"])["transaction_id"] == 9002
    by_query.close()
    bad = requests.get(f"{base}/alerts/stream", headers={"Last-Event-ID": "x"}, timeout=5)
    assert bad.status_code == 400
    assert bad.json()["error"]["field"] == "Last-Event-ID"


def test_the_stream_sends_heartbeats_and_a_closed_client_leaves_nothing(app, serve, admin_conn):
    app.config["FEED_HEARTBEAT_S"] = 0.2
    base = serve(app)

    def service_connections() -> tuple[int, int]:
        # (listeners, connections inside a transaction) of the service's login.
        # A stream reads in short transactions: a leak is what every one of
        # several samples shows.
        samples = []
        for _ in range(10):
            samples.append(
                admin_conn.execute(
                    "SELECT count(*) FILTER (WHERE query = 'LISTEN pgfraud_alerts'),"
                    " count(*) FILTER (WHERE state <> 'idle')"
                    " FROM pg_stat_activity WHERE usename = 'pgfraud_service'"
                ).fetchone()
            )
            time.sleep(0.05)
        return min(samples)

    stream = Stream(f"{base}/alerts/stream")
    assert stream.next_message()["comment"] == "connected"
    assert stream.next_message()["comment"] == "heartbeat"
    streams = [Stream(f"{base}/alerts/stream") for _ in range(3)]
    for s in streams:
        s.next_message()
    # One listener for every stream; a waiting stream holds no connection.
    assert service_connections() == (1, 0)
    for s in [stream, *streams]:
        s.close()
    time.sleep(1)  # a heartbeat finds each closed socket
    assert service_connections() == (1, 0)
    # The server still answers (no thread is stuck on a dead stream).
    assert requests.get(f"{base}/health", timeout=5).status_code == 200


def test_is_fraud_pages_with_a_next_link(client, database):
    body = [
        {**LARGE, "transaction_id": 9000 + i, "timestamp": f"2024-06-01T12:00:0{i}Z"}
        for i in range(3)
    ]
    client.post("/store_data", json=body)
    # 9000: large; 9001: large + rapid_succession (1 s gap); 9002: those and
    # velocity (3 in 10 minutes): 6 events.
    first = client.get("/is_fraud/42?limit=2").get_json()
    assert first["count"] == 2
    assert [(e["transaction_id"], e["rule_id"]) for e in first["events"]] == [
        (9000, "large_amount"),
        (9001, "large_amount"),
    ]
    assert first["next"] == "/is_fraud/42?limit=2&after=1717243201000.9001.large_amount"
    second = client.get(first["next"]).get_json()
    assert [(e["transaction_id"], e["rule_id"]) for e in second["events"]] == [
        (9001, "rapid_succession"),
        (9002, "large_amount"),
    ]
    third = client.get(second["next"]).get_json()
    assert [(e["transaction_id"], e["rule_id"]) for e in third["events"]] == [
        (9002, "rapid_succession"),
        (9002, "velocity"),
    ]
    everything = client.get("/is_fraud/42/").get_json()
    assert everything["events"] == first["events"] + second["events"] + third["events"]


@pytest.mark.parametrize(
    "query, field",
    [
        ("limit=0", "limit"),
        ("limit=10001", "limit"),
        ("limit=1&limit=2", "limit"),
        ("after=nonsense", "after"),
        ("after=1.99999999999999999999.x", "after"),
        ("page=2", "page"),
    ],
)
def test_is_fraud_paging_errors_name_the_parameter(client, database, query, field):
    client.post("/store_data", json=LARGE)
    response = client.get(f"/is_fraud/42?{query}")
    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == field


def test_alerts_filters_and_next_link(client, database):
    client.post(
        "/store_data",
        json=[
            LARGE,
            {**LARGE, "transaction_id": 9002, "account_id": 43},
            {
                **LARGE,
                "transaction_id": 9003,
                "account_id": 43,
                "timestamp": "2024-06-01T12:00:01Z",
            },
        ],
    )
    everything = client.get("/alerts").get_json()["alerts"]
    assert [(a["transaction_id"], a["rule_id"]) for a in everything] == [
        (9003, "rapid_succession"),
        (9003, "large_amount"),
        (9002, "large_amount"),
        (9001, "large_amount"),
    ]
    page = client.get("/alerts?account_id=43&limit=2").get_json()
    assert page["count"] == 2
    assert page["next"] == f"/alerts?account_id=43&limit=2&before={everything[1]['alert_id']}"
    rest = client.get(page["next"]).get_json()
    assert [a["transaction_id"] for a in rest["alerts"]] == [9002]
    assert rest["next"] is None
    ranged = client.get("/alerts?from=2024-06-01T12:00:01Z&rule_id=large_amount").get_json()
    assert [a["transaction_id"] for a in ranged["alerts"]] == [9003]
    for query, field in [
        ("review_status=open", "review_status"),
        ("limit=1001", "limit"),
        ("from=yesterday", "from"),
        ("rule_id=Large", "rule_id"),
        ("colour=red", "colour"),
    ]:
        response = client.get(f"/alerts?{query}")
        assert response.status_code == 400, query
        assert response.get_json()["error"]["field"] == field


def test_review_over_http(app, client, database):
    client.post("/store_data", json=LARGE)
    response = client.post(
        "/transactions/9001/review", json={"status": "confirmed_fraud", "note": "called the bank"}
    )
    assert response.status_code == 201
    review = response.get_json()
    assert (review["transaction_id"], review["account_id"], review["status"]) == (
        9001,
        42,
        "confirmed_fraud",
    )
    assert (review["note"], review["reviewer"]) == ("called the bank", "pgfraud_service")
    queue = client.get("/alerts?review_status=confirmed_fraud").get_json()["alerts"]
    assert [(a["transaction_id"], a["review_note"]) for a in queue] == [(9001, "called the bank")]
    assert client.get("/alerts?review_status=unreviewed").get_json()["alerts"] == []

    missing = client.post("/transactions/9999/review", json={"status": "false_positive"})
    assert missing.status_code == 404
    assert missing.get_json()["error"]["code"] == "transaction_not_found"
    for body, field in [
        ({"status": "fraud"}, "status"),
        ({}, "status"),
        ({"status": "false_positive", "note": "x" * 2001}, "note"),
        ({"status": "false_positive", "reviewer": ""}, "reviewer"),
        ({"status": "false_positive", "extra": 1}, "extra"),
    ]:
        bad = client.post("/transactions/9001/review", json=body)
        assert bad.status_code == 400, body
        assert bad.get_json()["error"]["field"] == field
    assert client.post("/transactions/9001/review", data="x").status_code == 415
    assert client.post("/transactions/abc/review", json={}).status_code == 400
    app.config["API_TOKEN"] = "s3cret-token"
    assert (
        client.post("/transactions/9001/review", json={"status": "false_positive"}).status_code
        == 401
    )
    ok = client.post(
        "/transactions/9001/review",
        json={"status": "false_positive"},
        headers={"Authorization": "Bearer s3cret-token"},
    )
    assert ok.status_code == 201


@pytest.fixture
def own_server() -> Iterator[tuple[LocalServer, Database]]:
    """A PostgreSQL of its own (this test restarts it), migrated."""
    base = Path(tempfile.mkdtemp(prefix="pgfraud-feed-", dir="/tmp"))
    os.chmod(base, 0o755)
    server = LocalServer(base / "home")
    server.start()
    database = Database(server.url(admin=True), server.url(), server)
    prepare(database)
    try:
        yield server, database
    finally:
        server.destroy()
        shutil.rmtree(base, ignore_errors=True)


def test_the_stream_survives_a_postgresql_restart(own_server, serve):
    from pgfraud.service import create_app
    from pgfraud.service.database import close_pool
    from pgfraud.service.feed import stop_listener

    server, database = own_server
    app = create_app({"TESTING": True, "DATABASE_URL": database.app_url, "FEED_HEARTBEAT_S": 0.3})
    base = serve(app)
    try:
        stream = Stream(f"{base}/alerts/stream")
        stream.next_message()
        assert post(base, LARGE).status_code == 201
        before = stream.next_event()
        server.stop()
        server.start()
        # The first POST after the restart may meet a stale pooled connection.
        deadline = time.monotonic() + 20
        while post(base, {**LARGE, "transaction_id": 9002}).status_code != 201:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        after = stream.next_event()
        assert json.loads(after["data"])["transaction_id"] == 9002
        assert after["id"] != before["id"]
        stream.close()
        with db.connect(database.app_url) as conn:
            # 9001 and 9002: large_amount; at the same time, so not rapid_succession
            # (equal times are same_timestamp's, off by default).
            assert conn.execute("SELECT count(*) FROM alerts").fetchone()[0] == 2
    finally:
        stop_listener(app)
        close_pool(app)


def test_an_alert_held_back_by_an_older_transaction_comes_when_it_ends(app, serve, database):
    # Heartbeats far apart: the alert must not wait for one.
    app.config["FEED_HEARTBEAT_S"] = 600
    base = serve(app)
    stream = Stream(f"{base}/alerts/stream")
    stream.next_message()
    older = db.connect(database.app_url)
    try:
        older.execute("SELECT pg_current_xact_id()")  # an open transaction with an id
        assert post(base, LARGE).status_code == 201
        time.sleep(0.5)
        older.commit()  # raises no alert, so sends no notification
        # Long before the heartbeat, however loaded the machine: the stream
        # polls while an alert is held, and once the older transaction ends
        # (it sends no notification) the next poll delivers it.
        event = stream.next_event(within=120)
        assert json.loads(event["data"])["transaction_id"] == 9001
    finally:
        older.close()
        stream.close()


def test_streams_are_capped_per_process_and_slots_come_back(app, serve):
    app.config["FEED_MAX_STREAMS"] = 2
    app.config["FEED_HEARTBEAT_S"] = 0.2
    base = serve(app)
    first, second = Stream(f"{base}/alerts/stream"), Stream(f"{base}/alerts/stream")
    first.next_message(), second.next_message()
    refused = requests.get(f"{base}/alerts/stream", timeout=5)
    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "too_many_streams"
    assert refused.headers["Retry-After"] == "1"
    first.close()
    deadline = time.monotonic() + 5
    while True:  # the closed stream's slot returns at its next write (a heartbeat)
        third = requests.get(f"{base}/alerts/stream", stream=True, timeout=5)
        if third.status_code == 200:
            break
        assert time.monotonic() < deadline
        time.sleep(0.2)
    third.close()
    second.close()


@pytest.mark.parametrize(
    "query, field",
    [("last_event_id=garbage", "last_event_id"), ("foo=1", "foo")],
)
def test_stream_parameters_are_checked(client, database, query, field):
    response = client.get(f"/alerts/stream?{query}")
    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == field


def test_a_stream_gives_its_position_when_it_opens_so_its_first_outage_loses_nothing(app, serve):
    # A client that has received no alert yet reconnects with the id the
    # stream gave when it opened: an alert raised while it was away comes.
    app.config["FEED_HEARTBEAT_S"] = 60
    base = serve(app)
    stream = Stream(f"{base}/alerts/stream")
    opened = stream.next_message()
    assert opened["comment"] == "connected"
    assert opened["event"] == "position"
    assert json.loads(opened["data"]) == {"last_event_id": opened["id"]}
    stream.close()  # the connection drops
    assert post(base, LARGE).status_code == 201
    back = Stream(f"{base}/alerts/stream", {"Last-Event-ID": opened["id"]})
    event = back.next_event()
    assert json.loads(event["data"])["transaction_id"] == 9001
    back.close()


def test_heartbeats_carry_the_position(app, serve):
    app.config["FEED_HEARTBEAT_S"] = 0.2
    base = serve(app)
    stream = Stream(f"{base}/alerts/stream")
    opened = stream.next_message()
    assert post(base, LARGE).status_code == 201
    alert = stream.next_event()
    heartbeat = stream.next_message()
    assert heartbeat["comment"] == "heartbeat"
    # The position after the alert: resuming from it gives nothing old.
    assert heartbeat["id"] == alert["id"] != opened["id"]
    assert json.loads(heartbeat["data"]) == {"last_event_id": alert["id"]}
    stream.close()


def test_a_closed_clients_stream_slot_is_free_before_the_next_heartbeat(app, serve):
    # The heartbeat is a minute away: the slot must come back well before it.
    from pgfraud.service.feed import StreamSlots

    app.config["FEED_MAX_STREAMS"] = 1
    app.config["FEED_HEARTBEAT_S"] = 600
    base = serve(app)
    stream = Stream(f"{base}/alerts/stream")
    stream.next_message()
    slots: StreamSlots = app.extensions["pgfraud_streams"]
    assert slots.open == 1
    assert requests.get(f"{base}/alerts/stream", timeout=5).status_code == 503
    stream.close()
    with slots.changed:
        assert slots.changed.wait_for(lambda: slots.open == 0, timeout=120)
    again = Stream(f"{base}/alerts/stream")
    assert again.response.status_code == 200
    again.close()


def test_is_alert_feed_held_counts_an_alert_whose_older_transaction_ended_after_the_read(
    database,
):
    # The stream reads the feed, then asks whether anything is held back, in
    # two statements (two snapshots). When the older transaction ends between
    # them, the alert was not delivered by the first and is no longer "held"
    # by the second's xmin: the stream must still read again soon, since the
    # older transaction's end sends no notification (issue 15, fault 10).
    reader = db.connect(database.app_url)
    older = db.connect(database.app_url)
    storer = db.connect(database.app_url)
    try:
        position = parse_feed_position(db.get_alert_feed_start(reader))
        reader.commit()
        older.execute("SELECT pg_current_xact_id()")  # running, with an id
        db.store_transactions(
            storer,
            [
                {
                    "account_id": 42,
                    "transaction_id": 9001,
                    "timestamp": datetime(2024, 6, 1, 12, tzinfo=UTC),
                    "amount": Decimal("25000.00"),
                }
            ],
        )
        storer.commit()
        assert db.get_alert_feed(reader, position) == []  # held back by `older`
        older.commit()  # ends between the two statements
        assert db.is_alert_feed_held(reader, position) is True
        (row,) = db.get_alert_feed(reader, position)
        assert row["transaction_id"] == 9001
        assert db.is_alert_feed_held(reader, parse_feed_position(row["event_id"])) is False
    finally:
        for conn in (reader, older, storer):
            conn.close()


def _hold_streams(slots, count: int, taken, finish) -> None:
    # A forked "worker": takes ``count`` stream slots, says so, holds them
    # until told to finish, then exits without giving them back (as a
    # worker that is killed would).
    for _ in range(count):
        slots.take(0)
    taken.set()
    finish.wait(60)
    os._exit(0)


def test_stream_slots_are_counted_over_the_workers_not_per_worker(app):
    # Two workers, 2 streams each on average, 3 threads each to spare: the
    # kernel gave 3 connections to one worker; the other still takes the
    # server's fourth stream (a fixed share of 2 per worker refused it).
    import multiprocessing

    from pgfraud.errors import TooManyStreams
    from pgfraud.service.feed import share_stream_slots

    app.config.update(FEED_MAX_STREAMS=2, POOL_MAX_SIZE=5)
    slots = share_stream_slots(app, workers=2, threads=8)
    assert (slots.total, slots.per_process) == (4, 3)
    fork = multiprocessing.get_context("fork")
    taken, finish = fork.Event(), fork.Event()
    worker = fork.Process(target=_hold_streams, args=(slots, 3, taken, finish))
    worker.start()
    try:
        assert taken.wait(60)
        assert slots.server_total() == 3
        release = slots.take(0)  # this process: 1 of its 3
        with pytest.raises(TooManyStreams):  # the server's 4 are open
            slots.take(0)
        release()
        assert slots.server_total() == 3
        again = slots.take(0)
        # A worker that dies leaves its count behind: it is cleared.
        finish.set()
        worker.join(60)
        assert worker.exitcode == 0
        more = [slots.take(0) for _ in range(2)]  # 3 here now: this worker's limit
        with pytest.raises(TooManyStreams):
            slots.take(0)
        for release in [again, *more]:
            release()
        assert slots.server_total() == 0
    finally:
        finish.set()
        worker.join(60)


def test_alerts_in_transaction_time_order_with_the_total(client, database):
    # 9003 is stored last but happened first: newest raised first puts it on
    # top; newest transaction first puts it last.
    for account, transaction, ts in [
        (42, 9001, "2024-06-01T12:00:00Z"),
        (43, 9002, "2024-06-02T12:00:00Z"),
        (44, 9003, "2024-05-01T12:00:00Z"),
    ]:
        body = {**LARGE, "account_id": account, "transaction_id": transaction, "timestamp": ts}
        assert client.post("/store_data", json=body).status_code == 201
    raised = client.get("/alerts").get_json()
    assert [a["transaction_id"] for a in raised["alerts"]] == [9003, 9002, 9001]
    assert (raised["count"], raised["total"]) == (3, 3)
    by_time = client.get("/alerts?order=time").get_json()
    assert [a["transaction_id"] for a in by_time["alerts"]] == [9002, 9001, 9003]
    ids = {a["transaction_id"]: a["alert_id"] for a in by_time["alerts"]}
    # Paged one at a time: the cursor is <epoch ms>.<alert_id>;
    # 2024-06-02T12:00:00Z is 1,717,329,600,000 ms.
    page = client.get("/alerts?order=time&limit=1").get_json()
    assert [a["transaction_id"] for a in page["alerts"]] == [9002]
    assert (page["count"], page["total"]) == (1, 3)
    assert page["next"] == f"/alerts?order=time&limit=1&before=1717329600000.{ids[9002]}"
    seen = [9002]
    while page["next"]:
        page = client.get(page["next"]).get_json()
        seen += [a["transaction_id"] for a in page["alerts"]]
        assert page["total"] == 3
    assert seen == [9002, 9001, 9003]
    # An alert id alone as the cursor: that alert's own time.
    after = client.get(f"/alerts?order=time&before={ids[9001]}").get_json()
    assert [a["transaction_id"] for a in after["alerts"]] == [9003]
    # The total follows the filters, not the page.
    ranged = client.get("/alerts?order=time&from=2024-06-01T00:00:00Z&limit=1").get_json()
    assert ([a["transaction_id"] for a in ranged["alerts"]], ranged["total"]) == ([9002], 2)
    for query, field in [
        ("order=oldest", "order"),
        ("order=time&before=x.1", "before"),
        ("before=1.2.3", "before"),
    ]:
        response = client.get(f"/alerts?{query}")
        assert response.status_code == 400, query
        assert response.get_json()["error"]["field"] == field


def test_a_time_order_cursor_naming_no_alert_is_a_404(client, database):
    # order=time with a bare alert id reads that alert's time. An id no alert
    # has (never raised, or removed by a re-score) has no place in the order:
    # it answered 200 with an empty page, which a client reads as "the end".
    # It is a 404 alert_not_found naming before (a 400 would refuse a value
    # the API document allows; schemathesis, tests/test_openapi.py).
    body = {**LARGE, "account_id": 45, "transaction_id": 9011, "timestamp": "2024-06-01T12:00:00Z"}
    assert client.post("/store_data", json=body).status_code == 201
    (alert,) = client.get("/alerts?account_id=45").get_json()["alerts"]
    assert client.get(f"/alerts?order=time&before={alert['alert_id']}").get_json()["alerts"] == []
    for missing in (alert["alert_id"] + 1000, 0):
        response = client.get(f"/alerts?order=time&before={missing}")
        assert response.status_code == 404, missing
        error = response.get_json()["error"]
        assert (error["code"], error["field"]) == ("alert_not_found", "before")
        assert error["message"] == (
            f"there is no alert {missing} (it never existed, or a re-score removed it)"
        )
    # In raised order an alert id is only a position: no such alert is fine.
    assert client.get(f"/alerts?before={alert['alert_id'] + 1000}").status_code == 200
    # The epoch ms form needs no alert: it stays valid whatever is removed.
    assert client.get("/alerts?order=time&before=1717243200001.0").get_json()["count"] == 1


def test_a_held_feed_still_sends_blank_lines_and_heartbeats(app, serve, database):
    # An alert committed after an open transaction with an id is held back
    # (the stream reads the feed every FEED_HELD_POLL_S until it ends): the
    # stream must still write its blank line every second and its heartbeat,
    # or a client and a proxy see a dead connection (it sent nothing at all
    # until the transaction ended).
    app.config["FEED_HEARTBEAT_S"] = 600
    base = serve(app)
    older = db.connect(database.app_url)
    try:
        older.execute("SELECT pg_current_xact_id()")
        assert post(base, LARGE).status_code == 201
        quiet = requests.get(f"{base}/alerts/stream", stream=True, timeout=(5, 30))
        chunks = quiet.iter_content(chunk_size=None)
        assert b"connected" in next(chunks)
        # The next write is a blank line (no heartbeat is due for 600 s).
        assert next(chunks) == b"\n"
        quiet.close()
        app.config["FEED_HEARTBEAT_S"] = 0.3
        stream = Stream(f"{base}/alerts/stream")
        assert stream.next_message()["comment"] == "connected"
        beat = stream.next_message()
        assert beat["comment"] == "heartbeat"
        assert beat["event"] == "position"
        stream.close()
    finally:
        older.close()
