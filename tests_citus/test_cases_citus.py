"""Cases closed as withdrawn on Citus (migration 0101), as on one node.

The rules switched off re-score every alert away, so every case holds only
alerts no longer raised (alerts_raised 0): the rule changes close each open
case as withdrawn, by their actor, reviewing nothing (_withdraw_cases, from
the coordinator on Citus), and the one assigned case is left for its
analyst, who closes it as withdrawn. The rules switched on again raise the
alerts once more, and they leave the withdrawn cases for new open ones (on
one node the alerts trigger open_cases moves them, on Citus
_open_account_cases, per account). Both databases hold the same generated
rows; every step must leave the same cases on both.
"""

from __future__ import annotations

import psycopg
import pytest

from tests_citus.pairs import make_pair, run_pgfraud

CASES = (
    "SELECT (c ->> 'account_id')::bigint, c ->> 'status', c ->> 'resolution',"
    " (c ->> 'alert_count')::int, (c ->> 'alerts_raised')::int"
    " FROM get_cases(p_limit => 1000) AS c ORDER BY 1, 2, 3, 4, 5"
)


@pytest.fixture(scope="module")
def pair(cluster, tmp_path_factory):
    """(single-node URL, distributed URL), each holding the same 1,500 rows."""
    return make_pair(cluster, tmp_path_factory.mktemp("labels"), "cases")


def _rows(url: str, query: str) -> list[tuple]:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(query).fetchall()


def _on_both(pair, *args: str) -> None:
    for url in pair:
        done = run_pgfraud(url, *args)
        assert done.returncode == 0, (url, done.stderr)


def test_withdrawn_cases_and_their_alerts_raised_again(pair):
    single, distributed = pair
    before = _rows(single, CASES)
    assert len(before) >= 5 and _rows(distributed, CASES) == before
    # One case assigned: a rule change leaves it to its analyst.
    for url in pair:
        with psycopg.connect(url, autocommit=True) as conn:
            (case_id,) = conn.execute(
                "SELECT case_id FROM cases WHERE status = 'open' ORDER BY account_id LIMIT 1"
            ).fetchone()
            conn.execute("SELECT assign_case(%s, 'alice')", (case_id,))
    enabled = [r[0] for r in _rows(single, "SELECT rule_id FROM rules WHERE enabled ORDER BY 1")]
    reviews_before = _rows(single, "SELECT count(*) FROM reviews")
    for rule in enabled:
        _on_both(pair, "rule", "disable", rule)
    emptied = _rows(single, CASES)
    assert {row[4] for row in emptied} == {0}
    # Every open case was closed as withdrawn by the rule changes; the
    # assigned one is left.
    assert {row[1] for row in emptied} == {"closed", "assigned"}
    assert sum(1 for row in emptied if row[2] == "withdrawn") == len(before) - 1 - sum(
        1 for row in before if row[1] == "closed"
    )
    assert _rows(distributed, CASES) == emptied
    trail = (
        "SELECT actor, before ->> 'status', after ->> 'resolution', after ->> 'note'"
        " FROM audit_log WHERE object_kind = 'case' ORDER BY 1, 2, 3, 4"
    )
    assert _rows(distributed, trail) == _rows(single, trail)
    for url in pair:
        with psycopg.connect(url, autocommit=True) as conn:
            (case_id,) = conn.execute(
                "SELECT case_id FROM cases WHERE status = 'assigned'"
            ).fetchone()
            (reviewed,) = conn.execute(
                "SELECT close_case(%s, 'withdrawn') -> 'reviewed'", (case_id,)
            ).fetchone()
            assert reviewed == 0
        assert _rows(url, "SELECT count(*) FROM reviews") == reviews_before
    assert _rows(distributed, CASES) == _rows(single, CASES)
    for rule in enabled:
        _on_both(pair, "rule", "enable", rule)
    again = _rows(single, CASES)
    # Every alert raised again left its withdrawn case for a new open one.
    assert all(row[3] == 0 for row in again if row[2] == "withdrawn")
    assert sum(row[3] for row in again if row[1] == "open") == sum(
        row[3] for row in before if row[1] != "closed"
    )
    assert _rows(distributed, CASES) == again
