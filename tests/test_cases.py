"""Cases: an account's open alerts form one case (issue 18, part 5).

Values by hand from the default rules: large_amount fires on an amount of
10,000 or more (its threshold), alone on a first transaction; nothing else
fires on the small amounts here (below_average needs 5 prior transactions,
velocity more than 2 in 10 minutes, rapid_succession under 10 s apart: the
rows here are hours apart).
"""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest

from pgfraud import db
from pgfraud.errors import CaseConflict, CaseNotFound, InvalidInput

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


def cases_of(conn, **filters):
    rows = db.get_cases(conn, **filters)
    conn.commit()
    return rows


def alerts_of(case):
    return [(a["transaction_id"], a["rule_id"]) for a in case["alerts"]]


def test_an_accounts_alerts_form_one_case(app_conn):
    store(app_conn, tx(1, 7, 0, "20000"), tx(2, 8, 0, "12.50"), tx(3, 9, 0, "15000"))
    store(app_conn, tx(4, 7, HOUR, "30000"), tx(5, 7, 2 * HOUR, "40.00"))
    cases = cases_of(app_conn)
    # Newest first: account 7's case was opened in the first statement with 9's.
    assert [
        (c["account_id"], c["status"], c["alert_count"], c["transaction_count"]) for c in cases
    ] == [
        (9, "open", 1, 1),
        (7, "open", 2, 2),
    ]
    case = db.get_case(app_conn, cases[1]["case_id"])
    assert alerts_of(case) == [(1, "large_amount"), (4, "large_amount")]
    first = case["alerts"][0]
    assert (first["timestamp"], first["amount"], first["observed"], first["threshold"]) == (
        "2024-01-01T00:00:00.000Z",
        "20000.00",
        "20000.00",
        "10000",
    )
    assert first["raised"] is True and first["review_status"] == "unreviewed"
    assert case["resolution"] is None and case["closed_at"] is None


def reviews_of(conn, account):
    rows = conn.execute(
        "SELECT transaction_id, status, note, reviewer FROM reviews"
        " WHERE account_id = %s ORDER BY review_id",
        (account,),
    ).fetchall()
    conn.commit()
    return rows


def test_closing_reviews_the_cases_transactions_and_new_alerts_open_a_new_case(app_conn):
    store(app_conn, tx(1, 7, 0, "20000"), tx(2, 7, HOUR, "40.00"), tx(3, 7, 2 * HOUR, "11000"))
    (case,) = cases_of(app_conn)
    assigned = db.assign_case(app_conn, case["case_id"], " alice ", actor="bob")
    app_conn.commit()
    assert (assigned["status"], assigned["assignee"], assigned["assigned_by"]) == (
        "assigned",
        "alice",
        "bob",
    )
    closed = db.close_case(app_conn, case["case_id"], "fraud", "card stolen", actor="alice")
    app_conn.commit()
    assert (closed["status"], closed["resolution"], closed["note"], closed["closed_by"]) == (
        "closed",
        "fraud",
        "card stolen",
        "alice",
    )
    assert closed["assignee"] == "alice" and closed["reviewed"] == 2
    # Only the transactions with alerts in the case (1 and 3, not 2).
    assert reviews_of(app_conn, 7) == [
        (1, "confirmed_fraud", "card stolen", "alice"),
        (3, "confirmed_fraud", "card stolen", "alice"),
    ]
    shown = db.get_case(app_conn, case["case_id"])
    assert [a["review_status"] for a in shown["alerts"]] == ["confirmed_fraud", "confirmed_fraud"]
    # A new alert on the account: a new open case; the closed one stays as it was.
    store(app_conn, tx(4, 7, 3 * HOUR, "50000"))
    cases = cases_of(app_conn, account_id=7)
    assert [(c["status"], c["alert_count"]) for c in cases] == [("open", 1), ("closed", 2)]
    assert alerts_of(db.get_case(app_conn, cases[0]["case_id"])) == [(4, "large_amount")]
    # not_fraud reviews as false_positive; the actor defaults to the login.
    closed = db.close_case(app_conn, cases[0]["case_id"], "not_fraud")
    app_conn.commit()
    assert closed["closed_by"] == "pgfraud_service"
    assert reviews_of(app_conn, 7)[-1] == (4, "false_positive", "", "pgfraud_service")


