"""The commands as users drive them: bounded numbers, one-line errors, CSV lines,
label counts, pacing by the clock, and where the local database lives.

Every command runs through click's CliRunner; database cases use the per-test
database of conftest.py (DATABASE_URL), never a mock.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import tracemalloc
from datetime import UTC, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner, Result

from pgfraud import db
from pgfraud.cli import main
from pgfraud.config import Database
from pgfraud.generator import Settings, generate, generate_transactions
from pgfraud.generator.sinks import Schedule, SinkError, to_api, to_insert

MAX_ID = 2**63 - 1
HEADER = "account_id,transaction_id,timestamp,amount\n"


def invoke(args: list[str], env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, args, env=env)


def assert_one_line_error(result: Result, exit_code: int, expected: str) -> None:
    """Exit code, no traceback, and the message on one line of stderr."""
    assert result.exit_code == exit_code, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    lines = [line for line in result.stderr.splitlines() if expected in line]
    assert lines, result.stderr


@pytest.fixture
def external(database: Database, monkeypatch: pytest.MonkeyPatch) -> Database:
    monkeypatch.setenv("DATABASE_URL", database.admin_url)
    monkeypatch.delenv("PGFRAUD_APP_DATABASE_URL", raising=False)
    return database


@pytest.fixture
def no_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder with no pgfraud database of its own, as the current directory."""
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("PGFRAUD_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


# -- numeric options: stated ranges, refused clearly ---------------------------


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (
            ["--batch-size", "9223372036854775808"],
            None,
            "Invalid value for '--batch-size': 9223372036854775808 is not in the range "
            "1<=x<=10000.",
        ),
        (
            ["--to", "insert", "--batch-size", "9223372036854775808"],
            None,
            "'--batch-size': 9223372036854775808 is not in the range 1<=x<=10000.",
        ),
        (
            [],
            {"PGFRAUD_BATCH_SIZE": "9223372036854775808"},
            "'--batch-size': 9223372036854775808 is not in the range 1<=x<=10000. "
            "(from the environment variable PGFRAUD_BATCH_SIZE)",
        ),
        (["--batch-size", "0"], None, "'--batch-size': 0 is not in the range 1<=x<=10000."),
        (["--to", "api", "--rate", "nan"], None, "'--rate': nan is not a finite number"),
        (["--to", "api", "--rate", "inf"], None, "'--rate': inf is not a finite number"),
        (
            ["--to", "api", "--rate", "0"],
            None,
            "'--rate': 0.0 is not in the range 0.0<x<=1000000.0.",
        ),
        (["--rate", "10"], None, "--rate is for --to api or --to insert"),
        (["--fraud-rate", "nan"], None, "'--fraud-rate': nan is not a finite number"),
        (
            ["--accounts", str(MAX_ID + 1)],
            None,
            f"'--accounts': {MAX_ID + 1} is not in the range 1<=x<={MAX_ID}.",
        ),
        (
            ["--num-transactions", str(MAX_ID + 1)],
            None,
            f"'--num-transactions': {MAX_ID + 1} is not in the range 1<=x<={MAX_ID}.",
        ),
        (["--seed", "-1"], None, f"'--seed': -1 is not in the range 0<=x<={MAX_ID}."),
        (
            ["--first-transaction-id", str(MAX_ID), "--num-transactions", "2"],
            None,
            "--first-transaction-id + --num-transactions passes 2^63-1",
        ),
    ],
)
def test_generate_refuses_numbers_out_of_range(
    tmp_path: Path, args: list[str], env: dict[str, str] | None, message: str
) -> None:
    labels = tmp_path / "labels.csv"
    result = CliRunner().invoke(
        generate,
        ["--to", "csv", "--output", str(tmp_path / "out.csv"), "--labels", str(labels), *args]
        if "--to" not in args
        else ["--labels", str(labels), "--database-url", "postgresql://nowhere/x", *args],
        env=env,
    )
    assert_one_line_error(result, 2, message)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--threads", "0"], "'--threads': 0 is not in the range 1<=x<=256."),
        (
            ["--seed-transactions", "-1"],
            f"'--seed-transactions': -1 is not in the range 0<=x<={MAX_ID}.",
        ),
        (["--seed-accounts", "0"], f"'--seed-accounts': 0 is not in the range 1<=x<={MAX_ID}."),
    ],
)
def test_run_refuses_numbers_out_of_range(no_database: Path, args: list[str], message: str) -> None:
    assert_one_line_error(invoke(["run", *args]), 2, message)
    assert list(no_database.iterdir()) == []  # refused before any database was made


