"""One validator of rule parameters (SQL validate_rules), at every entry point.

Issue 7, fault 2: set_rule, a hand-written UPDATE of `rules`, evaluate_rules,
score_transactions, evaluate_account and `pgfraud evaluate --rules` all refuse
unknown rules and parameters, missing parameters, wrong JSON types,
non-integers where integers are meant and values out of range, with PF001
naming the rule and parameter; a refused change leaves is_fraud working.
"""

from __future__ import annotations

import json
from decimal import Decimal

import psycopg
import pytest
from click.testing import CliRunner

from pgfraud import db
from pgfraud.cli import main
from pgfraud.errors import InvalidInput

LIVE = {  # the defaults of migrations 0007, 0009 and 0022
    "amount_spike": {"min_history": 3, "multiplier": 5, "window_days": 0},
    "below_average": {"factor": Decimal("0.05"), "min_history": 5, "window_days": 0},
    "compromised_merchant": {
        "window_days": 30,
        "delay_days": 1,
        "min_known_fraud": 3,
        "min_fraud_share": Decimal("0.5"),
    },
    "large_amount": {"threshold": 10000},
    "new_merchant_large": {"multiplier": 10, "min_history": 5, "unused_days": 30},
    "new_merchant_run": {
        "multiplier": Decimal("1.2"),
        "max_run": 4,
        "unused_days": 30,
        "min_history": 5,
    },
    "rapid_succession": {"min_gap_seconds": 10},
    "same_timestamp": {"max_transactions": 1},
    "velocity": {"max_transactions": 2, "window_seconds": 600},
}

# (rules given, COLUMN, message): each kind of bad input, the first problem reported.
REFUSED = [
    (
        '{"large_amount": {"treshold": 220}}',
        "large_amount.treshold",
        "rule large_amount has no parameter treshold; its parameters are threshold",
    ),
    (
        '{"large_amounts": {"threshold": 220}}',
        "large_amounts",
        "unknown rule large_amounts; the rules are amount_spike, below_average, "
        "compromised_merchant, large_amount, new_merchant_large, new_merchant_run, "
        "rapid_succession, same_timestamp, velocity",
    ),
    (
        '{"below_average": {"factor": 0.9, "min_hist": 5}}',
        "below_average.min_hist",
        "rule below_average has no parameter min_hist; its parameters are factor, min_history, "
        "window_days",
    ),
    (
        '{"velocity": {"window_seconds": 60, "max_transactions": 5, "window_days": 1}}',
        "velocity.window_days",
        "rule velocity has no parameter window_days; "
        "its parameters are max_transactions, window_seconds",
    ),
    (
        '{"large_amount": {}}',
        "large_amount.threshold",
        "parameter threshold of rule large_amount is missing",
    ),
    # A value given out of range is named before a parameter left out.
    (
        '{"velocity": {"max_transactions": -1}}',
        "velocity.max_transactions",
        "parameter max_transactions of rule velocity must be an integer from 1 to 1000000; got -1",
    ),
    (
        '{"large_amount": {"threshold": "220"}}',
        "large_amount.threshold",
        "parameter threshold of rule large_amount must be a number from 0 to 10000000000000 "
        '(excluded); got "220"',
    ),
    (
        '{"large_amount": {"threshold": 1e13}}',
        "large_amount.threshold",
        "parameter threshold of rule large_amount must be a number from 0 to 10000000000000 "
        "(excluded); got 10000000000000",
    ),
    (
        '{"below_average": {"factor": 0.9, "min_history": 1e20}}',
        "below_average.min_history",
        "parameter min_history of rule below_average must be an integer from 1 to 1000000; "
        "got 100000000000000000000",
    ),
    (
        '{"below_average": {"factor": 0.9, "min_history": 2.5}}',
        "below_average.min_history",
        "parameter min_history of rule below_average must be an integer from 1 to 1000000; got 2.5",
    ),
    (
        '{"below_average": {"factor": -0.1, "min_history": 1}}',
        "below_average.factor",
        "parameter factor of rule below_average must be a number from 0 to 1000; got -0.1",
    ),
    (
        '{"velocity": {"window_seconds": 31622401, "max_transactions": 5}}',
        "velocity.window_seconds",
        "parameter window_seconds of rule velocity must be an integer from 1 to 31622400; "
        "got 31622401",
    ),
    (
        '{"rapid_succession": {"min_gap_seconds": true}}',
        "rapid_succession.min_gap_seconds",
        "parameter min_gap_seconds of rule rapid_succession must be a number from 0 to 86400; "
        "got true",
    ),
    (
        '{"velocity": 5}',
        "velocity",
        "the parameters of rule velocity must be a JSON object",
    ),
    ("[1]", "rules", "rules must be a JSON object {rule_id: {parameter: number}}"),
]


