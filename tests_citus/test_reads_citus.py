"""Reads, reviews and cases through the Citus coordinator (issue 19).

The alert queue (both orders, with a review status filter), the decisions
list and one decision, cases (list, assign, close) and reviews failed on the
distributed layout: joins of alerts with reviews on transaction_id alone,
_decision_json / _case_json called on a shard's row type, a LANGUAGE sql
function over distributed tables, FOR UPDATE without the distribution
column, and the audit trigger, which cannot write the audit_log reference
table from a shard. The same generated rows go into a plain database and a
distributed one; every read must give the same rows (ids and times aside),
and a review or a case change must write the same audit entry.
"""

from __future__ import annotations

import psycopg
import pytest

from tests_citus.pairs import make_pair, run_pgfraud


@pytest.fixture(scope="module")
def pair(cluster, tmp_path_factory):
    """(single-node URL, distributed URL), each holding the same 1,500 rows."""
    return make_pair(cluster, tmp_path_factory.mktemp("labels"), "reads")


def _both(pair, query: str, params: tuple = ()) -> tuple[list, list]:
    out = []
    for url in pair:
        with psycopg.connect(url, autocommit=True) as conn:
            out.append(conn.execute(query, params).fetchall())
    return out[0], out[1]


ALERT_COLUMNS = (
    "transaction_id, account_id, ts, amount, rule_id, observed, threshold, reason,"
    " review_status, outcome, overruled"
)


def test_the_alert_queue_and_its_total(pair):
    single, distributed = _both(
        pair, f"SELECT {ALERT_COLUMNS} FROM get_alerts(p_order => 'time', p_limit => 10000)"
    )
    assert len(single) > 100
    # Newest transaction first on both; ties go by alert_id, which each
    # node numbers from its own range on Citus, so compare the rows as sets.
    times = [row[2] for row in distributed]
    assert times == sorted(times, reverse=True)
    assert sorted(distributed, key=repr) == sorted(single, key=repr)
    single, distributed = _both(
        pair,
        f"SELECT {ALERT_COLUMNS} FROM get_alerts(p_review_status => 'unreviewed',"
        " p_limit => 10000) ORDER BY ts, transaction_id, rule_id",
    )
    assert distributed == single
    assert _both(pair, "SELECT count_alerts()") == _both(pair, "SELECT count_alerts()")[::-1]


def test_decisions_list_and_one_decision(pair):
    strip = "d - 'decided_at' - 'rule_set_id'"
    single, distributed = _both(pair, f"SELECT {strip} FROM get_decisions(p_limit => 10000) AS d")
    assert len(single) == 1500
    assert distributed == single
    assert (
        _both(pair, f"SELECT {strip} FROM get_decision(700) AS d")[1]
        == _both(pair, f"SELECT {strip} FROM get_decision(700) AS d")[0]
    )


def test_cases_reviews_and_their_audit(pair):
    keys = "c - 'case_id' - 'opened_at'"
    single, distributed = _both(
        pair, f"SELECT {keys} FROM get_cases(p_limit => 1000) AS c ORDER BY c ->> 'account_id'"
    )
    assert single and distributed == single
    entries = []
    for url in pair:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("SELECT set_config('pgfraud.actor', 'alice', false)")
            review = conn.execute(
                "SELECT status, reviewer FROM review_transaction(700, 'false_positive', 'ok')"
            ).fetchone()
            assert review == ("false_positive", "alice")
            case_id, account = conn.execute(
                "SELECT case_id, account_id FROM cases ORDER BY account_id LIMIT 1"
            ).fetchone()
            assert conn.execute("SELECT assign_case(%s, 'bob') ->> 'status'", (case_id,)).fetchone()
            closed = conn.execute(
                "SELECT close_case(%s, 'fraud', 'seen') -> 'reviewed'", (case_id,)
            ).fetchone()[0]
            assert closed > 0
            entries.append(
                conn.execute(
                    "SELECT actor, action, object_kind,"
                    " CASE object_kind WHEN 'case' THEN '' ELSE object_key END,"
                    " after ->> 'status', after ->> 'assignee'"
                    " FROM audit_log WHERE object_kind IN ('review', 'case')"
                    " ORDER BY audit_id"
                ).fetchall()
            )
    assert entries[0][:3] == [
        ("alice", "insert", "review", "700", "false_positive", None),
        ("alice", "update", "case", "", "assigned", "bob"),
        ("alice", "update", "case", "", "closed", "bob"),
    ]
    assert entries[1] == entries[0]


