"""Backtests and owners' changes have separate budgets: analysts' backtests
holding every PGFRAUD_MAX_HEAVY slot never refuse an owner's rule change,
and every owner's change that takes the exclusive rule-change lock (rules,
shadows, policy, list entries) counts against PGFRAUD_MAX_RULE_CHANGES, so a
burst of them cannot queue without bound on the lock stores need."""

from __future__ import annotations

import psycopg
import pytest

from pgfraud import db


def test_backtests_holding_every_heavy_slot_do_not_refuse_a_rule_change(app, database):
    app.config["MAX_HEAVY"] = 1
    client = app.test_client()
    with psycopg.connect(database.admin_url) as backtest:
        # An abandoned backtest still running: it holds the one backtest slot.
        assert backtest.execute("SELECT take_heavy_slot(1)").fetchone()[0] == 0
        assert client.post("/evaluate", json={}).status_code == 429
        change = client.patch("/rules", json={"velocity": {"enabled": False}})
        assert change.status_code == 200, change.get_json()
        backtest.rollback()
    with db.connect(database.admin_url) as conn:
        assert conn.execute("SELECT enabled FROM rules WHERE rule_id = 'velocity'").fetchone() == (
            False,
        )


def _state(database) -> tuple:
    with psycopg.connect(database.admin_url) as conn:
        return (
            conn.execute("SELECT count(*) FROM shadow_rules").fetchone()[0],
            conn.execute("SELECT count(*) FROM decision_policies").fetchone()[0],
            conn.execute("SELECT count(*) FROM list_entries").fetchone()[0],
            conn.execute(
                "SELECT parameters ->> 'threshold' FROM rules WHERE rule_id = 'large_amount'"
            ).fetchone()[0],
        )


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("patch", "/rules", {"large_amount": {"parameters": {"threshold": 9000}}}),
        ("put", "/rules/large_amount/shadow", {"parameters": {"threshold": 5000}}),
        ("delete", "/rules/large_amount/shadow", None),
        ("put", "/policy", {"review_threshold": 55}),
        ("post", "/lists/blocked_accounts/entries", {"value": "8", "reason": "test"}),
        ("delete", "/lists/blocked_accounts/entries/8", None),
    ],
)
def test_every_owner_change_under_the_rule_change_lock_counts(app, database, method, path, body):
    app.config["MAX_RULE_CHANGES"] = 1
    client = app.test_client()
    # Something to drop and to remove, made before the budget is full.
    assert client.put("/rules/large_amount/shadow", json={}).status_code == 200
    created = client.post(
        "/lists", json={"list_name": "blocked_accounts", "subject": "account", "kind": "block"}
    )
    assert created.status_code == 201, created.get_json()
    added = client.post("/lists/blocked_accounts/entries", json={"value": "8", "reason": "x"})
    assert added.status_code == 201, added.get_json()
    before = _state(database)
    with psycopg.connect(database.admin_url) as change:
        # Another owner's change in progress holds the one slot.
        assert change.execute("SELECT take_rule_change_slot(1)").fetchone()[0] == 0
        kwargs = {} if body is None else {"json": body}
        response = getattr(client, method)(path, **kwargs)
        assert response.status_code == 429, response.get_json()
        assert response.get_json()["error"]["code"] == "too_busy"
        assert "PGFRAUD_MAX_RULE_CHANGES" in response.get_json()["error"]["message"]
        # Backtests have their own budget.
        assert client.post("/evaluate", json={}).status_code == 200
        change.rollback()
    assert _state(database) == before
    response = getattr(client, method)(path, **({} if body is None else {"json": body}))
    assert response.status_code in (200, 201), response.get_json()