def test_alerts_written_again_by_a_rule_change_stay_in_their_case(app_conn, admin_conn):
    store(app_conn, tx(1, 7, 0, "20000"), tx(2, 7, HOUR, "12000"))
    (case,) = cases_of(app_conn)
    db.close_case(app_conn, case["case_id"], "not_fraud")
    app_conn.commit()
    # 15,000: the alert of 2 goes; 10,000 again: it comes back as a new row.
    db.change_rule(admin_conn, "large_amount", parameters={"threshold": 15000})
    assert db.is_fraud(admin_conn, 7)[0]["transaction_id"] == 1
    db.change_rule(admin_conn, "large_amount", parameters={"threshold": 10000})
    assert [e["transaction_id"] for e in db.is_fraud(admin_conn, 7)] == [1, 2]
    assert [(c["case_id"], c["status"]) for c in cases_of(app_conn)] == [
        (case["case_id"], "closed")
    ]
    # A rule that fires on an old transaction for the first time is a new alert: a new case.
    db.change_rule(admin_conn, "large_amount", parameters={"threshold": 5000})
    store(app_conn, tx(3, 7, 2 * HOUR, "6000"))
    assert [(c["status"], c["alert_count"]) for c in cases_of(app_conn)] == [
        ("open", 1),
        ("closed", 2),
    ]


def test_a_case_says_how_many_of_its_alerts_are_still_raised(app_conn, admin_conn):
    """Two alerts (large_amount on 20,000 and 12,000); the threshold raised to
    15,000 re-scores the second away: the case keeps both, 1 still raised;
    lowered again, both are raised (fresh-user trial: a rule's round trip
    left cases whose alerts were all gone, with nothing saying so)."""
    store(app_conn, tx(1, 7, 0, "20000"), tx(2, 7, HOUR, "12000"))
    (case,) = cases_of(app_conn)
    assert (case["alert_count"], case["alerts_raised"]) == (2, 2)
    db.change_rule(admin_conn, "large_amount", parameters={"threshold": 15000})
    (case,) = cases_of(app_conn)
    assert (case["alert_count"], case["alerts_raised"]) == (2, 1)
    assert db.get_case(app_conn, case["case_id"])["alerts_raised"] == 1
    db.change_rule(admin_conn, "large_amount", parameters={"threshold": 30000})
    (case,) = cases_of(app_conn)
    assert (case["alert_count"], case["alerts_raised"]) == (2, 0)
    from pgfraud.cli import _case_line

    assert " 2 alert(s) on 2 transaction(s) (0 still raised)  opened " in _case_line(case)


