"""Tuning rules from labels (SQL tune_rules, `pgfraud tune`, POST /tune), by hand.

The data set (training: January 2024, validation: February 2024), each
transaction on its own account an hour apart unless said:

training, 20 transactions: fraud at 500, 450 and 300; legit 480 and sixteen
at 50. Account 100 pays 50, 50 and then the fraudulent 300 within 40 seconds
(velocity in 60 s: counts 1, 2, 3).
So large_amount's thresholds (the fraud amounts) flag: 500 -> {500} (1
caught), 450 -> {500, 480, 450} (2 caught), 300 -> those and 300 (4 flagged,
3 caught); velocity (60 s, max 2) flags only the 300 (1 caught).

validation, 10 transactions: fraud at 600; legit 460 and eight at 50.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from click.testing import CliRunner

from pgfraud import db
from pgfraud.cli import main

JAN = datetime(2024, 1, 1, tzinfo=UTC)
FEB = datetime(2024, 2, 1, tzinfo=UTC)
MAR = datetime(2024, 3, 1, tzinfo=UTC)


def setup_data(app_conn, admin_conn) -> None:
    rows = []
    labels = []
    tx = 0

    def add(account, ts, amount, fraud=None):
        nonlocal tx
        tx += 1
        rows.append(
            {
                "account_id": account,
                "transaction_id": tx,
                "timestamp": ts,
                "amount": Decimal(amount),
            }
        )
        if fraud:
            labels.append((tx, fraud))

    for i, (amount, fraud) in enumerate(
        [("500", "stolen_card"), ("450", "stolen_card"), ("480", None)] + [("50", None)] * 14
    ):
        add(i + 1, JAN + timedelta(hours=i + 1), amount, fraud)
    add(100, JAN + timedelta(days=5), "50")
    add(100, JAN + timedelta(days=5, seconds=20), "50")
    add(100, JAN + timedelta(days=5, seconds=40), "300", "card_testing")
    for i, (amount, fraud) in enumerate(
        [("600", "stolen_card"), ("460", None)] + [("50", None)] * 8
    ):
        add(200 + i, FEB + timedelta(hours=i + 1), amount, fraud)
    db.store_transactions(app_conn, rows)
    app_conn.commit()
    db.store_labels(admin_conn, labels)


def tune(conn, budget=None, floor=None, candidates=None, **periods):
    args = {
        "train_from": JAN,
        "train_to": FEB,
        "valid_from": FEB,
        "valid_to": MAR,
        **periods,
    }
    return conn.execute(
        "SELECT tune_rules(%s, %s, %s, %s, %s, %s, %s)",
        (
            args["train_from"],
            args["train_to"],
            args["valid_from"],
            args["valid_to"],
            budget,
            floor,
            candidates,
        ),
    ).fetchone()[0]


def overall(rows):
    return next(r for r in rows if (r["rule_id"], r["scenario"]) == ("any", "all"))


@pytest.mark.parametrize(
    ("budget", "floor", "threshold", "flagged", "caught"),
    [
        (100, None, 500, 1, 1),  # at most 2 alerts of 20: 500 alone
        (150, None, 450, 3, 2),  # 3 alerts: 450
        (200, None, 300, 4, 3),  # 4 alerts: 300, every fraud
        (None, Decimal("0.75"), 300, 4, 3),  # 3 of 4 is 0.75
        (None, Decimal("0.8"), 500, 1, 1),  # 450 gives 2 of 3, 300 3 of 4
    ],
)
def test_one_rule_under_a_budget_or_a_floor(
    app_conn, admin_conn, budget, floor, threshold, flagged, caught
):
    setup_data(app_conn, admin_conn)
    result = tune(admin_conn, budget, floor, ["large_amount"])
    assert result["chosen"] == {"large_amount": {"threshold": threshold}}
    search = result["search"]
    assert (search["transactions"], search["labelled"]) == (20, 3)
    assert (search["flagged"], search["caught"]) == (flagged, caught)
    # The backtest of the chosen set on the training period says the same.
    training = overall(result["figures"]["chosen"]["training"])
    assert (training["flagged"], training["true_positives"]) == (flagged, caught)
    if budget is not None:
        assert training["flagged"] * 1000 <= budget * 20
    if floor is not None:
        assert training["true_positives"] >= floor * training["flagged"]


def test_greedy_combines_rules_and_keeps_the_run_that_catches_more(app_conn, admin_conn):
    setup_data(app_conn, admin_conn)
    # 3 alerts: large_amount 450 alone catches 2 with 3 alerts; 500 and then
    # velocity (60 s, max 2) catch the same 2 with 2 alerts: that one wins.
    result = tune(admin_conn, 150, None, ["large_amount", "velocity"])
    assert result["chosen"] == {
        "large_amount": {"threshold": 500},
        "velocity": {"window_seconds": 60, "max_transactions": 2},
    }
    assert [(s["rule_id"], s["flagged"], s["caught"]) for s in result["search"]["steps"]] == [
        ("large_amount", 1, 1),
        ("velocity", 2, 2),
    ]
    # 4 alerts: large_amount 300 catches all 3.
    result = tune(admin_conn, 200, None, ["large_amount", "velocity"])
    assert result["chosen"] == {"large_amount": {"threshold": 300}}


def test_validation_figures_are_evaluate_s(app_conn, admin_conn):
    setup_data(app_conn, admin_conn)
    result = tune(admin_conn, 150, None, ["large_amount", "velocity"])
    chosen = result["chosen"]
    validation = result["figures"]["chosen"]["validation"]
    # By hand: in February large_amount 500 flags the 600 (fraud) only.
    assert overall(validation)["flagged"] == 1
    assert overall(validation)["true_positives"] == 1
    assert overall(validation)["transactions"] == 10
    expected = db.evaluate_rules(admin_conn, chosen, FEB, MAR)
    assert [{k: r[k] for k in expected[0]} for r in validation] == expected
    live = db.evaluate_rules(admin_conn, None, FEB, MAR)
    assert [{k: r[k] for k in live[0]} for r in result["figures"]["live"]["validation"]] == live
    # Nothing changed.
    assert admin_conn.execute("SELECT active_rule_parameters()").fetchone()[0] == result["live"]


ARGS = [
    "--train-from",
    "2024-01-01T00:00:00Z",
    "--train-to",
    "2024-02-01T00:00:00Z",
    "--valid-from",
    "2024-02-01T00:00:00Z",
    "--valid-to",
    "2024-03-01T00:00:00Z",
]


def test_cli_reports_agrees_with_evaluate_and_applies(database, app_conn, admin_conn, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", database.admin_url)
    setup_data(app_conn, admin_conn)
    before = admin_conn.execute("SELECT active_rule_parameters()").fetchone()[0]
    options = ["--max-alerts-per-1000", "150", "--candidates", "large_amount,velocity"]
    result = CliRunner().invoke(main, ["tune", *ARGS, *options])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("training [2024-01-01T00:00:00+00:00, 2024-02-01T00:00:00+00:00)")
    assert "20 transactions, 3 known fraud" in lines[0]
    chosen = (
        '{"large_amount": {"threshold": 500}, '
        '"velocity": {"max_transactions": 2, "window_seconds": 60}}'
    )
    assert lines[1] == f"chosen rules: {chosen}"
    assert "switch it on: run this command again with --apply, or send" in lines
    # Nothing changed yet.
    assert admin_conn.execute("SELECT active_rule_parameters()").fetchone()[0] == before

    result = CliRunner().invoke(main, ["tune", *ARGS, *options, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert '"threshold": 500' in result.output  # an exact number
    # The validation rows are `pgfraud evaluate --json`'s rows, exactly.
    evaluated = CliRunner().invoke(
        main,
        [
            "evaluate",
            "--json",
            "--rules",
            json.dumps(report["chosen"]),
            "--from",
            "2024-02-01T00:00:00Z",
            "--to",
            "2024-03-01T00:00:00Z",
        ],
    )
    assert evaluated.exit_code == 0, evaluated.output
    rows = json.loads(evaluated.output)["rows"]
    assert [{k: r[k] for k in rows[0]} for r in report["figures"]["chosen"]["validation"]] == rows
    any_row = next(r for r in rows if (r["rule_id"], r["scenario"]) == ("any", "all"))
    assert (any_row["flagged"], any_row["true_positives"], any_row["f1"]) == (1, 1, "1.0000")
    assert report["switch"]["large_amount"] == {"enabled": True, "parameters": {"threshold": 500}}

    result = CliRunner().invoke(main, ["tune", *ARGS, *options, "--apply"])
    assert result.exit_code == 0, result.output
    assert admin_conn.execute("SELECT active_rule_parameters()").fetchone()[0] == {
        "large_amount": {"threshold": 500},
        "velocity": {"window_seconds": 60, "max_transactions": 2},
    }
    # The alerts were re-scored: exactly the chosen set's flags.
    alerted = admin_conn.execute(
        "SELECT array_agg(DISTINCT transaction_id ORDER BY transaction_id) FROM alerts"
    ).fetchone()[0]
    assert alerted == [1, 20, 21]  # the 500, the 300 (velocity) and February's 600


@pytest.mark.parametrize(
    ("extra", "option"),
    [
        (["--max-alerts-per-1000", "0"], "--max-alerts-per-1000"),
        (["--min-precision", "1.5"], "--min-precision"),
        ([], "--max-alerts-per-1000"),  # no constraint
        (["--max-alerts-per-1000", "10", "--candidates", "large_amount,nope"], "--candidates"),
        (["--max-alerts-per-1000", "10", "--valid-from", "2024-01-15T00:00:00Z"], "--valid-from"),
        (["--max-alerts-per-1000", "10", "--train-to", "2024-01-01T00:00:00Z"], "--train-to"),
        (
            [
                "--max-alerts-per-1000",
                "10",
                "--train-from",
                "2023-12-01T00:00:00Z",
                "--train-to",
                "2024-01-01T00:00:00Z",
                "--valid-from",
                "2024-01-01T00:00:00Z",
            ],
            "--train-from",
        ),  # an empty training period
        (
            [
                "--max-alerts-per-1000",
                "10",
                "--valid-to",
                "2025-01-01T00:00:00Z",
                "--valid-from",
                "2024-06-01T00:00:00Z",
            ],
            "--valid-to",
        ),  # no transaction
    ],
)
def test_cli_bad_input_names_the_option_and_changes_nothing(
    database, app_conn, admin_conn, monkeypatch, extra, option
):
    monkeypatch.setenv("DATABASE_URL", database.admin_url)
    setup_data(app_conn, admin_conn)
    before = admin_conn.execute("SELECT active_rule_parameters()").fetchone()[0]
    # Later options win in click, so extra periods replace ARGS'.
    result = CliRunner().invoke(main, ["tune", *ARGS, *extra, "--apply"])
    assert result.exit_code == 2, result.output
    assert option in result.output
    assert "Traceback" not in result.output
    assert admin_conn.execute("SELECT active_rule_parameters()").fetchone()[0] == before


def test_training_period_without_labels_is_refused(app_conn, admin_conn):
    setup_data(app_conn, admin_conn)
    admin_conn.execute("DELETE FROM fraud_labels WHERE transaction_id < 21")
    with pytest.raises(db.InvalidInput) as caught:
        db.tune_rules(admin_conn, (JAN, FEB, FEB, MAR), Decimal(10), None, None)
    assert caught.value.field == "train_from"
    assert "no known fraud" in caught.value.message


def test_http_tune_guarded_reports_and_refuses(database, app_conn, admin_conn):
    from pgfraud.service import create_app
    from pgfraud.service.database import close_pool
    from pgfraud.service.feed import stop_listener

    setup_data(app_conn, admin_conn)
    app = create_app({"TESTING": True, "DATABASE_URL": database.app_url, "API_TOKEN": "s3cret"})
    try:
        client = app.test_client()
        body = {
            "train_from": "2024-01-01T00:00:00Z",
            "train_to": "2024-02-01T00:00:00Z",
            "valid_from": "2024-02-01T00:00:00Z",
            "valid_to": "2024-03-01T00:00:00Z",
            "max_alerts_per_1000": 150,
            "candidates": ["large_amount", "velocity"],
        }
        assert client.post("/tune", json=body).status_code == 401
        auth = {"Authorization": "Bearer s3cret"}
        response = client.post("/tune", json=body, headers=auth)
        assert response.status_code == 200, response.get_json()
        report = response.get_json()
        assert report["chosen"] == {
            "large_amount": {"threshold": 500},
            "velocity": {"window_seconds": 60, "max_transactions": 2},
        }
        validation = report["figures"]["chosen"]["validation"]
        evaluated = client.post(
            "/evaluate",
            json={"rules": report["chosen"], "from": body["valid_from"], "to": body["valid_to"]},
            headers=auth,
        ).get_json()["results"]
        assert [{k: r[k] for k in evaluated[0]} for r in validation] == evaluated
        for field, value in [
            ("max_alerts_per_1000", 0),
            ("min_precision", 1.01),
            ("candidates", ["nope"]),
            ("valid_from", "2024-01-10T00:00:00Z"),
            ("train_from", "soon"),
        ]:
            response = client.post("/tune", json={**body, field: value}, headers=auth)
            assert response.status_code == 400, (field, response.get_json())
            assert response.get_json()["error"]["field"] == field
        # Switching on goes through PATCH /rules with the body tune gave.
        response = client.patch("/rules", json=report["switch"], headers=auth)
        assert response.status_code == 200, response.get_json()
        assert (
            admin_conn.execute("SELECT active_rule_parameters()").fetchone()[0] == report["chosen"]
        )
    finally:
        stop_listener(app)
        close_pool(app)


def test_every_swept_step_flags_exactly_what_the_rule_code_flags(tmp_path, database, admin_conn):
    """The sweep's levels against the rule code itself (score_transactions), for
    every candidate and every step of its grid, on generated data (legacy mix:
    plenty of fraud and of every rule's firing)."""
    from pgfraud.evaluate import read_labels
    from pgfraud.generator.runner import seed_database

    labels = tmp_path / "labels.csv"
    seed_database(database.app_url, 3000, 20, seed=7, labels_path=labels, mix="legacy")
    db.store_labels(admin_conn, read_labels(labels))
    start, middle, end = admin_conn.execute(
        "SELECT min(ts), min(ts) + (max(ts) - min(ts)) / 2, max(ts) + interval '1 ms'"
        " FROM transactions"
    ).fetchone()
    with db.connect(database.admin_url) as conn:  # one transaction: the temp tables stay
        result = tune(
            conn,
            1000,
            None,
            None,
            train_from=start,
            train_to=middle,
            valid_from=middle,
            valid_to=end,
        )
        assert result["search"]["labelled"] > 0
        variants = conn.execute(
            "SELECT candidate_id, rule_id, fixed, sweep, grid FROM _tune_variants"
            " WHERE sweep IS NOT NULL ORDER BY candidate_id"
        ).fetchall()
        assert {v[1] for v in variants} == {
            "amount_spike",
            "below_average",
            "large_amount",
            "velocity",
            "rapid_succession",
            "same_timestamp",
            "new_merchant_large",
        }
        fired = 0
        for candidate_id, rule_id, fixed, sweep, grid in variants:
            for step, value in enumerate(grid, start=1):
                parameters = {**fixed, sweep: value}
                # Training rows for the search, validation rows for the figures.
                for training, since, until in [(True, start, middle), (False, middle, end)]:
                    swept = {
                        r[0]
                        for r in conn.execute(
                            "SELECT transaction_id FROM _tune_observations"
                            " WHERE candidate_id = %s AND level >= %s AND training = %s",
                            (candidate_id, step, training),
                        )
                    }
                    code = {
                        r[0]
                        for r in conn.execute(
                            "SELECT transaction_id"
                            " FROM score_transactions(%s, %s, %s::jsonb, true)",
                            (since, until, db.dumps_json({rule_id: parameters})),
                        )
                    }
                    assert swept == code, (rule_id, parameters, training)
                    fired += bool(code)
        assert fired > 100  # the comparison is not of empty sets
        conn.rollback()


@pytest.mark.parametrize(("known_day", "chosen"), [(3, True), (10, False)])
def test_labels_count_for_compromised_merchant_only_from_when_they_were_known(
    app_conn, admin_conn, known_day, chosen
):
    """Merchant 5: account 1 pays on 2 January, account 2 on 4 January, both
    fraud. compromised_merchant (10-day window, no delay, 1 known fraud) flags
    account 2's payment only if account 1's label was known before it (known_at
    3 January), not if it became known on 10 January: tune sees the labels
    through the rule code, as backtests do."""
    admin_conn.execute(
        'UPDATE rules SET parameters = \'{"window_days": 10, "delay_days": 0,'
        ' "min_known_fraud": 1, "min_fraud_share": 0}\'::jsonb'
        " WHERE rule_id = 'compromised_merchant'"
    )
    rows = [
        (1, 1, JAN + timedelta(days=1)),
        (2, 2, JAN + timedelta(days=3)),
        (3, 3, FEB + timedelta(days=1)),
    ]
    db.store_transactions(
        app_conn,
        [
            {
                "account_id": a,
                "transaction_id": t,
                "timestamp": ts,
                "amount": Decimal("10.00"),
                "merchant_id": 5,
            }
            for a, t, ts in rows
        ],
    )
    app_conn.commit()
    known = JAN + timedelta(days=known_day - 1)
    db.store_labels(
        admin_conn,
        [(1, "skimming", known, None, None), (2, "skimming", JAN + timedelta(days=3), None, None)],
    )
    result = tune(admin_conn, None, Decimal("0.5"), ["compromised_merchant"])
    if chosen:
        assert result["chosen"] == {
            "compromised_merchant": {
                "window_days": 10,
                "delay_days": 0,
                "min_known_fraud": 1,
                "min_fraud_share": 0,
            }
        }
        assert (result["search"]["flagged"], result["search"]["caught"]) == (1, 1)
    else:
        assert result["chosen"] == {}
        assert result["search"]["steps"] == []


def test_no_known_fraud_in_training_is_refused_by_cli_and_http(
    database, app_conn, admin_conn, monkeypatch
):
    """A training period with no known fraud: exit 2 naming --train-from, 400
    naming train_from; an empty validation period over HTTP: 400 naming
    valid_to. The rules stay as they were."""
    from pgfraud.service import create_app
    from pgfraud.service.database import close_pool
    from pgfraud.service.feed import stop_listener

    setup_data(app_conn, admin_conn)
    admin_conn.execute("DELETE FROM fraud_labels WHERE transaction_id < 21")
    admin_conn.commit()
    before = admin_conn.execute("SELECT active_rule_parameters()").fetchone()[0]
    monkeypatch.setenv("DATABASE_URL", database.admin_url)
    result = CliRunner().invoke(main, ["tune", *ARGS, "--max-alerts-per-1000", "10", "--apply"])
    assert result.exit_code == 2, result.output
    assert "--train-from" in result.output and "no known fraud" in result.output
    assert "Traceback" not in result.output
    app = create_app({"TESTING": True, "DATABASE_URL": database.app_url, "API_TOKEN": "s3cret"})
    try:
        client = app.test_client()
        auth = {"Authorization": "Bearer s3cret"}
        body = {
            "train_from": "2024-01-01T00:00:00Z",
            "train_to": "2024-02-01T00:00:00Z",
            "valid_from": "2024-02-01T00:00:00Z",
            "valid_to": "2024-03-01T00:00:00Z",
            "max_alerts_per_1000": 10,
        }
        response = client.post("/tune", json=body, headers=auth)
        assert response.status_code == 400, response.get_json()
        assert response.get_json()["error"]["field"] == "train_from"
        admin_conn.execute(
            "INSERT INTO fraud_labels (transaction_id, scenario) VALUES (1, 'stolen_card')"
        )
        admin_conn.commit()
        empty = {**body, "valid_from": "2024-06-01T00:00:00Z", "valid_to": "2024-07-01T00:00:00Z"}
        response = client.post("/tune", json=empty, headers=auth)
        assert response.status_code == 400, response.get_json()
        assert response.get_json()["error"]["field"] == "valid_to"
    finally:
        stop_listener(app)
        close_pool(app)
    assert admin_conn.execute("SELECT active_rule_parameters()").fetchone()[0] == before


def test_chosen_figures_equal_backtest_rules_on_both_periods(tmp_path, database, admin_conn):
    """The chosen set's figures are counted from the flags the search already has
    (no second run of the rule code); they must be backtest_rules' rows for that
    set on each period, row for row, on generated data where many rules are
    chosen: every rule a candidate, a user's rule and compromised_merchant
    among them (on/off, through the rule code), a generous budget."""
    from pgfraud.evaluate import read_labels
    from pgfraud.generator.runner import seed_database

    labels = tmp_path / "labels.csv"
    seed_database(database.app_url, 3000, 20, seed=11, labels_path=labels, mix="legacy")
    db.store_labels(admin_conn, read_labels(labels))
    admin_conn.execute(
        "SELECT add_rule('spike_3', 'prior_count >= 3 AND amount > 3 * prior_average')"
    )
    admin_conn.execute(
        'UPDATE rules SET parameters = \'{"window_days": 30, "delay_days": 0,'
        ' "min_known_fraud": 1, "min_fraud_share": 0}\'::jsonb'
        " WHERE rule_id = 'compromised_merchant'"
    )
    # An account blocked and a merchant allowed from before the data starts, so
    # the lists overrule some scores; scores that make review and decline differ.
    admin_conn.execute("SELECT create_list('bad', 'account', 'block')")
    admin_conn.execute("SELECT create_list('good', 'merchant', 'allow')")
    admin_conn.execute("SELECT add_list_entry('bad', 3, 'test')")
    admin_conn.execute("SELECT add_list_entry('good', 7, 'test')")
    admin_conn.execute("UPDATE list_entries SET added_at = '2000-01-01T00:00:00Z'")
    admin_conn.execute(
        "SELECT set_decision_policy(%s::jsonb)",
        (
            '{"review_threshold": 50, "decline_threshold": 100, "default_score": 50,'
            ' "rule_scores": {"new_merchant_run": 100, "spike_3": 25, "rapid_succession": 25}}',
        ),
    )
    admin_conn.commit()
    start, middle, end = admin_conn.execute(
        "SELECT min(ts), min(ts) + (max(ts) - min(ts)) / 2, max(ts) + interval '1 ms'"
        " FROM transactions"
    ).fetchone()
    periods = (start, middle, middle, end)
    overruled = reviewed = 0
    for budget, floor, candidates, on_off in [
        (Decimal(300), None, None, {"new_merchant_run"}),
        (
            None,
            Decimal("0.01"),
            ["spike_3", "compromised_merchant"],
            {"spike_3", "compromised_merchant"},
        ),
    ]:
        result = db.tune_rules(admin_conn, periods, budget, floor, candidates, Decimal(0))
        chosen = result["chosen"]
        assert len(chosen) >= 2 and on_off <= set(chosen), chosen
        for period, since, until in [("training", start, middle), ("validation", middle, end)]:
            expected = db.backtest_rules(admin_conn, chosen, since, until)
            assert result["figures"]["chosen"][period] == expected, period
            # And the decisions under the policy in force, lists included.
            decisions = db.evaluate_decisions(admin_conn, chosen, None, since, until)
            assert result["decisions"]["chosen"][period] == decisions, period
            live = db.evaluate_decisions(admin_conn, None, None, since, until)
            assert result["decisions"]["live"][period] == live, period
            overruled += sum(o["overruled"] for o in decisions["outcomes"])
            reviewed += decisions["outcomes"][1]["transactions"]
        assert result["search"]["min_marginal_precision"] == 0
    assert overruled > 0 and reviewed > 0  # the lists and the review band count