def test_account_history_rules_and_tokens(pair):
    # The account with the most alerts; alert ids left out (each node numbers its own).
    account = _both(
        pair, "SELECT account_id FROM alerts GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1"
    )[0][0][0]
    history = (
        "SELECT transaction_id, ts, amount,"
        " (SELECT jsonb_agg(e - 'alert_id') FROM jsonb_array_elements(alerts) AS e),"
        " jsonb_array_length(alerts), review_status, decision"
        " FROM get_account_history(%s, 10000)"
    )
    single, distributed = _both(pair, history, (account,))
    assert len(single) > 10 and any(row[4] > 0 for row in single)
    assert distributed == single
    # The next page, from a position.
    ts, transaction_id = single[4][1], single[4][0]
    paged = "SELECT transaction_id FROM get_account_history(%s, 3, %s, %s)"
    single, distributed = _both(pair, paged, (account, ts, transaction_id))
    assert single == [(row[0],) for row in _both(pair, history, (account,))[0][5:8]]
    assert distributed == single
    single, distributed = _both(pair, "SELECT rule_id, enabled, parameters FROM get_rules()")
    assert len(single) >= 8 and distributed == single
    single, distributed = _both(pair, "SELECT jsonb_array_length(get_api_tokens(true))")
    assert distributed == single


def test_backtests_run_per_account_and_equal_a_single_node(pair):
    """evaluate_rules, backtest_rules and evaluate_decisions read labels and
    reviews joined on transaction_id and ran the rule code over every account
    at once; on Citus they failed. Live rules (read from alerts), candidate
    parameters (the rule code per account) and a candidate policy must give
    the same figures as on one node."""
    window = ("2024-01-10T00:00:00Z", "2024-02-05T00:00:00Z")
    for rules in (None, '{"large_amount": {"threshold": 300}, "velocity": {}}'):
        single, distributed = _both(
            pair, "SELECT * FROM backtest_rules(%s::jsonb, %s, %s)", (rules, *window)
        )
        assert len(single) > 10 and any(row[3] for row in single)
        assert distributed == single
    policy = '{"review_threshold": 25, "rule_scores": {"velocity": 25}}'
    single, distributed = _both(
        pair,
        "SELECT * FROM evaluate_decisions(%s::jsonb, %s::jsonb, %s, %s)",
        ('{"large_amount": {"threshold": 300}}', policy, *window),
    )
    assert [row[0] for row in single] == ["approve", "review", "decline", "review_or_decline"]
    assert sum(row[1] for row in single[:3]) > 500
    assert distributed == single
    candidates = '{"velocity": {}, "large_amount": {"threshold": 300}}'
    outputs = [run_pgfraud(url, "evaluate", "--rules", candidates) for url in pair]
    assert outputs[0].returncode == 0, outputs[0].stderr
    assert outputs[1].stdout == outputs[0].stdout


def test_raised_order_pages_through_every_alert_once_across_nodes(pair):
    """Each node numbers alerts from its own range, so descending alert_id
    was newest raised first per node only. On Citus the raised order is
    (raised_at, alert_id) and a page's last alert id is the next cursor."""
    _, distributed = pair
    seen: list[tuple] = []
    before = None
    with psycopg.connect(distributed, autocommit=True) as conn:
        total = conn.execute("SELECT count(*) FROM alerts").fetchone()[0]
        while True:
            page = conn.execute(
                "SELECT alert_id, raised_at FROM get_alerts(p_before_alert_id => %s,"
                " p_limit => 97)",
                (before,),
            ).fetchall()
            if not page:
                break
            seen += page
            before = page[-1][0]
        gone = conn.execute("SELECT max(alert_id) + 1 FROM alerts").fetchone()[0]
        with pytest.raises(psycopg.Error) as info:
            conn.execute("SELECT * FROM get_alerts(p_before_alert_id => %s)", (gone,))
        assert info.value.sqlstate == "PF007"
    assert total > 100 and len(seen) == total == len({a for a, _ in seen})
    keys = [(raised_at, alert_id) for alert_id, raised_at in seen]
    assert keys == sorted(keys, reverse=True)
