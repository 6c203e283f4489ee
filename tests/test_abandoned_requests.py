"""A backtest whose client goes away (hardening round).

granian's WSGI interface gives an application no sign that its client left
while a request runs (no disconnect event; only a write finds it, and a
backtest writes its answer at the end), so an abandoned POST /evaluate runs
on until it ends or reaches PGFRAUD_HEAVY_TIMEOUT_MS, holding its heavy slot
and a connection. Its statements are named ``pgfraud backtest`` in
pg_stat_activity (``application_name``, for as long as it runs), so an
operator can find and cancel it (docs/operations.md); without that name it
was one of the service's anonymous sessions. Here, against a real `pgfraud
run`: the backtest waits on a lock, its client's socket is closed, and the
query is gone within its time limit, its slot free for the next one.
"""

from __future__ import annotations

import json
import socket
import time
from urllib.parse import urlsplit

import requests

from pgfraud import db
from tests.test_security import AUTH, TOKEN, _heavy_slots_held, _wait_until, running  # noqa: F401

BACKTESTS = (
    "SELECT count(*) FROM pg_stat_activity"
    " WHERE application_name = 'pgfraud backtest' AND state = 'active'"
)


def _post_and_drop(base: str, path: str, body: dict) -> socket.socket:
    """Send a POST over a socket of our own, to close it before the answer."""
    address = urlsplit(base)
    data = json.dumps(body).encode()
    sock = socket.create_connection((address.hostname, address.port), timeout=30)
    sock.sendall(
        f"POST {path} HTTP/1.1\r\nHost: {address.netloc}\r\nAuthorization: Bearer {TOKEN}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n".encode()
        + data
    )
    return sock


def test_an_abandoned_backtest_is_named_and_ends_at_its_time_limit(running, database):  # noqa: F811
    base = running(PGFRAUD_HEAVY_TIMEOUT_MS="4000", PGFRAUD_MAX_HEAVY="1")
    with (
        db.connect(database.admin_url, autocommit=True) as watcher,
        db.connect(database.admin_url) as holder,
    ):
        holder.execute("LOCK TABLE transactions IN ACCESS EXCLUSIVE MODE")
        sock = _post_and_drop(base, "/evaluate", {})
        # The backtest has its slot and waits on the lock, named as such.
        _wait_until(lambda: watcher.execute(BACKTESTS).fetchone()[0] == 1, "the named backtest")
        assert _heavy_slots_held(watcher) == 1
        sock.close()  # the client goes away
        _wait_until(lambda: watcher.execute(BACKTESTS).fetchone()[0] == 0, "it to end", 120)
        _wait_until(lambda: _heavy_slots_held(watcher) == 0, "its slot to be free", 60)
        holder.rollback()
        # The slot is free: the next backtest runs (PGFRAUD_MAX_HEAVY=1).
        started = time.monotonic()
        answer = requests.post(f"{base}/evaluate", json={}, headers=AUTH, timeout=60)
        assert answer.status_code == 200, (answer.status_code, time.monotonic() - started)
        # Once over, the connection is named as before (SET LOCAL).
        named = watcher.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'pgfraud %'"
        ).fetchone()[0]
        assert named == 0
