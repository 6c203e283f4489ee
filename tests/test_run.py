"""`pgfraud run` end to end, as `make run` starts it: local server, seed, serve, Ctrl-C.

Also the generator's `--to api` sink against the real server (granian), a busy port,
and SIGTERM.
"""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
import requests

from pgfraud.db.server import LocalServer

PGFRAUD = str(Path(sys.executable).with_name("pgfraud"))


def sigint_as_from_a_terminal() -> None:
    """preexec_fn: the child takes SIGINT as a terminal's child does. Run as
    a background job of a non-interactive shell (a CI script), the suite
    would hand it down ignored, and a test's Ctrl-C would not reach it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url: str, proc: subprocess.Popen, seconds: float = 90) -> requests.Response:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"pgfraud run exited early:\n{proc.stdout.read()}")
        try:
            return requests.get(url, timeout=2)
        except requests.ConnectionError:
            time.sleep(0.3)
    raise AssertionError(f"{url} did not answer in {seconds} s")


def start(env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [PGFRAUD, "run"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=sigint_as_from_a_terminal,
    )


def interrupt(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=30)
    return output


@pytest.fixture
def run_env(tmp_path: Path):
    # tmp_path may be unreachable for the server's user when we are root: the
    # server then keeps its data in /var/tmp (db/server.py), removed below.
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "PGFRAUD_API_TOKEN")}
    env.update(
        PGFRAUD_HOME=str(home),
        PORT=str(free_port()),
        PGFRAUD_SEED_TRANSACTIONS="2000",
    )
    yield env
    LocalServer(home).destroy()


def test_run_seeds_once_serves_and_stops_its_database(run_env, tmp_path):
    base = f"http://127.0.0.1:{run_env['PORT']}"
    proc = start(run_env)
    try:
        assert wait_for(f"{base}/health", proc).status_code == 200
        assert requests.get(f"{base}/is_fraud/1", timeout=5).status_code == 200
        url = subprocess.run(
            [PGFRAUD, "db", "url"], env=run_env, capture_output=True, text=True, check=True
        ).stdout.strip()
        assert url.startswith("postgresql://pgfraud_service:")
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT count(*) FROM transactions").fetchone()[0] == 2000
            conn.execute("SELECT * FROM is_fraud(1)").fetchall()
        # The seed's labels (which transactions are fraud) are the owner's
        # only, as the passwords beside them (break-it tester: they were 0644).
        labels = Path(run_env["PGFRAUD_HOME"]) / "labels.csv"
        assert labels.stat().st_size > 0
        assert stat.S_IMODE(labels.stat().st_mode) == 0o600

        # The generator's api sink, against the real server.
        result = subprocess.run(
            [
                PGFRAUD,
                "generate",
                "--to",
                "api",
                "--post-url",
                f"{base}/store_data",
                "--num-transactions",
                "50",
                "--accounts",
                "5",
                "--batch-size",
                "20",
                "--first-transaction-id",
                "900000",
                "--labels",
                str(tmp_path / "labels.csv"),
            ],
            env=run_env,
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stderr
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT count(*) FROM transactions").fetchone()[0] == 2050
    finally:
        output = interrupt(proc)
    assert proc.returncode == 0, output
    assert "seeding 2,000 generated transactions" in output
    # The first migrate says what it applied, function files too (as `pgfraud migrate`).
    migrated = next(line for line in output.splitlines() if line.startswith("migrated: "))
    assert " function files applied (" in migrated, migrated
    status = subprocess.run([PGFRAUD, "db", "status"], env=run_env, capture_output=True, text=True)
    assert status.returncode == 1, status.stdout  # stopped with the run that started it

    # A second run keeps the data and does not seed again.
    proc = start(run_env)
    try:
        assert wait_for(f"{base}/health", proc).status_code == 200
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT count(*) FROM transactions").fetchone()[0] == 2050
    finally:
        output = interrupt(proc)
    assert "seeding" not in output


def test_run_refuses_a_public_address_without_a_token(run_env):
    result = subprocess.run(
        [PGFRAUD, "run", "--host", "0.0.0.0"], env=run_env, capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "refusing to listen on 0.0.0.0 without PGFRAUD_API_TOKEN" in result.stderr


def children(pid: int) -> set[int]:
    """The live child processes of ``pid`` (Linux /proc)."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found.update(int(p) for p in text)
    return found


