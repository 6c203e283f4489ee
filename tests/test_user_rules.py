"""Rules users write: validated when added, backtested, switched on, scored like the others."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest
from click.testing import CliRunner

from pgfraud import db
from pgfraud.cli import main
from pgfraud.errors import InvalidInput

T0 = datetime(2024, 5, 1, tzinfo=UTC)
RULE = "amount > 3 * prior_average AND count_1h >= 2"


def store(conn, rows):
    """rows: (transaction_id, account_id, seconds after T0, amount text)."""
    db.store_transactions(
        conn,
        [
            {
                "transaction_id": tid,
                "account_id": account,
                "timestamp": T0 + timedelta(seconds=seconds),
                "amount": Decimal(amount),
            }
            for tid, account, seconds, amount in rows
        ],
    )
    conn.commit()


@pytest.mark.parametrize(
    "expression, message",
    [
        ("amount > (SELECT 1)", "expression may not use SELECT"),
        ("pg_sleep(1) IS NULL", "expression may not use pg_sleep"),
        ("amount / 2 > 1", "expression may not use /"),
        ("amount > 'x'", "expression may not use '"),
        ("amount > 1; DELETE", "expression may not use ;"),
        ("amount > 1 -- comment", "expression may not use --"),
        ("amount > 1) OR (true", "expression has unbalanced parentheses"),
        ("amount + 1", "expression must be true or false (boolean), not numeric"),
        ("amount >> 1", "expression does not parse: operator does not exist: numeric >> integer"),
        ("transaction_id > 1", "expression may not use transaction_id"),
        ("", "expression must not be empty"),
    ],
)
def test_expressions_outside_the_features_are_refused(admin_conn, expression, message):
    with pytest.raises(InvalidInput) as info:
        db.add_rule(admin_conn, "mine", expression)
    assert info.value.message == message
    assert info.value.field == "expression"
    assert admin_conn.execute("SELECT count(*) FROM rules WHERE rule_id = 'mine'").fetchone() == (
        0,
    )


def test_names_are_checked_and_built_ins_are_not_replaced(admin_conn):
    with pytest.raises(InvalidInput) as info:
        db.add_rule(admin_conn, "Bad Name", "amount > 1")
    assert info.value.field == "rule_id"
    with pytest.raises(InvalidInput) as info:
        db.add_rule(admin_conn, "large_amount", "amount > 1")
    assert info.value.message == "large_amount is a built-in rule"


def test_a_users_rule_takes_no_parameters(admin_conn):
    db.add_rule(admin_conn, "mine", "amount > 1")
    with pytest.raises(psycopg.Error) as info:
        admin_conn.execute("""SELECT validate_rules('{"mine": {"x": 1}}')""")
    assert (info.value.sqlstate, info.value.diag.column_name) == ("PF001", "mine.x")
    assert info.value.diag.message_primary == (
        "rule mine has no parameter x; a user's rule takes none: give {}"
    )


def test_backtest_switch_on_and_explain(app_conn, admin_conn):
    admin_conn.execute("UPDATE rules SET enabled = false")
    # Account 3: 10, 10, 10 an hour apart, then 31.00 and 50.00 ten minutes apart.
    # 31.00: average 10, 31 > 30 but alone in its hour (count_1h 1): no.
    # 50.00: average 61/4 = 15.25, 50 > 45.75, 2 in its hour: fires. 40.00 on
    # account 4 after 10 and 10 a minute apart: average 10, count_1h 3: fires.
    store(
        app_conn,
        [
            (1, 3, 0, "10.00"),
            (2, 3, 3600, "10.00"),
            (3, 3, 7200, "10.00"),
            (4, 3, 14400, "31.00"),
            (5, 3, 15000, "50.00"),
            (6, 4, 0, "10.00"),
            (7, 4, 60, "10.00"),
            (8, 4, 120, "40.00"),
        ],
    )
    db.store_labels(admin_conn, [(8, "bot"), (4, "bot")])
    rule = db.add_rule(admin_conn, "quick_spike", RULE, "a spike within an hour of others")
    assert (rule["enabled"], rule["parameters"], rule["expression"]) == (False, {}, RULE)
    assert app_conn.execute("SELECT count(*) FROM alerts").fetchone() == (0,)
    app_conn.commit()
    rows = {
        (r["rule_id"], r["scenario"]): r
        for r in db.evaluate_rules(admin_conn, {"quick_spike": {}}, None, None)
    }
    overall = rows[("quick_spike", "all")]
    assert (overall["flagged"], overall["true_positives"], overall["labelled"]) == (2, 1, 2)
    admin_conn.execute("SELECT set_rule('quick_spike', true)")
    reason = (
        "rule quick_spike: amount > 3 * prior_average AND count_1h >= 2 with amount = 40.00,"
        " count_1h = 3, prior_average = 10.0000"
    )
    reason_5 = (
        "rule quick_spike: amount > 3 * prior_average AND count_1h >= 2 with amount = 50.00,"
        " count_1h = 2, prior_average = 15.2500"
    )
    for account, expected in (
        (3, [(5, "quick_spike", None, None, reason_5)]),
        (4, [(8, "quick_spike", None, None, reason)]),
    ):
        alerts = app_conn.execute(
            "SELECT transaction_id, rule_id, observed, threshold, reason FROM alerts"
            " WHERE account_id = %s ORDER BY transaction_id",
            (account,),
        ).fetchall()
        scratch = app_conn.execute(
            "SELECT transaction_id, rule_id, observed, threshold, reason"
            " FROM evaluate_account(%s, active_rule_parameters())",
            (account,),
        ).fetchall()
        assert alerts == scratch == expected
    app_conn.commit()
    # On arrival too: 9 on account 4, 100.00 a minute later (average 20, count_1h 4).
    store(app_conn, [(9, 4, 180, "100.00")])
    assert app_conn.execute(
        "SELECT transaction_id FROM alerts WHERE rule_id = 'quick_spike' ORDER BY transaction_id"
    ).fetchall() == [(5,), (8,), (9,)]


def test_a_row_whose_expression_overflows_does_not_fire_and_is_stored(app_conn, admin_conn):
    # count_1h * 4611686018427387904 is 4611686018427387904 for the first payment
    # of an hour (fires: > 0) and overflows bigint for the second (2^63): that
    # row does not fire, and both are stored.
    admin_conn.execute("UPDATE rules SET enabled = false")
    db.add_rule(admin_conn, "huge", "count_1h * 4611686018427387904 > 0", "overflows at 2")
    admin_conn.execute("SELECT set_rule('huge', true)")
    admin_conn.commit()
    store(app_conn, [(1, 8, 0, "5.00")])
    store(app_conn, [(2, 8, 60, "5.00")])
    reason = "rule huge: count_1h * 4611686018427387904 > 0 with count_1h = 1"
    expected = [(1, "huge", None, None, reason)]
    assert (
        app_conn.execute(
            "SELECT transaction_id, rule_id, observed, threshold, reason FROM alerts"
            " WHERE account_id = 8 ORDER BY transaction_id"
        ).fetchall()
        == expected
    )
    assert (
        app_conn.execute(
            "SELECT transaction_id, rule_id, observed, threshold, reason"
            " FROM evaluate_account(8, active_rule_parameters())"
        ).fetchall()
        == expected
    )
    stored = app_conn.execute("SELECT count(*) FROM transactions WHERE account_id = 8").fetchone()
    assert stored == (2,)


def test_cli_adds_backtests_and_switches_on(database, app_conn, admin_conn, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", database.admin_url)
    admin_conn.execute("UPDATE rules SET enabled = false")
    store(app_conn, [(1, 5, 0, "10.00"), (2, 5, 30, "10.00"), (3, 5, 60, "99.00")])
    runner = CliRunner()
    result = runner.invoke(main, ["rule", "add", "quick_spike", RULE])
    assert result.exit_code == 0, result.output
    assert result.output == f"rule quick_spike added (off): {RULE}\n"
    result = runner.invoke(main, ["evaluate", "--json", "--rules", '{"quick_spike": {}}'])
    report = json.loads(result.stdout)
    overall = next(r for r in report["rows"] if r["rule_id"] == "quick_spike")
    assert overall["flagged"] == 1
    assert runner.invoke(main, ["rule", "enable", "quick_spike"]).exit_code == 0
    assert app_conn.execute("SELECT transaction_id, rule_id FROM alerts").fetchall() == [
        (3, "quick_spike")
    ]
    app_conn.commit()
    result = runner.invoke(main, ["rule", "add", "bad", "amount > (SELECT 1)"])
    assert result.exit_code == 2  # refused input, as every command's
    assert "expression may not use SELECT" in result.output


def test_http_adds_a_rule_with_the_token(database):
    from pgfraud.service import create_app

    app = create_app({"TESTING": True, "DATABASE_URL": database.app_url, "API_TOKEN": "s3cret"})
    client = app.test_client()
    body = {"rule_id": "quick_spike", "expression": RULE}
    assert client.post("/rules", json=body).status_code == 401
    headers = {"Authorization": "Bearer s3cret"}
    response = client.post("/rules", json=body, headers=headers)
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["expression"] == RULE
    bad = client.post("/rules", json={**body, "expression": "pg_sleep(1) IS NULL"}, headers=headers)
    assert bad.status_code == 400
    assert bad.get_json()["error"]["field"] == "expression"
    extra = client.post("/rules", json={**body, "enabled": "yes"}, headers=headers)
    assert extra.get_json()["error"]["field"] == "enabled"
