"""One decision per transaction, kept as answered (issue 17, part 3).

Expected values are worked out by hand from the default policy (review 50,
decline 100; velocity and below_average score 100, rapid_succession and
large_amount 50, amount_spike and the new-merchant rules 25) and the default
rules (large_amount 10,000; below_average 0.05 x the average after 5; velocity
more than 2 in 10 minutes; rapid_succession under 10 s).

The invariant (hypothesis, through the same paths as the alerts invariant):
each persisted decision equals the decision computed from the history stored
before it, under the rules, policy and lists in force at its arrival, and is
never rewritten by later writes, late arrivals, rule, policy or list changes.
"""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pgfraud import db
from pgfraud.errors import InvalidInput, TransactionConflict, TransactionNotFound

T0 = datetime(2024, 1, 1, tzinfo=UTC)
HOUR = 3_600_000


def tx(tid, account, ms, amount, merchant=None):
    return {
        "transaction_id": tid,
        "account_id": account,
        "timestamp": T0 + timedelta(milliseconds=ms),
        "amount": Decimal(amount),
        "merchant_id": merchant,
    }


def store(conn, *records):
    rows = db.store_transactions(conn, list(records))
    conn.commit()
    return rows


def decision_of(conn, tid):
    return db.get_decision(conn, tid)


def fired(decision):
    return [(r["rule_id"], r["score"]) for r in decision["rules"]]


# -- outcomes, by hand -------------------------------------------------------------------


def test_ordinary_payment_approves_and_a_large_one_reviews(app_conn):
    (first,) = store(app_conn, tx(1, 7, 0, "100.00"))
    assert first["decision"]["outcome"] == "approve"
    assert first["decision"]["score"] == 0
    assert first["decision"]["rules"] == []
    # 12,500.00 five minutes later: large_amount alone (amount_spike needs 3 before).
    (second,) = store(app_conn, tx(2, 7, 300_000, "12500.00"))
    decision = second["decision"]
    assert decision["outcome"] == "review"
    assert decision["score"] == 50
    assert decision["score_outcome"] == "review"
    assert decision["rules"] == [
        {
            "rule_id": "large_amount",
            "rule_version": 1,
            "score": 50,
            "observed": "12500.00",
            "threshold": "10000",
            "reason": second["alerts"][0]["reason"],
        }
    ]
    assert decision["lists"] == []
    assert decision["overruled"] is False
    assert decision["policy"] == {"policy_id": 1, "review_threshold": 50, "decline_threshold": 100}
    assert decision["timestamp"] == "2024-01-01T00:05:00.000Z"
    assert decision["amount"] == "12500.00"


def test_scores_add_up_to_decline(app_conn):
    # Five payments of 100.00 an hour apart, then 1.00 3 s after the fifth:
    # below_average (1.00 < 0.05 x 100.00 after 5) scores 100, rapid_succession
    # (3 s < 10 s) 50; velocity sees 2 in 10 minutes (not > 2): 150, decline.
    store(app_conn, *[tx(i, 7, i * HOUR, "100.00") for i in range(1, 6)])
    (row,) = store(app_conn, tx(6, 7, 5 * HOUR + 3000, "1.00"))
    assert fired(row["decision"]) == [("below_average", 100), ("rapid_succession", 50)]
    assert row["decision"]["score"] == 150
    assert row["decision"]["outcome"] == "decline"


def test_the_decision_records_the_rule_parameters_in_force(app_conn):
    (row,) = store(app_conn, tx(1, 7, 0, "100.00"))
    parameters = app_conn.execute(
        "SELECT s.parameters FROM decision_rule_sets AS s WHERE s.rule_set_id = %s",
        (row["decision"]["rule_set_id"],),
    ).fetchone()[0]
    assert parameters["large_amount"] == {"threshold": 10000}
    assert parameters == app_conn.execute("SELECT active_rule_parameters()").fetchone()[0]


# -- lists ---------------------------------------------------------------------------------


