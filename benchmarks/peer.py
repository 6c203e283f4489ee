"""The floor: the service a hackathon team would write from the same brief.

Flask's development server (threaded), a new database connection per
request, one INSERT and one commit per stored transaction, and detection
done in Python on the account's rows pulled from the database. Same table,
same rules and parameters as pgfraud (read from its `rules` table at start),
so the two answer the same question. Only `make bench` runs it:

    python -m benchmarks.peer --port 5099 --database-url postgresql://...

POST /store_data  {"account_id", "transaction_id", "timestamp", "amount"} -> 201
GET  /is_fraud/<account_id>  -> {"account_id", "count", "events": [...]}
"""

from __future__ import annotations

import argparse
from datetime import timedelta
from decimal import Decimal

import psycopg
from flask import Flask, jsonify, request


def make_app(database_url: str) -> Flask:
    app = Flask(__name__)
    with psycopg.connect(database_url) as conn:
        rules = dict(conn.execute("SELECT rule_id, parameters FROM rules WHERE enabled").fetchall())

    @app.post("/store_data")
    def store():
        body = request.get_json()
        with psycopg.connect(database_url) as conn:
            conn.execute(
                "INSERT INTO transactions (account_id, transaction_id, ts, amount)"
                " VALUES (%s, %s, %s, %s)",
                (body["account_id"], body["transaction_id"], body["timestamp"], body["amount"]),
            )
            conn.commit()
        return jsonify({"transaction_id": body["transaction_id"], "status": "stored"}), 201

    @app.get("/is_fraud/<int:account_id>")
    def is_fraud(account_id: int):
        with psycopg.connect(database_url) as conn:
            rows = conn.execute(
                "SELECT transaction_id, ts, amount FROM transactions WHERE account_id = %s"
                " ORDER BY ts, transaction_id",
                (account_id,),
            ).fetchall()
        if not rows:
            return jsonify({"error": "account not found"}), 404
        events = []
        total = Decimal(0)
        for i, (tid, ts, amount) in enumerate(rows):
            fired = []
            if i:
                r = rules.get("below_average")
                if (
                    r
                    and i >= max(r["min_history"], 1)
                    and amount * i < Decimal(str(r["factor"])) * total
                ):
                    fired.append("below_average")
                r = rules.get("amount_spike")
                if (
                    r
                    and i >= max(r["min_history"], 1)
                    and amount * i > Decimal(str(r["multiplier"])) * total
                ):
                    fired.append("amount_spike")
            r = rules.get("large_amount")
            if r and amount >= Decimal(str(r["threshold"])):
                fired.append("large_amount")
            r = rules.get("rapid_succession")
            if r and i and ts - rows[i - 1][1] < timedelta(seconds=r["min_gap_seconds"]):
                fired.append("rapid_succession")
            r = rules.get("velocity")
            if r:
                since = ts - timedelta(seconds=r["window_seconds"])
                count = 1 + sum(1 for _, t, _ in rows[:i] if t > since)
                if count > r["max_transactions"]:
                    fired.append("velocity")
            for rule in sorted(fired):
                events.append(
                    {
                        "transaction_id": tid,
                        "account_id": account_id,
                        "timestamp": ts.isoformat(),
                        "amount": str(amount),
                        "rule_id": rule,
                    }
                )
            total += amount
        return jsonify({"account_id": account_id, "count": len(events), "events": events})

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--database-url", required=True)
    args = parser.parse_args()
    make_app(args.database_url).run(host="127.0.0.1", port=args.port, threaded=True)


if __name__ == "__main__":
    main()
