"""The pool's bulkhead: stores queued behind a rule change's exclusive lock
hold at most POOL_MAX_SIZE - POOL_READ_RESERVE connections, so reads (which
take no lock) are still answered. Through a real HTTP server (waitress)."""

from __future__ import annotations

import socket
import threading
import time
from decimal import Decimal

import psycopg
import requests
import waitress

from pgfraud import db
from pgfraud.service.database import write_share
from pgfraud.service.feed import stop_listener
from pgfraud.wire import from_epoch_ms


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stores_waiting_on_a_lock(admin: psycopg.Connection) -> int:
    return admin.execute(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        " AND query LIKE '%store_transactions%'"
    ).fetchone()[0]


def _wait_until(condition, what: str) -> None:
    """Wait for ``condition()`` (bounded by a count, not timed)."""
    for _ in range(3000):
        if condition():
            return
        time.sleep(0.01)
    raise AssertionError(f"never: {what}")


def test_write_share_leaves_the_reserve_to_reads():
    assert write_share({"POOL_MAX_SIZE": 8, "POOL_READ_RESERVE": 2}) == 6
    assert write_share({"POOL_MAX_SIZE": 2, "POOL_READ_RESERVE": 2}) == 1
    assert write_share({"POOL_MAX_SIZE": 1, "POOL_READ_RESERVE": 2}) == 1


def test_reads_are_answered_while_stores_wait_for_a_rule_change(app, database):
    # The defaults: 8 connections, 2 kept for reads. Ten stores queue behind
    # a rule change (here an UPDATE of rules held open, which takes the
    # exclusive rule-change lock as a long re-score does); before the fix they
    # took all 8 connections and a read waited POOL_TIMEOUT_S, then 503.
    assert (app.config["POOL_MAX_SIZE"], app.config["POOL_READ_RESERVE"]) == (8, 2)
    server = waitress.create_server(app, host="127.0.0.1", port=_free_port(), threads=16)
    threading.Thread(target=server.run, daemon=True).start()
    base = f"http://127.0.0.1:{server.effective_port}"
    admin = psycopg.connect(database.admin_url, autocommit=True)
    holder = psycopg.connect(database.admin_url)
    answers: list[requests.Response] = []

    def store(i: int) -> None:
        body = {"account_id": 9, "transaction_id": i, "timestamp": 1717243200000 + i}
        answers.append(
            requests.post(f"{base}/store_data", json={**body, "amount": "5.00"}, timeout=60)
        )

    stores = [threading.Thread(target=store, args=(i,)) for i in range(1, 11)]
    with db.connect(database.app_url) as conn:  # account 9's one earlier transaction
        db.store_transactions(
            conn,
            [
                {
                    "transaction_id": 100,
                    "account_id": 9,
                    "timestamp": from_epoch_ms(1717243100000),
                    "amount": Decimal("5.00"),
                }
            ],
        )
        conn.commit()
    try:
        holder.execute("UPDATE rules SET description = description WHERE rule_id = 'velocity'")
        for thread in stores:
            thread.start()
        _wait_until(lambda: _stores_waiting_on_a_lock(admin) >= 6, "six stores wait on the lock")
        read = requests.get(f"{base}/is_fraud/9", timeout=60)
        assert read.status_code == 200, read.text
        assert read.json() == {"account_id": 9, "count": 0, "events": [], "next": None}
        assert _stores_waiting_on_a_lock(admin) == 6  # the writes' share, no more
        holder.rollback()
        for thread in stores:
            thread.join()
        stores = []
        # Each store either went in (201) or waited past POOL_TIMEOUT_S for a
        # write connection (503, nothing stored): nothing half-stored.
        stored = sorted(r.json()["transaction_id"] for r in answers if r.status_code == 201)
        assert all(r.status_code in (201, 503) for r in answers)
        for refused in (r for r in answers if r.status_code == 503):
            assert refused.json()["error"]["code"] == "database_unavailable"
        with db.connect(database.app_url) as conn:
            rows = conn.execute(
                "SELECT transaction_id FROM transactions ORDER BY transaction_id"
            ).fetchall()
        assert [r[0] for r in rows] == [*stored, 100]
    finally:
        holder.close()  # ends the lock: the stores finish before the server closes
        for thread in stores:
            thread.join()
        admin.close()
        stop_listener(app)
        server.close()


def test_writes_beyond_the_queue_are_refused_at_once_and_reads_still_answer(app, database):
    # Stores waiting for a write slot each hold a server thread; with no bound
    # a flood of them took every thread and reads and /health went
    # unanswered. Now at most WRITE_QUEUE_MAX wait: here 6 hold the writes'
    # share (waiting on the rule-change lock), 2 wait for a slot, and the
    # other 4 are answered 503 at once, while the lock is still held.
    app.config.update(WRITE_QUEUE_MAX=2, STATEMENT_TIMEOUT_MS=600_000)
    server = waitress.create_server(app, host="127.0.0.1", port=_free_port(), threads=16)
    threading.Thread(target=server.run, daemon=True).start()
    base = f"http://127.0.0.1:{server.effective_port}"
    admin = psycopg.connect(database.admin_url, autocommit=True)
    holder = psycopg.connect(database.admin_url)
    answers: dict[int, requests.Response] = {}

    def store(i: int) -> None:
        body = {"account_id": 9, "transaction_id": i, "timestamp": 1717243200000 + i}
        answers[i] = requests.post(f"{base}/store_data", json={**body, "amount": "5"}, timeout=600)

    stores = [threading.Thread(target=store, args=(i,)) for i in range(1, 13)]
    try:
        assert requests.get(f"{base}/health", timeout=60).status_code == 200  # opens the pool
        holder.execute("UPDATE rules SET description = description WHERE rule_id = 'velocity'")
        for thread in stores:
            thread.start()
        _wait_until(lambda: len(answers) == 4, "four stores refused while the lock is held")
        # The six with a slot reach the lock in their own time (a pool
        # connection may still be opening): wait for it, never more than six.
        _wait_until(lambda: _stores_waiting_on_a_lock(admin) == 6, "six stores wait on the lock")
        assert len(answers) == 4
        for refused in answers.values():
            assert refused.status_code == 503
            assert refused.headers["Retry-After"] == "1"
            assert refused.json()["error"] == {
                "code": "database_unavailable",
                "message": "too many writes are waiting for the database; try again shortly",
            }
        refused_ids = set(answers)
        assert requests.get(f"{base}/health", timeout=60).status_code == 200
        assert requests.get(f"{base}/is_fraud/9", timeout=60).status_code == 404  # no rows yet
        holder.rollback()
        for thread in stores:
            thread.join()
        stores = []
        stored = {i for i, r in answers.items() if r.status_code == 201}
        assert stored == set(range(1, 13)) - refused_ids  # the 8 that waited all went in
        with db.connect(database.app_url) as conn:
            rows = conn.execute("SELECT transaction_id FROM transactions").fetchall()
        assert {r[0] for r in rows} == stored
    finally:
        holder.close()
        for thread in stores:
            thread.join()
        admin.close()
        stop_listener(app)
        server.close()
