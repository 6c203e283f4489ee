"""The production HTTP server of `pgfraud run`: granian (a Rust HTTP server), WSGI.

One worker process per core (forked, as gunicorn's were), each running the
HTTP protocol on a Rust runtime and calling the Flask app from a pool of
Python threads (many, so that long-lived responses such as server-sent-event
streams leave room for short requests); each worker has its own database
connection pool, built lazily after the fork (pgfraud.service.database).
The listening socket is bound by the caller *before* anything is announced
(:func:`bind`) and handed to granian, which then binds nothing itself, so a
busy port is a one-line error and never a half-started server.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable
from typing import Any

from granian.constants import HTTPModes, Interfaces
from granian.log import LogLevels
from granian.net import SocketHolder
from granian.server.mp import MPServer

from pgfraud.errors import ConfigurationError

BACKLOG = 2048
# Seconds a worker may take to finish its requests once asked to stop (SIGTERM
# from the master) before it is killed: an open event stream would otherwise
# keep it alive until the client goes.
STOP_TIMEOUT_S = 5


def default_workers() -> int:
    """One worker per core this process may run on (at least 1)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host``:``port`` (SO_REUSEADDR, TCP_NODELAY, backlog 2048).

    Errors: ConfigurationError with one line naming the address: the port is
    in use, the address is not on this machine, or the port needs privileges.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ConfigurationError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Inherited by every accepted connection: granian sets nothing per
        # connection, and Nagle's algorithm would hold small responses back
        # (40 ms, the peer's delayed ACK) when a response is written in parts.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(address)
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            message = (
                f"port {port} on {host} is already in use (another `pgfraud run`?); "
                "choose another with --port or PORT=..."
            )
        else:
            message = f"cannot listen on {host}:{port}: {exc.strerror or exc}"
        raise ConfigurationError(message) from None
    sock.set_inheritable(True)
    return sock


class _QuietThreadsWarning(logging.Filter):
    """Drops granian's warning that many Python threads per worker "seems
    quite high": they are meant (each open event stream holds one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Configuration allows spawning up to")


class Server(MPServer):
    """granian embedded: serve ``app`` (WSGI) on an already bound socket.

    ``workers`` processes x ``threads`` Python threads each (granian's
    blocking threads: as many requests at once per worker, the rest wait in
    the Rust runtime; up to max(1000, 4 x threads) open connections per
    worker); ``fd``: a bound, listening socket's descriptor, shared
    by the workers (granian itself binds nothing); ``on_ready()`` runs in the
    master once it listens, before the workers start; ``on_stop()`` runs in
    each worker once it is asked to stop. HTTP/1.1 only; access logs off;
    granian's own messages at warning level, to stderr.
    """

    def __init__(
        self,
        app: Callable,
        fd: int,
        *,
        workers: int,
        threads: int,
        on_ready: Callable[[], None] | None = None,
        on_stop: Callable[[], None] | None = None,
    ) -> None:
        self._app = app
        self._on_stop = on_stop
        self._fd = fd
        super().__init__(
            "pgfraud",  # a name only: the app is given, never imported
            interface=Interfaces.WSGI,
            workers=workers,
            blocking_threads=threads,
            # granian's backpressure counts open connections (idle keep-alive
            # ones too), not requests: as many as gunicorn's worker_connections.
            backpressure=max(1000, threads * 4),
            backlog=BACKLOG,
            http=HTTPModes.http1,
            # A worker that dies is replaced, as gunicorn's master did.
            respawn_failed_workers=True,
            workers_kill_timeout=STOP_TIMEOUT_S,
            log_level=LogLevels.warning,
            log_dictconfig={"handlers": _STDERR_HANDLERS},
        )
        if on_ready is not None:
            self.on_startup(on_ready)
        logging.getLogger("_granian").addFilter(_QuietThreadsWarning())

    def _init_shared_socket(self) -> None:
        # granian would bind the address itself (SO_REUSEPORT: a second server
        # on the same port would be let in); the workers share ours instead.
        self._ssp = None
        self._shd = SocketHolder(self._fd, False, BACKLOG)
        self._sfd = self._fd
        self._sso = None

    def _load(self, _target: str) -> Callable:
        # In each worker, right after the fork, before granian installs its
        # handlers and starts its threads (which inherit this mask):
        # - SIGINT is blocked: Ctrl-C reaches the whole process group, and only
        #   the master acts on it (it stops the workers with SIGTERM); a worker
        #   stopping on its own would count as a crash (the master exits 1);
        # - SIGTERM is blocked and awaited by a thread of ours, which passes it
        #   on to granian's handler and then runs on_stop (it ends the event
        #   streams, which would otherwise hold the worker until it is killed).
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        threading.Thread(target=self._await_stop, name="pgfraud-stop", daemon=True).start()
        _stop_with_parent(self._master)
        return self._app

    def _await_stop(self) -> None:
        signal.sigwait({signal.SIGTERM})
        # on_stop (ending the event streams) runs beside granian's handler,
        # not after it: if granian was already stopping (a Ctrl-C that reached
        # a thread of its own), its handler may wait for the requests, which
        # the streams would hold until the worker is killed.
        if self._on_stop is not None:
            threading.Thread(target=self._on_stop, name="pgfraud-on-stop", daemon=True).start()
        handler = signal.getsignal(signal.SIGTERM)
        if callable(handler):  # granian's: stop accepting, finish the requests
            handler(signal.SIGTERM, None)

    def run(self) -> None:
        """Serve until SIGINT/SIGTERM; SystemExit(1) when workers kept failing."""
        self._master = os.getpid()
        self.serve(target_loader=self._load)


def _stop_with_parent(master: int) -> None:
    """Linux: SIGTERM to this process when its parent ``master`` dies (killed
    with SIGKILL, say), so that no orphaned worker goes on serving the port;
    gunicorn's workers watched their parent likewise. Elsewhere: nothing."""
    if not sys.platform.startswith("linux"):
        return
    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != master:  # it died before the call above
        os.kill(os.getpid(), signal.SIGTERM)


# granian's logging handlers (granian.log.LOGGING_CONFIG), to stderr, not stdout.
_STDERR_HANDLERS: dict[str, Any] = {
    handler: {"formatter": fmt, "class": "logging.StreamHandler", "stream": "ext://sys.stderr"}
    for handler, fmt in (("console", "generic"), ("access", "access"))
}


def serve(
    app: Callable,
    sock: socket.socket,
    *,
    workers: int,
    threads: int,
    on_ready: Callable[[], None] | None = None,
    on_stop: Callable[[], None] | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM stops the master (then return normally).

    ``sock`` (from :func:`bind`) is handed over: the server owns it.

    Workers are forked (whatever multiprocessing's default start method): the
    app is passed as an object, never pickled or imported again. A worker
    never returns here: it ends with os._exit when granian's worker loop
    ends, so nothing the caller set up (a local PostgreSQL, say) is torn down
    from a worker.

    Errors: ConfigurationError when the server stopped with an error (workers
    that crash again and again; the cause is logged above).
    """
    multiprocessing.set_start_method("fork", force=True)
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    fd = sock.detach()
    try:
        Server(app, fd, workers=workers, threads=threads, on_ready=on_ready, on_stop=on_stop).run()
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise ConfigurationError("the HTTP server stopped with an error (see above)") from None
    finally:
        for sig, handler in handlers.items():  # granian's master handlers, undone
            signal.signal(sig, handler)
        try:
            os.close(fd)
        except OSError:
            pass
        sys.stderr.flush()
