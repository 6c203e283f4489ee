"""`make bench`: load and scoring speed on generated data, in a throwaway PostgreSQL.

Measures, on N generated transactions (BENCH_N, default 200,000; N/100 accounts):

- generating the data to CSV (the generator alone);
- loading that CSV with `psql \\copy` straight into the table (the floor);
- loading it with `pgfraud load` (validate every row, COPY through the staging
  table, idempotent merge);
- `is_fraud(account)` latency over 500 random accounts (p50/p95/p99, ms);
- a full `score_transactions()` pass over every account.

Nothing is asserted; numbers go to stdout. The server is the project's own
local server in a temporary folder, removed at the end.
"""

from __future__ import annotations

import os
import random
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from pgfraud import db
from pgfraud.cli import prepare
from pgfraud.config import Database
from pgfraud.db.server import LocalServer, find_bindir
from pgfraud.generator import Settings, generate_to
from pgfraud.load import load_csv


def timed(label: str, results: list[tuple[str, str]], fn, count: int | None = None):
    start = time.perf_counter()
    value = fn()
    elapsed = time.perf_counter() - start
    rate = f"  ({count / elapsed:,.0f} rows/s)" if count else ""
    results.append((label, f"{elapsed:8.2f} s{rate}"))
    print(f"{label}: {elapsed:.2f} s{rate}", flush=True)
    return value


def main() -> None:
    n = int(os.environ.get("BENCH_N", "200000"))
    accounts = max(1, n // 100)
    results: list[tuple[str, str]] = []
    base = Path(tempfile.mkdtemp(prefix="pgfraud-bench-", dir="/tmp"))
    os.chmod(base, 0o755)
    server = LocalServer(base / "home")
    try:
        server.start()
        database = Database(server.url(admin=True), server.url(), server)
        prepare(database)
        csv_path = base / "transactions.csv"
        settings = Settings(num_transactions=n, accounts=accounts, seed=1)
        timed(
            f"generate {n:,} transactions to CSV",
            results,
            lambda: generate_to(
                settings, "csv", output=str(csv_path), labels_path=base / "labels.csv"
            ),
            n,
        )
        psql = shutil.which("psql") or str(find_bindir() / "psql")
        with db.connect(database.admin_url, autocommit=True) as conn:
            conn.execute("CREATE TABLE copy_floor (LIKE transactions INCLUDING ALL)")
        timed(
            "psql \\copy into a bare table (floor)",
            results,
            lambda: subprocess.run(
                [
                    psql,
                    database.admin_url,
                    "-qc",
                    f"\\copy copy_floor (account_id, transaction_id, ts, amount) "
                    f"FROM '{csv_path}' CSV HEADER",
                ],
                check=True,
            ),
            n,
        )
        with db.connect(database.app_url) as conn:
            timed(
                "pgfraud load (validate + COPY + merge)",
                results,
                lambda: (load_csv(conn, csv_path), conn.commit()),
                n,
            )
        with db.connect(database.admin_url, autocommit=True) as conn:
            conn.execute("DROP TABLE copy_floor")
            conn.execute("VACUUM ANALYZE transactions")
        with db.connect(database.app_url, autocommit=True) as conn:
            rng = random.Random(7)
            latencies = []
            for _ in range(500):
                account = rng.randint(1, accounts)
                start = time.perf_counter()
                conn.execute("SELECT * FROM is_fraud(%s)", (account,), prepare=True).fetchall()
                latencies.append((time.perf_counter() - start) * 1000)
            q = statistics.quantiles(latencies, n=100)
            line = f"p50 {q[49]:.2f} ms, p95 {q[94]:.2f} ms, p99 {q[98]:.2f} ms"
            results.append(("is_fraud(account), 500 calls on random accounts", line))
            print(f"is_fraud latency: {line}", flush=True)
            events = timed(
                "score_transactions() over all accounts",
                results,
                lambda: conn.execute("SELECT count(*) FROM score_transactions()").fetchone()[0],
                n,
            )
        print()
        print(f"pgfraud benchmark: {n:,} transactions, {accounts:,} accounts, {events:,} events")
        for label, value in results:
            print(f"  {label:<45} {value}")
    finally:
        server.destroy()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
