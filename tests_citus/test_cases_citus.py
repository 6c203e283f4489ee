"""Cases closed as withdrawn on Citus (migration 0101), as on one node.

A rule switched off re-scores every alert of the rules away, so every case
holds only alerts no longer raised (alerts_raised 0); each open case is
closed as withdrawn, reviewing nothing; the rules switched on again raise
the alerts once more, and they leave the withdrawn cases for new open ones
(on one node the alerts trigger open_cases moves them, on Citus
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
    enabled = [r[0] for r in _rows(single, "SELECT rule_id FROM rules WHERE enabled ORDER BY 1")]
    for rule in enabled:
        _on_both(pair, "rule", "disable", rule)
    emptied = _rows(single, CASES)
    assert {row[4] for row in emptied} == {0}
    assert _rows(distributed, CASES) == emptied
    reviews_before = _rows(single, "SELECT count(*) FROM reviews")
    for url in pair:
        with psycopg.connect(url, autocommit=True) as conn:
            ids = [r[0] for r in conn.execute("SELECT case_id FROM cases WHERE status <> 'closed'")]
            assert ids
            for case_id in ids:
                reviewed = conn.execute(
                    "SELECT close_case(%s, 'withdrawn') -> 'reviewed'", (case_id,)
                ).fetchone()[0]
                assert reviewed == 0
        assert _rows(url, "SELECT count(*) FROM reviews") == reviews_before
    withdrawn = _rows(single, CASES)
    assert {row[2] for row in withdrawn if row[1] == "closed"} >= {"withdrawn"}
    assert _rows(distributed, CASES) == withdrawn
    for rule in enabled:
        _on_both(pair, "rule", "enable", rule)
    again = _rows(single, CASES)
    # Every alert raised again left its withdrawn case for an open one.
    assert all(row[3] == 0 for row in again if row[2] == "withdrawn")
    assert sum(row[3] for row in again if row[1] == "open") == sum(
        row[3] for row in before if row[1] == "open"
    )
    assert _rows(distributed, CASES) == again
