"""Issue 17's bad input, through every face that takes it (part 4): a rule
expression naming a list that does not exist (HTTP and CLI; SQL is in
tests/test_lists.py), thresholds and scores out of range or not finite, a
decline threshold below the review threshold, all refused naming the field
(HTTP 400 JSON; CLI one line, exit 2) with nothing half-changed."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from pgfraud.cli import main


@pytest.fixture
def external(database, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", database.admin_url)
    monkeypatch.delenv("PGFRAUD_APP_DATABASE_URL", raising=False)
    return database


def test_a_rule_naming_a_missing_list_is_400_naming_expression(client):
    response = client.post(
        "/rules", json={"rule_id": "risky_shop", "expression": "merchant_in_list('nowhere')"}
    )
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert (error["code"], error["field"]) == ("invalid_input", "expression")
    assert "nowhere" in error["message"]
    assert "risky_shop" not in [r["rule_id"] for r in client.get("/rules").get_json()["rules"]]


def test_a_rule_naming_a_missing_list_is_one_line_exit_2_from_the_cli(external, admin_conn):
    result = CliRunner().invoke(main, ["rule", "add", "risky_shop", "account_in_list('nowhere')"])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "expression" in lines[0], lines
    assert "nowhere" in lines[0]
    assert admin_conn.execute(
        "SELECT count(*) FROM rules WHERE rule_id = 'risky_shop'"
    ).fetchone() == (0,)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"review_threshold": 1001}, "review_threshold"),
        ({"decline_threshold": 1001}, "decline_threshold"),
        ({"default_score": 1001}, "default_score"),
        ({"default_score": -1}, "default_score"),
        # A good change beside a bad one: nothing of it is kept.
        ({"review_threshold": 40, "rule_scores": {"velocity": 1001}}, "rule_scores.velocity"),
        # Above the decline threshold in force: the field changed is named.
        ({"review_threshold": 120}, "review_threshold"),
    ],
)
def test_a_policy_change_with_a_bad_field_changes_nothing(client, body, field):
    before = client.get("/policy").get_json()
    response = client.put("/policy", json=body)
    assert response.status_code == 400, response.get_json()
    error = response.get_json()["error"]
    assert (error["code"], error["field"]) == ("invalid_input", field)
    assert client.get("/policy").get_json() == before