def test_help_states_every_range() -> None:
    text = CliRunner().invoke(generate, ["--help"], terminal_width=200).output
    for option, shown in [
        ("--num-transactions", f"1<=x<={MAX_ID}"),
        ("--accounts", f"1<=x<={MAX_ID}"),
        ("--seed", f"0<=x<={MAX_ID}"),
        ("--fraud-rate", "0.0<=x<=1.0"),
        ("--batch-size", "1<=x<=10000"),
        ("--rate", "0.0<x<=1000000.0"),
        ("--first-transaction-id", f"0<=x<={MAX_ID}"),
    ]:
        block = text.split(f"  {option} ")[1].split("\n  -")[0]
        assert f"[{shown}" in " ".join(block.split()) or f"{shown}]" in block, block
    run_help = invoke(["run", "--help"]).output
    assert "1<=x<=256" in run_help


def test_accounts_cost_memory_only_when_used() -> None:
    # 10^8 accounts, one transaction: one profile, not 10^8 (was 8 s and 430 MB).
    tracemalloc.start()
    try:
        rows = list(generate_transactions(Settings(num_transactions=1, accounts=10**8)))
        big = list(generate_transactions(Settings(num_transactions=50, accounts=MAX_ID)))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [(t.transaction_id, t.account_id) for t in rows] == [(1, 1)]
    # At most one new account per transaction, in id order.
    assert {t.account_id for t in big} <= set(range(1, 51))
    assert peak < 2_000_000, peak


# -- --rate: transactions per second, spread evenly, by an injected clock -----


