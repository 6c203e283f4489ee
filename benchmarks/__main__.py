"""`make bench`: pgfraud's data paths side by side with their ceiling and a floor.

On BENCH_N generated transactions (default 1,000,000; BENCH_N/100 accounts)
in a throwaway PostgreSQL of its own (the project's local server in a
temporary folder, removed at the end), it measures:

- the ceiling: ``psql \\copy`` of the same CSV into the same table and
  indexes; the SQL functions alone (pgbench, prepared statements, 1 and 8
  clients; rates, and p50/p99 from pgbench's per-transaction log); Flask
  alone on the same HTTP server (benchmarks/flask_ceiling.py: the route
  of ``GET /is_fraud`` answering a constant body, no database);
- pgfraud: ``generate --to copy``, ``pgfraud load`` of the CSV, ``generate
  --to api`` (batched POSTs), single-transaction POSTs at 8 connections,
  ``GET /is_fraud`` (1 connection for latency, 8 and 32 for throughput),
  all against the server ``pgfraud run`` starts (granian), a full
  ``score_transactions()`` pass (the live rules: a read of the persisted
  alerts) and the same pass from scratch (``p_recompute``);
- the floor: benchmarks/peer.py (Flask's development server, a connection
  per request, one INSERT + commit per row, rules in Python);
- pandas: the same rules over all rows fed by ``COPY … TO STDOUT``
  (benchmarks/pandas_rules.py), checked to count the same events;
- growth: load and batch scoring at 100,000 rows and BENCH_N (BENCH_SIZES
  adds sizes, e.g. ``BENCH_SIZES=100000,1000000,10000000``); peak RSS of
  the generator, the loader and the server.

``BENCH_ONLY=speed`` measures only issue 17's two speed rows (the single POST
against ``store_transactions`` alone, ``GET /is_fraud`` against Flask alone
and the route's query alone) on BENCH_N (default there 100,000) rows: a
few minutes (docs/performance.md). ``BENCH_PORTS=LOW-HIGH`` takes the
servers' ports from that range.

Each figure is measured BENCH_REPEAT times (default 3): the table shows the
median and the spread (min..max); everything goes to bench-results.json.
HTTP load comes from wrk (Debian's package; ``make bench`` installs it when
run as root), only to 127.0.0.1; every loop is bounded by a count or a
duration. Nothing is asserted: this is a measurement, not a test.
"""

from __future__ import annotations

import json
import os
import platform
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg
import requests

from pgfraud import db
from pgfraud.cli import prepare
from pgfraud.config import Database
from pgfraud.db.server import LocalServer, find_bindir
from pgfraud.serve import default_workers

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
PGFRAUD = str(BIN / "pgfraud")
HTTP_SECONDS = int(os.environ.get("BENCH_HTTP_SECONDS", "8"))
# The rules benchmarks/pandas_rules.py implements.
PANDAS_RULES = ("below_average", "amount_spike", "large_amount", "rapid_succession", "velocity")
# Those of them enabled, with their live parameters, as score_transactions' p_rules.
FIVE = (
    "(SELECT jsonb_object_agg(r.rule_id, r.parameters) FROM rules AS r"
    " WHERE r.enabled AND r.rule_id = ANY(%s))"
)


class Results:
    """Figures by name: every run, then median and spread; a table at the end."""

    def __init__(self) -> None:
        self.figures: dict[str, dict[str, Any]] = {}
        self.order: list[str] = []

    def add(self, name: str, value: float, unit: str, **extra: Any) -> None:
        if name not in self.figures:
            self.figures[name] = {"unit": unit, "runs": [], **extra}
            self.order.append(name)
        self.figures[name]["runs"].append(value)
        self.figures[name].update(extra)
        runs = self.figures[name]["runs"]
        self.figures[name].update(median=statistics.median(runs), min=min(runs), max=max(runs))
        print(f"  {name}: {value:,.2f} {unit}", flush=True)

    def median(self, name: str) -> float | None:
        figure = self.figures.get(name)
        return figure["median"] if figure else None


# BENCH_PORTS=5130-5139: take the servers' ports from that range (one a
# server, in turn) instead of any free one, on a machine where ports are shared out.
_LOW, _, _HIGH = os.environ.get("BENCH_PORTS", "").partition("-")
_PORTS = list(range(int(_LOW), int(_HIGH) + 1)) if _LOW and _HIGH else []