def test_a_blocked_merchant_declines_and_the_earlier_decision_stays(app_conn):
    (earlier,) = store(app_conn, tx(1, 7, 0, "20.00", merchant=42))
    assert earlier["decision"]["outcome"] == "approve"
    db.create_list(app_conn, "risky_merchants", "merchant", "block")
    entry = db.add_list_entry(app_conn, "risky_merchants", 42, "breach reported", actor="ana")
    app_conn.commit()
    (later,) = store(app_conn, tx(2, 8, HOUR, "20.00", merchant=42))
    (elsewhere,) = store(app_conn, tx(3, 8, 2 * HOUR, "20.00", merchant=43))
    decision = later["decision"]
    assert decision["outcome"] == "decline"
    assert decision["score"] == 0 and decision["score_outcome"] == "approve"
    assert decision["overruled"] is True
    assert [
        (e["entry_id"], e["list_name"], e["kind"], e["value"], e["reason"])
        for e in decision["lists"]
    ] == [(entry["entry_id"], "risky_merchants", "block", 42, "breach reported")]
    assert decision["lists"][0]["added_by"] == "ana"
    assert elsewhere["decision"]["outcome"] == "approve"
    assert decision_of(app_conn, 1) == earlier["decision"]
    # Removed: the next payment there approves; the decline stays as answered.
    db.remove_list_entry(app_conn, "risky_merchants", 42)
    app_conn.commit()
    (after,) = store(app_conn, tx(4, 9, 3 * HOUR, "20.00", merchant=42))
    assert after["decision"]["outcome"] == "approve"
    assert decision_of(app_conn, 2) == decision


def test_an_allowed_account_approves_with_its_alerts_overruled(app_conn):
    db.create_list(app_conn, "trusted", "account", "allow")
    db.add_list_entry(app_conn, "trusted", 7, "treasury account")
    app_conn.commit()
    store(app_conn, tx(1, 7, 0, "100.00"))
    (row,) = store(app_conn, tx(2, 7, 300_000, "12500.00"))
    assert [a["rule_id"] for a in row["alerts"]] == ["large_amount"]
    decision = row["decision"]
    assert (decision["outcome"], decision["score"], decision["score_outcome"]) == (
        "approve",
        50,
        "review",
    )
    assert decision["overruled"] is True
    assert fired(decision) == [("large_amount", 50)]
    # The alert is kept.
    assert app_conn.execute("SELECT count(*) FROM alerts WHERE transaction_id = 2").fetchone() == (
        1,
    )


def test_allow_comes_before_block(app_conn):
    db.create_list(app_conn, "trusted", "account", "allow")
    db.create_list(app_conn, "risky_merchants", "merchant", "block")
    db.add_list_entry(app_conn, "trusted", 7, "treasury")
    db.add_list_entry(app_conn, "risky_merchants", 42, "breach")
    app_conn.commit()
    (row,) = store(app_conn, tx(1, 7, 0, "10.00", merchant=42))
    assert row["decision"]["outcome"] == "approve"
    assert [e["kind"] for e in row["decision"]["lists"]] == ["allow", "block"]


# -- kept as answered -------------------------------------------------------------------------


def test_late_arrivals_and_rule_changes_leave_decisions_as_answered(app_conn, admin_conn):
    store(app_conn, tx(1, 7, 0, "100.00"), tx(2, 7, HOUR, "100.00"))
    (late,) = store(app_conn, tx(3, 7, HOUR - 3000, "100.00"))
    # The late arrival is judged on what was stored before it: 3 s before row 2 is
    # not "before" it in time, so its past is row 1 alone, an hour earlier: approve.
    assert late["decision"]["outcome"] == "approve"
    # Row 2's alerts are re-scored (rapid_succession now fires on it, 3 s after
    # the late row), its decision is not.
    assert app_conn.execute("SELECT rule_id FROM alerts WHERE transaction_id = 2").fetchall() == [
        ("rapid_succession",)
    ]
    assert decision_of(app_conn, 2)["outcome"] == "approve"
    assert decision_of(app_conn, 2)["rules"] == []
    admin_conn.execute("SELECT set_rule('large_amount', true, '{\"threshold\": 50}')")
    assert app_conn.execute(
        "SELECT count(*) FROM alerts WHERE rule_id = 'large_amount'"
    ).fetchone() == (3,)
    assert [decision_of(app_conn, t)["outcome"] for t in (1, 2, 3)] == ["approve"] * 3
    # Owner's updates and deletes leave them too.
    admin_conn.execute("UPDATE transactions SET amount = 1 WHERE transaction_id = 1")
    admin_conn.execute("DELETE FROM transactions WHERE transaction_id = 2")
    assert decision_of(app_conn, 1)["amount"] == "100.00"
    assert decision_of(app_conn, 2)["outcome"] == "approve"


def test_a_duplicate_answers_the_first_decision(app_conn, admin_conn):
    (first,) = store(app_conn, tx(1, 7, 0, "12500.00"))
    admin_conn.execute("SELECT set_decision_policy('{\"review_threshold\": 60}')")
    (again,) = store(app_conn, tx(1, 7, 0, "12500.00"))
    assert again["status"] == "duplicate"
    assert again["decision"] == first["decision"]
    assert app_conn.execute("SELECT count(*) FROM decisions").fetchone() == (1,)


