"""The per-account scoring path (issue 19): score_account, store_account_transactions.

The same rule code as the set-based path (_account_rule_query is the text of
_evaluate_from for one account), so:

* persisted alerts (and account_states) equal a from-scratch evaluation
  after every commit through store_account_transactions (hypothesis, as
  tests/test_alerts.py does for the set-based paths), and its decisions
  equal those the set-based store makes for the same rows (a twin pair of
  accounts stored through store_transactions);
* score_account of every account, alerts emptied first, gives exactly the
  alerts the set-based path persisted on the same generated data;
* a small case worked out by hand.
"""

from __future__ import annotations

import itertools
import json
import re
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pgfraud import db
from pgfraud.errors import InvalidInput, TransactionConflict
from pgfraud.generator import Settings, generate_transactions

T0 = datetime(2024, 1, 1, tzinfo=UTC)
EVENT_COLUMNS = "transaction_id, account_id, ts, amount, rule_id, observed, threshold, reason"
TWIN = 500_000  # the twin account (set-based path) of account a is a + TWIN
TWIN_TID = 10**9  # and of transaction t, t + TWIN_TID (same order in its account)
_accounts = itertools.count(2000, 10)


def alerts_of(conn, account):
    return conn.execute(
        f"SELECT {EVENT_COLUMNS} FROM alerts WHERE account_id = %s"
        " ORDER BY ts, transaction_id, rule_id",
        (account,),
    ).fetchall()


def from_scratch(conn, account):
    return conn.execute(
        f"SELECT {EVENT_COLUMNS} FROM evaluate_account(%s, active_rule_parameters())",
        (account,),
    ).fetchall()


def decisions_of(conn, account, tid_offset=0):
    return [
        (tid - tid_offset, outcome, score, score_outcome, rules)
        for tid, outcome, score, score_outcome, rules in conn.execute(
            "SELECT transaction_id, outcome, score, score_outcome, rules FROM decisions"
            " WHERE account_id = %s ORDER BY transaction_id",
            (account,),
        ).fetchall()
    ]


def untwinned(events):
    return [(tid - TWIN_TID, account - TWIN, *rest) for tid, account, *rest in events]


def store_per_account(conn, records):
    """One store_account_transactions call per account, in one database transaction."""
    by_account = defaultdict(list)
    for r in records:
        by_account[r["account_id"]].append(
            {**r, "timestamp": r["timestamp"].isoformat(), "amount": str(r["amount"])}
        )
    for account, rows in sorted(by_account.items()):
        with db.wrap_errors():
            conn.execute(
                "SELECT * FROM store_account_transactions(%s, %s::jsonb)",
                (account, json.dumps(rows)),
            ).fetchall()


def twin(r):
    return {
        **r,
        "transaction_id": r["transaction_id"] + TWIN_TID,
        "account_id": r["account_id"] + TWIN,
    }


def write_both(conn, records):
    """Store records per account and their twins set-based; False when both refuse."""
    outcomes = []
    for store in (store_per_account, lambda c, rs: db.store_transactions(c, [twin(r) for r in rs])):
        try:
            store(conn, records)
            conn.commit()
            outcomes.append(True)
        except (TransactionConflict, InvalidInput, psycopg.errors.UniqueViolation):
            conn.rollback()
            outcomes.append(False)
    assert outcomes[0] == outcomes[1]
    return outcomes[0]


def record(tid, account, ms, amount):
    return {
        "transaction_id": tid,
        "account_id": account,
        "timestamp": T0 + timedelta(milliseconds=ms),
        "amount": Decimal(amount),
    }


