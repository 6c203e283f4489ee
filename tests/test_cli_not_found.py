"""A name or id that names nothing stored is refused input in every `pgfraud`
command: one line, exit 2, nothing changed (fresh-user trial: `list show` and
`rule enable` exited 1 where `list add` and `rule set` exited 2). Exit 1 stays
for work that failed otherwise, such as closing a closed case.
docs/operations.md, "Exit status"."""

from __future__ import annotations

import psycopg
import pytest
from click.testing import CliRunner

from pgfraud.cli import main


@pytest.fixture
def external(database, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", database.admin_url)
    monkeypatch.delenv("PGFRAUD_APP_DATABASE_URL", raising=False)
    return database


NOT_FOUND = [
    (["rule", "set", "nope", "threshold=1"], "error: no rule named nope"),
    (["rule", "enable", "nope"], "error: no rule named nope"),
    (["rule", "disable", "nope"], "error: no rule named nope"),
    (["rule", "shadow", "nope"], "error: no rule named nope"),
    (["rule", "promote", "nope"], "error: rule nope has no shadow"),
    (["rule", "drop-shadow", "nope"], "error: rule nope has no shadow"),
    (["rule", "versions", "nope"], "error: no rule named nope"),
    (["rule", "score", "nope", "10"], "error: no rule named nope"),
    (["list", "show", "nope"], "error: no list named nope"),
    (["list", "add", "nope", "1", "--reason", "x"], "error: list_name: no list named nope"),
    (["list", "remove", "nope", "1"], "error: no list named nope"),
    (["list", "remove", "risky", "7"], "error: 7 is not on list risky"),
    (["case", "show", "999"], "error: there is no case 999"),
    (["case", "assign", "999", "bob"], "error: there is no case 999"),
    (["case", "close", "999", "--resolution", "fraud"], "error: there is no case 999"),
    (["review", "9999", "--status", "false_positive"], "error: transaction 9999 is not stored"),
    (
        ["token", "revoke", "nope"],
        "error: token_name: no token named nope (that is not revoked already)",
    ),
]


def _changes(database) -> tuple:
    with psycopg.connect(database.admin_url) as conn:
        return conn.execute(
            "SELECT (SELECT count(*) FROM audit_log), (SELECT count(*) FROM decision_policies),"
            " (SELECT count(*) FROM rule_versions), (SELECT count(*) FROM reviews)"
        ).fetchone()


def test_every_not_found_is_one_line_and_exit_2(external):
    made = CliRunner().invoke(
        main, ["list", "create", "risky", "--subject", "merchant", "--kind", "block"]
    )
    assert made.exit_code == 0, made.output
    before = _changes(external)
    for args, line in NOT_FOUND:
        result = CliRunner().invoke(main, args)
        assert (result.exit_code, result.stdout, result.stderr) == (2, "", line + "\n"), args
    assert _changes(external) == before


def test_a_closed_case_is_still_exit_1(external, app_conn):
    # Refused for the case's state, not for what was typed: the work failed.
    app_conn.execute(
        'SELECT * FROM store_transactions(\'[{"account_id": 5, "transaction_id": 1,'
        ' "timestamp": "2024-06-01T12:00:00Z", "amount": "20000.00"}]\')'
    )
    app_conn.commit()
    case_id = app_conn.execute("SELECT case_id FROM cases").fetchone()[0]
    close = ["case", "close", str(case_id), "--resolution", "fraud"]
    assert CliRunner().invoke(main, close).exit_code == 0
    again = CliRunner().invoke(main, close)
    assert (again.exit_code, again.stderr) == (
        1,
        f"error: case {case_id} is already closed (fraud)\n",
    )


def test_refused_input_reaching_the_database_is_exit_2_too(external, app_conn):
    # Checked by SQL (PF001), not by click: exited 1 before, unlike click's refusals.
    app_conn.execute(
        'SELECT * FROM store_transactions(\'[{"account_id": 5, "transaction_id": 1,'
        ' "timestamp": "2024-06-01T12:00:00Z", "amount": "20.00"}]\')'
    )
    app_conn.commit()
    before = _changes(external)
    long_note = CliRunner().invoke(
        main, ["review", "1", "--status", "false_positive", "--note", "x" * 2001]
    )
    assert (long_note.exit_code, long_note.stderr) == (
        2,
        "error: note must be at most 2000 characters\n",
    )
    assert _changes(external) == before