class FakeClock:
    """A clock that only moves when slept on."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def serve_recording(clock: FakeClock) -> tuple[ThreadingHTTPServer, list[tuple[float, int]]]:
    """An HTTP server that answers like /store_data and records (clock time, batch size)."""
    received: list[tuple[float, int]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.append((clock.now, len(body)))
            answer = json.dumps({"stored": len(body), "duplicates": 0}).encode()
            self.send_response(201)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, received


@pytest.mark.parametrize("batch_size", [1000, 3])
def test_api_rate_is_transactions_per_second_whatever_the_batch_size(batch_size: int) -> None:
    # 2000 transactions at 200/s: transaction i is due at i/200 s, so the last
    # leaves at 1999/200 = 9.995 s. Batches hold what falls due in 50 ms
    # (10), or fewer when --batch-size is smaller; each leaves when its last is due.
    clock = FakeClock()
    server, received = serve_recording(clock)
    try:
        counts = to_api(
            f"http://127.0.0.1:{server.server_port}/store_data",
            generate_transactions(Settings(num_transactions=2000, accounts=50)),
            batch_size,
            schedule=Schedule(200, clock=clock, sleep=clock.sleep),
        )
    finally:
        server.shutdown()
        server.server_close()
    size = min(batch_size, 10)
    batches = -(-2000 // size)
    assert counts == {"written": 2000, "stored": 2000, "duplicates": 0}
    assert [n for _, n in received] == [size] * (2000 // size) + (
        [2000 % size] if 2000 % size else []
    )
    expected = [1000.0 + min(size * (j + 1), 2000 - 0) / 200 - 1 / 200 for j in range(batches)]
    assert [t for t, _ in received] == pytest.approx(expected)
    assert clock.now - 1000.0 == pytest.approx(9.995)


def test_insert_rate_is_paced_too(database: Database) -> None:
    # 50 transactions at 100/s, batches of 5 (what falls due in 50 ms): ten
    # calls, the k-th when transaction 5k-1 is due, at (5k - 1) / 100 s.
    clock = FakeClock()
    with psycopg.connect(database.app_url) as conn:
        counts = to_insert(
            conn,
            generate_transactions(Settings(num_transactions=50, accounts=5)),
            1000,
            schedule=Schedule(100, clock=clock, sleep=clock.sleep),
        )
        conn.commit()
    assert counts == {"written": 50, "stored": 50, "duplicates": 0}
    assert clock.slept == pytest.approx([0.04] + [0.05] * 9)
    assert clock.now - 1000.0 == pytest.approx(0.49)


# -- CSV encoding errors on the right line ------------------------------------


def bad_byte_file(path: Path, bad_line: int, lines: int) -> Path:
    """A transactions CSV with a 0xff byte on ``bad_line`` (the header is line 1)."""
    rows = [HEADER.encode()]
    for n in range(2, lines + 1):
        row = f"{n},{n},2024-01-01T00:00:00Z,1.00\n".encode()
        if n == bad_line:
            row = row.replace(b"1.00", b"1.0\xff")
        rows.append(row)
    path.write_bytes(b"".join(rows))
    return path


@pytest.mark.parametrize(("bad_line", "lines"), [(3, 5), (3002, 4000)])
def test_load_names_the_line_of_a_bad_byte(external, tmp_path: Path, bad_line, lines) -> None:
    path = bad_byte_file(tmp_path / "tx.csv", bad_line, lines)
    if bad_line > 100:
        assert path.read_bytes().index(b"\xff") > 8192  # past the first read-ahead block
    result = invoke(["load", str(path)])
    assert_one_line_error(
        result, 2, f"line {bad_line}: the file is not UTF-8 text (byte 0xff at column "
    )
    with psycopg.connect(external.admin_url) as conn:
        assert conn.execute("SELECT count(*) FROM transactions").fetchone()[0] == 0


def test_load_counts_lines_inside_quoted_fields(external, tmp_path: Path) -> None:
    path = tmp_path / "tx.csv"
    path.write_bytes(
        b"account_id,transaction_id,timestamp,amount,note\n"
        b'1,1,2024-01-01T00:00:00Z,1.00,"two\nlines"\n'
        b"1,2,2024-01-01T00:00:00Z,1.00,caf\xe9\n"
    )
    assert_one_line_error(invoke(["load", str(path)]), 2, "line 4: the file is not UTF-8 text")


@pytest.mark.parametrize(("bad_line", "lines"), [(3, 5), (3002, 4000)])
def test_load_labels_names_the_line_of_a_bad_byte(
    external, tmp_path: Path, bad_line: int, lines: int
) -> None:
    rows = [b"transaction_id,scenario\n"]
    rows += [f"{n},card_testing\n".encode() for n in range(2, lines + 1)]
    rows[bad_line - 1] = b"7,card_\xc3testing\n"  # a cut-off two-byte sequence
    path = tmp_path / "labels.csv"
    path.write_bytes(b"".join(rows))
    result = invoke(["load-labels", str(path)])
    assert_one_line_error(result, 2, f"line {bad_line}: the file is not UTF-8 text (byte 0xc3")


def test_load_labels_refuses_a_row_with_more_fields_than_the_header(external, tmp_path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text("transaction_id,scenario\n1,card_testing\n2,card_testing,x\n")
    result = invoke(["load-labels", str(path)])
    assert result.exit_code == 2
    assert "at line(s) 3; nothing was stored" in result.output
    assert "line 3: has 3 fields where the header names 2" in result.output


# -- labels: how many match stored transactions --------------------------------


def test_load_labels_says_what_matches_and_what_is_replaced(external, tmp_path: Path) -> None:
    with psycopg.connect(external.app_url) as conn:
        db.store_transactions(
            conn,
            [
                {
                    "account_id": 1,
                    "transaction_id": n,
                    "timestamp": datetime(2024, 1, 1, n, tzinfo=UTC),
                    "amount": Decimal("1.00"),
                }
                for n in (1, 2)
            ],
        )
        conn.commit()
    first = tmp_path / "first.csv"
    first.write_text("transaction_id,scenario\n1,card_testing\n3,card_testing\n4,card_testing\n")
    result = invoke(["load-labels", str(first)])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[:2] == [
        "stored 3 labels: 3 new, 0 replaced",
        "1 match stored transactions, 2 do not",
    ]
    assert "`pgfraud evaluate` ignores them" in result.output
    second = tmp_path / "second.csv"
    second.write_text(
        "transaction_id,scenario\n1,card_testing\n2,card_testing\n3,account_takeover\n"
        "2,account_takeover\n"
    )
    result = invoke(["load-labels", str(second)])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[:2] == [
        "stored 3 labels: 1 new, 2 replaced, 1 with another scenario "
        "(1 repeated in the input: last wins)",
        "2 match stored transactions, 1 do not",
    ]
    with psycopg.connect(external.admin_url) as conn:
        assert conn.execute(
            "SELECT transaction_id, scenario FROM fraud_labels ORDER BY 1"
        ).fetchall() == [
            (1, "card_testing"),
            (2, "account_takeover"),
            (3, "account_takeover"),
            (4, "card_testing"),
        ]


# -- a folder with no database; appending after extreme stored data -----------


@pytest.mark.parametrize(
    "args",
    [
        ["generate", "--to", "copy", "--num-transactions", "5"],
        ["generate", "--to", "insert", "--num-transactions", "5"],
        ["load", "tx.csv"],
        ["load-labels", "labels.csv"],
        ["evaluate"],
    ],
)
def test_commands_on_data_say_what_to_do_in_a_folder_without_a_database(
    no_database: Path, args: list[str]
) -> None:
    (no_database / "tx.csv").write_text(HEADER + "1,1,2024-01-01T00:00:00Z,1.00\n")
    (no_database / "labels.csv").write_text("transaction_id,scenario\n1,card_testing\n")
    result = invoke(args)
    assert_one_line_error(
        result,
        1,
        f"error: no pgfraud database in {no_database / '.pgfraud'}: this command works on the "
        "database made by `make run`",
    )
    assert "password" not in result.output
    assert sorted(p.name for p in no_database.iterdir()) == ["labels.csv", "tx.csv"]


def store_one(url: str, transaction_id: int, timestamp: datetime) -> None:
    with psycopg.connect(url) as conn:
        db.store_transactions(
            conn,
            [
                {
                    "account_id": 1,
                    "transaction_id": transaction_id,
                    "timestamp": timestamp,
                    "amount": Decimal("1.00"),
                }
            ],
        )
        conn.commit()


def test_append_after_the_largest_id_speaks_of_the_stored_data(database, tmp_path) -> None:
    store_one(database.app_url, MAX_ID, datetime(2024, 1, 1, tzinfo=UTC))
    result = CliRunner().invoke(
        generate,
        ["--to", "copy", "--append", "--num-transactions", "10"]
        + ["--database-url", database.app_url, "--labels", str(tmp_path / "l.csv")],
    )
    assert_one_line_error(
        result,
        2,
        f"error: cannot append 10 transactions: the database already holds transaction id "
        f"{MAX_ID}, so only 0 ids are left below {MAX_ID}",
    )
    assert "--first-transaction-id" not in result.output
    assert not (tmp_path / "l.csv").exists()


def test_append_after_a_2099_timestamp_speaks_of_the_stored_data(database, tmp_path) -> None:
    store_one(database.app_url, 5, datetime(2099, 12, 31, 23, 59, 59, tzinfo=UTC))
    result = CliRunner().invoke(
        generate,
        ["--to", "copy", "--append", "--num-transactions", "10"]
        + ["--database-url", database.app_url, "--labels", str(tmp_path / "l.csv")],
    )
    assert_one_line_error(
        result,
        2,
        "error: cannot append 10 transactions: the latest stored transaction is at "
        "2099-12-31T23:59:59.000Z and appended ones come after it, so they would reach "
        "2100-01-01T00:00:00.000Z",
    )
    assert "--start" not in result.output and "earlier start" not in result.output
    with psycopg.connect(database.admin_url) as conn:
        assert conn.execute("SELECT count(*) FROM transactions").fetchone()[0] == 1


# -- the local database: status, stop, destroy wherever it lives ------------


def fake_cluster(home: Path, datadir: Path) -> None:
    """A stopped cluster's footprint: PG_VERSION in a data folder recorded away from home."""
    home.mkdir()
    datadir.mkdir()
    (datadir / "PG_VERSION").write_text("15\n")
    (home / "datadir").write_text(f"{datadir}\n")