RULE_CHANGES = (
    ("velocity", {"window_seconds": 60, "max_transactions": 2}),
    ("below_average", {"factor": 0.5, "min_history": 2}),
    ("amount_spike", {"multiplier": 2, "min_history": 1}),
    ("rapid_succession", {"min_gap_seconds": 0.5}),
)
transaction_specs = st.tuples(
    st.integers(0, 1),
    st.one_of(st.integers(0, 7_200_000), st.sampled_from([0, 500, 10_000, 60_000, 3_600_000])),
    st.one_of(st.integers(0, 3000), st.sampled_from([1000, 2000, 1_000_000, 1_500_000])),
)
steps = st.lists(
    st.one_of(
        st.tuples(st.just("write"), st.lists(transaction_specs, max_size=4)),
        st.tuples(st.just("resend"), st.integers(0, 50)),
        st.tuples(st.just("conflict"), st.integers(0, 50)),
        st.tuples(st.just("rule"), st.sampled_from(range(len(RULE_CHANGES))), st.booleans()),
    ),
    min_size=1,
    max_size=8,
)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(plan=steps)
def test_per_account_store_keeps_alerts_equal_to_the_rules_from_scratch(app_conn, admin_conn, plan):
    base = next(_accounts)
    accounts = (base, base + 1)
    tid = itertools.count(base * 1000)
    sent: list[dict] = []
    for step in plan:
        if step[0] == "rule":
            rule_id, parameters = RULE_CHANGES[step[1]]
            admin_conn.execute(
                "SELECT set_rule(%s, %s, %s::jsonb)", (rule_id, step[2], json.dumps(parameters))
            )
            admin_conn.commit()
        elif step[0] == "write":
            records = [
                record(next(tid), accounts[a], ms, Decimal(cents).scaleb(-2))
                for a, ms, cents in step[1]
            ]
            if records and write_both(app_conn, records):
                sent.extend(records)
        elif sent:
            earlier = sent[step[1] % len(sent)]
            if step[0] == "resend":
                assert write_both(app_conn, [earlier])
            else:
                changed = {**earlier, "amount": earlier["amount"] + Decimal("0.01")}
                assert not write_both(app_conn, [changed])
        for account in accounts:
            alerts = alerts_of(app_conn, account)
            assert alerts == from_scratch(app_conn, account)
            assert alerts == untwinned(alerts_of(app_conn, account + TWIN))
            assert decisions_of(app_conn, account) == decisions_of(
                app_conn, account + TWIN, TWIN_TID
            )
            state = app_conn.execute(
                "SELECT transaction_count, amount_sum FROM account_states WHERE account_id = %s",
                (account,),
            ).fetchone()
            truth = app_conn.execute(
                "SELECT count(*), sum(amount) FROM transactions WHERE account_id = %s", (account,)
            ).fetchone()
            assert (state or (0, None)) == truth
        app_conn.commit()