def test_a_case_with_no_alert_raised_closes_as_withdrawn_reviewing_nothing(app_conn, admin_conn):
    """Two alerts (large_amount on 20,000 and 12,000), the case assigned (a
    rule change leaves assigned cases to their analyst). While one alert is
    raised, withdrawn is refused (PF001 naming resolution) and nothing
    changes; the threshold raised to 30,000 re-scores both away
    (alerts_raised 0), and the case closes as withdrawn with 0 reviews: no
    label made that no one judged (closing it as not_fraud reviewed both as
    false_positive)."""
    store(app_conn, tx(1, 7, 0, "20000"), tx(2, 7, HOUR, "12000"))
    (case,) = cases_of(app_conn)
    cid = case["case_id"]
    db.assign_case(app_conn, cid, "alice")
    app_conn.commit()
    db.change_rule(admin_conn, "large_amount", parameters={"threshold": 15000})
    with pytest.raises(InvalidInput) as info:
        db.close_case(app_conn, cid, "withdrawn")
    assert (info.value.field, info.value.message) == (
        "resolution",
        f"case {cid} has 1 alert(s) still raised: close it as fraud or not_fraud",
    )
    app_conn.rollback()
    assert cases_of(app_conn)[0]["status"] == "assigned"
    db.change_rule(admin_conn, "large_amount", parameters={"threshold": 30000})
    assert cases_of(app_conn)[0]["status"] == "assigned"  # not closed under alice
    closed = db.close_case(app_conn, cid, "withdrawn", "rule round trip")
    app_conn.commit()
    assert (closed["status"], closed["resolution"], closed["reviewed"]) == (
        "closed",
        "withdrawn",
        0,
    )
    assert (closed["alert_count"], closed["alerts_raised"], closed["note"]) == (
        2,
        0,
        "rule round trip",
    )
    assert reviews_of(app_conn, 7) == []
    audit = admin_conn.execute(
        "SELECT after->>'status', after->>'resolution' FROM audit_log"
        " WHERE object_kind = 'case' AND object_key = %s ORDER BY audit_id",
        (str(cid),),
    ).fetchall()
    admin_conn.commit()
    assert audit == [("assigned", None), ("closed", "withdrawn")]


def test_a_rule_change_withdraws_the_open_cases_it_empties_and_raised_again_they_move(
    app_conn, admin_conn
):
    """Account 7: large_amount on 20,000 and 12,000, its case left open;
    account 8: 11,000, its case closed as not_fraud. Threshold 30,000: both
    7's alerts go, and the change closes 7's case as withdrawn, by the
    change's actor, reviewing nothing; 8's closed case is left as it is.
    Threshold 15,000: 20,000 is raised again and moves to a new open case of
    7 (no one judged it); 10,000: 12,000 joins it, and 8's 11,000 comes back
    into its not_fraud case, as any alert of a case someone closed."""
    store(app_conn, tx(1, 7, 0, "20000"), tx(2, 7, HOUR, "12000"), tx(3, 8, 0, "11000"))
    case7, case8 = sorted(c["case_id"] for c in cases_of(app_conn))
    db.close_case(app_conn, case8, "not_fraud")
    app_conn.commit()
    admin_conn.execute("SET pgfraud.actor = 'carol'")
    db.change_rule(admin_conn, "large_amount", parameters={"threshold": 30000})
    withdrawn = db.get_case(app_conn, case7)
    app_conn.commit()
    assert (withdrawn["status"], withdrawn["resolution"], withdrawn["closed_by"]) == (
        "closed",
        "withdrawn",
        "carol",
    )
    assert withdrawn["note"] == (
        "withdrawn by the change of rule(s) large_amount: none of its alerts is raised any more"
    )
    assert (withdrawn["alert_count"], withdrawn["alerts_raised"]) == (2, 0)
    assert reviews_of(app_conn, 7) == []
    assert admin_conn.execute(
        "SELECT actor, before->>'status', after->>'resolution' FROM audit_log"
        " WHERE object_kind = 'case' AND object_key = %s",
        (str(case7),),
    ).fetchall() == [("carol", "open", "withdrawn")]
    admin_conn.commit()
    db.change_rule(admin_conn, "large_amount", parameters={"threshold": 15000})
    by_id = {c["case_id"]: c for c in cases_of(app_conn)}
    assert sorted(by_id) == [case7, case8, case8 + 1]
    new = by_id[case8 + 1]
    assert (new["account_id"], new["status"], new["alert_count"], new["alerts_raised"]) == (
        7,
        "open",
        1,
        1,
    )
    assert alerts_of(db.get_case(app_conn, new["case_id"])) == [(1, "large_amount")]
    app_conn.commit()
    assert by_id[case7]["alert_count"] == 1  # 12,000, still not raised
    db.change_rule(admin_conn, "large_amount", parameters={"threshold": 10000})
    counts = {
        c["case_id"]: (c["status"], c["resolution"], c["alert_count"]) for c in cases_of(app_conn)
    }
    assert counts == {
        case7: ("closed", "withdrawn", 0),
        case8: ("closed", "not_fraud", 1),
        case8 + 1: ("open", None, 2),
    }
    # The moves are not actions anyone took: no audit entry (a psql DELETE
    # of a case's alert is one).
    kinds = "SELECT object_kind, count(*) FROM audit_log GROUP BY 1 ORDER BY 1"
    assert admin_conn.execute(kinds).fetchall() == [("case", 2), ("review", 1), ("rule", 3)]
    admin_conn.execute("DELETE FROM case_alerts WHERE case_id = %s", (case8,))
    assert admin_conn.execute(kinds).fetchall() == [
        ("case", 2),
        ("case_alert", 1),
        ("review", 1),
        ("rule", 3),
    ]
    admin_conn.rollback()


