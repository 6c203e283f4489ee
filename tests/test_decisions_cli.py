"""Decisions, policy and lists from the CLI (issue 17, part 4): `pgfraud policy`,
`pgfraud rule score`, `pgfraud list`, `pgfraud decisions`; bad input is one line
naming the field, exit 2, nothing changed. Values by hand from the default policy."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from click.testing import CliRunner

from pgfraud import db
from pgfraud.cli import main


@pytest.fixture
def external(database, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", database.admin_url)
    monkeypatch.delenv("PGFRAUD_APP_DATABASE_URL", raising=False)
    return database


def run(*args):
    return CliRunner().invoke(main, list(args))


def store(conn, tid, account, amount, merchant=None):
    rows = db.store_transactions(
        conn,
        [
            {
                "transaction_id": tid,
                "account_id": account,
                "timestamp": datetime(2024, 6, 1, 12, tid, tzinfo=UTC),
                "amount": Decimal(amount),
                "merchant_id": merchant,
            }
        ],
    )
    conn.commit()
    return rows[0]["decision"]


def test_policy_show_and_set(external, app_conn):
    shown = run("policy", "show")
    assert shown.exit_code == 0, shown.output
    assert shown.output.splitlines()[0].startswith(
        "approve below 50, review from 50, decline from 100 (policy 1, set by pgfraud)"
    )
    assert "  large_amount: 50" in shown.output.splitlines()
    changed = run("policy", "set", "review=40", "decline=90", "--by", "ana")
    assert changed.exit_code == 0, changed.output
    assert "decline from 90" in changed.output and "set by ana" in changed.output
    scored = run("rule", "score", "large_amount", "95")
    assert scored.exit_code == 0, scored.output
    assert scored.output == "rule large_amount scores 95 (policy 3)\n"
    as_json = json.loads(run("policy", "show", "--json").output)
    assert (as_json["review_threshold"], as_json["decline_threshold"]) == (40, 90)
    assert store(app_conn, 1, 7, "20000.00")["outcome"] == "decline"  # 95 >= 90


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (("policy", "set", "review=nan"), "review_threshold"),
        (("policy", "set", "review=1e3"), "review_threshold"),
        (("policy", "set", "review=50.5"), "review_threshold"),
        (("policy", "set", "review=0"), "review_threshold"),
        (("policy", "set", "decline=10"), "decline_threshold"),
        (("policy", "set", "colour=10"), "colour"),
        (("rule", "score", "velocity", "--", "-1"), "rule_scores.velocity"),
        (("rule", "score", "velocity", "1001"), "rule_scores.velocity"),
        (("list", "create", "Bad-Name", "--subject", "account", "--kind", "block"), "list_name"),
        (("list", "add", "nowhere", "1", "--reason", "x"), "list_name"),
        (("list", "add", "blocked", "--reason", "x", "--", "-1"), "value"),
        (("list", "add", "blocked", "1", "--reason", "x", "--expires", "2024-01-01"), "expires_at"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_changes_nothing(external, admin_conn, args, field):
    admin_conn.execute("SELECT create_list('blocked', 'merchant', 'block')")
    result = run(*args)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and field in lines[0], lines
    assert admin_conn.execute("SELECT count(*) FROM decision_policies").fetchone() == (1,)
    assert admin_conn.execute("SELECT count(*) FROM list_entries").fetchone() == (0,)
    assert admin_conn.execute("SELECT count(*) FROM lists").fetchone() == (1,)


def test_block_a_merchant_then_decisions_show_it(external, app_conn):
    assert store(app_conn, 1, 7, "20.00", merchant=42)["outcome"] == "approve"
    created = run("list", "create", "risky_merchants", "--subject", "merchant", "--kind", "block")
    assert created.output == "list risky_merchants: block merchants\n"
    added = run("list", "add", "risky_merchants", "42", "--reason", "breach", "--by", "ana")
    assert added.exit_code == 0, added.output
    assert added.output.startswith("merchant 42 on block list risky_merchants (entry ")
    later = store(app_conn, 2, 8, "20.00", merchant=42)
    assert later["outcome"] == "decline"
    assert [(e["list_name"], e["added_by"]) for e in later["lists"]] == [("risky_merchants", "ana")]
    shown = run("list", "show", "risky_merchants")
    assert shown.output.splitlines()[1].startswith("  42: breach (by ana at ")
    assert run("list", "show").output == "risky_merchants: block merchants, 1 entries\n"
    listed = run("decisions")
    assert listed.exit_code == 0, listed.output
    lines = listed.output.splitlines()
    assert lines[0] == (
        "2024-06-01T12:01:00.000Z  account 7  transaction 1  amount 20.00  approve  score 0"
    )
    assert lines[1] == (
        "2024-06-01T12:02:00.000Z  account 8  transaction 2  amount 20.00"
        "  decline (score said approve)  score 0  [block risky_merchants]"
    )
    only = run("decisions", "--outcome", "decline", "--json")
    assert [json.loads(line)["transaction_id"] for line in only.output.splitlines()] == [2]
    removed = run("list", "remove", "risky_merchants", "42")
    assert removed.exit_code == 0, removed.output
    again = run("list", "remove", "risky_merchants", "42")
    assert again.exit_code == 2 and again.output.startswith("error: 42 is not on list")
