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
"""

from __future__ import annotations

import threading

import psycopg
from flask import current_app

from pgfraud import db
from pgfraud.errors import PgfraudError, TooManyStreams

CHANNEL = "pgfraud_alerts"
_EXTENSION = "pgfraud_feed"
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

    def take(self, limit: int):
        """One more open stream, or TooManyStreams when ``limit`` are open;
        returns the function that gives the slot back (once)."""
        with self._lock:
            if self.open >= limit:
                raise TooManyStreams(
                    f"{limit} alert streams are open on this server process; try again later"
                )
            self.open += 1
        released = threading.Event()

        def release() -> None:
            if not released.is_set():
                released.set()
                with self._lock:
                    self.open -= 1

        return release


def take_stream_slot(limit: int):
    """A stream slot of the current app (see StreamSlots.take)."""
    slots = current_app.extensions.setdefault("pgfraud_streams", StreamSlots())
    return slots.take(limit)


def stop_listener(app) -> None:
    """Stop the app's listener, if started (tests, shutdown)."""
    listener = app.extensions.get(_EXTENSION)
    if listener is not None:
        listener.stop()
        app.extensions[_EXTENSION] = None
