"""The same five rules over every account, in pandas: the comparison for batch scoring.

The rows come out of PostgreSQL by one ``COPY (SELECT …) TO STDOUT`` in CSV of
integers only (epoch milliseconds, cents), read by pandas' C parser: the
fastest path found here (text timestamps and decimals cost more to parse on
either side). Arithmetic is exact: integers, factors as fractions.

:func:`score` returns ``{rule_id: events}``, to compare with
``score_transactions()``; only ``make bench`` uses it (pandas is in the
``bench`` optional dependencies).
"""

from __future__ import annotations

import io
from fractions import Fraction
from typing import Any

import psycopg

QUERY = (
    "COPY (SELECT account_id, transaction_id,"
    " (extract(epoch FROM ts) * 1000)::bigint, (amount * 100)::bigint"
    " FROM transactions) TO STDOUT (FORMAT csv)"
)


def fetch(conn: psycopg.Connection) -> Any:
    """All transactions as a DataFrame (account_id, transaction_id, ms, cents)."""
    import pandas as pd

    buffer = io.BytesIO()
    with conn.cursor().copy(QUERY) as copy:
        for block in copy:
            buffer.write(block)
    buffer.seek(0)
    return pd.read_csv(
        buffer,
        header=None,
        names=["account_id", "transaction_id", "ms", "cents"],
        dtype="int64",
        engine="c",
    )


def score(conn: psycopg.Connection, rules: dict[str, dict]) -> dict[str, int]:
    """Fired events per rule over all accounts (rules: {rule_id: parameters})."""
    import numpy as np

    df = fetch(conn)
    df.sort_values(["account_id", "ms", "transaction_id"], inplace=True, kind="stable")
    account = df["account_id"].to_numpy()
    ms = df["ms"].to_numpy()
    cents = df["cents"].to_numpy()
    group = df.groupby("account_id", sort=False)
    n = group.cumcount().to_numpy()  # prior transactions
    prior_sum = (group["cents"].cumsum() - df["cents"]).to_numpy()
    same_account = np.r_[False, account[1:] == account[:-1]]
    events: dict[str, int] = {}

    def ratio(value: Any) -> Fraction:
        return Fraction(str(value))

    if "below_average" in rules:
        r = rules["below_average"]
        f = ratio(r["factor"])
        fired = (n >= max(int(r["min_history"]), 1)) & (
            cents * n * f.denominator < f.numerator * prior_sum
        )
        events["below_average"] = int(fired.sum())
    if "amount_spike" in rules:
        r = rules["amount_spike"]
        m = ratio(r["multiplier"])
        fired = (n >= max(int(r["min_history"]), 1)) & (
            cents * n * m.denominator > m.numerator * prior_sum
        )
        events["amount_spike"] = int(fired.sum())
    if "large_amount" in rules:
        threshold = ratio(rules["large_amount"]["threshold"]) * 100
        events["large_amount"] = int((cents * threshold.denominator >= threshold.numerator).sum())
    if "rapid_succession" in rules:
        gap = ratio(rules["rapid_succession"]["min_gap_seconds"]) * 1000
        previous = np.r_[0, ms[:-1]]
        fired = same_account & ((ms - previous) * gap.denominator < gap.numerator)
        events["rapid_succession"] = int(fired.sum())
    if "velocity" in rules:
        r = rules["velocity"]
        window = int(ratio(r["window_seconds"]) * 1000)
        key = (account << 42) + ms  # sorted; ms < 2^42 until 2109
        first_in_window = np.searchsorted(key, key - window, side="right")
        in_window = np.arange(len(key)) - first_in_window + 1
        events["velocity"] = int((in_window > int(r["max_transactions"])).sum())
    return events
