"""A JSON string that is not Unicode text (a lone surrogate, "x\\ud800") is a 400
naming its field on every endpoint that takes JSON, never a 500 (issue 15,
fault 9). JSON allows the escape; UTF-8, and so PostgreSQL, cannot hold it.
The check is made once, where the body is parsed (pgfraud.wire.loads_json)."""

from __future__ import annotations

import json

import pytest

from pgfraud import db

GOOD = {"account_id": 7, "transaction_id": 1, "timestamp": "2024-01-01T00:00:00Z", "amount": "5"}
LONE = "x\\ud800"  # as it is written in the JSON text: an escape, not a character


def send(client, method, path, text):
    return client.open(path, method=method, data=text, headers={"Content-Type": "application/json"})


def assert_names(response, field, row=None):
    body = response.get_json()
    assert response.status_code == 400, body
    assert body["error"]["code"] == "invalid_input"
    assert body["error"].get("field") == field
    assert body["error"].get("row") == row
    assert "lone surrogate" in body["error"]["message"]
    assert "SELECT" not in body["error"]["message"]


@pytest.fixture
def stored_one(client):
    assert client.post("/store_data", json=GOOD).status_code == 201


def lone(value) -> str:
    """JSON text of ``value`` with every "@" written as the lone surrogate escape."""
    return json.dumps(value).replace("@", LONE)


ROW = {"account_id": 7, "transaction_id": 3, "timestamp": "2024-01-01T00:00:00Z", "amount": "1"}
REVIEW = "/transactions/1/review"
RULES = "/rules"
CASES = [
    ("POST", REVIEW, {"status": "confirmed_fraud", "note": "@"}, "note", None),
    ("POST", REVIEW, {"status": "confirmed_fraud", "reviewer": "@"}, "reviewer", None),
    ("POST", RULES, {"rule_id": "q", "expression": "1", "description": "@"}, "description", None),
    ("POST", "/rules", {"rule_id": "quick", "expression": "amount > 1 -- @"}, "expression", None),
    ("POST", "/rules", {"rule_id": "@", "expression": "amount > 1"}, "rule_id", None),
    ("PATCH", "/rules", {"velocity": {"enabled": True}, "@": {"enabled": True}}, None, None),
    ("POST", "/evaluate", {"rules": {"velocity": {"@": 1}}}, "rules.velocity", None),
    ("POST", "/store_data", {**ROW, "timestamp": "@"}, "timestamp", None),
    ("POST", "/store_data", [ROW, {**ROW, "transaction_id": 4, "amount": "@"}], "amount", 1),
]  # fmt: skip


@pytest.mark.parametrize(("method", "path", "body", "field", "row"), CASES)
def test_a_lone_surrogate_is_a_400_naming_the_field(
    client, database, stored_one, method, path, body, field, row
):
    assert_names(send(client, method, path, lone(body)), field, row)
    with db.connect(database.admin_url) as conn:
        # Nothing half-stored: no review, no rule, no new transaction.
        assert conn.execute("SELECT count(*) FROM reviews").fetchone()[0] == 0
        rules = "SELECT count(*) FROM rules WHERE rule_id IN ('q', 'quick')"
        assert conn.execute(rules).fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM transactions").fetchone()[0] == 1


def test_a_surrogate_pair_is_one_character_and_is_stored(client, stored_one):
    # "\ud83d\ude00" is the escape of U+1F600: valid text, stored as it is.
    text = '{"status": "false_positive", "note": "ok \\ud83d\\ude00"}'
    response = send(client, "POST", "/transactions/1/review", text)
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["note"] == "ok \U0001f600"
