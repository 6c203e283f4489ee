"""A throwaway Citus cluster for `make test-citus`: one coordinator, two workers.

Uses an installed Citus only (citus.so in PostgreSQL's pkglibdir and
citus.control in its extension folder); nothing of Citus is built here. Each
node is an initdb'd PostgreSQL in a temporary folder with
``shared_preload_libraries = citus``, listening on 127.0.0.1 only (trust
authentication, which is fine for a cluster that lives for one test run),
on ports CITUS_PORTS (coordinator first). As root, every server command runs
through setpriv as the server user, as pgfraud.db.server does.

``python -m tests_citus.cluster check`` prints one line naming what is
missing and exits 1 when Citus is not installed; exit 0 otherwise.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg

from pgfraud.db.server import _server_user, find_bindir

# The Citus cluster's ports: below Linux's ephemeral range (32768-60999), where
# an outgoing connection's local port can hold one and the server fails to bind
# ("Address already in use": seen at 55240 and 55252 with a test run beside it).
CITUS_PORTS = tuple(int(p) for p in os.environ.get("CITUS_PORTS", "25140,25141,25142").split(","))
SUPERUSER = "postgres"
DATABASE = "pgfraud"


def _pg_config(bindir: Path, flag: str) -> Path:
    out = subprocess.run(
        [str(bindir / "pg_config"), flag], capture_output=True, text=True, check=True
    )
    return Path(out.stdout.strip())


def citus_missing() -> str | None:
    """What is missing to run a Citus cluster on this machine, or None."""
    try:
        bindir = find_bindir()
    except Exception as exc:  # noqa: BLE001 - any reason is reported in one line
        return str(exc)
    if not (bindir / "pg_config").exists():
        return f"Citus not found: no pg_config in {bindir} to locate citus.so"
    libdir = _pg_config(bindir, "--pkglibdir")
    sharedir = _pg_config(bindir, "--sharedir")
    if not (libdir / "citus.so").exists():
        return (
            f"Citus is not installed: no citus.so in {libdir} (install Citus for this PostgreSQL)"
        )
    if not (sharedir / "extension" / "citus.control").exists():
        return f"Citus is not installed: no citus.control in {sharedir / 'extension'}"
    return None


class Cluster:
    """Coordinator plus workers; ``start()`` then ``stop()`` (always)."""

    def __init__(self, ports: tuple[int, ...] = CITUS_PORTS) -> None:
        self.ports = ports
        self.bindir = find_bindir()
        self.user = _server_user()
        self.root = Path(tempfile.mkdtemp(prefix="pgfraud-citus-"))
        self.started: list[Path] = []

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

    def _run(self, args: list[str]) -> None:
        done = subprocess.run(self._command(args), capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {done.stdout}{done.stderr}")

    def url(self, port: int | None = None, database: str = DATABASE) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{port or self.ports[0]}/{database}"

    @property
    def coordinator_url(self) -> str:
        return self.url()

    def start(self) -> None:
        if self.user is not None:
            os.chown(self.root, self.user.pw_uid, self.user.pw_gid)
        for port in self.ports:
            data = self.root / f"node{port}"
            self._run(
                [
                    str(self.bindir / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    SUPERUSER,
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--no-sync",
                ]
            )
            with open(data / "postgresql.conf", "a", encoding="utf-8") as conf:
                conf.write(
                    "shared_preload_libraries = 'citus'\n"
                    "listen_addresses = '127.0.0.1'\n"
                    f"port = {port}\n"
                    f"unix_socket_directories = '{self.root}'\n"
                    "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                    "max_connections = 100\nshared_buffers = 64MB\n"
                    "timezone = 'UTC'\nmax_prepared_transactions = 50\n"
                    "citus.enable_unsafe_triggers = on\n"
                    # Loopback only: no TLS between the nodes (libpq would also
                    # look for client certificates in the caller's HOME).
                    "citus.node_conninfo = 'sslmode=disable'\n"
                )
            log = self.root / f"node{port}.log"
            try:
                self._start_node(data, log)
            except RuntimeError as exc:
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                raise RuntimeError(f"{exc}\n{tail}") from None
            self.started.append(data)
        self._create_databases()

    def _start_node(self, data: Path, log: Path) -> None:
        self._run(
            [
                str(self.bindir / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(log),
                "-w",
                "-t",
                "120",
                "start",
            ]
        )

    def _create_databases(self) -> None:
        self.create_database(DATABASE)

    def create_database(self, name: str) -> str:
        """A database ``name`` with the citus extension on every node, its
        workers added on the coordinator; returns the coordinator's URL of it."""
        for port in self.ports:
            with psycopg.connect(self.url(port, "postgres"), autocommit=True) as conn:
                conn.execute(f"CREATE DATABASE {name}")
            with psycopg.connect(self.url(port, name), autocommit=True) as conn:
                conn.execute("CREATE EXTENSION citus")
        with psycopg.connect(self.url(database=name), autocommit=True) as conn:
            conn.execute("SELECT citus_set_coordinator_host('127.0.0.1', %s)", (self.ports[0],))
            for port in self.ports[1:]:
                conn.execute("SELECT citus_add_node('127.0.0.1', %s)", (port,))
        return self.url(database=name)

    def stop(self) -> None:
        for data in reversed(self.started):
            subprocess.run(
                self._command([str(self.bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"]),
                capture_output=True,
            )
        self.started.clear()
        shutil.rmtree(self.root, ignore_errors=True)


if __name__ == "__main__":
    if sys.argv[1:] == ["check"]:
        missing = citus_missing()
        if missing:
            print(f"make test-citus: {missing}", file=sys.stderr)
            sys.exit(1)
        sys.exit(0)
    print("usage: python -m tests_citus.cluster check", file=sys.stderr)
    sys.exit(2)