def test_refused_case_actions_write_nothing(app_conn):
    store(app_conn, tx(1, 7, 0, "20000"))
    (case,) = cases_of(app_conn)
    with pytest.raises(CaseNotFound) as info:
        db.close_case(app_conn, case["case_id"] + 1, "fraud")
    assert info.value.field == "case_id" and info.value.status == 404
    app_conn.rollback()
    with pytest.raises(CaseNotFound):
        db.get_case(app_conn, 999)
    app_conn.rollback()
    with pytest.raises(InvalidInput) as info:
        db.close_case(app_conn, case["case_id"], "maybe")
    assert (info.value.field, info.value.message) == (
        "resolution",
        "resolution must be fraud, not_fraud or withdrawn",
    )
    app_conn.rollback()
    with pytest.raises(InvalidInput) as info:
        db.close_case(app_conn, case["case_id"], "fraud", "x" * 2001)
    assert info.value.field == "note"
    app_conn.rollback()
    with pytest.raises(InvalidInput) as info:
        db.assign_case(app_conn, case["case_id"], "  ")
    assert info.value.field == "assignee"
    app_conn.rollback()
    with pytest.raises(InvalidInput) as info:
        db.get_cases(app_conn, status="pending")
    assert info.value.field == "status"
    app_conn.rollback()
    assert cases_of(app_conn)[0]["status"] == "open" and reviews_of(app_conn, 7) == []
    db.close_case(app_conn, case["case_id"], "fraud")
    app_conn.commit()
    with pytest.raises(CaseConflict) as info:
        db.close_case(app_conn, case["case_id"], "not_fraud")
    assert info.value.status == 409
    app_conn.rollback()
    with pytest.raises(CaseConflict):
        db.assign_case(app_conn, case["case_id"], "alice")
    app_conn.rollback()
    shown = cases_of(app_conn)[0]
    assert (shown["resolution"], shown["assignee"]) == ("fraud", None)
    assert reviews_of(app_conn, 7) == [(1, "confirmed_fraud", "", "pgfraud_service")]


def test_cases_page_by_cursor(app_conn):
    store(app_conn, *(tx(i, 100 + i, 0, "20000") for i in range(1, 6)))
    ids = [c["case_id"] for c in cases_of(app_conn)]
    assert len(ids) == 5 and ids == sorted(ids, reverse=True)
    first = db.get_cases(app_conn, limit=2)
    second = db.get_cases(app_conn, before=first[-1]["case_id"], limit=2)
    assert [c["case_id"] for c in first + second] == ids[:4]
    db.assign_case(app_conn, ids[1], "alice")
    app_conn.commit()
    assert [c["case_id"] for c in db.get_cases(app_conn, assignee="alice")] == [ids[1]]
    assert [c["case_id"] for c in db.get_cases(app_conn, status="open")] == ids[:1] + ids[2:]
    assert [c["account_id"] for c in db.get_cases(app_conn, account_id=103)] == [103]