def test_score_account_of_every_account_equals_the_set_based_alerts(app_conn, admin_conn):
    # Every rule on, the merchant ones and a user's rule reading merchant features too.
    for rule_id in ("compromised_merchant", "amount_spike", "new_merchant_run"):
        admin_conn.execute("SELECT set_rule(%s, true, NULL)", (rule_id,))
    db.add_rule(
        admin_conn, "busy_merchant", "merchant_transactions_7d >= 3 AND amount > prior_average"
    )
    admin_conn.execute("SELECT set_rule('busy_merchant', true, NULL)")
    admin_conn.commit()
    generated = list(generate_transactions(Settings(num_transactions=3000, accounts=30, seed=7)))
    rows = [
        (n, t.transaction_id, t.account_id, t.timestamp, t.amount, t.merchant_id)
        for n, t in enumerate(generated, 1)
    ]
    db.copy_transactions(app_conn, [r for r in rows if r[0] % 40])
    app_conn.commit()
    db.copy_transactions(app_conn, [r for r in rows if not r[0] % 40])
    app_conn.commit()
    query = f"SELECT {EVENT_COLUMNS} FROM alerts ORDER BY account_id, ts, transaction_id, rule_id"
    set_based = app_conn.execute(query).fetchall()
    assert {"below_average", "amount_spike", "new_merchant_large", "busy_merchant"} <= {
        e[4] for e in set_based
    }
    accounts = [a for (a,) in app_conn.execute("SELECT DISTINCT account_id FROM transactions")]
    app_conn.commit()

    # Nothing to change: no new alert, the same rows.
    assert (
        sum(app_conn.execute("SELECT score_account(%s)", (a,)).fetchone()[0] for a in accounts) == 0
    )
    assert app_conn.execute(query).fetchall() == set_based
    app_conn.commit()

    # From nothing: every alert again, per account.
    admin_conn.execute("DELETE FROM alerts")
    admin_conn.commit()
    new = sum(app_conn.execute("SELECT score_account(%s)", (a,)).fetchone()[0] for a in accounts)
    app_conn.commit()
    assert new == len(set_based)
    assert app_conn.execute(query).fetchall() == set_based

    # From a time on: only that part is rewritten (an alert before it is kept
    # even when wrong, as it is not re-evaluated).
    cut = T0 + timedelta(days=3)
    admin_conn.execute("DELETE FROM alerts")
    admin_conn.commit()
    new = sum(
        app_conn.execute("SELECT score_account(%s, %s)", (a, cut)).fetchone()[0] for a in accounts
    )
    assert new == len([e for e in set_based if e[2] >= cut])
    assert app_conn.execute(query).fetchall() == [e for e in set_based if e[2] >= cut]


def test_per_account_store_of_generated_data_equals_the_rules_from_scratch(app_conn, admin_conn):
    generated = list(generate_transactions(Settings(num_transactions=2000, accounts=20, seed=5)))
    records = [
        {
            "transaction_id": t.transaction_id,
            "account_id": t.account_id,
            "timestamp": t.timestamp,
            "amount": t.amount,
            "merchant_id": t.merchant_id,
        }
        for t in generated
    ]
    # In chunks of 250, every 30th row held back to the end (late arrivals).
    on_time = [r for n, r in enumerate(records) if n % 30]
    for start in range(0, len(on_time), 250):
        store_per_account(app_conn, on_time[start : start + 250])
        app_conn.commit()
    store_per_account(app_conn, [r for n, r in enumerate(records) if not n % 30])
    app_conn.commit()
    persisted = app_conn.execute(
        f"SELECT {EVENT_COLUMNS} FROM alerts ORDER BY account_id, ts, transaction_id, rule_id"
    ).fetchall()
    recomputed = app_conn.execute(
        f"SELECT {EVENT_COLUMNS} FROM score_transactions(NULL, NULL, NULL, true)"
    ).fetchall()
    assert persisted == recomputed
    assert len(persisted) > 100
    (decided,) = app_conn.execute("SELECT count(*) FROM decisions").fetchone()
    assert decided == len(records)


