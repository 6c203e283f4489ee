"""Score on arrival: persisted alerts equal the rule code computed from scratch.

The invariant (DESIGN, Score on arrival): at every commit, and after every
rule change, an account's rows in `alerts` equal
evaluate_account(account, active_rule_parameters()), and account_states holds
its count and sum. Checked on random arrival orders, equal timestamps,
duplicates and conflicting re-sends, through HTTP, SQL store_transactions,
the COPY/staging path, a plain INSERT and a plain COPY; then case by case.
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
_accounts = itertools.count(1000, 10)

EVENT_COLUMNS = "transaction_id, account_id, ts, amount, rule_id, observed, threshold, reason"


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


def assert_invariant(conn, accounts):
    for account in accounts:
        assert alerts_of(conn, account) == from_scratch(conn, account)
        state = conn.execute(
            "SELECT transaction_count, amount_sum FROM account_states WHERE account_id = %s",
            (account,),
        ).fetchone()
        truth = conn.execute(
            "SELECT count(*), sum(amount) FROM transactions WHERE account_id = %s", (account,)
        ).fetchone()
        assert (state or (0, None)) == truth
    conn.commit()


def record(tid, account, ms, amount):
    return {
        "transaction_id": tid,
        "account_id": account,
        "timestamp": T0 + timedelta(milliseconds=ms),
        "amount": Decimal(amount),
    }


# -- the invariant under random writes -----------------------------------------

PATHS = ("http", "sql", "staged_copy", "insert", "copy")
RULE_CHANGES = (
    ("velocity", {"window_seconds": 60, "max_transactions": 2}),
    ("velocity", {"window_seconds": 3600, "max_transactions": 5}),
    ("below_average", {"factor": 0.5, "min_history": 2}),
    ("amount_spike", {"multiplier": 2, "min_history": 1}),
    ("rapid_succession", {"min_gap_seconds": 0.5}),
)

transaction_specs = st.tuples(
    st.integers(0, 1),  # which of two accounts
    st.one_of(st.integers(0, 7_200_000), st.sampled_from([0, 500, 10_000, 60_000, 3_600_000])),
    st.one_of(st.integers(0, 3000), st.sampled_from([1000, 2000, 1_000_000, 1_500_000])),
)
steps = st.lists(
    st.one_of(
        st.tuples(
            st.just("write"), st.sampled_from(PATHS), st.lists(transaction_specs, max_size=4)
        ),
        st.tuples(st.just("resend"), st.sampled_from(PATHS), st.integers(0, 50)),
        st.tuples(st.just("conflict"), st.sampled_from(PATHS), st.integers(0, 50)),
        st.tuples(st.just("rule"), st.sampled_from(range(len(RULE_CHANGES))), st.booleans()),
    ),
    min_size=1,
    max_size=8,
)


def write(path, client, app_conn, records):
    """Store records by one path; True when committed, False when refused (rolled back)."""
    if path == "http":
        body = [
            {**r, "timestamp": r["timestamp"].isoformat(), "amount": str(r["amount"])}
            for r in records
        ]
        response = client.post(
            "/store_data", data=json.dumps(body), headers={"Content-Type": "application/json"}
        )
        assert response.status_code in (200, 201, 409), response.get_json()
        return response.status_code != 409
    try:
        if path == "sql":
            db.store_transactions(app_conn, records)
        elif path == "staged_copy":
            db.copy_transactions(
                app_conn,
                [
                    (i, r["transaction_id"], r["account_id"], r["timestamp"], r["amount"])
                    for i, r in enumerate(records)
                ],
            )
        elif path == "insert":
            with app_conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO transactions (transaction_id, account_id, ts, amount)"
                    " VALUES (%s, %s, %s, %s)",
                    [
                        (r["transaction_id"], r["account_id"], r["timestamp"], r["amount"])
                        for r in records
                    ],
                )
        else:  # a plain COPY into the table, as psql \copy does
            with app_conn.cursor().copy(
                "COPY transactions (transaction_id, account_id, ts, amount) FROM STDIN"
            ) as copy:
                for r in records:
                    copy.write_row(
                        (r["transaction_id"], r["account_id"], r["timestamp"], r["amount"])
                    )
        app_conn.commit()
        return True
    except (TransactionConflict, InvalidInput, psycopg.errors.UniqueViolation):
        app_conn.rollback()
        return False


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(plan=steps)
def test_alerts_equal_the_rules_from_scratch_at_every_commit(client, app_conn, admin_conn, plan):
    base = next(_accounts)
    accounts = (base, base + 1)
    tid = itertools.count(base * 1000)
    sent: list[dict] = []  # stored records, for re-sends
    for step in plan:
        if step[0] == "rule":
            rule_id, parameters = RULE_CHANGES[step[1]]
            admin_conn.execute(
                "SELECT set_rule(%s, %s, %s::jsonb)", (rule_id, step[2], json.dumps(parameters))
            )
        elif step[0] == "write":
            records = [
                record(next(tid), accounts[a], ms, Decimal(cents).scaleb(-2))
                for a, ms, cents in step[2]
            ]
            if records and write(step[1], client, app_conn, records):
                sent.extend(records)
        elif sent:
            earlier = sent[step[2] % len(sent)]
            if step[0] == "resend":
                # An unchanged re-send: stored once, no second alert (a plain
                # INSERT or COPY refuses it whole, which changes nothing).
                write(step[1], client, app_conn, [earlier])
            else:
                changed = {**earlier, "amount": earlier["amount"] + Decimal("0.01")}
                assert not write(step[1], client, app_conn, [changed])
        assert_invariant(app_conn, accounts)


# -- case by case ---------------------------------------------------------------


def test_a_late_arrival_rescores_the_rows_after_it(app_conn, admin_conn):
    # Rules: rapid_succession (10 s) only. 2 arrives 60 s after 1: no alert.
    # Then 3 arrives late, 5 s before 2: 3 is 55 s after 1 (no alert) and 2 is
    # now 5 s after 3, so 2 fires, observed 5.000.
    admin_conn.execute("UPDATE rules SET enabled = (rule_id = 'rapid_succession')")
    db.store_transactions(app_conn, [record(1, 7, 0, "10.00"), record(2, 7, 60_000, "10.00")])
    app_conn.commit()
    assert alerts_of(app_conn, 7) == []
    db.store_transactions(app_conn, [record(3, 7, 55_000, "10.00")])
    app_conn.commit()
    rows = alerts_of(app_conn, 7)
    assert [(r[0], r[4], r[5]) for r in rows] == [(2, "rapid_succession", Decimal("5.000"))]
    assert_invariant(app_conn, [7])


def test_an_in_order_arrival_uses_the_running_totals(app_conn, admin_conn):
    # below_average (0.9, min 1): prior sum 10 + 20 = 30 over 2 -> average 15,
    # threshold 13.5; 13.49 fires with that threshold.
    admin_conn.execute(
        "UPDATE rules SET enabled = (rule_id = 'below_average'), parameters = CASE"
        " WHEN rule_id = 'below_average' THEN '{\"factor\": 0.9, \"min_history\": 1}'"
        " ELSE parameters END"
    )
    db.store_transactions(app_conn, [record(1, 8, 0, "10.00"), record(2, 8, 1000, "20.00")])
    app_conn.commit()
    db.store_transactions(app_conn, [record(3, 8, 2000, "13.49")])
    app_conn.commit()
    assert app_conn.execute(
        "SELECT transaction_id, threshold FROM alerts WHERE account_id = 8"
    ).fetchall() == [(3, Decimal("13.5000"))]
    assert app_conn.execute(
        "SELECT transaction_count, amount_sum FROM account_states WHERE account_id = 8"
    ).fetchone() == (3, Decimal("43.49"))


def test_alerts_record_the_parameters_that_produced_them(app_conn, admin_conn):
    admin_conn.execute("UPDATE rules SET enabled = (rule_id = 'large_amount')")
    db.store_transactions(app_conn, [record(1, 9, 0, "10000.00")])
    app_conn.commit()
    assert app_conn.execute("SELECT rule_id, parameters FROM alerts").fetchall() == [
        ("large_amount", {"threshold": 10000})
    ]


def test_a_rule_change_rescores_history_and_keeps_unchanged_alerts(app_conn, admin_conn):
    admin_conn.execute("UPDATE rules SET enabled = (rule_id = 'large_amount')")
    db.store_transactions(app_conn, [record(1, 9, 0, "10000.00"), record(2, 9, 1000, "500.00")])
    app_conn.commit()
    (first_id,) = app_conn.execute("SELECT alert_id FROM alerts").fetchone()
    # Threshold 500: transaction 2 now fires too; transaction 1 keeps its alert
    # row (same id), with the new threshold recorded.
    admin_conn.execute("SELECT set_rule('large_amount', NULL, '{\"threshold\": 500}')")
    rows = app_conn.execute(
        "SELECT alert_id, transaction_id, threshold, parameters FROM alerts ORDER BY transaction_id"
    ).fetchall()
    assert rows[0] == (first_id, 1, Decimal("500"), {"threshold": 500})
    assert rows[1][1:] == (2, Decimal("500"), {"threshold": 500})
    # Switched off: no alerts left.
    admin_conn.execute("SELECT set_rule('large_amount', false)")
    assert app_conn.execute("SELECT count(*) FROM alerts").fetchone()[0] == 0
    app_conn.commit()


def test_a_rule_change_rescores_that_rule_alone(app_conn, admin_conn):
    admin_conn.execute(
        "UPDATE rules SET enabled = (rule_id IN ('large_amount', 'rapid_succession'))"
    )
    # 2 is 5 s after 1 (rapid_succession, gap 10 s); 1 is 10000.00 (large_amount).
    db.store_transactions(app_conn, [record(1, 9, 0, "10000.00"), record(2, 9, 5000, "500.00")])
    app_conn.commit()

    def rows():
        return app_conn.execute(
            "SELECT transaction_id, rule_id, ctid::text, xmin::text FROM alerts"
            " ORDER BY transaction_id, rule_id"
        ).fetchall()

    assert [r[:2] for r in rows()] == [(1, "large_amount"), (2, "rapid_succession")]
    # Threshold 500: transaction 2 fires large_amount too. rapid_succession
    # is not re-scored: its alert, deleted by the owner first, stays gone
    # (a full re-score brings it back, same content), and no row of it is
    # rewritten (same ctid and xmin).
    admin_conn.execute("DELETE FROM alerts WHERE rule_id = 'rapid_succession'")
    admin_conn.execute("SELECT set_rule('large_amount', NULL, '{\"threshold\": 500}')")
    assert [r[:2] for r in rows()] == [(1, "large_amount"), (2, "large_amount")]
    admin_conn.execute("SELECT rescore_alerts()")
    after = rows()
    assert [r[:2] for r in after] == [
        (1, "large_amount"),
        (2, "large_amount"),
        (2, "rapid_succession"),
    ]
    admin_conn.execute("SELECT set_rule('large_amount', NULL, '{\"threshold\": 400}')")
    assert rows()[2] == after[2]
    after = rows()
    # A description alone changes no rule: no alert row is touched.
    admin_conn.execute("UPDATE rules SET description = 'big' WHERE rule_id = 'large_amount'")
    assert rows() == after
    # Two rules in one statement, one of them off: rapid_succession with a
    # 1 s gap no longer fires; large_amount's rows are untouched.
    admin_conn.execute(
        "UPDATE rules SET parameters = CASE rule_id WHEN 'rapid_succession'"
        ' THEN \'{"min_gap_seconds": 1}\' ELSE \'{"window_seconds": 60,'
        ' "max_transactions": 1}\' END::jsonb'
        " WHERE rule_id IN ('rapid_succession', 'velocity')"
    )
    assert rows() == after[:2]
    # A rule deleted in psql loses its alerts.
    admin_conn.execute("DELETE FROM rules WHERE rule_id = 'large_amount'")
    assert rows() == []
    assert_invariant(app_conn, [9])
    admin_conn.rollback()
    app_conn.commit()


def test_owner_deletes_updates_and_truncates_keep_the_invariant(app_conn, admin_conn):
    admin_conn.execute(
        "UPDATE rules SET enabled = (rule_id IN ('rapid_succession', 'large_amount'))"
    )
    db.store_transactions(
        app_conn,
        [record(1, 5, 0, "1.00"), record(2, 5, 5000, "1.00"), record(3, 5, 60_000, "1.00")],
    )
    app_conn.commit()
    assert [r[0] for r in alerts_of(app_conn, 5)] == [2]
    admin_conn.execute("DELETE FROM transactions WHERE transaction_id = 1")
    assert alerts_of(app_conn, 5) == []  # 2 is now the first transaction
    assert_invariant(app_conn, [5])
    admin_conn.execute(
        "UPDATE transactions SET amount = 20000.00, ts = ts + interval '56 seconds'"
        " WHERE transaction_id = 2"
    )
    # 2 is now 61 s in, 1 s after 3: rapid_succession and large_amount.
    assert [(r[0], r[4]) for r in alerts_of(app_conn, 5)] == [
        (2, "large_amount"),
        (2, "rapid_succession"),
    ]
    assert_invariant(app_conn, [5])
    admin_conn.execute("TRUNCATE transactions")
    assert app_conn.execute("SELECT count(*) FROM alerts").fetchone()[0] == 0
    assert app_conn.execute("SELECT count(*) FROM account_states").fetchone()[0] == 0
    app_conn.commit()


def test_a_failed_store_leaves_no_alert(app_conn):
    db.store_transactions(app_conn, [record(1, 3, 0, "1.00")])
    app_conn.commit()
    with pytest.raises(TransactionConflict):
        # 2 would raise large_amount; 1 conflicts, so nothing of the batch stays.
        db.store_transactions(app_conn, [record(2, 3, 1000, "20000.00"), record(1, 3, 0, "2.00")])
    app_conn.rollback()
    assert app_conn.execute("SELECT count(*) FROM alerts").fetchone()[0] == 0
    assert app_conn.execute("SELECT transaction_count FROM account_states").fetchone()[0] == 1


def test_a_duplicate_creates_no_second_alert(app_conn):
    for _ in range(3):
        db.store_transactions(app_conn, [record(1, 3, 0, "20000.00")])
        app_conn.commit()
    assert app_conn.execute("SELECT rule_id FROM alerts").fetchall() == [("large_amount",)]


def test_is_fraud_reads_pages_of_persisted_alerts(app_conn, admin_conn):
    admin_conn.execute(
        "UPDATE rules SET enabled = (rule_id IN ('large_amount', 'rapid_succession'))"
    )
    db.store_transactions(app_conn, [record(i, 4, i * 1000, "20000.00") for i in range(1, 4)])
    app_conn.commit()
    everything = db.is_fraud(app_conn, 4)
    # 1: large; 2 and 3: large + rapid (1 s gaps).
    assert [(e["transaction_id"], e["rule_id"]) for e in everything] == [
        (1, "large_amount"),
        (2, "large_amount"),
        (2, "rapid_succession"),
        (3, "large_amount"),
        (3, "rapid_succession"),
    ]
    first = db.is_fraud(app_conn, 4, limit=2)
    assert first == everything[:2]
    last = first[-1]
    rest = db.is_fraud(
        app_conn, 4, limit=10, after=(last["ts"], last["transaction_id"], last["rule_id"])
    )
    assert rest == everything[2:]
    with pytest.raises(InvalidInput):
        db.is_fraud(app_conn, 4, limit=0)
    app_conn.rollback()


def test_review_is_kept_and_survives_rescoring(app_conn, admin_conn):
    db.store_transactions(app_conn, [record(1, 6, 0, "20000.00")])
    app_conn.commit()
    review = db.review_transaction(app_conn, 1, "confirmed_fraud", "card reported stolen", "ana")
    app_conn.commit()
    assert (review["transaction_id"], review["account_id"], review["status"], review["note"]) == (
        1,
        6,
        "confirmed_fraud",
        "card reported stolen",
    )
    assert review["reviewer"] == "ana"
    admin_conn.execute("SELECT set_rule('large_amount', false)")
    admin_conn.execute("SELECT set_rule('large_amount', true)")
    alerts = db.get_alerts(app_conn, account_id=6)
    assert [(a["transaction_id"], a["review_status"], a["reviewer"]) for a in alerts] == [
        (1, "confirmed_fraud", "ana")
    ]
    # The service login is the default reviewer.
    default = db.review_transaction(app_conn, 1, "false_positive")
    assert default["reviewer"] == "pgfraud_service"
    app_conn.commit()
    assert db.get_alerts(app_conn, review_status="false_positive")[0]["review_note"] == ""


def test_review_errors_name_the_field(app_conn):
    db.store_transactions(app_conn, [record(1, 6, 0, "1.00")])
    app_conn.commit()
    with pytest.raises(TransactionNotFound) as missing:
        db.review_transaction(app_conn, 2, "confirmed_fraud")
    assert missing.value.field == "transaction_id"
    app_conn.rollback()
    with pytest.raises(InvalidInput) as status:
        db.review_transaction(app_conn, 1, "fraud")
    assert status.value.field == "status"
    app_conn.rollback()


def test_reviews_count_as_labels_in_evaluate_rules(app_conn, admin_conn):
    admin_conn.execute("UPDATE rules SET enabled = (rule_id = 'large_amount')")
    db.store_transactions(
        app_conn,
        [record(1, 6, 0, "20000.00"), record(2, 6, 1000, "5.00"), record(3, 6, 2000, "30000.00")],
    )
    app_conn.commit()
    admin_conn.execute("INSERT INTO fraud_labels VALUES (3, 'account_takeover')")
    # 1 confirmed by review (no label: scenario 'reviewed'); 3 labelled but
    # reviewed as a false positive: not fraud. Known fraud: {1}.
    db.review_transaction(app_conn, 1, "confirmed_fraud")
    db.review_transaction(app_conn, 3, "false_positive")
    app_conn.commit()
    rows = db.evaluate_rules(admin_conn, None, None, None)
    large = {r["scenario"]: r for r in rows if r["rule_id"] == "large_amount"}
    assert large["all"]["labelled"] == 1
    assert large["all"]["flagged"] == 2
    assert large["all"]["true_positives"] == 1
    assert large["all"]["precision_ratio"] == Decimal("0.5000")
    assert large["reviewed"]["recall_ratio"] == Decimal("1.0000")
    assert "account_takeover" not in large


def test_get_alerts_filters_and_pages_newest_first(app_conn, admin_conn):
    admin_conn.execute(
        "UPDATE rules SET enabled = (rule_id IN ('large_amount', 'rapid_succession'))"
    )
    db.store_transactions(app_conn, [record(1, 1, 0, "20000.00"), record(2, 2, 0, "20000.00")])
    db.store_transactions(app_conn, [record(3, 2, 1000, "20000.00")])
    app_conn.commit()
    ids = [a["alert_id"] for a in db.get_alerts(app_conn)]
    assert ids == sorted(ids, reverse=True) and len(ids) == 4
    assert [
        a["transaction_id"] for a in db.get_alerts(app_conn, account_id=2, rule_id="large_amount")
    ] == [3, 2]
    assert [a["transaction_id"] for a in db.get_alerts(app_conn, rule_id="rapid_succession")] == [3]
    page = db.get_alerts(app_conn, limit=2)
    assert [a["alert_id"] for a in page] == ids[:2]
    assert [a["alert_id"] for a in db.get_alerts(app_conn, before=page[-1]["alert_id"])] == ids[2:]
    in_range = db.get_alerts(
        app_conn, start=T0 + timedelta(seconds=1), end=T0 + timedelta(seconds=2)
    )
    assert {a["transaction_id"] for a in in_range} == {3}
    with pytest.raises(InvalidInput) as bad:
        db.get_alerts(app_conn, review_status="done")
    assert bad.value.field == "review_status"
    app_conn.rollback()


def test_the_feed_waits_for_older_transactions_and_keeps_order(database, app_conn):
    start = db.get_alert_feed_start(app_conn)
    app_conn.commit()
    position = tuple(int(p) for p in start.split("-"))
    slow = db.connect(database.app_url)
    try:
        db.store_transactions(slow, [record(1, 1, 0, "20000.00")])  # open, not committed
        db.store_transactions(app_conn, [record(2, 2, 0, "30000.00")])
        app_conn.commit()
        # 2 committed, but the older transaction that stores 1 is still open.
        assert db.get_alert_feed(app_conn, position) == []
        app_conn.commit()
        slow.commit()
        feed = db.get_alert_feed(app_conn, position)
        assert [(e["transaction_id"], e["rule_id"]) for e in feed] == [
            (1, "large_amount"),
            (2, "large_amount"),
        ]
        resumed = tuple(int(p) for p in feed[0]["event_id"].split("-"))
        assert [e["transaction_id"] for e in db.get_alert_feed(app_conn, resumed)] == [2]
    finally:
        slow.close()


def test_new_alerts_are_notified_at_commit(database, app_conn):
    with db.connect(database.app_url, autocommit=True) as listener:
        listener.execute("LISTEN pgfraud_alerts")
        db.store_transactions(app_conn, [record(1, 1, 0, "5.00")])  # no alert
        app_conn.commit()
        assert list(listener.notifies(timeout=0.5)) == []
        db.store_transactions(app_conn, [record(2, 1, 60_000, "20000.00")])
        assert list(listener.notifies(timeout=0.5)) == []  # not before commit
        app_conn.commit()
        notes = list(listener.notifies(timeout=2, stop_after=1))
        assert [(n.channel, n.payload) for n in notes] == [("pgfraud_alerts", "1")]


def test_a_big_account_answers_a_bounded_page(app_conn, admin_conn):
    # 20,000 transactions by one INSERT ... SELECT, every one a large amount.
    admin_conn.execute("UPDATE rules SET enabled = (rule_id = 'large_amount')")
    app_conn.execute(
        "INSERT INTO transactions (transaction_id, account_id, ts, amount)"
        " SELECT g, 77, timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second', 20000.00"
        " FROM generate_series(1, 20000) AS g"
    )
    app_conn.commit()
    page = db.is_fraud(app_conn, 77, limit=100)
    assert [e["transaction_id"] for e in page] == list(range(1, 101))
    assert (
        app_conn.execute("SELECT count(*) FROM alerts WHERE account_id = 77").fetchone()[0] == 20000
    )
    app_conn.commit()