# -- two writers at once: real connections, waiting on pg_blocking_pids ------------------

PATIENCE_S = 120


def run_in_thread(work):
    """Start ``work`` in a thread; its result (or exception) lands in the list."""
    out: list = []

    def target() -> None:
        try:
            out.append(work())
        except Exception as exc:  # noqa: BLE001 - the assertions show it
            out.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, out


def wait_blocked(admin_conn, waiter: psycopg.Connection, holder: psycopg.Connection) -> None:
    """Wait until ``waiter``'s backend waits for a lock ``holder``'s holds."""
    deadline = time.monotonic() + PATIENCE_S
    while (
        holder.info.backend_pid
        not in admin_conn.execute(
            "SELECT pg_blocking_pids(%s)", (waiter.info.backend_pid,)
        ).fetchone()[0]
    ):
        assert time.monotonic() < deadline, "gave up waiting for the second writer to block"
        time.sleep(0.02)


def test_two_analysts_closing_one_case_at_once_one_wins(database, app_conn, admin_conn):
    store(app_conn, tx(1, 7, 0, "20000"))
    (case,) = cases_of(app_conn)
    with db.connect(database.app_url) as first, db.connect(database.app_url) as second:
        db.close_case(first, case["case_id"], "fraud", "first", actor="alice")
        thread, out = run_in_thread(
            lambda: db.close_case(second, case["case_id"], "not_fraud", "second", actor="bob")
        )
        wait_blocked(admin_conn, second, first)
        first.commit()
        thread.join(PATIENCE_S)
        assert isinstance(out[0], CaseConflict), out
        second.rollback()
    shown = cases_of(app_conn)[0]
    assert (shown["resolution"], shown["note"], shown["closed_by"]) == ("fraud", "first", "alice")
    assert reviews_of(app_conn, 7) == [(1, "confirmed_fraud", "first", "alice")]


def test_a_store_during_a_close_opens_a_new_case(database, app_conn, admin_conn):
    store(app_conn, tx(1, 7, 0, "20000"))
    (case,) = cases_of(app_conn)
    with db.connect(database.app_url) as closer, db.connect(database.app_url) as writer:
        db.close_case(closer, case["case_id"], "fraud")
        thread, out = run_in_thread(
            lambda: db.store_transactions(writer, [tx(2, 7, HOUR, "30000")])
        )
        wait_blocked(admin_conn, writer, closer)
        closer.commit()
        thread.join(PATIENCE_S)
        assert not isinstance(out[0], Exception), out
        writer.commit()
    cases = cases_of(app_conn)
    assert [(c["status"], c["alert_count"]) for c in cases] == [("open", 1), ("closed", 1)]
    assert alerts_of(db.get_case(app_conn, cases[0]["case_id"])) == [(2, "large_amount")]
    assert reviews_of(app_conn, 7) == [(1, "confirmed_fraud", "", "pgfraud_service")]


def test_a_close_during_a_store_reviews_the_stored_alert_too(database, app_conn, admin_conn):
    store(app_conn, tx(1, 7, 0, "20000"))
    (case,) = cases_of(app_conn)
    with db.connect(database.app_url) as writer, db.connect(database.app_url) as closer:
        db.store_transactions(writer, [tx(2, 7, HOUR, "30000")])
        thread, out = run_in_thread(lambda: db.close_case(closer, case["case_id"], "fraud"))
        wait_blocked(admin_conn, closer, writer)
        writer.commit()
        thread.join(PATIENCE_S)
        assert out[0]["reviewed"] == 2, out
        closer.commit()
    assert [(c["status"], c["alert_count"]) for c in cases_of(app_conn)] == [("closed", 2)]
    assert [r[:2] for r in reviews_of(app_conn, 7)] == [
        (1, "confirmed_fraud"),
        (2, "confirmed_fraud"),
    ]