def test_run_refuses_a_busy_port_in_one_line_before_starting_anything(run_env):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [PGFRAUD, "run", "--port", str(port)], env=run_env, capture_output=True, text=True
        )
    assert result.returncode == 1
    assert result.stdout == ""  # no banner, no "migrated", no seeding
    assert result.stderr == (
        f"error: port {port} on 127.0.0.1 is already in use (another `pgfraud run`?); "
        "choose another with --port or PORT=...\n"
    )
    # The local PostgreSQL was never made, let alone started.
    assert not (Path(run_env["PGFRAUD_HOME"]) / "data").exists()


def test_run_serves_with_worker_processes_and_sigterm_stops_them_and_postgres(run_env):
    # On every interface, so with a token; the banner's URLs are the local ones.
    run_env = {
        **run_env,
        "PGFRAUD_WORKERS": "3",
        "PGFRAUD_THREADS": "4",
        "HOST": "0.0.0.0",
        "PGFRAUD_API_TOKEN": "a-token-for-this-test-only",
    }
    bearer = {"Authorization": "Bearer a-token-for-this-test-only"}
    base = f"http://127.0.0.1:{run_env['PORT']}"
    proc = start(run_env)
    try:
        assert wait_for(f"{base}/health", proc).status_code == 200
        # The master's children are its workers (PostgreSQL is daemonised by pg_ctl).
        deadline = time.monotonic() + 30
        while len(workers := children(proc.pid)) < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(workers) == 3, workers
        answers = [requests.get(f"{base}/is_fraud/1", headers=bearer, timeout=5) for _ in range(20)]
        assert {a.status_code for a in answers} == {200}
        assert answers[0].headers["Content-Type"] == "application/json"
        assert answers[0].json()["account_id"] == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, output
    assert "3 worker processes x 4 threads" in output
    port = run_env["PORT"]
    assert (
        f"pgfraud is serving on http://127.0.0.1:{port}  (Ctrl-C stops it);"
        f" listening on every interface (0.0.0.0), port {port}\n" in output
    )
    assert "Traceback" not in output
    for pid in workers:
        assert not Path(f"/proc/{pid}").exists() or b"Z" in Path(f"/proc/{pid}/stat").read_bytes()
    status = subprocess.run([PGFRAUD, "db", "status"], env=run_env, capture_output=True, text=True)
    assert status.returncode == 1, status.stdout
    assert status.stdout.startswith("local PostgreSQL: stopped\n")


def test_ctrl_c_on_the_process_group_stops_cleanly_and_ends_open_streams(run_env):
    # A terminal's Ctrl-C signals the whole process group (master and
    # workers): only the master acts on it; the workers, asked by the master,
    # end their event streams instead of being killed for holding them.
    base = f"http://127.0.0.1:{run_env['PORT']}"
    proc = subprocess.Popen(
        [PGFRAUD, "run"],
        env=run_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        preexec_fn=sigint_as_from_a_terminal,
    )
    streams = []
    try:
        assert wait_for(f"{base}/health", proc).status_code == 200
        for _ in range(3):
            stream = requests.get(f"{base}/alerts/stream", stream=True, timeout=(5, 30))
            assert stream.status_code == 200
            lines = stream.iter_lines(decode_unicode=True)
            assert next(lines) == "retry: 1000"
            streams.append((stream, lines))
        assert requests.get(f"{base}/is_fraud/1", timeout=5).status_code == 200
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, output
    for stream, lines in streams:
        # The rest of the first message (the stream's position), then the end.
        rest = list(lines)
        assert rest[0] == ": connected"
        assert rest[1].startswith("id: ") and rest[2:4] == [
            "event: position",
            f'data: {{"last_event_id": "{rest[1][4:]}"}}',
        ]
        assert rest[4:] == [""]
        stream.close()
    assert "Unexpected exit" not in output
    assert "Traceback" not in output
    assert output.endswith("\nstopping\n"), output


def test_workers_stop_when_the_master_is_killed(run_env):
    # SIGKILL leaves the master no chance to stop its workers: they notice
    # on their own and stop, so that none goes on serving the port.
    run_env = {**run_env, "PGFRAUD_WORKERS": "2"}
    base = f"http://127.0.0.1:{run_env['PORT']}"
    proc = start(run_env)
    try:
        assert wait_for(f"{base}/health", proc).status_code == 200
        deadline = time.monotonic() + 30
        while len(workers := children(proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(workers) == 2, workers
    finally:
        proc.kill()
        proc.communicate(timeout=30)
    deadline = time.monotonic() + 30
    while any(Path(f"/proc/{pid}").exists() for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers)
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{base}/health", timeout=5)
