"""Single-node pgfraud against the Citus layout on the same generated data.

The same generated transactions go into a plain PostgreSQL database (the
single-node, set-based path) and into the distributed database on a Citus
coordinator, two ways, each out of order:

- the COPY path: `pgfraud load` of the generated CSV with its rows shuffled
  (one COPY; on Citus raw rows, then scored per account by score_pending);
- the API path: POST /store_data (the Flask app, through its test client) of
  the same rows, shuffled, in batches, with account and transaction ids
  moved past the COPY set's, so both sets live side by side.

Then the persisted alerts and decisions of both databases are read in one
order, without the columns that name a moment or a node (alert_id,
raised_at, decided_at, decision ids), and compared row for row.

``python -m tests_citus.compare SINGLE_URL CITUS_URL --num-transactions N``
runs it on two migrated databases (the Citus one distributed), prints the
timings and the counts, and exits 1 when they differ.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

ALERTS = (
    "SELECT account_id, transaction_id, rule_id, ts, amount, observed, threshold, reason,"
    " rule_version, raised_rule_version, parameters::text FROM alerts"
    " ORDER BY account_id, transaction_id, rule_id"
)
DECISIONS = (
    "SELECT account_id, transaction_id, ts, amount, merchant_id, outcome, score, score_outcome,"
    " rules::text, lists::text, policy_id, rule_set_id FROM decisions"
    " ORDER BY account_id, transaction_id"
)
STATES = "SELECT account_id, transaction_count, amount_sum FROM account_states ORDER BY account_id"
CASES = (
    "SELECT c.account_id, c.status, count(*) FROM cases AS c JOIN case_alerts AS a"
    " ON a.account_id = c.account_id AND a.case_id = c.case_id"
    " GROUP BY c.account_id, c.status ORDER BY 1, 2"
)

# The API set's ids: past every generated account and transaction id.
ACCOUNT_SHIFT = 1_000_000
TRANSACTION_SHIFT = 1_000_000_000


def _pgfraud(url: str, *args: str) -> str:
    done = subprocess.run(
        [str(Path(sys.executable).parent / "pgfraud"), *args],
        env={**os.environ, "DATABASE_URL": url, "PGFRAUD_APP_DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=3600,
    )
    if done.returncode != 0:
        raise RuntimeError(f"pgfraud {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def generate(folder: Path, num_transactions: int, seed: int, accounts: int) -> list[dict]:
    """The generated rows (legacy mix: more alerts to compare), shuffled by ``seed``."""
    path = folder / "generated.csv"
    _pgfraud(
        "postgresql://unused",
        "generate",
        "--to",
        "csv",
        "--output",
        str(path),
        "--labels",
        str(folder / "labels.csv"),
        "--num-transactions",
        str(num_transactions),
        "--accounts",
        str(accounts),
        "--seed",
        str(seed),
        "--mix",
        "legacy",
        "--first-transaction-id",
        "1000000",
        "--no-progress",
    )
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    random.Random(seed).shuffle(rows)
    return rows


def write_csv(rows: list[dict], path: Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def api_rows(rows: list[dict]) -> list[dict]:
    """The COPY set's rows as the API set: ids moved, JSON shapes."""
    return [
        {
            "account_id": int(r["account_id"]) + ACCOUNT_SHIFT,
            "transaction_id": int(r["transaction_id"]) + TRANSACTION_SHIFT,
            "timestamp": r["timestamp"],
            "amount": r["amount"],
            **({"merchant_id": int(r["merchant_id"])} if r.get("merchant_id") else {}),
        }
        for r in rows
    ]


def batches(rows: list[dict], batch: int, one_account: bool) -> list[list[dict]]:
    """``rows`` cut into batches of at most ``batch``, in their (shuffled) order.

    With ``one_account``, each batch holds one account's rows only (as
    docs/scaling.md advises on Citus): the rows are grouped by account, each
    account's rows keep their shuffled order, and the batches of different
    accounts take turns, so the set still arrives out of order."""
    if not one_account:
        return [rows[start : start + batch] for start in range(0, len(rows), batch)]
    by_account: dict[int, list[dict]] = {}
    for row in rows:
        by_account.setdefault(row["account_id"], []).append(row)
    queues = [
        [own[start : start + batch] for start in range(0, len(own), batch)]
        for own in by_account.values()
    ]
    out: list[list[dict]] = []
    while queues:
        out.extend(queue.pop(0) for queue in queues)
        queues = [queue for queue in queues if queue]
    return out