def free_port() -> int:
    if _PORTS:
        return _PORTS.pop(0)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_measured(args: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """Run a command; (seconds, its peak RSS in MiB) via os.wait4."""
    start = time.perf_counter()
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args[:3])} failed ({proc.returncode}):\n{err[-2000:]!r}")
    return elapsed, usage.ru_maxrss / 1024


def wait_http(url: str, proc: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited early: {proc.stderr.read() if proc.stderr else ''}")
        try:
            requests.get(url, timeout=2)
            return
        except requests.ConnectionError:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not answer in {seconds} s")


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def wrk(url: str, connections: int, script: Path, seconds: int, *args: str) -> dict[str, float]:
    """Run wrk (threads = min(connections, 2)); requests/s, p50/p99 in ms, errors."""
    threads = str(min(connections, 2))
    out = subprocess.run(
        [
            "wrk",
            "-t",
            threads,
            "-c",
            str(connections),
            "-d",
            f"{seconds}s",
            "--latency",
            "-s",
            str(script),
            url,
            *(["--", *args] if args else []),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
    ).stdout
    result = {"rate": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))}
    for pct in ("50", "99"):
        m = re.search(rf"\s{pct}(?:\.000)?%\s+([\d.]+)(us|ms|s)\b", out)
        result[f"p{pct}"] = float(m.group(1)) * _UNITS[m.group(2)]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    result["non_2xx"] = float(bad.group(1)) if bad else 0.0
    if errors:
        result["socket_errors"] = errors.group(0)  # type: ignore[assignment]
    return result