def refused(conn, sql, params=()):
    with pytest.raises(psycopg.Error) as info:
        conn.execute(sql, params)
    if not conn.autocommit:
        conn.rollback()
    assert info.value.sqlstate == "PF001"
    return info.value.diag.column_name, info.value.diag.message_primary


@pytest.mark.parametrize("rules, column, message", REFUSED)
def test_validate_rules_names_rule_and_parameter(admin_conn, rules, column, message):
    assert refused(admin_conn, "SELECT validate_rules(%s::jsonb)", (rules,)) == (column, message)


@pytest.mark.parametrize("rules, column, message", REFUSED)
def test_every_sql_entry_point_refuses_the_same(app_conn, admin_conn, rules, column, message):
    for conn, sql in (
        (admin_conn, "SELECT * FROM evaluate_rules(%s::jsonb)"),  # an owner's backtest
        (app_conn, "SELECT * FROM score_transactions(NULL, NULL, %s::jsonb)"),
        (app_conn, "SELECT * FROM evaluate_account(1, %s::jsonb)"),
    ):
        if message.endswith("is missing") and "evaluate_rules" in sql:
            continue  # a backtest takes what is left out from the live rule (test_backtests)
        assert refused(conn, sql, (rules,)) == (column, message), sql


def test_python_evaluate_rules_raises_invalid_input_naming_the_parameter(admin_conn):
    with pytest.raises(InvalidInput) as info:
        db.evaluate_rules(admin_conn, {"large_amount": {"threshold": -1}}, None, None)
    assert info.value.field == "large_amount.threshold"


@pytest.mark.parametrize(
    "rule_id, parameters, column",
    [
        ("below_average", '{"min_history": 1e20}', "below_average.min_history"),
        ("below_average", '{"min_history": 2.5}', "below_average.min_history"),
        ("velocity", '{"window_seconds": 1e300}', "velocity.window_seconds"),
        ("velocity", '{"speed": 1}', "velocity.speed"),
        ("large_amount", '{"threshold": null}', "large_amount.threshold"),
    ],
)
def test_set_rule_refuses_and_is_fraud_keeps_working(
    app_conn, admin_conn, rule_id, parameters, column
):
    db.store_transactions(
        app_conn,
        [
            {
                "transaction_id": 1,
                "account_id": 7,
                "timestamp": "2024-01-01T00:00:00Z",
                "amount": Decimal("20000.00"),
            }
        ],
    )
    app_conn.commit()
    got_column, _ = refused(
        admin_conn, "SELECT set_rule(%s, NULL, %s::jsonb)", (rule_id, parameters)
    )
    assert got_column == column
    assert {r["rule_id"]: r["parameters"] for r in db.get_rules(admin_conn)} == LIVE
    assert [e["rule_id"] for e in db.is_fraud(app_conn, 7)] == ["large_amount"]


def test_an_update_by_hand_is_checked_too(admin_conn):
    assert refused(
        admin_conn,
        'UPDATE rules SET parameters = \'{"window_seconds": 1e300, "max_transactions": 5}\''
        " WHERE rule_id = 'velocity'",
    ) == (
        "velocity.window_seconds",
        "parameter window_seconds of rule velocity must be an integer from 1 to 31622400; "
        "got 1" + "0" * 38 + "…",
    )