def test_closed_cases_count_as_labels_in_evaluate(database, app_conn, monkeypatch):
    from click.testing import CliRunner

    from pgfraud.cli import main

    monkeypatch.setenv("DATABASE_URL", database.admin_url)
    store(app_conn, tx(1, 7, 0, "20000"), tx(2, 7, HOUR, "40.00"), tx(3, 8, 0, "15000"))
    evaluate = ["evaluate", "--json", "--rules", '{"large_amount": {}}']
    before = CliRunner().invoke(main, evaluate)
    assert before.exit_code == 0, before.output
    seven, eight = sorted(cases_of(app_conn), key=lambda c: c["account_id"])
    db.close_case(app_conn, seven["case_id"], "fraud")
    db.close_case(app_conn, eight["case_id"], "not_fraud")
    app_conn.commit()
    result = CliRunner().invoke(main, evaluate)
    assert result.exit_code == 0, result.output
    row = json.loads(result.output)["rows"][0]
    # Transaction 1 is fraud (reviewed), 3 is not: large_amount flags both.
    assert (row["rule_id"], row["scenario"]) == ("large_amount", "all")
    assert (row["labelled"], row["flagged"], row["true_positives"]) == (1, 2, 1)
    assert (row["precision_ratio"], row["recall_ratio"]) == ("0.5000", "1.0000")
    assert before.output.startswith("no labels stored")


def test_cli_lists_shows_assigns_and_closes_cases(database, app_conn, monkeypatch):
    from click.testing import CliRunner

    from pgfraud.cli import main

    monkeypatch.setenv("DATABASE_URL", database.admin_url)
    store(app_conn, tx(1, 7, 0, "20000"), tx(2, 7, HOUR, "40.00"))
    (case,) = cases_of(app_conn)
    cid = case["case_id"]

    def run(*args):
        return CliRunner().invoke(main, ["case", *map(str, args)])

    listed = run("list", "--status", "open")
    assert listed.exit_code == 0, listed.output
    assert listed.output.startswith(
        f"case {cid}  account 7  open  1 alert(s) on 1 transaction(s)  opened "
    )
    shown = run("show", cid)
    assert shown.output.splitlines()[1] == (
        "  2024-01-01T00:00:00.000Z  transaction 1  amount 20000.00  large_amount  unreviewed"
    )
    assigned = run("assign", cid, "alice", "--by", "bob")
    assert assigned.exit_code == 0, assigned.output
    assert "assigned to alice" in assigned.output and assigned.output.endswith(" by bob\n")
    assert run("list", "--assignee", "alice", "--json").output.count("\n") == 1
    bad = run("close", cid, "--resolution", "maybe")
    assert bad.exit_code == 2 and "resolution" in bad.output
    raised = run("close", cid, "--resolution", "withdrawn")
    assert (raised.exit_code, raised.stderr) == (
        2,
        f"error: resolution: case {cid} has 1 alert(s) still raised:"
        " close it as fraud or not_fraud\n",
    )
    closed = CliRunner().invoke(
        main,
        [
            "--actor",
            "alice",
            "case",
            "close",
            str(cid),
            "--resolution",
            "fraud",
            "--note",
            "stolen",
        ],
    )
    assert closed.exit_code == 0, closed.output
    assert closed.output.endswith("; 1 transaction(s) reviewed\n")
    assert "fraud by alice" in closed.output
    again = run("close", cid, "--resolution", "fraud")
    assert (again.exit_code, again.stderr) == (1, f"error: case {cid} is already closed (fraud)\n")
    missing = run("show", 999)
    assert (missing.exit_code, missing.stderr) == (2, "error: there is no case 999\n")
    assert reviews_of(app_conn, 7) == [(1, "confirmed_fraud", "stolen", "alice")]