def pgbench(url: str, script: str, clients: int, seconds: int, work: Path) -> dict[str, float]:
    """``script`` run by pgbench (prepared statements): transactions per
    second, and p50/p99 latency in ms from its per-transaction log."""
    path = work / f"pgbench-{abs(hash(script))}.sql"
    path.write_text(script)
    logs = work / f"log-{abs(hash(script))}-{clients}"
    shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir()
    out = subprocess.run(
        [
            "pgbench",
            "-n",
            "-M",
            "prepared",
            "-c",
            str(clients),
            "-j",
            str(min(clients, 2)),
            "-T",
            str(seconds),
            "--log",
            "--log-prefix",
            str(logs / "pgbench"),
            "-f",
            str(path),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
    ).stdout
    # Each log line: client, transaction number, latency in microseconds, ...
    latencies = sorted(
        int(line.split()[2]) for log in logs.iterdir() for line in log.read_text().splitlines()
    )
    shutil.rmtree(logs, ignore_errors=True)
    return {
        "rate": float(re.search(r"tps = ([\d.]+)", out).group(1)),
        "p50": latencies[len(latencies) // 2] / 1000,
        "p99": latencies[min(len(latencies) - 1, len(latencies) * 99 // 100)] / 1000,
    }


IS_FRAUD_LUA = """
local accounts = 0
function init(args) accounts = tonumber(args[1]); math.randomseed(os.time() + math.random(1000)) end
request = function()
  return wrk.format("GET", "/is_fraud/" .. math.random(1, accounts))
end
"""

POST_LUA = """
-- One new transaction per request, in time order per account as a card
-- network sends them: thread t of n takes accounts t+1, t+1+n, ... in turn,
-- each request one second after the thread's previous one (args: first
-- transaction id, accounts, first epoch second).
local counter = 0
local next_thread = 0
local threads = 1
local base = 0
local accounts = 0
local start = 0
function setup(thread) thread:set("thread_number", next_thread); next_thread = next_thread + 1 end
function init(args)
  base = tonumber(args[1]) + thread_number * 1000000000
  accounts = tonumber(args[2])
  start = tonumber(args[3])
  threads = tonumber(args[4])
end
request = function()
  counter = counter + 1
  local body = string.format(
    '{"account_id": %d, "transaction_id": %d, '
    .. '"timestamp": "%s.%03dZ", "amount": "12.34"}',
    ((counter * threads + thread_number) % accounts) + 1, base + counter,
    os.date("!%Y-%m-%dT%H:%M:%S", start + counter), thread_number)
  return wrk.format("POST", "/store_data", {["Content-Type"] = "application/json"}, body)
end
"""


def rss_of_tree(pid: int) -> float:
    """Peak RSS (VmHWM) of a process and its children, MiB."""
    total = 0
    pids = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        pids += [int(p) for p in (task / "children").read_text().split()]
    for p in pids:
        try:
            status = Path(f"/proc/{p}/status").read_text()
        except OSError:
            continue
        m = re.search(r"VmHWM:\s+(\d+) kB", status)
        total += int(m.group(1)) if m else 0
    return total / 1024


def sql_alone(results: Results, app: str, accounts: int, repeat: int, work: Path) -> None:
    """The SQL functions alone, run by pgbench (prepared statements) as the
    service's role: ``is_fraud`` (1 and 8 clients), the very query ``GET
    /is_fraud`` sends (its first page of events as JSON, db._EVENTS_JSON: S
    of the is_fraud target) and ``store_transactions`` of one new row (8
    clients; what a single POST runs, answered with alerts and decision)."""
    is_fraud_sql = f"\\set a random(1, {accounts})\nSELECT * FROM is_fraud(:a);\n"
    page_sql = f"\\set a random(1, {accounts})\n" + (
        db._EVENTS_JSON.strip()
        .replace("%(account)s", ":a")
        .replace("%(limit)s", "1000")  # the route's default page
        .replace("%(after_ts)s", "NULL::timestamptz")
        .replace("%(after_transaction)s", "NULL::bigint")
        .replace("%(after_rule)s", "NULL::text")
        # pgbench reads ":MI" and ":SS" inside the literal as its variables:
        # the same constant written around them (folded when planned).
        .replace('HH24:MI:SS.MS"Z"\'', "HH24' || chr(58) || 'MI' || chr(58) || 'SS.MS\"Z\"'")
        + ";\n"
    )
    store_sql = (
        "\\set id random(3000000000000, 3999999999999)\n"
        f"\\set a random(1, {accounts})\n"
        "SELECT * FROM store_transactions(json_build_array(json_build_object("
        "'account_id', :a::bigint, 'transaction_id', :id::bigint,"
        # New arrivals: after the stored data (2024) and later each time
        # (a fixed time would make most stores late arrivals at one
        # instant), on 2025-01-01, before the HTTP POSTs (2025-06) and
        # the API ingest (2026 on), so that those are arrivals too.
        " 'timestamp', date_trunc('milliseconds', timestamptz '2025-01-01 00:00:00+00'"
        " + (clock_timestamp() - pg_postmaster_start_time()))::text,"
        " 'amount', '12.34'::text))::jsonb);\n"
    )
    for _ in range(repeat):
        one = pgbench(app, is_fraud_sql, 1, 5, work)
        results.add("SQL is_fraud, 1 client", one["rate"], "calls/s")
        eight = pgbench(app, is_fraud_sql, 8, 5, work)
        results.add("SQL is_fraud, 8 clients", eight["rate"], "calls/s")
        results.add("SQL is_fraud p99, 8 clients", eight["p99"], "ms")
        page = pgbench(app, page_sql, 8, 5, work)
        results.add("SQL GET /is_fraud's query (JSON page), 8 clients", page["rate"], "calls/s")
        store = pgbench(app, store_sql, 8, 5, work)
        results.add("SQL store_transactions (1 row), 8 clients", store["rate"], "calls/s")
        results.add("SQL store_transactions (1 row) p50, 8 clients", store["p50"], "ms")
        results.add("SQL store_transactions (1 row) p99, 8 clients", store["p99"], "ms")
    with db.connect(app, autocommit=True) as conn:
        rng = random.Random(7)
        latencies = []
        for _ in range(2000):
            account = rng.randint(1, accounts)
            start = time.perf_counter()
            conn.execute("SELECT * FROM is_fraud(%s)", (account,), prepare=True).fetchall()
            latencies.append((time.perf_counter() - start) * 1000)
        results.add("SQL is_fraud p50, 1 client", statistics.median(latencies), "ms")


def start_pgfraud(env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    """The server as ``pgfraud run`` starts it (granian), answering; (process, URL)."""
    port = free_port()
    http = f"http://127.0.0.1:{port}"
    server_env = {**env, "PORT": str(port), "PGFRAUD_SEED_TRANSACTIONS": "0"}
    proc = subprocess.Popen(
        [PGFRAUD, "run"],
        env=server_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_http(f"{http}/health", proc)
    return proc, http


def write_scripts(base: Path) -> dict[str, Path]:
    scripts = {"is_fraud": base / "is_fraud.lua", "post": base / "post.lua"}
    scripts["is_fraud"].write_text(IS_FRAUD_LUA)
    scripts["post"].write_text(POST_LUA)
    return scripts


def pgfraud_http_rows(
    results: Results, http: str, scripts: dict[str, Path], accounts: int, r: int, full: bool
) -> None:
    """Run ``r`` of pgfraud's HTTP figures: ``GET /is_fraud`` at 8 connections
    (with ``full``, also 1 and 32) and single-transaction POSTs, each answered
    with its alerts and decision, at 8 connections."""
    if full:
        one = wrk(http, 1, scripts["is_fraud"], HTTP_SECONDS, str(accounts))
        results.add("HTTP is_fraud p50, 1 connection", one["p50"], "ms")
        results.add("HTTP is_fraud p99, 1 connection", one["p99"], "ms")
    for c in (8, 32) if full else (8,):
        out = wrk(http, c, scripts["is_fraud"], HTTP_SECONDS, str(accounts))
        results.add(f"HTTP is_fraud, {c} connections", out["rate"], "req/s", non_2xx=out["non_2xx"])
        results.add(f"HTTP is_fraud p99, {c} connections", out["p99"], "ms")
    out = wrk(
        http,
        8,
        scripts["post"],
        HTTP_SECONDS,
        str(4_000_000_000_000 + r * 10**11),
        str(accounts),
        # After the generated rows (2024), before the API ingest
        # below (2026 on), each run after the one before.
        str(1_748_736_000 + r * 10**6),  # 2025-06-01T00:00:00Z
        "2",  # wrk's threads at 8 connections (see wrk())
    )
    results.add(
        "HTTP POST 1 transaction, 8 connections",
        out["rate"],
        "req/s",
        non_2xx=out["non_2xx"],
    )
    results.add("HTTP POST p50, 8 connections", out["p50"], "ms")
    results.add("HTTP POST p99, 8 connections", out["p99"], "ms")


def flask_alone_rows(
    results: Results,
    scripts: dict[str, Path],
    accounts: int,
    repeat: int,
    procs: list[subprocess.Popen],
) -> None:
    """F of the is_fraud target: Flask alone (benchmarks/flask_ceiling.py, a
    constant JSON body, no database) on the server ``pgfraud run`` uses, with
    its workers and threads, at 8 connections."""
    port = free_port()
    ceiling = subprocess.Popen(
        [
            str(BIN / "granian"),
            "--interface",
            "wsgi",
            "--workers",
            str(default_workers()),
            "--blocking-threads",
            "32",  # `pgfraud run`'s default --threads
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "benchmarks.flask_ceiling:app",
        ],
        cwd=HERE.parent,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    procs.append(ceiling)
    ceiling_url = f"http://127.0.0.1:{port}"
    wait_http(f"{ceiling_url}/is_fraud/1", ceiling)
    for _ in range(repeat):
        out = wrk(ceiling_url, 8, scripts["is_fraud"], HTTP_SECONDS, str(accounts))
        results.add("Flask alone (constant JSON, no database), 8 connections", out["rate"], "req/s")
    ceiling.terminate()
    ceiling.wait(timeout=30)


def speed_only() -> None:
    """``BENCH_ONLY=speed``: only issue 17's two speed rows, on BENCH_N
    generated transactions (default here 100,000) in a throwaway PostgreSQL:
    the SQL alone (pgbench: GET /is_fraud's query, store_transactions of one
    row), pgfraud's HTTP (GET /is_fraud and a single POST answered with its
    decision, 8 connections), then Flask alone; BENCH_REPEAT rounds of each.
    A few minutes instead of the full bench's hour."""
    n = int(os.environ.get("BENCH_N", "100000"))
    repeat = int(os.environ.get("BENCH_REPEAT", "3"))
    accounts = max(1, n // 100)
    if shutil.which("wrk") is None:
        raise SystemExit("BENCH_ONLY=speed needs wrk (`apt-get install wrk` as root)")
    results = Results()
    base = Path(tempfile.mkdtemp(prefix="pgfraud-bench-", dir="/var/tmp"))
    os.chmod(base, 0o755)
    server = LocalServer(base / "home")
    if _PORTS:
        (base / "home").mkdir(parents=True, exist_ok=True)
        (base / "home" / "port").write_text(f"{free_port()}\n")
    procs: list[subprocess.Popen] = []
    started = time.monotonic()
    try:
        server.start()
        database = Database(server.url(admin=True), server.url(), server)
        prepare(database)
        admin, app = database.admin_url, database.app_url
        env = {k: v for k, v in os.environ.items() if not k.startswith("PGFRAUD")}
        env.update(DATABASE_URL=admin, PGFRAUD_APP_DATABASE_URL=app, PGFRAUD_MIX="legacy")
        psql = shutil.which("psql") or str(find_bindir() / "psql")
        pg_version = subprocess.run(
            [psql, admin, "-Atc", "SHOW server_version"], capture_output=True, text=True
        ).stdout.strip()
        print(f"pgfraud bench, speed rows: {n:,} transactions over {accounts:,} accounts")
        run_measured(
            [
                PGFRAUD,
                "generate",
                "--to",
                "copy",
                "--num-transactions",
                str(n),
                "--accounts",
                str(accounts),
                "--seed",
                "1",
                "--labels",
                str(base / "l.csv"),
            ],
            env,
        )
        with db.connect(admin, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
        work = base / "scripts"
        work.mkdir()
        sql_alone(results, app, accounts, repeat, work)
        proc, http = start_pgfraud(env)
        procs.append(proc)
        scripts = write_scripts(base)
        for r in range(repeat):
            pgfraud_http_rows(results, http, scripts, accounts, r, full=False)
        proc.terminate()
        proc.wait(timeout=60)
        flask_alone_rows(results, scripts, accounts, repeat, procs)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
        server.destroy()
        shutil.rmtree(base, ignore_errors=True)
    report(results, n, accounts, repeat, pg_version, time.monotonic() - started, True)


def main() -> None:
    if os.environ.get("BENCH_ONLY") == "speed":
        speed_only()
        return
    n = int(os.environ.get("BENCH_N", "1000000"))
    repeat = int(os.environ.get("BENCH_REPEAT", "3"))
    sizes = sorted({int(s) for s in os.environ.get("BENCH_SIZES", f"100000,{n}").split(",")} | {n})
    sizes = [s for s in sizes if s <= n]
    accounts = max(1, n // 100)
    have_wrk = shutil.which("wrk") is not None
    results = Results()
    base = Path(tempfile.mkdtemp(prefix="pgfraud-bench-", dir="/var/tmp"))
    os.chmod(base, 0o755)
    server = LocalServer(base / "home")
    procs: list[subprocess.Popen] = []
    started = time.monotonic()
    try:
        server.start()
        database = Database(server.url(admin=True), server.url(), server)
        prepare(database)
        admin, app = database.admin_url, database.app_url
        env = {k: v for k, v in os.environ.items() if not k.startswith("PGFRAUD")}
        # The legacy mix: the published figures (docs/performance.md) were
        # measured on it, and scoring costs depend on how much fraud there is.
        env.update(DATABASE_URL=admin, PGFRAUD_APP_DATABASE_URL=app, PGFRAUD_MIX="legacy")
        psql = shutil.which("psql") or str(find_bindir() / "psql")
        pg_version = subprocess.run(
            [psql, admin, "-Atc", "SHOW server_version"], capture_output=True, text=True
        ).stdout.strip()

        def sql(statement: str) -> None:
            with db.connect(admin, autocommit=True) as conn:
                conn.execute(statement)

        def empty() -> None:
            sql("TRUNCATE transactions")  # its trigger empties alerts and account_states

        csv = {size: base / f"tx-{size}.csv" for size in sizes}
        print(f"pgfraud bench: {n:,} transactions over {accounts:,} accounts, {repeat} runs each")

        # -- the generator alone, and the CSV every load reads ----------------
        for size in sizes:
            seconds, rss = run_measured(
                [
                    PGFRAUD,
                    "generate",
                    "--to",
                    "csv",
                    "--output",
                    str(csv[size]),
                    "--num-transactions",
                    str(size),
                    "--accounts",
                    str(max(1, size // 100)),
                    "--seed",
                    "1",
                    "--labels",
                    str(base / f"labels-{size}.csv"),
                ],
                env,
            )
            results.add(f"generate --to csv {size:,}", size / seconds, "rows/s")
            results.add(f"RSS generate {size:,}", rss, "MiB")

        # The ceiling: the same table and indexes without pgfraud's triggers
        # (scoring on arrival), filled by PostgreSQL's own COPY.
        sql("CREATE TABLE copy_ceiling (LIKE transactions INCLUDING ALL)")

        def psql_copy(path: Path, table: str = "copy_ceiling") -> float:
            if table == "transactions":
                empty()
            else:
                sql(f"TRUNCATE {table}")
            start = time.perf_counter()
            columns = "account_id, transaction_id, ts, amount, merchant_id"
            command = f"\\copy {table} ({columns}) FROM '{path}' CSV HEADER"
            subprocess.run([psql, admin, "-qc", command], check=True)
            return time.perf_counter() - start

        def batch_connection() -> psycopg.Connection:
            """The service role without its statement timeout: a whole-table
            pass at 10M rows runs for minutes."""
            conn = db.connect(app, autocommit=True)
            conn.execute("SET statement_timeout = 0")
            return conn

        def score(recompute: bool = False) -> tuple[float, int]:
            """score_transactions() with the live rules: a read of the alerts
            scoring on arrival keeps; with ``recompute``, every rule from
            scratch (the rule code's own cost)."""
            with batch_connection() as conn:
                start = time.perf_counter()
                count = conn.execute(
                    "SELECT count(*) FROM score_transactions(NULL, NULL, NULL, %s)", (recompute,)
                ).fetchone()[0]
                return time.perf_counter() - start, count

        # -- growth: load and batch scoring at each size ----------------------
        for size in sizes:
            if size == n:
                continue  # measured below with the repeats
            seconds = psql_copy(csv[size])
            results.add(f"psql \\copy {size:,}", size / seconds, "rows/s")
            empty()
            seconds, rss = run_measured([PGFRAUD, "load", str(csv[size])], env)
            results.add(f"pgfraud load {size:,}", size / seconds, "rows/s")
            results.add(f"RSS pgfraud load {size:,}", rss, "MiB")
            sql("VACUUM ANALYZE transactions")
            results.add(f"score_transactions {size:,}", score()[0], "s")
            results.add(f"score_transactions from scratch {size:,}", score(True)[0], "s")

        # -- bulk load at n: ceiling and pgfraud, repeated ---------------------
        for _ in range(repeat):
            results.add(f"psql \\copy {n:,}", n / psql_copy(csv[n]), "rows/s")
            seconds = psql_copy(csv[n], "transactions")
            results.add(
                f"psql \\copy into transactions (scored on arrival) {n:,}", n / seconds, "rows/s"
            )
            empty()
            seconds, rss = run_measured([PGFRAUD, "load", str(csv[n])], env)
            results.add(f"pgfraud load {n:,}", n / seconds, "rows/s")
            results.add(f"RSS pgfraud load {n:,}", rss, "MiB")
            empty()
            seconds, rss = run_measured(
                [
                    PGFRAUD,
                    "generate",
                    "--to",
                    "copy",
                    "--num-transactions",
                    str(n),
                    "--accounts",
                    str(accounts),
                    "--seed",
                    "1",
                    "--labels",
                    str(base / "l.csv"),
                ],
                env,
            )
            results.add(f"generate --to copy {n:,}", n / seconds, "rows/s")
            results.add(f"RSS generate --to copy {n:,}", rss, "MiB")
        # Loading the same file again: every row a duplicate (the staging path).
        seconds, rss = run_measured([PGFRAUD, "load", str(csv[n])], env)
        results.add(f"pgfraud load again (all duplicates) {n:,}", n / seconds, "rows/s")
        sql("DROP TABLE copy_ceiling")
        sql("VACUUM ANALYZE")

        # -- batch scoring: SQL and pandas ------------------------------------
        from benchmarks.pandas_rules import score as pandas_score

        with batch_connection() as conn:
            rules = dict(
                conn.execute("SELECT rule_id, parameters FROM rules WHERE enabled").fetchall()
            )
            # pandas has the five rules of the seed's brief; compare it with
            # score_transactions given exactly those (a backtest's p_rules).
            rules = {k: v for k, v in rules.items() if k in PANDAS_RULES}
            by_rule = dict(
                conn.execute(
                    f"SELECT rule_id, count(*) FROM score_transactions(NULL, NULL, {FIVE})"
                    " GROUP BY rule_id",
                    (list(PANDAS_RULES),),
                ).fetchall()
            )
        # -- a rule change: re-scores the stored history (set_rule's trigger) --
        with db.connect(admin, autocommit=True) as conn:
            live = conn.execute(
                "SELECT parameters -> 'max_transactions' FROM rules WHERE rule_id = 'velocity'"
            ).fetchone()[0]
            for candidate in (live + 1, live):  # change, then back to the live value
                start = time.perf_counter()
                conn.execute(
                    "SELECT set_rule('velocity', NULL, jsonb_build_object('max_transactions', %s))",
                    (candidate,),
                )
                results.add(f"rule change (set_rule) {n:,}", time.perf_counter() - start, "s")
        for _ in range(repeat):
            seconds, events = score()
            results.add(f"score_transactions {n:,}", seconds, "s", events=events)
            seconds, recomputed = score(True)
            results.add(
                f"score_transactions from scratch {n:,}",
                seconds,
                "s",
                events=recomputed,
                same_events=recomputed == events,
            )
            with batch_connection() as conn:
                # The five rules, live: read from the alerts; then from scratch.
                for recompute, name in ((False, ""), (True, " from scratch")):
                    start = time.perf_counter()
                    conn.execute(
                        f"SELECT count(*) FROM score_transactions(NULL, NULL, {FIVE}, %s)",
                        (list(PANDAS_RULES), recompute),
                    ).fetchone()
                    results.add(
                        f"score_transactions, pandas's five rules{name} {n:,}",
                        time.perf_counter() - start,
                        "s",
                    )
                start = time.perf_counter()
                counted = pandas_score(conn, rules)
                results.add(
                    f"pandas rules {n:,}",
                    time.perf_counter() - start,
                    "s",
                    same_events=counted == by_rule,
                )

        # -- the SQL functions alone ------------------------------------------
        work = base / "scripts"
        work.mkdir()
        sql_alone(results, app, accounts, repeat, work)

        # -- pgfraud's HTTP server, as `pgfraud run` starts it ------------------
        proc, http = start_pgfraud(env)
        procs.append(proc)
        scripts = write_scripts(base)
        if have_wrk:
            for r in range(repeat):
                pgfraud_http_rows(results, http, scripts, accounts, r, full=True)
            with db.connect(app, autocommit=True) as conn:
                largest, alerts = conn.execute(
                    "SELECT account_id, count(*) FROM alerts GROUP BY 1 ORDER BY 2 DESC LIMIT 1"
                ).fetchone() or (1, 0)
            for _ in range(repeat):
                url = f"{http}/is_fraud/{largest}"
                one = wrk(url, 1, None, HTTP_SECONDS)
                results.add(
                    f"HTTP is_fraud largest account ({alerts:,} alerts, first page) p50",
                    one["p50"],
                    "ms",
                )
                out = wrk(url, 8, None, HTTP_SECONDS)
                results.add("HTTP is_fraud largest account, 8 connections", out["rate"], "req/s")
        api_n = min(n // 10, 50_000)
        for r in range(repeat):
            seconds, _ = run_measured(
                [
                    PGFRAUD,
                    "generate",
                    "--to",
                    "api",
                    "--post-url",
                    f"{http}/store_data",
                    "--num-transactions",
                    str(api_n),
                    "--accounts",
                    str(accounts),
                    "--batch-size",
                    "5000",
                    "--seed",
                    str(100 + r),
                    # After everything stored (new arrivals, not late ones that re-score).
                    "--start",
                    f"{2026 + r}-01-01T00:00:00Z",
                    "--first-transaction-id",
                    str(5_000_000_000_000 + r * 10**9),
                    "--labels",
                    str(base / "api-labels.csv"),
                ],
                env,
            )
            results.add(
                f"generate --to api, batches of 5000 ({api_n:,} rows)", api_n / seconds, "rows/s"
            )
        results.add("RSS server (master + workers)", rss_of_tree(proc.pid), "MiB")
        proc.terminate()
        proc.wait(timeout=60)

        # -- the HTTP ceiling: Flask answering a constant body, same server ------
        if have_wrk:
            flask_alone_rows(results, scripts, accounts, repeat, procs)

        # -- the floor: the peer ------------------------------------------------
        port = free_port()
        peer_url = f"http://127.0.0.1:{port}"
        peer = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.peer", "--port", str(port), "--database-url", app],
            cwd=HERE.parent,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        procs.append(peer)
        wait_http(f"{peer_url}/is_fraud/1", peer)
        if have_wrk:
            for r in range(repeat):
                out = wrk(peer_url, 8, scripts["is_fraud"], HTTP_SECONDS, str(accounts))
                results.add("peer is_fraud, 8 connections", out["rate"], "req/s")
                out = wrk(
                    peer_url,
                    8,
                    scripts["post"],
                    HTTP_SECONDS,
                    str(6_000_000_000_000 + r * 10**11),
                    str(accounts),
                    str(1_893_456_000 + r * 10**6),  # 2030-01-01T00:00:00Z: after all
                    "2",
                )
                results.add("peer POST 1 transaction, 8 connections", out["rate"], "req/s")
        peer.terminate()
        peer.wait(timeout=30)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
        server.destroy()
        shutil.rmtree(base, ignore_errors=True)

    report(results, n, accounts, repeat, pg_version, time.monotonic() - started, have_wrk)


def report(
    results: Results,
    n: int,
    accounts: int,
    repeat: int,
    pg_version: str,
    seconds: float,
    have_wrk: bool,
) -> None:
    m = results.median
    N = f"{n:,}"

    def ratio(a: str, b: str) -> float | None:
        x, y = m(a), m(b)
        return round(x / y, 2) if x and y else None

    def together(served: str, flask: str, query: str) -> float | None:
        """served / 1/(1/F + 1/S): what Flask alone (F) and the SQL alone (S)
        give together on the same cores, each request paying for both."""
        x, f, q = m(served), m(flask), m(query)
        return round(x * (1 / f + 1 / q), 2) if x and f and q else None

    ratios = {
        "pgfraud load (scored) / psql \\copy (not scored)": ratio(
            f"pgfraud load {N}", f"psql \\copy {N}"
        ),
        "generate --to copy (scored) / psql \\copy (not scored)": ratio(
            f"generate --to copy {N}", f"psql \\copy {N}"
        ),
        "API batched ingest / generate --to copy": ratio(
            f"generate --to api, batches of 5000 ({min(n // 10, 50_000):,} rows)",
            f"generate --to copy {N}",
        ),
        "API batched ingest / peer POST": ratio(
            f"generate --to api, batches of 5000 ({min(n // 10, 50_000):,} rows)",
            "peer POST 1 transaction, 8 connections",
        ),
        "HTTP is_fraud / SQL is_fraud, 8": ratio(
            "HTTP is_fraud, 8 connections", "SQL is_fraud, 8 clients"
        ),
        "HTTP is_fraud / Flask alone (constant JSON), 8": ratio(
            "HTTP is_fraud, 8 connections",
            "Flask alone (constant JSON, no database), 8 connections",
        ),
        "HTTP is_fraud / peer, 8": ratio(
            "HTTP is_fraud, 8 connections", "peer is_fraud, 8 connections"
        ),
        "HTTP POST / SQL store_transactions, 8 (target >= 0.8)": ratio(
            "HTTP POST 1 transaction, 8 connections", "SQL store_transactions (1 row), 8 clients"
        ),
        "HTTP POST p99 / SQL store_transactions p99, 8 (target <= 1.5)": ratio(
            "HTTP POST p99, 8 connections", "SQL store_transactions (1 row) p99, 8 clients"
        ),
        "HTTP is_fraud / 1/(1/F + 1/S), 8 (target >= 0.8)": together(
            "HTTP is_fraud, 8 connections",
            "Flask alone (constant JSON, no database), 8 connections",
            "SQL GET /is_fraud's query (JSON page), 8 clients",
        ),
        "pandas / score_transactions, the same five rules (time)": ratio(
            f"pandas rules {N}", f"score_transactions, pandas's five rules {N}"
        ),
        "pandas / score_transactions from scratch, five rules (time)": ratio(
            f"pandas rules {N}", f"score_transactions, pandas's five rules from scratch {N}"
        ),
    }
    machine = {
        "cores": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(),
        "postgresql": pg_version,
        "postgresql_settings": "initdb defaults (fsync on); timezone=UTC",
        "load_average_at_end": os.getloadavg(),
    }
    print()
    print(
        f"pgfraud bench: {N} transactions, {accounts:,} accounts, median of {repeat} runs "
        f"[min..max]; {seconds / 60:.1f} min"
    )
    print(
        f"machine: {machine['cores']} cores, {machine['memory_gib']} GiB, PostgreSQL {pg_version}"
    )
    print(f"| {'figure':<58} | {'median':>12} | {'spread':>21} | unit |")
    print(f"|{'-' * 60}|{'-' * 14}|{'-' * 23}|------|")
    for name in results.order:
        f = results.figures[name]
        spread = f"{f['min']:,.1f}..{f['max']:,.1f}"
        print(f"| {name:<58} | {f['median']:>12,.2f} | {spread:>21} | {f['unit']} |")
    print()
    for name, value in ratios.items():
        print(f"  {name:<45} {value if value is not None else 'n/a'}")
    if not have_wrk:
        print("  (no HTTP figures: wrk is not installed; `apt-get install wrk` as root)")
    out = Path("bench-results.json")
    out.write_text(
        json.dumps(
            {
                "n": n,
                "accounts": accounts,
                "repeat": repeat,
                "machine": machine,
                "minutes": round(seconds / 60, 1),
                "figures": results.figures,
                "ratios": ratios,
            },
            indent=2,
        )
    )
    print(f"\nwritten: {out.resolve()}")


if __name__ == "__main__":
    main()
