"""The production HTTP server of `pgfraud run`: gunicorn, gthread workers.

One worker process per core, each with a pool of threads (many, so that
long-lived responses such as server-sent-event streams leave room for short
requests) and its own database connection pool, built lazily after the fork
(pgfraud.service.database). The listening socket is bound by the caller
*before* anything is announced (:func:`bind`) and handed to gunicorn as
``fd://N``, so a busy port is a one-line error and never a half-started
server.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import sys
from collections.abc import Callable
from typing import Any

from gunicorn.app.base import BaseApplication

from pgfraud.errors import ConfigurationError


def default_workers() -> int:
    """One worker per core this process may run on (at least 1)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host``:``port`` (SO_REUSEADDR, backlog 2048).

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
        sock.bind(address)
        sock.listen(2048)
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


class Server(BaseApplication):
    """gunicorn embedded: serve ``app`` on an already bound socket.

    ``workers`` processes x ``threads`` threads (gthread worker class);
    ``fd``: a bound, listening socket's descriptor; ``on_ready()`` runs in the
    master once it listens, before the workers start.
    Access logs off; gunicorn's own messages at warning level, to stderr.
    """

    def __init__(
        self,
        app: Callable,
        fd: int,
        *,
        workers: int,
        threads: int,
        on_ready: Callable[[], None] | None = None,
    ) -> None:
        self.application = app
        self.options: dict[str, Any] = {
            "bind": [f"fd://{fd}"],
            "workers": workers,
            "worker_class": "gthread",
            "threads": threads,
            "worker_connections": max(1000, threads * 4),
            "keepalive": 5,
            "timeout": 60,
            "graceful_timeout": 5,
            "loglevel": "warning",
            "accesslog": None,
            "errorlog": "-",
            "proc_name": "pgfraud",
            "when_ready": lambda arbiter: on_ready() if on_ready else None,
            # Ctrl-C reaches the whole process group: only the master acts on
            # it (it stops the workers with SIGQUIT); a worker interrupted
            # twice could otherwise hang until the master kills it.
            "post_worker_init": lambda worker: signal.signal(signal.SIGINT, signal.SIG_IGN),
        }
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Callable:
        return self.application


def serve(
    app: Callable,
    sock: socket.socket,
    *,
    workers: int,
    threads: int,
    on_ready: Callable[[], None] | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM stops the master (then return normally).

    ``sock`` (from :func:`bind`) is handed over: gunicorn owns and closes it.

    In a worker process this never returns: the worker exits with its own
    status, so nothing the caller set up (a local PostgreSQL, say) is torn
    down from a worker.
    """
    master = os.getpid()
    fd = sock.detach()
    try:
        Server(app, fd, workers=workers, threads=threads, on_ready=on_ready).run()
    except SystemExit as exc:
        if os.getpid() != master:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(exc.code if isinstance(exc.code, int) else 1)
        if exc.code not in (0, None):
            raise ConfigurationError("the HTTP server stopped with an error (see above)") from None
    except BaseException:
        if os.getpid() != master:
            os._exit(1)
        raise
