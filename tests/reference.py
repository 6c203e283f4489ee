"""A second, independent implementation of the rules, in plain Python, for tests only.

It follows the rule definitions of docs/rules.md / db/functions/_evaluate_from.sql
with Decimal arithmetic and no SQL, so that the SQL can be checked against it on
generated data (test_reference.py). Not used by pgfraud itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

MS = timedelta(milliseconds=1)


@dataclass(frozen=True)
class Tx:
    transaction_id: int
    ts: datetime
    amount: Decimal
    merchant_id: int | None = None


@dataclass(frozen=True)
class MerchantTx:
    """Any account's transaction at a merchant, with what became known about it when.

    ``label_known_at``: when its fraud label became known (None: no label);
    ``reviews``: (reviewed_at, review_id, status) of its reviews.
    """

    merchant_id: int
    ts: datetime
    label_known_at: datetime | None = None
    reviews: tuple[tuple[datetime, int, str], ...] = ()

    def known_fraud(self, at: datetime) -> bool:
        """Known fraud as known at time ``at`` (what was recorded at or before it): the
        latest review recorded by then (by time, then id) decides; with none, the label
        if it was known by then."""
        known = sorted((r for r in self.reviews if r[0] <= at), key=lambda r: (r[0], r[1]))
        if known:
            return known[-1][2] == "confirmed_fraud"
        return self.label_known_at is not None and self.label_known_at <= at


def merchant_features(tx: Tx, merchant_rows: list[MerchantTx], days: int) -> tuple:
    """(transactions, known fraud, share) of tx's merchant in [ts - days, ts), all
    accounts, the fraud as known strictly before ts (at ts - 1 ms); share to 4 places
    (None when no transaction); all None without a merchant. The users' rules'
    merchant_transactions_<days>d, merchant_fraud_<days>d, merchant_fraud_share_<days>d."""
    if tx.merchant_id is None:
        return None, None, None
    low = tx.ts - timedelta(days=days)
    seen = [m for m in merchant_rows if m.merchant_id == tx.merchant_id and low <= m.ts < tx.ts]
    known = sum(1 for m in seen if m.known_fraud(tx.ts - MS))
    share = (
        (Decimal(known) / len(seen)).quantize(Decimal("0.0001"), ROUND_HALF_UP) if seen else None
    )
    return len(seen), known, share


def merchant_surge(tx: Tx, merchant_rows: list[MerchantTx]) -> Decimal | None:
    """The users' rules' merchant_surge_7d of tx: the merchant's rows (all accounts) in
    [ts - 7 days, ts), n, against its rows in the base [ts - 37 days, ts - 7 days), b,
    over the time s from the first of them to ts - 7 days: n x s / max(b x 7 days, s)
    to 4 places; None without a merchant, with b = 0, or with s under 7 days."""
    if tx.merchant_id is None:
        return None
    week_start = tx.ts - timedelta(days=7)
    here = [m.ts for m in merchant_rows if m.merchant_id == tx.merchant_id]
    last_week = sum(1 for ts in here if week_start <= ts < tx.ts)
    base = [ts for ts in here if tx.ts - timedelta(days=37) <= ts < week_start]
    if not base:
        return None
    span_ms = (week_start - min(base)) // MS
    week_ms = 7 * 86_400_000
    if span_ms < week_ms:
        return None
    return (Decimal(last_week * span_ms) / max(len(base) * week_ms, span_ms)).quantize(
        Decimal("0.0001"), ROUND_HALF_UP
    )


def _average_base(prior: list[Tx], tx: Tx, window_days) -> tuple[int, Decimal]:
    if window_days:
        prior = [p for p in prior if p.ts > tx.ts - timedelta(days=window_days)]
    return len(prior), sum((p.amount for p in prior), Decimal(0))


def _new_merchant(prior: list[Tx], tx: Tx, unused_days) -> bool:
    """tx is at a known merchant with no payment in prior there (unused_days > 0: none
    in (ts - unused_days, ts])."""
    return tx.merchant_id is not None and all(
        p.merchant_id != tx.merchant_id
        or (unused_days and p.ts <= tx.ts - timedelta(days=unused_days))
        for p in prior
    )


def events(
    history: list[Tx], rules: dict[str, dict], merchant_rows: list[MerchantTx] = ()
) -> list[tuple[int, str]]:
    """(transaction_id, rule_id) of every fired rule, in (ts, id, rule_id) order.

    ``history``: one account's transactions; ``merchant_rows``: every stored
    transaction at a merchant (all accounts, this one's included), with when
    its label and reviews became known, for compromised_merchant (known fraud
    as known at ts - delay_days).
    """
    ordered = sorted(history, key=lambda t: (t.ts, t.transaction_id))
    fired: list[tuple[datetime, int, str]] = []
    for i, tx in enumerate(ordered):
        prior = ordered[:i]
        n = len(prior)
        total = sum((p.amount for p in prior), Decimal(0))
        if "below_average" in rules:
            r = rules["below_average"]
            k, s = _average_base(prior, tx, r.get("window_days", 0))
            if k >= max(r["min_history"], 1) and tx.amount * k < Decimal(str(r["factor"])) * s:
                fired.append((tx.ts, tx.transaction_id, "below_average"))
        if "amount_spike" in rules:
            r = rules["amount_spike"]
            multiplier = Decimal(str(r["multiplier"]))
            k, s = _average_base(prior, tx, r.get("window_days", 0))
            if k >= max(r["min_history"], 1) and tx.amount * k > multiplier * s:
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
        earlier = [p.ts for p in prior if p.ts < tx.ts]
        if "rapid_succession" in rules and earlier:
            gap = tx.ts - max(earlier)
            if gap < timedelta(seconds=rules["rapid_succession"]["min_gap_seconds"]):
                fired.append((tx.ts, tx.transaction_id, "rapid_succession"))
        if "same_timestamp" in rules:
            same = sum(1 for p in prior if p.ts == tx.ts) + 1
            if same > rules["same_timestamp"]["max_transactions"]:
                fired.append((tx.ts, tx.transaction_id, "same_timestamp"))
        if "new_merchant_large" in rules and tx.merchant_id is not None:
            r = rules["new_merchant_large"]
            first = _new_merchant(prior, tx, r.get("unused_days", 0))
            multiplier = Decimal(str(r["multiplier"]))
            if first and n >= max(r["min_history"], 1) and tx.amount * n > multiplier * total:
                fired.append((tx.ts, tx.transaction_id, "new_merchant_large"))
        if "new_merchant_run" in rules and n >= max(rules["new_merchant_run"]["min_history"], 1):
            r = rules["new_merchant_run"]
            multiplier = Decimal(str(r["multiplier"]))
            run_sum, fires = Decimal(0), False
            # This payment and the ones just before it, newest first, while each is new.
            for length in range(1, r["max_run"] + 1):
                j = i - length + 1
                if j < 0 or not _new_merchant(ordered[:j], ordered[j], r["unused_days"]):
                    break
                run_sum += ordered[j].amount
                fires = fires or (length >= 2 and run_sum * n > multiplier * length * total)
            if fires:
                fired.append((tx.ts, tx.transaction_id, "new_merchant_run"))
        if "compromised_merchant" in rules and tx.merchant_id is not None:
            r = rules["compromised_merchant"]
            low = tx.ts - timedelta(days=r["window_days"])
            high = tx.ts - timedelta(days=r["delay_days"])
            seen = [
                m for m in merchant_rows if m.merchant_id == tx.merchant_id and low <= m.ts < high
            ]
            # What was known before ts - delay (ms resolution: at ts - delay - 1 ms).
            known = sum(1 for m in seen if m.known_fraud(high - MS))
            share = Decimal(str(r["min_fraud_share"]))
            if known >= max(r["min_known_fraud"], 1) and known >= share * len(seen):
                fired.append((tx.ts, tx.transaction_id, "compromised_merchant"))
    return [(tid, rule) for _, tid, rule in sorted(fired)]
