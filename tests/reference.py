"""A second, independent implementation of the rules, in plain Python, for tests only.

It follows the rule definitions of README.md / db/functions/evaluate_account.sql
with Decimal arithmetic and no SQL, so that the SQL can be checked against it on
generated data (test_reference.py). Not used by pgfraud itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal


@dataclass(frozen=True)
class Tx:
    transaction_id: int
    ts: datetime
    amount: Decimal


def events(history: list[Tx], rules: dict[str, dict]) -> list[tuple[int, str]]:
    """(transaction_id, rule_id) of every fired rule, in (ts, id, rule_id) order."""
    ordered = sorted(history, key=lambda t: (t.ts, t.transaction_id))
    fired: list[tuple[datetime, int, str]] = []
    for i, tx in enumerate(ordered):
        prior = ordered[:i]
        n = len(prior)
        total = sum((p.amount for p in prior), Decimal(0))
        if "below_average" in rules:
            r = rules["below_average"]
            if n >= max(r["min_history"], 1) and tx.amount * n < Decimal(str(r["factor"])) * total:
                fired.append((tx.ts, tx.transaction_id, "below_average"))
        if "amount_spike" in rules:
            r = rules["amount_spike"]
            multiplier = Decimal(str(r["multiplier"]))
            if n >= max(r["min_history"], 1) and tx.amount * n > multiplier * total:
                fired.append((tx.ts, tx.transaction_id, "amount_spike"))
        if "large_amount" in rules:
            if tx.amount >= Decimal(str(rules["large_amount"]["threshold"])):
                fired.append((tx.ts, tx.transaction_id, "large_amount"))
        if "velocity" in rules:
            r = rules["velocity"]
            window = timedelta(seconds=r["window_seconds"])
            in_window = sum(1 for p in prior if p.ts > tx.ts - window) + 1
            if in_window > r["max_transactions"]:
                fired.append((tx.ts, tx.transaction_id, "velocity"))
        if "rapid_succession" in rules and prior:
            gap = tx.ts - prior[-1].ts
            if gap < timedelta(seconds=rules["rapid_succession"]["min_gap_seconds"]):
                fired.append((tx.ts, tx.transaction_id, "rapid_succession"))
    return [(tid, rule) for _, tid, rule in sorted(fired)]
