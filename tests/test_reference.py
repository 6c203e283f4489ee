"""The SQL rules agree with the Python reference (tests/reference.py) on generated histories."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pgfraud import db
from tests.reference import Tx, events

T0 = datetime(2024, 1, 1, tzinfo=UTC)
RULES = {
    "below_average": {"factor": 0.9, "min_history": 1},
    "amount_spike": {"multiplier": 5, "min_history": 3},
    "large_amount": {"threshold": 10000},
    "velocity": {"window_seconds": 3600, "max_transactions": 5},
    "rapid_succession": {"min_gap_seconds": 10},
}

# Amounts in whole cents, small and large; times in ms steps that hit ties and
# window edges (multiples of 10 s and of 1 h) often.
amounts = st.one_of(
    st.integers(0, 5000), st.integers(0, 2_000_000), st.sampled_from([1170, 1300, 1000000])
).map(lambda cents: Decimal(cents).scaleb(-2))
offsets = st.one_of(
    st.integers(0, 3 * 3_600_000),
    st.sampled_from([0, 9_999, 10_000, 3_600_000, 3_599_999, 3_600_001]),
)
histories = st.lists(st.tuples(offsets, amounts), min_size=1, max_size=25)
rule_sets = st.dictionaries(st.sampled_from(sorted(RULES)), st.just(None), min_size=1).map(
    lambda chosen: {name: RULES[name] for name in chosen}
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(history=histories, rules=rule_sets)
def test_sql_rules_agree_with_the_python_reference(app_conn, history, rules):
    txs = [
        Tx(transaction_id=i + 1, ts=T0 + timedelta(milliseconds=offset), amount=amount)
        for i, (offset, amount) in enumerate(history)
    ]
    # A fresh account per example: ids never collide across examples.
    account = app_conn.execute(
        "SELECT coalesce(max(account_id), 0) + 1 FROM transactions"
    ).fetchone()[0]
    base = app_conn.execute("SELECT coalesce(max(transaction_id), 0) FROM transactions").fetchone()[
        0
    ]
    db.store_transactions(
        app_conn,
        [
            {
                "account_id": account,
                "transaction_id": base + t.transaction_id,
                "timestamp": t.ts,
                "amount": t.amount,
            }
            for t in txs
        ],
    )
    rows = app_conn.execute(
        "SELECT transaction_id, rule_id FROM evaluate_account(%s, %s::jsonb)",
        (account, json.dumps(rules)),
    ).fetchall()
    app_conn.commit()
    assert [(tid - base, rule) for tid, rule in rows] == events(txs, rules)
