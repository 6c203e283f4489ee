"""A PostgreSQL restart under a running API (issue 7, fault 6).

These tests restart a server of their own (not the session's), as
`pg_ctl restart -m fast` does: a fast stop, then a start. With the pool warm,
no request after the restart fails, /health says ok, and an ingest that runs
through the restart, retrying what was answered 503, stores every sent
transaction exactly once.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import pytest
import testing.postgresql

from pgfraud import db
from pgfraud.db.migrate import migrate
from pgfraud.db.server import APP_USER
from pgfraud.service import create_app
from pgfraud.service import database as database_module
from pgfraud.service.database import OUTAGE_WAIT_S, close_pool, get_pool

APP_PASSWORD = "restart-test-password"


@pytest.fixture(scope="module")
def own_server(postgresql_factory) -> Iterator[testing.postgresql.Postgresql]:
    """A migrated server of these tests' own (from the cached initdb), to restart."""
    server = postgresql_factory()
    try:
        with db.connect(server.url()) as conn:
            migrate(conn)
            db.create_app_user(conn, APP_USER, APP_PASSWORD, False)
            conn.commit()
        yield server
    finally:
        server.stop()


def admin_url(server) -> str:
    return server.url()


def app_url(server) -> str:
    return server.url().replace("postgres@", f"{APP_USER}:{APP_PASSWORD}@", 1)


def restart(server: testing.postgresql.Postgresql) -> None:
    """`pg_ctl restart -m fast`: a fast shutdown (SIGINT) cuts every connection; then start."""
    server.terminate()
    server.start()


@pytest.fixture
def app(own_server):
    app = create_app({"TESTING": True, "DATABASE_URL": app_url(own_server), "POOL_MAX_SIZE": 8})
    with db.connect(admin_url(own_server), autocommit=True) as conn:
        conn.execute("TRUNCATE transactions")
    yield app
    close_pool(app)


def warm(app, size: int = 8) -> None:
    """Open `size` pooled connections (as 8 concurrent requests would)."""
    with app.app_context():
        pool = get_pool()
        conns = [pool.getconn() for _ in range(size)]
        for conn in conns:
            pool.putconn(conn)
        assert pool.get_stats()["pool_size"] == size


def test_no_request_fails_after_a_restart(app, own_server):
    client = app.test_client()
    body = {
        "account_id": 1,
        "transaction_id": 1,
        "timestamp": "2024-01-01T00:00:00Z",
        "amount": "5",
    }
    assert client.post("/store_data", json=body).status_code == 201
    warm(app)
    restart(own_server)
    statuses = [client.get(path).status_code for path in ["/health", "/rules"] * 4]
    statuses += [client.get("/is_fraud/1").status_code for _ in range(8)]
    statuses += [client.get("/accounts/1/transactions").status_code for _ in range(8)]
    assert statuses == [200] * 24
    assert client.get("/health").get_json()["status"] == "ok"
    assert client.post("/store_data", json=body).get_json()["status"] == "duplicate"


def test_while_the_database_is_down_requests_fail_fast_and_it_is_back_at_once(app, own_server):
    # Break-it tester (round 10, F1): while PostgreSQL was down, every request
    # waited the pool's POOL_TIMEOUT_S (5 s) for a connection: a stream, which
    # reads the tokens and the feed each turn, fell silent for 10-50 s, and a
    # store waited up to 30 s under load. After the database came back, the
    # pool's reconnection back-off (1, 2, 4, 8, 16 s, ...) kept answering 503.
    client = app.test_client()
    assert client.get("/health").status_code == 200
    warm(app)
    own_server.terminate()
    try:
        # The first wait (OUTAGE_WAIT_S) times out; one direct connection
        # attempt finds the database down (not a busy pool).
        assert client.get("/is_fraud/1").status_code == 503
        outage = app.extensions[database_module._OUTAGE]
        assert outage.down is True
        assert OUTAGE_WAIT_S == 0.5
        # Down long enough for the old back-off to reach 8 s between attempts.
        down_until = time.monotonic() + 12
        while time.monotonic() < down_until:
            assert client.get("/is_fraud/1").status_code == 503
    finally:
        own_server.start()
    # Back: the pool connects at the next request, which is answered.
    assert client.get("/is_fraud/1").status_code in (200, 404)
    assert outage.down is False


def _answered_within(request, deadline_s: float):
    """Run ``request`` in a thread; its result when it ends within ``deadline_s``,
    else None. The deadline is a bound on a hang, far above the expected time."""
    result = []
    worker = threading.Thread(target=lambda: result.append(request()), daemon=True)
    worker.start()
    worker.join(deadline_s)
    return result[0] if result else None


def test_the_first_request_of_an_outage_does_not_wait_the_pool_timeout(own_server):
    # Round 12's gap: the first request after PostgreSQL went down waited the
    # whole POOL_TIMEOUT_S (5 s) before anything asked whether the database
    # was down; a stream fell silent that long. Now it asks after
    # OUTAGE_WAIT_S. With the pool timeout at 600 s, an answer within 60 s
    # can only come from that question.
    app = create_app({"TESTING": True, "DATABASE_URL": app_url(own_server), "POOL_TIMEOUT_S": 600})
    client = app.test_client()
    try:
        assert client.get("/health").status_code == 200
        own_server.terminate()
        try:
            response = _answered_within(lambda: client.get("/is_fraud/1"), 60)
            assert response is not None, "the first request of the outage waited the pool timeout"
            assert response.status_code == 503
            assert response.get_json()["error"]["code"] == "database_unavailable"
            assert app.extensions[database_module._OUTAGE].down is True
        finally:
            own_server.start()
        assert client.get("/is_fraud/1").status_code in (200, 404)
    finally:
        close_pool(app)