def post_all(url: str, rows: list[dict], batch: int, one_account: bool = False) -> None:
    """POST /store_data of ``rows`` in batches, through the app's test client."""
    from pgfraud.service import create_app

    app = create_app({"TESTING": True, "DATABASE_URL": url, "STATEMENT_TIMEOUT_MS": 600_000})
    with app.test_client() as client:
        for body in batches(rows, batch, one_account):
            answer = client.post(
                "/store_data", data=json.dumps(body), content_type="application/json"
            )
            if answer.status_code not in (200, 201):
                raise RuntimeError(
                    f"POST /store_data: {answer.status_code} {answer.get_data(as_text=True)}"
                )


def read(url: str) -> dict[str, list[tuple]]:
    with psycopg.connect(url) as conn:
        return {
            "alerts": conn.execute(ALERTS).fetchall(),
            "decisions": conn.execute(DECISIONS).fetchall(),
            "account_states": conn.execute(STATES).fetchall(),
            "cases": conn.execute(CASES).fetchall(),
        }


def compare(
    single_url: str,
    citus_url: str,
    num_transactions: int,
    seed: int = 7,
    accounts: int = 100,
    batch: int = 50,
    api_share: float = 1.0,
    one_account_batches: bool = False,
) -> dict:
    """Load the same data both ways into both databases; returns timings, counts
    and ``equal`` (per table) / ``first_difference``."""
    timings: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as folder:
        rows = generate(Path(folder), num_transactions, seed, accounts)
        path = Path(folder) / "shuffled.csv"
        write_csv(rows, path)
        for name, url in (("single", single_url), ("citus", citus_url)):
            started = time.perf_counter()
            _pgfraud(url, "load", str(path))
            timings[f"{name} load (COPY path)"] = time.perf_counter() - started
        posted = api_rows(rows[: int(len(rows) * api_share)])
        for name, url in (("single", single_url), ("citus", citus_url)):
            started = time.perf_counter()
            post_all(url, posted, batch, one_account_batches)
            kind = "one account's rows per batch" if one_account_batches else "mixed batches"
            timings[f"{name} POST /store_data (API path, {len(posted)} rows, {kind})"] = (
                time.perf_counter() - started
            )
    one, other = read(single_url), read(citus_url)
    result: dict = {"timings": timings, "counts": {}, "equal": {}}
    for table in one:
        result["counts"][table] = (len(one[table]), len(other[table]))
        result["equal"][table] = one[table] == other[table]
        if one[table] != other[table]:
            mine, theirs = set(one[table]), set(other[table])
            result.setdefault("first_difference", {})[table] = (
                sorted(mine - theirs)[:3],
                sorted(theirs - mine)[:3],
            )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("single_url")
    parser.add_argument("citus_url")
    parser.add_argument("--num-transactions", type=int, default=100_000)
    parser.add_argument("--accounts", type=int, default=100)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--api-share", type=float, default=1.0)
    parser.add_argument(
        "--one-account-batches",
        action="store_true",
        help="each POST holds one account's rows (the advice for Citus)",
    )
    args = parser.parse_args()
    result = compare(
        args.single_url,
        args.citus_url,
        args.num_transactions,
        args.seed,
        args.accounts,
        args.batch,
        args.api_share,
        args.one_account_batches,
    )
    for what, seconds in result["timings"].items():
        print(f"{what}: {seconds:.1f} s")
    for table, (a, b) in result["counts"].items():
        print(
            f"{table}: single {a}, citus {b}, {'equal' if result['equal'][table] else 'DIFFERENT'}"
        )
    if "first_difference" in result:
        print(json.dumps(result["first_difference"], default=str, indent=1))
    sys.exit(0 if all(result["equal"].values()) else 1)


if __name__ == "__main__":
    main()
