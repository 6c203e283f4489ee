"""A local PostgreSQL server owned by the project, for when DATABASE_URL is not set.

The server's state lives in one folder (``PGFRAUD_HOME``, default
``./.pgfraud``): ``data/`` (the cluster, kept between runs), ``port``,
``admin.password`` and ``app.password`` (mode 0600). It listens on 127.0.0.1
only, with scram-sha-256 passwords, no Unix socket.

Binaries come from, in order: ``PGFRAUD_PG_BIN``; the folder of ``pg_config
--bindir``; ``initdb`` on PATH; ``/usr/lib/postgresql/<newest>/bin``; the
``pgserver`` wheel (``pip install 'pgfraud[server]'``), which bundles
PostgreSQL 16.

PostgreSQL refuses to run as root. As root, every server command runs through
``setpriv --reuid=<user> --regid=<group> --init-groups`` as the ``postgres``
user (created as a system user ``pgfraud`` when no ``postgres`` exists), and
the data folder is owned by that user. When that user cannot reach the home
folder (say, under /root), the data folder moves to
``/var/tmp/pgfraud-<hash of the home path>`` and ``home/datadir`` records it.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

from pgfraud.errors import ConfigurationError, InvalidInput

ADMIN_USER = "pgfraud_admin"
APP_USER = "pgfraud_service"
DATABASE_NAME = "pgfraud"


def find_bindir() -> Path:
    """The folder holding initdb, pg_ctl and postgres; ConfigurationError if none is found."""
    candidates: list[Path] = []
    if os.environ.get("PGFRAUD_PG_BIN"):
        candidates.append(Path(os.environ["PGFRAUD_PG_BIN"]))
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, check=True
            )
            candidates.append(Path(out.stdout.strip()))
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).resolve().parent)
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: int(p.split("/")[-2]) if p.split("/")[-2].isdigit() else 0,
        reverse=True,
    )
    candidates.extend(Path(p) for p in versions)
    for folder in candidates:
        if all((folder / name).exists() for name in ("initdb", "pg_ctl", "postgres")):
            return folder
    # Last, the pgserver wheel: imported only when needed, and quietly (it
    # warns on stderr, through platformdirs, when XDG_RUNTIME_DIR is unset,
    # as it is for root: every command would print that warning).
    with contextlib.suppress(ImportError), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver  # type: ignore[import-not-found]

        folder = Path(pgserver.__file__).parent / "pginstall" / "bin"
        if all((folder / name).exists() for name in ("initdb", "pg_ctl", "postgres")):
            return folder
    raise ConfigurationError(
        "no PostgreSQL server binaries found (initdb, pg_ctl, postgres): set DATABASE_URL, "
        "install PostgreSQL, or `pip install 'pgfraud[server]'`"
    )


def _server_user() -> pwd.struct_passwd | None:
    """The unprivileged user the server runs as when we are root; None when we are not root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "pgfraud"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "pgfraud"],
        check=True,
    )
    return pwd.getpwnam("pgfraud")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


PORT_VARIABLE = "PGFRAUD_PG_PORT"


def pinned_port() -> int | None:
    """The local PostgreSQL's port pinned by PGFRAUD_PG_PORT (1..65535), or None
    when it is unset or empty (a free port is chosen on first start and kept).
    InvalidInput naming the variable for anything else (exit 2 in the CLI)."""
    raw = os.environ.get(PORT_VARIABLE, "").strip()
    if not raw:
        return None
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= 65535:
        raise InvalidInput(
            f"{PORT_VARIABLE} must be a TCP port, an integer from 1 to 65535; got {raw[:40]!r}",
            field=PORT_VARIABLE,
        )
    return int(raw)


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


