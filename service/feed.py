"""The live feed's listening loop: one per process, shared by every stream.

A daemon thread keeps one dedicated autocommit connection that LISTENs on the
channel ``pgfraud_alerts`` (the scoring trigger NOTIFYs it; PostgreSQL
delivers at commit, only to connected listeners). Each notification, and each
(re)connection, advances a counter and wakes the waiting streams; a stream
then reads the new alerts itself with ``get_alert_feed`` through the pool,
from its own position. A stream holds no connection while it waits, so a
client that goes away leaves nothing behind. When the database goes away the
loop reconnects with backoff (up to 5 s) and wakes the streams, which catch
up from their positions; a stream also re-reads at every heartbeat, so a lost
notification delays an alert by at most one heartbeat.

Decision streams (/decisions/stream, issue 17) share the listener and the
stream slots: a notification wakes them too (a store that raised alerts
also made decisions), and since a store that raises no alert sends none,
each also reads ``get_decision_feed`` every FEED_DECISION_POLL_S.
"""

from __future__ import annotations

import multiprocessing
import os
import threading

import psycopg
from flask import current_app

from pgfraud import db
from pgfraud.errors import PgfraudError, TooManyStreams

CHANNEL = "pgfraud_alerts"
_EXTENSION = "pgfraud_feed"
_SLOTS = "pgfraud_streams"
_lock = threading.Lock()


class Listener:
    """LISTENs on CHANNEL in a daemon thread; streams wait on it with :meth:`wait`."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.generation = 0
        self.connected = False
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pgfraud-feed", daemon=True)

    def start(self) -> Listener:
        self._thread.start()
        return self

    @property
    def stopping(self) -> bool:
        """True once stop() was called: streams end instead of waiting again."""
        return self._stop.is_set()

    def stop(self) -> None:
        """Ask the loop to end (within a second), wake every waiting stream so
        it can end, and wait for the loop."""
        self._stop.set()
        self._bump()
        self._thread.join(timeout=5)

    def wait(self, seen: int, timeout: float) -> int:
        """Block until the generation differs from ``seen`` or ``timeout`` seconds
        pass; returns the generation now."""
        with self._changed:
            self._changed.wait_for(lambda: self.generation != seen, timeout)
            return self.generation

    def _bump(self) -> None:
        with self._changed:
            self.generation += 1
            self._changed.notify_all()

    def _run(self) -> None:
        backoff = 0.1
        while not self._stop.is_set():
            try:
                with db.connect(self.url, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.connected = True
                    backoff = 0.1
                    self._bump()  # catch up on whatever came while not listening
                    while not self._stop.is_set():
                        for _ in conn.notifies(timeout=1.0):
                            self._bump()
            except (psycopg.Error, PgfraudError):
                pass
            self.connected = False
            self._stop.wait(backoff)
            backoff = min(backoff * 2, 5.0)


def get_listener() -> Listener:
    """The process's listener for the app's DATABASE_URL, started on first use."""
    app = current_app
    listener = app.extensions.get(_EXTENSION)
    if listener is None:
        with _lock:
            listener = app.extensions.get(_EXTENSION)
            if listener is None:
                listener = Listener(app.config["DATABASE_URL"]).start()
                app.extensions[_EXTENSION] = listener
    return listener


class StreamSlots:
    """How many alert streams this app has open in this process, at most ``limit``."""

    def __init__(self) -> None:
        self.open = 0
        self._lock = threading.Lock()
        # Notified whenever a slot is given back (tests wait on it).
        self.changed = threading.Condition(self._lock)

    def take(self, limit: int):
        """One more open stream, or TooManyStreams when ``limit`` are open;
        returns the function that gives the slot back (once)."""
        with self._lock:
            if self.open >= limit:
                raise TooManyStreams(
                    f"{limit} alert streams are open on this server process; try again later"
                )
            self.open += 1
        return self._releaser()

    def _releaser(self):
        released = threading.Event()

        def release() -> None:
            if not released.is_set():
                released.set()
                self._released()
                with self.changed:
                    self.open -= 1
                    self.changed.notify_all()

        return release

    def _released(self) -> None:
        pass


class SharedStreamSlots(StreamSlots):
    """Stream slots counted over every worker process of one server.

    Created in the server's master process before it forks its workers; they
    share one table of (worker pid, open streams) in shared memory. A stream
    is refused only when the whole server holds ``total`` streams, or when
    the worker that accepted the connection holds ``per_process`` (its
    threads less the ones kept for short requests). A worker that died leaves
    its count behind: entries of processes that no longer exist are cleared.
    Connections are spread over the workers by the kernel, unevenly: a fixed
    per-process share refused streams while another worker had room.
    """

    WORKERS = 256  # table rows: workers, and replacements for dead ones

    def __init__(self, total: int, per_process: int) -> None:
        super().__init__()
        self.total = total
        self.per_process = per_process
        self._table = multiprocessing.get_context("fork").Array("q", 2 * self.WORKERS)

    def take(self, limit: int):
        """One more stream for this process, or TooManyStreams (``limit`` is
        ignored: the server-wide ``total`` and ``per_process`` apply)."""
        pid = os.getpid()
        with self._table.get_lock():
            table = self._table
            mine = None
            total = 0
            for row in range(self.WORKERS):
                owner, count = table[2 * row], table[2 * row + 1]
                if owner == pid:
                    mine = row
                elif owner and not _alive(owner):
                    table[2 * row] = table[2 * row + 1] = 0
                    continue
                total += count
            if mine is None:
                mine = next(r for r in range(self.WORKERS) if table[2 * r] == 0)
                table[2 * mine] = pid
            if total >= self.total or table[2 * mine + 1] >= self.per_process:
                raise TooManyStreams(
                    f"{total} alert streams are open on this server "
                    f"({table[2 * mine + 1]} in this worker); try again later"
                )
            table[2 * mine + 1] += 1
        with self._lock:
            self.open += 1
        return self._releaser()

    def _released(self) -> None:
        pid = os.getpid()
        with self._table.get_lock():
            for row in range(self.WORKERS):
                if self._table[2 * row] == pid:
                    self._table[2 * row + 1] -= 1
                    return

    def server_total(self) -> int:
        """Streams open on the whole server (every worker)."""
        with self._table.get_lock():
            return sum(self._table[2 * r + 1] for r in range(self.WORKERS))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def share_stream_slots(app, workers: int, threads: int) -> SharedStreamSlots:
    """Before a server forks ``workers`` processes of ``threads`` threads each:
    count the app's streams over all of them. The server takes ``workers`` x
    FEED_MAX_STREAMS streams; one worker up to its threads less POOL_MAX_SIZE
    (threads beyond its database connections would not serve short requests
    sooner), and at least FEED_MAX_STREAMS while that leaves it one thread
    for requests (at least 1 in any case)."""
    share = int(app.config["FEED_MAX_STREAMS"])
    pool = int(app.config["POOL_MAX_SIZE"])
    per_process = max(min(share, threads - 1), threads - pool, 1)
    slots = SharedStreamSlots(workers * share, per_process)
    app.extensions[_SLOTS] = slots
    return slots


def take_stream_slot(limit: int):
    """A stream slot of the current app (see StreamSlots.take)."""
    slots = current_app.extensions.setdefault(_SLOTS, StreamSlots())
    return slots.take(limit)


def stop_listener(app) -> None:
    """Stop the app's listener, if started (tests, shutdown)."""
    listener = app.extensions.get(_EXTENSION)
    if listener is not None:
        listener.stop()
        app.extensions[_EXTENSION] = None
