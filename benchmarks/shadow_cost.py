"""What one shadow rule adds to a single POST (issue 18): a scoped benchmark,
not part of `make bench`.

    .venv/bin/python -m benchmarks.shadow_cost     # about 2 minutes here

Starts a throwaway PostgreSQL of its own (pgfraud's LocalServer, in a
temporary folder under /var/tmp), stores BENCH_SHADOW_ROWS transactions
(default 100,000 over 1,000 accounts, one INSERT, scored on arrival), then
POSTs single transactions (POST /store_data, one JSON object, the Flask app
in-process through its test client, one connection from the pool), each to
an account with history, in time order. The conditions alternate in blocks
of BENCH_SHADOW_BLOCK POSTs (default 250), BENCH_SHADOW_ROUNDS rounds
(default 4), so that a shared machine's drift falls on all of them alike:
no shadow; large_amount in shadow (threshold 15000); velocity in shadow
(max_transactions 3). Prints p50 and p99 of each, in milliseconds, what the
shadow adds, and the mean time of the shadow's own scoring per call
(_score_shadow_rules, from pg_stat_user_functions with track_functions on).
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from pgfraud import db
from pgfraud.cli import prepare
from pgfraud.config import Database
from pgfraud.db.server import LocalServer

ROWS = int(os.environ.get("BENCH_SHADOW_ROWS", "100000"))
BLOCK = int(os.environ.get("BENCH_SHADOW_BLOCK", "250"))
ROUNDS = int(os.environ.get("BENCH_SHADOW_ROUNDS", "4"))
ACCOUNTS = max(1, ROWS // 100)
CONDITIONS = {
    "no shadow": None,
    "large_amount in shadow": ("large_amount", {"threshold": 15000}),
    "velocity in shadow": ("velocity", {"max_transactions": 3}),
}


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> None:
    from pgfraud.service import create_app
    from pgfraud.service.database import close_pool

    base = Path(tempfile.mkdtemp(prefix="pgfraud-shadow-bench-", dir="/var/tmp"))
    os.chmod(base, 0o755)
    server = LocalServer(base / "home")
    server.start()
    try:
        database = Database(server.url(admin=True), server.url(), server)
        prepare(database)
        with db.connect(database.admin_url, autocommit=True) as conn:
            # ROWS transactions, one a minute per account from 2024-01-01,
            # amounts 1.00 .. 500.00 (deterministic), merchants 1 .. 500.
            conn.execute(
                "INSERT INTO transactions (account_id, transaction_id, ts, amount, merchant_id)"
                " SELECT g %% %s, g,"
                " timestamptz '2024-01-01 00:00Z' + (g / %s) * interval '1 minute',"
                " round(1 + (g * 7919 %% 49900) / 100.0, 2), 1 + g %% 500"
                " FROM generate_series(0, %s - 1) AS g",
                (ACCOUNTS, ACCOUNTS, ROWS),
            )
            conn.execute("ANALYZE")
            # The time inside the shadow's scoring itself, per call, from
            # PostgreSQL's function statistics (less noisy than the POSTs).
            conn.execute(f"ALTER DATABASE {conn.info.dbname} SET track_functions = 'all'")
            conn.execute("SELECT pg_stat_reset()")
        app = create_app({"DATABASE_URL": database.app_url})
        client = app.test_client()
        times: dict[str, list[float]] = {name: [] for name in CONDITIONS}
        next_id = ROWS
        minute = ROWS // ACCOUNTS + 1
        for _ in range(ROUNDS):
            for name, shadow in CONDITIONS.items():
                with db.connect(database.admin_url, autocommit=True) as conn:
                    conn.execute("DELETE FROM shadow_rules")
                    if shadow is not None:
                        db.shadow_rule(conn, shadow[0], shadow[1])
                for i in range(BLOCK):
                    account = (next_id * 13) % ACCOUNTS
                    body = {
                        "account_id": account,
                        "transaction_id": next_id,
                        "timestamp": 1704067200000 + (minute * 60 + i % 60) * 1000 + next_id % 1000,
                        "amount": f"{1 + next_id % 20000}.00",
                    }
                    started = time.perf_counter()
                    answer = client.post("/store_data", json=body)
                    times[name].append((time.perf_counter() - started) * 1000)
                    assert answer.status_code == 201, answer.get_json()
                    next_id += 1
                minute += 2
        close_pool(app)
        inside = None
        with db.connect(database.admin_url, autocommit=True) as conn:
            deadline = time.monotonic() + 10
            while inside is None and time.monotonic() < deadline:
                conn.execute("SELECT pg_stat_clear_snapshot()")
                inside = conn.execute(
                    "SELECT calls, total_time / calls FROM pg_stat_user_functions"
                    " WHERE funcname = '_score_shadow_rules' AND calls > 0"
                ).fetchone()
                if inside is None:
                    time.sleep(0.5)
        baseline = times["no shadow"]
        print(f"{ROWS:,} stored rows, {ROUNDS} x {BLOCK} POSTs per condition (ms)")
        for name, values in times.items():
            p50, p99 = statistics.median(values), percentile(values, 0.99)
            extra = ""
            if values is not baseline:
                extra = (
                    f"  (+{p50 - statistics.median(baseline):.2f} p50,"
                    f" +{p99 - percentile(baseline, 0.99):.2f} p99)"
                )
            print(f"  {name:<24} p50 {p50:.2f}  p99 {p99:.2f}{extra}")
        if inside is not None:
            print(
                f"  _score_shadow_rules (the shadow's scoring, inside PostgreSQL):"
                f" {inside[0]} calls, {inside[1]:.3f} ms a call on average"
            )
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