def test_a_busy_pool_is_waited_for_past_the_outage_question(own_server):
    # The other side: with the database up and the pool's one connection
    # held, a request asks the question after OUTAGE_WAIT_S, hears "up", and
    # waits on; when the connection comes back it is answered, not 503.
    app = create_app(
        {
            "TESTING": True,
            "DATABASE_URL": app_url(own_server),
            "POOL_MAX_SIZE": 1,
            "POOL_TIMEOUT_S": 600,
        }
    )
    client = app.test_client()
    try:
        assert client.get("/health").status_code == 200
        with app.app_context():
            pool = get_pool()
            held = pool.getconn()
        outage = app.extensions[database_module._OUTAGE]
        result = []
        worker = threading.Thread(target=lambda: result.append(client.get("/is_fraud/1")))
        worker.start()
        # Wait on the condition: the request has asked (and been told "up").
        deadline = time.monotonic() + 60
        while outage._probed_at == float("-inf") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert outage._probed_at != float("-inf"), "the request never asked: down or busy?"
        assert outage.down is False
        assert worker.is_alive() and not result  # still waiting for the connection
        pool.putconn(held)
        worker.join(60)
        assert result and result[0].status_code in (200, 404)
    finally:
        close_pool(app)


def test_ingest_through_a_restart_loses_and_doubles_nothing(app, own_server):
    client = app.test_client()
    warm(app)
    batches = [
        [
            {
                "account_id": b % 7,
                "transaction_id": b * 100 + i,
                "timestamp": f"2024-01-01T00:{b % 60:02d}:{i % 60:02d}.{i:03d}Z",
                "amount": f"{b}.{i % 100:02d}",
            }
            for i in range(100)
        ]
        for b in range(60)
    ]
    answers: list[tuple[int, int]] = []  # (batch, status) of the answer that ended each batch
    retried = 0
    halfway = threading.Event()

    def ingest() -> None:
        nonlocal retried
        for b, batch in enumerate(batches):
            if b == len(batches) // 3:
                halfway.set()
            for _ in range(200):  # a client that retries on 503, as `generate --to api` does
                response = client.post(
                    "/store_data", data=json.dumps(batch), content_type="application/json"
                )
                if response.status_code != 503:
                    break
                retried += 1
            answers.append((b, response.status_code))

    worker = threading.Thread(target=ingest)
    worker.start()
    halfway.wait(timeout=60)
    restart(own_server)
    worker.join(timeout=120)
    assert not worker.is_alive()
    assert [status for _, status in answers if status not in (200, 201)] == []
    assert len(answers) == 60
    with db.connect(admin_url(own_server)) as conn:
        rows = conn.execute(
            "SELECT transaction_id, account_id, amount::text FROM transactions ORDER BY 1"
        ).fetchall()
    sent = sorted((t["transaction_id"], t["account_id"], t["amount"]) for b in batches for t in b)
    assert len(rows) == 6000
    assert rows == sent


def test_generate_to_api_through_a_restart_stores_every_transaction_once(app, own_server):
    import socket

    import waitress

    from pgfraud.generator import Settings
    from pgfraud.generator.sinks import to_api
    from pgfraud.generator.stream import generate_transactions

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = waitress.create_server(app, host="127.0.0.1", port=port, threads=4)
    threading.Thread(target=server.run, daemon=True).start()
    settings = Settings(num_transactions=4000, accounts=40, seed=11)
    sent = sorted(
        (t.transaction_id, t.account_id, str(t.amount)) for t in generate_transactions(settings)
    )
    started = threading.Event()

    def pace():
        for t in generate_transactions(settings):
            if t.transaction_id == 1500:
                started.set()
            yield t

    # The database stays down past the pool's wait, so the API answers 503
    # for a while: the sink must send those batches again.
    app.config["POOL_TIMEOUT_S"] = 0.5
    counts = {}
    worker = threading.Thread(
        target=lambda: counts.update(
            to_api(f"http://127.0.0.1:{port}/store_data", pace(), batch_size=50)
        )
    )
    try:
        worker.start()
        assert started.wait(timeout=60)
        own_server.terminate()
        time.sleep(3)
        own_server.start()
        worker.join(timeout=120)
        assert not worker.is_alive()
    finally:
        server.close()
    assert counts["written"] == 4000
    with db.connect(admin_url(own_server)) as conn:
        rows = conn.execute(
            "SELECT transaction_id, account_id, amount::text FROM transactions ORDER BY 1"
        ).fetchall()
    assert rows == sent


def test_the_checkout_check_takes_a_healthy_connection_at_any_descriptor_number(database):
    # select() refuses descriptors of 1024 and above; a busy worker's pool
    # reaches them. The check must hand such a healthy connection out.
    import os
    import resource

    from pgfraud.service.database import _check_connection

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    spare = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]

    class Pool:
        checked = 0

        def check(self) -> None:
            Pool.checked += 1

    try:
        with db.connect(database.app_url, autocommit=True) as conn:
            assert conn.fileno() >= 1024
            _check_connection(Pool(), conn)  # no error: handed out
            assert Pool.checked == 0
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        for fd in spare:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