def test_a_refused_store_leaves_no_decision(app_conn):
    store(app_conn, tx(1, 7, 0, "10.00"))
    with pytest.raises(TransactionConflict):
        db.store_transactions(app_conn, [tx(2, 7, 1, "10.00"), tx(1, 7, 0, "11.00")])
    app_conn.rollback()
    assert app_conn.execute("SELECT transaction_id FROM decisions").fetchall() == [(1,)]


def test_every_path_writes_one_decision(client, app_conn):
    response = client.post(
        "/store_data",
        json={
            "account_id": 7,
            "transaction_id": 1,
            "timestamp": 0 + 1704067200000,
            "amount": "12500.00",
        },
    )
    assert response.status_code == 201
    response = client.get(
        "/store_data?account_id=7&transaction_id=2&timestamp=2024-01-01T02:00:00Z&amount=5.00"
    )
    assert response.status_code == 201
    batch = client.post(
        "/store_data",
        json=[
            {
                "account_id": 8,
                "transaction_id": 3,
                "timestamp": "2024-01-01T00:00:00Z",
                "amount": "1.00",
            }
        ],
    ).get_json()
    assert batch["stored"] == 1
    db.copy_transactions(app_conn, [(0, 4, 8, T0 + timedelta(hours=1), Decimal("2.00"))])
    app_conn.execute(
        "INSERT INTO transactions (transaction_id, account_id, ts, amount) VALUES (5, 8, %s, 3.00)",
        (T0 + timedelta(hours=2),),
    )
    with app_conn.cursor().copy(
        "COPY transactions (transaction_id, account_id, ts, amount) FROM STDIN"
    ) as copy:
        copy.write_row((6, 8, T0 + timedelta(hours=3), Decimal("4.00")))
    app_conn.commit()
    rows = app_conn.execute(
        "SELECT transaction_id, outcome FROM decisions ORDER BY transaction_id"
    ).fetchall()
    assert rows == [
        (1, "review"),
        (2, "approve"),
        (3, "approve"),
        (4, "approve"),
        (5, "approve"),
        (6, "approve"),
    ]


# -- reading decisions ------------------------------------------------------------------------


def test_get_decision_of_an_unknown_transaction_is_not_found(app_conn):
    with pytest.raises(TransactionNotFound) as caught:
        db.get_decision(app_conn, 99)
    assert caught.value.field == "transaction_id"


def test_get_decisions_filters_and_pages_newest_first(app_conn):
    store(
        app_conn,
        tx(1, 7, 0, "10.00"),
        tx(2, 7, HOUR, "12500.00"),
        tx(3, 8, 2 * HOUR, "12500.00"),
        tx(4, 8, 3 * HOUR, "10.00"),
    )
    every = db.get_decisions(app_conn)
    assert [d["transaction_id"] for d in every] == [4, 3, 2, 1]
    review = db.get_decisions(app_conn, outcome="review")
    assert [d["transaction_id"] for d in review] == [3, 2]
    assert [d["transaction_id"] for d in db.get_decisions(app_conn, account_id=7)] == [2, 1]
    window = db.get_decisions(app_conn, start=T0 + timedelta(hours=1), end=T0 + timedelta(hours=3))
    assert [d["transaction_id"] for d in window] == [3, 2]
    page = db.get_decisions(app_conn, limit=2)
    following = db.get_decisions(app_conn, before=(T0 + timedelta(hours=2), 3), limit=2)
    assert [d["transaction_id"] for d in page + following] == [4, 3, 2, 1]
    for bad, field in [({"outcome": "maybe"}, "outcome"), ({"limit": 0}, "limit")]:
        with pytest.raises(InvalidInput) as caught:
            db.get_decisions(app_conn, **bad)
        app_conn.rollback()
        assert caught.value.field == field


# -- the invariant under random writes ---------------------------------------------------------

PATHS = ("http", "sql", "staged_copy", "insert", "copy")
RULE_CHANGES = (
    ("velocity", {"window_seconds": 60, "max_transactions": 1}),
    ("below_average", {"factor": 0.5, "min_history": 1}),
    ("large_amount", {"threshold": 15}),
    ("rapid_succession", {"min_gap_seconds": 120}),
)
POLICY_CHANGES = (
    {"review_threshold": 25},
    {"decline_threshold": 75},
    {"rule_scores": {"large_amount": 100}},
    {"rule_scores": {"rapid_succession": 0, "velocity": 30}},
    {"review_threshold": 50, "decline_threshold": 100},
)
LISTS = (
    ("trusted", "account", "allow"),
    ("blocked", "account", "block"),
    ("risky_merchants", "merchant", "block"),
)
_accounts = itertools.count(5000, 10)