def test_integers_are_normalised_and_numbers_kept_exactly(admin_conn):
    normalised = admin_conn.execute(
        "SELECT validate_rules(%s::jsonb)::text",
        (
            '{"velocity": {"window_seconds": 60.0, "max_transactions": 5.000},'
            ' "below_average": {"factor": 0.123456789012345678, "min_history": 1E1}}',
        ),
    ).fetchone()[0]
    # (jsonb orders keys by length, then bytes)
    assert normalised == (
        '{"velocity": {"window_seconds": 60, "max_transactions": 5},'
        ' "below_average": {"factor": 0.123456789012345678, "min_history": 10,'
        ' "window_days": 0}}'
    )
    row = admin_conn.execute(
        "SELECT parameters::text FROM set_rule('velocity', NULL, '{\"window_seconds\": 7.0}')"
    ).fetchone()
    assert row[0] == '{"window_seconds": 7, "max_transactions": 2}'


@pytest.mark.parametrize(
    "rules",
    [
        '{"large_amount": {"threshold": 9999999999999.99}}',
        '{"below_average": {"factor": 1000, "min_history": 1000000, "window_days": 3660}}',
        '{"velocity": {"window_seconds": 31622400, "max_transactions": 1}}',
        '{"rapid_succession": {"min_gap_seconds": 0}}',
        "{}",
    ],
)
def test_boundaries_are_accepted(app_conn, rules):
    assert app_conn.execute("SELECT validate_rules(%s::jsonb)", (rules,)).fetchone()[0] == (
        json.loads(rules, parse_float=Decimal)
    )
    assert app_conn.execute(
        "SELECT count(*) FROM score_transactions(NULL, NULL, %s::jsonb)", (rules,)
    ).fetchone() == (0,)


def test_rules_endpoint_shows_parameters_exactly(admin_conn, client):
    admin_conn.execute(
        "SELECT set_rule('below_average', NULL, '{\"factor\": 0.123456789012345678}')"
    )
    response = client.get("/rules")
    assert b'"factor":0.123456789012345678' in response.get_data().replace(b" ", b"")
    rules = json.loads(response.get_data(), parse_float=Decimal)["rules"]
    below = next(r for r in rules if r["rule_id"] == "below_average")
    assert below["parameters"] == {
        "factor": Decimal("0.123456789012345678"),
        "min_history": 5,
        "window_days": 0,
    }


@pytest.mark.parametrize(
    "rules, message",
    [
        (
            '{"large_amount": {"treshold": 220}}',
            "rule large_amount has no parameter treshold; its parameters are threshold",
        ),
        ('{"large_amounts": {"threshold": 220}}', "unknown rule large_amounts"),
        (
            '{"below_average": {"factor": 0.9, "min_hist": 5}}',
            "rule below_average has no parameter min_hist",
        ),
    ],
)
def test_cli_evaluate_refuses_bad_rules(database, monkeypatch, rules, message):
    monkeypatch.setenv("DATABASE_URL", database.admin_url)
    result = CliRunner().invoke(main, ["evaluate", "--rules", rules])
    assert result.exit_code == 2, result.output
    assert "--rules" in result.output
    assert message in " ".join(result.output.split())


def test_cli_evaluate_keeps_parameters_exact(database, monkeypatch, app_conn):
    # amount_spike fires when amount > multiplier x prior average. Prior 100.00, then
    # 100.00: with multiplier 0.99999999999999999 (exactly) 100.00 > 99.999999999999999
    # fires; read through float the multiplier would be 1.0 and 100 > 100 would not.
    monkeypatch.setenv("DATABASE_URL", database.admin_url)
    db.store_transactions(
        app_conn,
        [
            {
                "transaction_id": tid,
                "account_id": 1,
                "timestamp": f"2024-01-01T0{tid}:00:00Z",
                "amount": Decimal("100.00"),
            }
            for tid in (1, 2)
        ],
    )
    app_conn.commit()
    rules = '{"amount_spike": {"multiplier": 0.99999999999999999, "min_history": 1}}'
    result = CliRunner().invoke(main, ["evaluate", "--rules", rules])
    assert result.exit_code == 0, result.output
    line = next(x.split() for x in result.output.splitlines() if x.startswith("amount_spike"))
    assert line[:4] == ["amount_spike", "all", "0", "1"]
    result = CliRunner().invoke(
        main, ["evaluate", "--rules", rules.replace("0.99999999999999999", "1")]
    )
    line = next(x.split() for x in result.output.splitlines() if x.startswith("amount_spike"))
    assert line[:4] == ["amount_spike", "all", "0", "0"]