class LocalServer:
    """A PostgreSQL cluster in ``home``: created on first start, kept between runs.

    ``start()`` returns True when it started the server (so the caller stops it),
    False when it was already running. Errors: ConfigurationError when no
    binaries are found or the server fails to start (its log is quoted).
    """

    def __init__(self, home: Path) -> None:
        self.home = Path(home).absolute()
        self.user = _server_user()

    # -- paths and state -------------------------------------------------
    @property
    def datadir(self) -> Path:
        recorded = self.home / "datadir"
        if recorded.exists():
            return Path(recorded.read_text().strip())
        return self.home / "data"

    @property
    def logfile(self) -> Path:
        return self.datadir / "postgres.log"

    @property
    def port(self) -> int:
        """The TCP port on 127.0.0.1, recorded in ``home``/port: PGFRAUD_PG_PORT
        when set (:func:`pinned_port`), else a free one chosen on first use and
        kept. A pinned port replaces the recorded one unless the server runs on
        that one (it moves at its next start, after `pgfraud db stop`)."""
        path = self.home / "port"
        pinned = pinned_port()
        recorded = int(path.read_text().strip()) if path.exists() else None
        if recorded is None or (
            pinned is not None and pinned != recorded and not self.is_running()
        ):
            self.home.mkdir(parents=True, exist_ok=True)
            path.write_text(f"{pinned if pinned is not None else _free_port()}\n")
        return int(path.read_text().strip())

    def _secret(self, name: str) -> str:
        path = self.home / f"{name}.password"
        if not path.exists():
            self.home.mkdir(parents=True, exist_ok=True)
            path.touch(mode=0o600)
            path.write_text(secrets.token_urlsafe(24))
        return path.read_text().strip()

    @property
    def admin_password(self) -> str:
        return self._secret("admin")

    @property
    def app_password(self) -> str:
        return self._secret("app")

    def url(self, *, admin: bool = False, database: str = DATABASE_NAME) -> str:
        """libpq URL of ``database`` as the admin (owner) or the service's login role."""
        user, password = (
            (ADMIN_USER, self.admin_password) if admin else (APP_USER, self.app_password)
        )
        return f"postgresql://{user}:{quote(password, safe='')}@127.0.0.1:{self.port}/{database}"

    @property
    def initialized(self) -> bool:
        return (self.datadir / "PG_VERSION").exists()

    # -- running commands ------------------------------------------------
    def _command(self, args: list[str]) -> list[str]:
        if self.user is None:
            return args
        return [
            "setpriv",
            f"--reuid={self.user.pw_uid}",
            f"--regid={self.user.pw_gid}",
            "--init-groups",
            *args,
        ]

    def _run(self, args: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self._command(args), capture_output=True, text=True, **kwargs)

    def _chown(self, path: Path) -> None:
        if self.user is not None:
            os.chown(path, self.user.pw_uid, self.user.pw_gid)

    def _reachable_by_server_user(self, path: Path) -> bool:
        if self.user is None:
            return True
        return self._run(["test", "-x", str(path)]).returncode == 0

    # -- lifecycle -------------------------------------------------------
    def init(self) -> None:
        """Create the cluster (initdb) unless it exists; choose a free port."""
        self.home.mkdir(parents=True, exist_ok=True)
        if self.initialized:
            return
        bindir = find_bindir()
        datadir = self.home / "data"
        if not self._reachable_by_server_user(self.home):
            digest = hashlib.sha256(str(self.home).encode()).hexdigest()[:12]
            datadir = Path(f"/var/tmp/pgfraud-{digest}")
            (self.home / "datadir").write_text(f"{datadir}\n")
        if datadir.exists():
            # Left behind by an earlier home at this path that was deleted
            # without `pgfraud db destroy`: its passwords are gone with it.
            if (datadir / "PG_VERSION").exists():
                self._stop_datadir(datadir)
            shutil.rmtree(datadir)
        datadir.mkdir(mode=0o700, parents=True)
        self._chown(datadir)
        with tempfile.NamedTemporaryFile("w", delete=False, dir=datadir.parent) as pwfile:
            pwfile.write(self.admin_password + "\n")
        try:
            self._chown(Path(pwfile.name))
            result = self._run(
                [
                    str(bindir / "initdb"),
                    "--pgdata",
                    str(datadir),
                    "--username",
                    ADMIN_USER,
                    "--pwfile",
                    pwfile.name,
                    "--auth-host",
                    "scram-sha-256",
                    "--auth-local",
                    "scram-sha-256",
                    "--encoding",
                    "UTF8",
                    "--locale",
                    "C",
                    "--no-sync",
                ]
            )
        finally:
            os.unlink(pwfile.name)
        if result.returncode != 0:
            raise ConfigurationError(
                f"initdb failed: {result.stderr.strip() or result.stdout.strip()}"
            )

    def is_running(self) -> bool:
        if not self.initialized:
            return False
        result = self._run([str(find_bindir() / "pg_ctl"), "status", "--pgdata", str(self.datadir)])
        return result.returncode == 0

    def start(self) -> bool:
        """Start the server if it is not running; True when this call started it.

        Ctrl-C or SIGTERM meanwhile waits until the start is done (an
        interrupted initdb leaves a cluster that never starts; an
        interrupted pg_ctl start, a server nobody stops): then the server
        this call started is stopped, and the signal is delivered."""
        with _signals_held() as pending:
            started = self._start()
            if started and pending:
                self.stop()
        return started

    def _start(self) -> bool:
        pinned_port()  # a bad PGFRAUD_PG_PORT is refused before anything is made
        self.init()
        if self.is_running():
            return False
        if _port_in_use(self.port):
            if pinned_port() is not None:
                raise InvalidInput(
                    f"port {self.port} on 127.0.0.1 is in use by another program: "
                    f"choose another {PORT_VARIABLE}",
                    field=PORT_VARIABLE,
                )
            (self.home / "port").write_text(f"{_free_port()}\n")
        options = (
            f"-c port={self.port} -c listen_addresses=127.0.0.1 "
            "-c unix_socket_directories='' -c timezone=UTC -c fsync=on"
        )
        result = self._run(
            [
                str(find_bindir() / "pg_ctl"),
                "start",
                "--wait",
                "--timeout",
                "60",
                "--pgdata",
                str(self.datadir),
                "--log",
                str(self.logfile),
                "-o",
                options,
            ]
        )
        if result.returncode != 0:
            log = ""
            with contextlib.suppress(OSError):
                log = self.logfile.read_text()[-2000:]
            last = [line for line in log.splitlines() if line.strip()][-1:] or [""]
            reason = " ".join(result.stderr.split()) or "pg_ctl failed"
            raise ConfigurationError(
                f"PostgreSQL did not start: {reason}; last log line: {last[0].strip()} "
                f"(whole log: {self.logfile})"
            )
        self._ensure_database()
        return True

    def stop(self) -> bool:
        """Stop the server (fast shutdown) if it runs; True when it was running.
        Ctrl-C or SIGTERM meanwhile waits until it is stopped (a second Ctrl-C
        killed pg_ctl stop before it asked, leaving the server running)."""
        with _signals_held():
            if not self.is_running():
                return False
            self._stop_datadir(self.datadir)
            return True

    def _stop_datadir(self, datadir: Path) -> None:
        self._run(
            [
                str(find_bindir() / "pg_ctl"),
                "stop",
                "--wait",
                "--mode",
                "fast",
                "--pgdata",
                str(datadir),
            ]
        )

    def destroy(self) -> None:
        """Stop the server and delete its data folder (wherever it lives) and ``home``."""
        datadir = self.datadir
        if self.initialized:
            self.stop()
        shutil.rmtree(datadir, ignore_errors=True)
        shutil.rmtree(self.home, ignore_errors=True)

    def _ensure_database(self) -> None:
        import psycopg

        deadline = time.monotonic() + 30
        while True:
            try:
                with psycopg.connect(
                    self.url(admin=True, database="postgres"), autocommit=True
                ) as conn:
                    exists = conn.execute(
                        "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE_NAME,)
                    ).fetchone()
                    if not exists:
                        conn.execute(f"CREATE DATABASE {DATABASE_NAME}")
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)


@contextlib.contextmanager
def _signals_held() -> Iterator[list[int]]:
    """SIGINT and SIGTERM, when Python handles them, are held for the block:
    yields the list of those that arrived, delivered again after it (so
    their handler runs then). Only the main thread can handle signals;
    elsewhere nothing is held."""
    pending: list[int] = []
    held = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            handler = signal.getsignal(signum)
            if callable(handler):
                held[signum] = handler
                signal.signal(signum, lambda number, frame: pending.append(number))
    try:
        yield pending
    finally:
        for signum, handler in held.items():
            signal.signal(signum, handler)
        for signum in dict.fromkeys(pending):
            signal.raise_signal(signum)


@contextlib.contextmanager
def running(home: Path) -> Iterator[LocalServer]:
    """The local server, started for the duration of the block if it was not running."""
    server = LocalServer(home)
    started = server.start()
    try:
        yield server
    finally:
        if started:
            server.stop()