def test_a_small_case_by_hand(app_conn, admin_conn):
    # below_average factor 0.5 after 1 prior; rapid_succession under 10 s.
    admin_conn.execute(
        "SELECT set_rule('below_average', true, '{\"factor\": 0.5, \"min_history\": 1}')"
    )
    admin_conn.commit()
    answer = app_conn.execute(
        "SELECT row_number, transaction_id, status, alerts FROM store_account_transactions(7, %s)",
        (
            json.dumps(
                [
                    {"transaction_id": 1, "timestamp": "2024-01-01T00:00:00Z", "amount": "100"},
                    {"transaction_id": 2, "timestamp": "2024-01-01T00:00:05Z", "amount": "40"},
                    {"transaction_id": 1, "timestamp": "2024-01-01T00:00:00Z", "amount": "100"},
                ]
            ),
        ),
    ).fetchall()
    app_conn.commit()
    assert [(n, t, s) for n, t, s, _ in answer] == [
        (0, 1, "stored"),
        (1, 2, "stored"),
        (2, 1, "duplicate"),
    ]
    assert answer[0][3] == []
    # 40 < 0.5 x 100 (the one prior average) and 5 s < 10 s.
    assert [(a["rule_id"], a["observed"], a["threshold"]) for a in answer[1][3]] == [
        ("below_average", "40.00", "50.0000"),
        ("rapid_succession", "5.000", "10"),
    ]
    # Each alert names the version of the rule that made it, as store_transactions'.
    assert [a["rule_version"] for a in answer[1][3]] == [
        v
        for (v,) in app_conn.execute(
            "SELECT rule_version FROM alerts WHERE account_id = 7 AND transaction_id = 2"
            " ORDER BY rule_id"
        )
    ]
    assert answer[1][3][0]["rule_version"] is not None
    # A late arrival at 00:00:03 (10.00): it fires itself (10 < 50, 3 s after
    # the first), and transaction 2 is re-scored: prior average (100 + 10) / 2
    # = 55, threshold 27.5, 40 is not below; its gap is now 2 s, and it is
    # the third transaction in 10 minutes (velocity: more than 2).
    app_conn.execute(
        "SELECT * FROM store_account_transactions(7, %s)",
        (json.dumps([{"transaction_id": 3, "timestamp": "2024-01-01T00:00:03Z", "amount": 10}]),),
    ).fetchall()
    app_conn.commit()
    assert [(t, r, str(o), str(h)) for t, _, _, _, r, o, h, _ in alerts_of(app_conn, 7)] == [
        (3, "below_average", "10.00", "50.0000"),
        (3, "rapid_succession", "3.000", "10"),
        (2, "rapid_succession", "2.000", "10"),
        (2, "velocity", "3", "2"),
    ]
    assert alerts_of(app_conn, 7) == from_scratch(app_conn, 7)
    assert app_conn.execute(
        "SELECT transaction_count, amount_sum FROM account_states WHERE account_id = 7"
    ).fetchone() == (3, Decimal("150.00"))
    # Each stored row got its decision when stored (2's is kept as answered).
    assert [d[:3] for d in decisions_of(app_conn, 7)] == [
        (1, "approve", 0),
        (2, "decline", 150),
        (3, "decline", 150),
    ]


def test_bad_input_names_the_field(app_conn):
    with pytest.raises(InvalidInput) as refused, db.wrap_errors():
        app_conn.execute(
            "SELECT * FROM store_account_transactions(7, %s)",
            (
                json.dumps(
                    [
                        {
                            "account_id": 8,
                            "transaction_id": 1,
                            "timestamp": "2024-01-01T00:00:00Z",
                            "amount": 1,
                        }
                    ]
                ),
            ),
        )
    assert refused.value.field == "account_id"


PER_ACCOUNT_TABLES = ("transactions", "alerts", "decisions", "account_states", "reviews")


def test_without_merchant_rules_every_read_names_the_account(admin_conn):
    # On Citus the per-account text must read one shard: every read of a
    # per-account table filtered on account_id = $2. merchant_surge_7d's probe
    # of the merchant's first row (every account's rows at the merchant) was
    # left in, and every per-account scoring failed on the cluster ("complex
    # joins are only supported when all distributed tables are co-located").
    text = admin_conn.execute("SELECT _account_rule_query(false)").fetchone()[0]
    reads = re.findall(
        rf"\b(?:FROM|JOIN) ({'|'.join(PER_ACCOUNT_TABLES)}) AS (\w+)\b(.*?)(?=\n\s*\n|\)\s*AS|$)",
        text,
        flags=re.S,
    )
    assert len(reads) >= 5
    for table, alias, rest in reads:
        assert f"{alias}.account_id = $2" in rest, f"{table} AS {alias} reads every account"
    assert "WHERE t.merchant_id = h.merchant_id" not in text
    # With the merchant rules, the section stays (those reads are cross-account).
    assert (
        "WHERE t.merchant_id = h.merchant_id"
        in admin_conn.execute("SELECT _account_rule_query(true)").fetchone()[0]
    )