transaction_specs = st.tuples(
    st.integers(0, 1),  # which of two accounts
    st.one_of(st.integers(0, 7_200_000), st.sampled_from([0, 5_000, 60_000, 3_600_000])),
    st.one_of(st.integers(0, 3000), st.sampled_from([1000, 2000, 1_500_000])),
    st.sampled_from([None, 1, 2]),  # merchant
)
steps = st.lists(
    st.one_of(
        st.tuples(
            st.just("write"), st.sampled_from(PATHS), st.lists(transaction_specs, max_size=3)
        ),
        st.tuples(st.just("resend"), st.sampled_from(PATHS), st.integers(0, 50)),
        st.tuples(st.just("conflict"), st.sampled_from(PATHS), st.integers(0, 50)),
        st.tuples(st.just("rule"), st.sampled_from(range(len(RULE_CHANGES))), st.booleans()),
        st.tuples(st.just("policy"), st.sampled_from(range(len(POLICY_CHANGES)))),
        st.tuples(
            st.just("list"), st.sampled_from(range(len(LISTS))), st.integers(0, 2), st.booleans()
        ),
    ),
    min_size=1,
    max_size=8,
)


def write(path, client, app_conn, records, expect):
    """Store records by one path; the expected decisions of the stored records
    (expect(records) on the history stored right after the statement that stored
    them), or None when the write was refused (rolled back)."""
    if path == "http":
        body = [
            {**r, "timestamp": r["timestamp"].isoformat(), "amount": str(r["amount"])}
            for r in records
        ]
        response = client.post(
            "/store_data", data=json.dumps(body), headers={"Content-Type": "application/json"}
        )
        assert response.status_code in (200, 201, 409), response.get_json()
        return expect(records) if response.status_code != 409 else None
    rows = [
        (r["transaction_id"], r["account_id"], r["timestamp"], r["amount"], r["merchant_id"])
        for r in records
    ]
    expected = {}
    try:
        if path == "sql":
            db.store_transactions(app_conn, records)
        elif path == "staged_copy":
            db.copy_transactions(app_conn, [(i, *row) for i, row in enumerate(rows)])
        elif path == "insert":
            # One statement per row: each row is decided on what the statements
            # before it stored (a later row may be a late arrival before it).
            for row, r in zip(rows, records, strict=True):
                app_conn.execute(
                    "INSERT INTO transactions (transaction_id, account_id, ts, amount, merchant_id)"
                    " VALUES (%s, %s, %s, %s, %s)",
                    row,
                )
                expected.update(expect([r]))
        else:
            with app_conn.cursor().copy(
                "COPY transactions (transaction_id, account_id, ts, amount, merchant_id) FROM STDIN"
            ) as copy:
                for row in rows:
                    copy.write_row(row)
        if path != "insert":
            expected = expect(records)
        app_conn.commit()
        return expected
    except (TransactionConflict, InvalidInput, psycopg.errors.UniqueViolation):
        app_conn.rollback()
        return None


class Model:
    """The test's own account of what is in force: policy and list entries."""

    def __init__(self, conn):
        policy = db.get_decision_policy(conn)
        self.review = policy["review_threshold"]
        self.decline = policy["decline_threshold"]
        self.scores = dict(policy["rule_scores"])
        self.entries: dict[tuple[str, int], int] = {}  # (list, value) -> entry_id

    def change_policy(self, change):
        self.review = change.get("review_threshold", self.review)
        self.decline = change.get("decline_threshold", self.decline)
        self.scores.update(change.get("rule_scores", {}))

    def decide(self, record, rule_ids):
        """(outcome, score, [(rule_id, score)], [entry_id]) for a transaction whose
        rules rule_ids fired, under what is in force now."""
        rules = [(r, self.scores[r]) for r in sorted(rule_ids)]
        score = sum(s for _, s in rules)
        by_score = (
            "decline" if score >= self.decline else "review" if score >= self.review else "approve"
        )
        applied = []
        for name, subject, kind in LISTS:
            value = record["account_id"] if subject == "account" else record["merchant_id"]
            if (name, value) in self.entries:
                applied.append((kind, name, self.entries[(name, value)]))
        kinds = {kind for kind, _, _ in applied}
        outcome = "approve" if "allow" in kinds else "decline" if "block" in kinds else by_score
        return outcome, score, rules, [e for _, _, e in sorted(applied)]