def test_a_close_as_fraud_is_known_fraud_to_the_merchant_rules_from_the_close(app_conn, admin_conn):
    # compromised_merchant with no delay: one known fraud in 30 days at the
    # merchant, half of its transactions, fires on the merchant's later rows.
    db.change_rule(
        admin_conn,
        "compromised_merchant",
        enabled=True,
        parameters={"delay_days": 0, "min_known_fraud": 1, "min_fraud_share": 0.5},
    )
    soon = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)

    def at(tid, account, hours, amount):
        return {
            **tx(tid, account, 0, amount, merchant=55),
            "timestamp": soon + timedelta(hours=hours),
        }

    store(app_conn, at(1, 7, 0, "20000"), at(2, 9, 1, "12.00"))
    (case,) = cases_of(app_conn)
    assert case["account_id"] == 7
    closed = db.close_case(app_conn, case["case_id"], "fraud")
    app_conn.commit()
    assert closed["reviewed"] == 1
    # Known from the close (before transaction 2's time): 2 now fires, and its
    # new alert opens account 9's case in the close's own transaction.
    assert [e["rule_id"] for e in db.is_fraud(app_conn, 9)] == ["compromised_merchant"]
    cases = cases_of(app_conn)
    assert [(c["account_id"], c["status"]) for c in cases] == [(9, "open"), (7, "closed")]
    assert alerts_of(db.get_case(app_conn, cases[0]["case_id"])) == [(2, "compromised_merchant")]


def test_migration_0029_puts_the_alerts_stored_before_it_in_cases(app_conn, admin_conn):
    from pgfraud.db.migrate import migration_files

    store(app_conn, tx(1, 7, 0, "20000"), tx(2, 8, 0, "15000"), tx(3, 9, 0, "11000"))
    store(app_conn, tx(4, 8, HOUR, "12000"))
    db.review_transaction(app_conn, 2, "confirmed_fraud")
    db.review_transaction(app_conn, 4, "false_positive")
    db.review_transaction(app_conn, 3, "false_positive")
    app_conn.commit()
    # As before the migration: no cases; then its statements that fill them.
    admin_conn.execute("DELETE FROM case_alerts")
    admin_conn.execute("DELETE FROM cases")
    (path,) = [f for f in migration_files() if f.name == "0029_create_cases.sql"]
    text = path.read_text()
    backfill = text[text.index("WITH latest AS") : text.index("-- Written only by")]
    admin_conn.execute(backfill)
    cases = sorted(cases_of(app_conn), key=lambda c: c["account_id"])
    # 7: unreviewed, open. 8: one transaction confirmed fraud, closed as fraud.
    # 9: every alert reviewed false positive, closed as not_fraud.
    assert [
        (c["account_id"], c["status"], c["resolution"], c["alert_count"], c["closed_by"])
        for c in cases
    ] == [
        (7, "open", None, 1, None),
        (8, "closed", "fraud", 2, "pgfraud migrate"),
        (9, "closed", "not_fraud", 1, "pgfraud migrate"),
    ]
    # Nothing re-opens them: a new alert on 8 opens a new case, as after any close.
    store(app_conn, tx(5, 8, 2 * HOUR, "30000"))
    assert [c["status"] for c in cases_of(app_conn, account_id=8)] == ["open", "closed"]


def test_the_cases_page_answers_200_and_a_bad_filter_400(client):
    # The status filter once went into the page's context as "status", which
    # the renderer took as the HTTP status: '0 active' (granian's workers
    # panicked on it) and a TypeError 500 for a refused filter.
    for query in ("", "?status=active", "?status=closed", "?status=any"):
        response = client.get("/ui/cases" + query, headers={"Accept": "text/html"})
        assert response.status_code == 200, query
        assert response.status == "200 OK"
    for query, field in (("?status=bogus", "status"), ("?account_id=abc", "account_id")):
        response = client.get("/ui/cases" + query, headers={"Accept": "text/html"})
        assert response.status_code == 400, query
        assert field in response.get_data(as_text=True)
