"""PGFRAUD_PG_PORT pins the local PostgreSQL's port (fresh-user trial: the port
was chosen at random on first start and could not be chosen). Through the
real `pgfraud` command, as root and as a normal user alike."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from pgfraud.db.server import LocalServer

PGFRAUD = str(Path(sys.executable).with_name("pgfraud"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def local_home(tmp_path: Path) -> Iterator[dict[str, str]]:
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "PGFRAUD_API_TOKEN")}
    env["PGFRAUD_HOME"] = str(home)
    yield env
    LocalServer(home).destroy()


def _pgfraud(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PGFRAUD, *args], env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("value", ["abc", "0", "65536", " 5 4", "５４３２"])
def test_a_bad_port_is_refused_naming_the_variable_before_anything_is_made(local_home, value):
    result = _pgfraud({**local_home, "PGFRAUD_PG_PORT": value}, "db", "start")
    assert result.returncode == 2, result.stderr
    assert result.stderr == (
        "error: PGFRAUD_PG_PORT must be a TCP port, an integer from 1 to 65535;"
        f" got {value.strip()!r}\n"
    )
    home = Path(local_home["PGFRAUD_HOME"])
    assert not LocalServer(home).initialized  # no initdb
    assert not (home / "port").exists()


def test_the_server_listens_on_the_pinned_port_and_refuses_one_in_use(local_home):
    port = _free_port()
    env = {**local_home, "PGFRAUD_PG_PORT": str(port)}
    try:
        started = _pgfraud(env, "db", "start")
        assert started.returncode == 0, started.stderr
        assert f"@127.0.0.1:{port}/" in started.stdout
        status = _pgfraud(env, "db", "status")
        assert f"  port:    {port} (127.0.0.1)" in status.stdout.splitlines()
        url = _pgfraud(env, "db", "url").stdout.strip()
        with psycopg.connect(url) as conn:
            assert conn.execute("SHOW port").fetchone()[0] == str(port)
        assert _pgfraud(env, "db", "stop").returncode == 0
        # Another program on the pinned port: a clear refusal, not another port.
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            busy = taken.getsockname()[1]
            refused = _pgfraud({**local_home, "PGFRAUD_PG_PORT": str(busy)}, "db", "start")
        assert refused.returncode == 2, refused.stderr
        assert refused.stderr == (
            f"error: port {busy} on 127.0.0.1 is in use by another program:"
            " choose another PGFRAUD_PG_PORT\n"
        )
    finally:
        _pgfraud(env, "db", "stop")