def persisted(conn, accounts):
    rows = conn.execute(
        "SELECT transaction_id, outcome, score, rules, lists FROM decisions"
        " WHERE account_id = ANY(%s)",
        (list(accounts),),
    ).fetchall()
    conn.commit()
    return {
        tid: (
            outcome,
            score,
            [(r["rule_id"], r["score"]) for r in rules],
            [e["entry_id"] for e in lists],
        )
        for tid, outcome, score, rules, lists in rows
    }


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(plan=steps)
def test_each_decision_equals_the_one_computed_at_its_arrival(client, app_conn, admin_conn, plan):
    base = next(_accounts)
    accounts = (base, base + 1)
    tid = itertools.count(base * 1000)
    for name, subject, kind in LISTS:
        db.create_list(app_conn, name, subject, kind)
    app_conn.commit()
    # Each test example starts from the default policy and no entries.
    admin_conn.execute(
        'SELECT set_decision_policy(\'{"review_threshold": 50, "decline_threshold": 100}\')'
    )
    admin_conn.execute(
        "UPDATE list_entries SET removed_at = clock_timestamp() WHERE removed_at IS NULL"
    )
    model = Model(app_conn)
    app_conn.commit()
    expected: dict[int, tuple] = {}
    sent: list[dict] = []

    def expect(records):
        """The decisions of records under the model, from the rules on the
        history stored now: a row's events depend only on what is before it."""
        decided = {}
        for r in records:
            rule_ids = [
                row[0]
                for row in app_conn.execute(
                    "SELECT rule_id FROM evaluate_account(%s, active_rule_parameters())"
                    " WHERE transaction_id = %s",
                    (r["account_id"], r["transaction_id"]),
                )
            ]
            decided[r["transaction_id"]] = model.decide(r, rule_ids)
        return decided

    for step in plan:
        if step[0] == "rule":
            rule_id, parameters = RULE_CHANGES[step[1]]
            admin_conn.execute(
                "SELECT set_rule(%s, %s, %s::jsonb)", (rule_id, step[2], json.dumps(parameters))
            )
        elif step[0] == "policy":
            change = POLICY_CHANGES[step[1]]
            merged_review = change.get("review_threshold", model.review)
            merged_decline = change.get("decline_threshold", model.decline)
            if merged_decline >= merged_review:
                db.set_decision_policy(app_conn, change)
                app_conn.commit()
                model.change_policy(change)
        elif step[0] == "list":
            name, subject, _ = LISTS[step[1]]
            value = accounts[step[2] % 2] if subject == "account" else step[2]
            if step[3]:
                entry = db.add_list_entry(app_conn, name, value, "test")
                model.entries[(name, value)] = entry["entry_id"]
            elif (name, value) in model.entries:
                db.remove_list_entry(app_conn, name, value)
                del model.entries[(name, value)]
            app_conn.commit()
        elif step[0] == "write":
            records = [
                {
                    "transaction_id": next(tid),
                    "account_id": accounts[a],
                    "timestamp": T0 + timedelta(milliseconds=ms),
                    "amount": Decimal(cents).scaleb(-2),
                    "merchant_id": merchant,
                }
                for a, ms, cents, merchant in step[2]
            ]
            stored = write(step[1], client, app_conn, records, expect) if records else None
            if stored is not None:
                sent.extend(records)
                expected.update(stored)
        elif sent:
            earlier = sent[step[2] % len(sent)]
            if step[0] == "resend":
                # Nothing new: stored once, its decision as answered the first time.
                write(step[1], client, app_conn, [earlier], lambda records: {})
            else:
                changed = {**earlier, "amount": earlier["amount"] + Decimal("0.01")}
                assert write(step[1], client, app_conn, [changed], lambda records: {}) is None
        assert persisted(app_conn, accounts) == expected


def test_an_id_deleted_and_stored_again_elsewhere_answers_its_new_decision(app_conn, admin_conn):
    store(app_conn, tx(1, 7, 0, "10.00"))
    admin_conn.execute("DELETE FROM transactions WHERE transaction_id = 1")
    (again,) = store(app_conn, tx(1, 8, 0, "12500.00"))
    assert (again["decision"]["account_id"], again["decision"]["outcome"]) == (8, "review")
    assert decision_of(app_conn, 1)["account_id"] == 8
    assert app_conn.execute("SELECT count(*) FROM decisions").fetchone() == (2,)