def test_status_stop_destroy_follow_the_data_wherever_it_lives(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    home, datadir = tmp_path / "clone" / ".pgfraud", tmp_path / "elsewhere"
    (tmp_path / "clone").mkdir()
    monkeypatch.setenv("PGFRAUD_HOME", str(home))
    fake_cluster(home, datadir)
    result = invoke(["db", "status"])
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        "local PostgreSQL: stopped",
        f"  data:    {datadir}",
        f"  secrets: {home}",
    ]
    (home / "port").write_text("54321\n")  # chosen by the first start
    assert invoke(["db", "status"]).output.splitlines()[-1] == "  port:    54321 (127.0.0.1)"
    result = invoke(["db", "stop"])
    assert result.exit_code == 0
    assert result.output.strip() == f"the local PostgreSQL in {datadir} was not running"
    result = invoke(["db", "destroy", "--yes"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"deleted {home} and {datadir}"
    assert not home.exists() and not datadir.exists()
    result = invoke(["db", "stop"])
    assert result.output.strip() == f"no local database in {home}: nothing to stop"


def test_one_line_errors_for_files_and_connections(tmp_path, monkeypatch) -> None:
    # An unwritable labels path: an OSError, reported in one line.
    (tmp_path / "file").write_text("not a folder")
    result = CliRunner().invoke(
        generate,
        ["--to", "csv", "--output", str(tmp_path / "o.csv"), "--num-transactions", "3"]
        + ["--labels", str(tmp_path / "file" / "labels.csv")],
    )
    assert_one_line_error(result, 1, f"error: {tmp_path / 'file'}: File exists")
    # A server that does not answer.
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:p@127.0.0.1:1/x?connect_timeout=2")
    result = invoke(["migrate"])
    assert_one_line_error(result, 1, "error: cannot connect to the database")
    result = invoke(["evaluate", "--from", "yesterday"])
    assert_one_line_error(result, 2, "Invalid value for '--from'")


def test_api_answer_without_counts_is_an_error_not_all_stored() -> None:
    # A server that answers 200 "ok" (not pgfraud's /store_data): nothing is
    # counted as stored; the error names the batch and the URL.
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/store_data"
    try:
        with pytest.raises(SinkError) as info:
            to_api(url, generate_transactions(Settings(num_transactions=3, accounts=2)), 10)
    finally:
        server.shutdown()
        server.server_close()
    assert info.value.message == (
        f"batch 1 (transactions 1..3): {url} answered HTTP 200 without pgfraud's counts"
        " (stored, duplicates): is it pgfraud's /store_data?"
    )


PGFRAUD = str(Path(sys.executable).parent / "pgfraud")


def test_sigterm_stops_generate_and_removes_its_unfinished_files(tmp_path: Path) -> None:
    """SIGTERM (a container stopping, `kill`) mid-way through writing a CSV
    and its labels: exit 143 and neither file nor its temporary is left."""
    proc = subprocess.Popen(
        [
            PGFRAUD,
            "generate",
            "--to",
            "csv",
            "--output",
            "t.csv",
            "--labels",
            "l.csv",
            "--num-transactions",
            "50000000",
        ],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not list(tmp_path.glob(".t.csv.*.tmp")) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(list(tmp_path.glob(".*.tmp"))) == 2, "generate never started writing"
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143
    assert "Traceback" not in stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_migrate_whose_session_the_server_ends_says_so_in_one_line(database: Database) -> None:
    """`pgfraud migrate` waiting for another migrator when its session is ended
    (pg_terminate_backend; the same AdminShutdown as `db stop` during a
    migrate): one line naming the lost connection, exit 1. Before, it was
    "internal error (AdminShutdown: ...)", as for a bug."""
    from pgfraud.db.migrate import MIGRATION_LOCK_KEY

    env = {k: v for k, v in os.environ.items() if not k.startswith("PGFRAUD")}
    env["DATABASE_URL"] = database.admin_url
    first = psycopg.connect(database.admin_url, autocommit=True)
    first.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
    proc = subprocess.Popen(
        [PGFRAUD, "migrate"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        waiting = None
        for _ in range(6000):  # bounded by a count: until the migrator waits on the lock
            waiting = first.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                " AND wait_event_type = 'Lock' AND wait_event = 'advisory'"
            ).fetchone()
            if waiting or proc.poll() is not None:
                break
            time.sleep(0.01)
        assert waiting, proc.communicate(timeout=60)
        first.execute("SELECT pg_terminate_backend(%s)", (waiting[0],))
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        first.close()
    assert proc.returncode == 1, stderr
    assert stderr.splitlines() == [
        "error: the connection to the database was lost (terminating connection due to"
        " administrator command); what it had not committed was rolled back: try again"
    ]


def test_a_closed_stdout_pipe_ends_quietly(tmp_path: Path) -> None:
    """`pgfraud generate --to csv | head -1`: the header reaches the reader;
    then exit 141 (as a program killed by SIGPIPE) with nothing on stderr."""
    proc = subprocess.Popen(
        [PGFRAUD, "generate", "--to", "csv", "--labels", "l.csv", "--num-transactions", "2000000"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdout.readline() == b"account_id,transaction_id,timestamp,amount,merchant_id\n"
        proc.stdout.close()
        stderr = proc.stderr.read()
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 141
    assert stderr == b""
    assert not (tmp_path / "l.csv").exists()


class _Recorder(BaseHTTPRequestHandler):
    """A /store_data stand-in: answers pgfraud's counts, or 409 for the batch
    whose first id is in ``refuse``; records how many requests were open at
    once. A request waits (up to 5 s) for a second one to arrive, so that
    two in flight show as 2 and one at a time as 1."""

    lock = threading.Lock()
    open_now = 0
    most_open = 0
    arrived = threading.Event()
    refuse: set[int] = set()

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        batch = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        cls = type(self)
        with cls.lock:
            cls.open_now += 1
            cls.most_open = max(cls.most_open, cls.open_now)
            if cls.open_now > 1:
                cls.arrived.set()
        cls.arrived.wait(timeout=5)
        if batch[0]["transaction_id"] in cls.refuse:
            status, body = 409, {"error": {"code": "transaction_conflict"}}
        else:
            status, body = 201, {"stored": len(batch), "duplicates": 0}
        data = json.dumps(body).encode()
        with cls.lock:
            cls.open_now -= 1
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def recorder():
    class Handler(_Recorder):
        lock = threading.Lock()
        arrived = threading.Event()
        refuse: set[int] = set()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield Handler, f"http://127.0.0.1:{server.server_port}/store_data"
    finally:
        server.shutdown()
        server.server_close()


def test_api_keeps_two_batches_in_flight_when_unpaced(recorder) -> None:
    handler, url = recorder
    transactions = generate_transactions(Settings(num_transactions=25, accounts=3))
    counts = to_api(url, transactions, 10)
    assert counts == {"written": 25, "stored": 25, "duplicates": 0}
    assert handler.most_open == 2


def test_api_sends_one_batch_at_a_time_when_paced_or_asked(recorder) -> None:
    handler, url = recorder
    handler.arrived.set()  # nobody waits: one at a time is the point here
    transactions = generate_transactions(Settings(num_transactions=25, accounts=3))
    assert to_api(url, transactions, 10, in_flight=1)["stored"] == 25
    transactions = generate_transactions(Settings(num_transactions=25, accounts=3))
    assert to_api(url, transactions, 10, rate=10_000)["stored"] == 25
    assert handler.most_open == 1


def test_api_failure_says_which_batches_stay_stored_with_two_in_flight(recorder) -> None:
    # Ids 1..30 in batches of 10: batch 2 (11..20) is refused while batch 3
    # (21..30), sent meanwhile, is stored.
    handler, url = recorder
    handler.refuse = {11}
    with pytest.raises(SinkError) as info:
        to_api(url, generate_transactions(Settings(num_transactions=30, accounts=3)), 10)
    assert info.value.message == (
        f"batch 2 (transactions 11..20) refused by {url}: HTTP 409: "
        '{"code": "transaction_conflict"}; batch 1 was sent (10 transactions) and stays stored;'
        " batch 3, sent meanwhile, was stored too"
        " (sending again is harmless: stored ones count as duplicates)"
    )
