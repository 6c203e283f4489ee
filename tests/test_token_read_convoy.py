"""Requests waiting for the named tokens' read fail with it, not one by one.

Every request but the public ones needs the process's named tokens, read
at most once a second by one request while the others wait (service/auth.py
``_token_cache``). With PostgreSQL down, that read waits 0.5 s for a
connection and fails; before the fix, each waiting request then tried the
read again in turn, so under 16 connections of load a store waited 5-8 s and
the live streams fell silent (break-it round 11, measured with wrk and
/tmp/breakit-scripts/r11/pgdown.py). Now the requests that waited for a read
that failed are answered 503 with it.

Here the read is held up by a real lock (ACCESS EXCLUSIVE on api_tokens) and
then cancelled (pg_cancel_backend): the requests that queued behind it must
all be answered 503 while the lock is still held, and none may start a read
of its own (a second reader would wait on the same lock, in pg_stat_activity).
"""

from __future__ import annotations

import inspect
import sys
import threading
import time

import psycopg

from pgfraud.service import auth

WAITERS = 6

# The token readers waiting on the test's lock, other than the test's own session.
WAITING_READERS = (
    "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
    " AND pid <> pg_backend_pid() AND wait_event_type = 'Lock'"
    " AND query LIKE '%%get_api_token_digests%%'"
)


_SOURCE, _FIRST = inspect.getsourcelines(auth._token_cache)
# The line where a request waits for the one reading (``with cache.lock:``).
LOCK_LINE = _FIRST + next(i for i, line in enumerate(_SOURCE) if "with cache.lock" in line)


def _in_token_cache(thread: threading.Thread) -> bool:
    """Whether ``thread`` waits in auth._token_cache for the request reading."""
    frame = sys._current_frames().get(thread.ident)
    while frame is not None:
        if frame.f_code is auth._token_cache.__code__:
            return frame.f_lineno == LOCK_LINE
        frame = frame.f_back
    return False


def test_requests_behind_a_failed_token_read_fail_with_it(app, admin_conn, database):
    answers: list[int] = []

    def ask() -> None:
        answers.append(app.test_client().get("/is_fraud/1").status_code)

    with psycopg.connect(database.admin_url) as holder:
        holder.execute("LOCK TABLE api_tokens IN ACCESS EXCLUSIVE MODE")
        first = threading.Thread(target=ask)
        first.start()
        reader = None
        for _ in range(6000):  # bounded by a count: until the first request reads
            reader = admin_conn.execute(WAITING_READERS).fetchone()
            if reader:
                break
            time.sleep(0.01)
        assert reader, answers
        waiters = [threading.Thread(target=ask) for _ in range(WAITERS)]
        for thread in waiters:
            thread.start()
        for _ in range(6000):  # until every waiter waits for the read in progress
            if all(_in_token_cache(t) for t in waiters):
                break
            time.sleep(0.01)
        assert all(_in_token_cache(t) for t in waiters)
        admin_conn.execute("SELECT pg_cancel_backend(%s)", (reader[0],))
        first.join(60)
        second_reader = None
        for _ in range(6000):  # until all are answered, or one reads again
            second_reader = admin_conn.execute(WAITING_READERS).fetchone()
            if second_reader or not any(t.is_alive() for t in waiters):
                break
            time.sleep(0.01)
        holder.rollback()  # the lock goes: a reader that started would finish now
        for thread in waiters:
            thread.join(60)
    assert second_reader is None, "a waiting request read the tokens again"
    assert answers == [503] * (1 + WAITERS)
