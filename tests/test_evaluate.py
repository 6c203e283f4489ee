"""Precision and recall against labels (SQL evaluate_rules, `pgfraud evaluate`), by hand."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from click.testing import CliRunner

from pgfraud import db
from pgfraud.cli import main

T0 = datetime(2024, 1, 1, tzinfo=UTC)
BELOW = {"below_average": {"factor": 0.9, "min_history": 1}}


def setup_account(app_conn, admin_conn):
    # Account 1, an hour apart: 100, 100, 1.00, 100, 50.
    # below_average fires on tx 3 (1 < 90) and tx 5 (50 < 0.9 x 301/4 = 67.725),
    # not on tx 4 (100 < 0.9 x 67 is false).
    amounts = ["100.00", "100.00", "1.00", "100.00", "50.00"]
    db.store_transactions(
        app_conn,
        [
            {
                "account_id": 1,
                "transaction_id": i + 1,
                "timestamp": T0 + timedelta(hours=i),
                "amount": Decimal(a),
            }
            for i, a in enumerate(amounts)
        ],
    )
    app_conn.commit()
    # Labels: tx 3 card_testing (caught), tx 4 account_takeover (missed).
    db.store_labels(admin_conn, [(3, "card_testing"), (4, "account_takeover")])


def test_precision_and_recall_by_hand(app_conn, admin_conn):
    setup_account(app_conn, admin_conn)
    rows = {
        (r["rule_id"], r["scenario"]): r for r in db.evaluate_rules(admin_conn, BELOW, None, None)
    }
    overall = rows[("below_average", "all")]
    assert (overall["labelled"], overall["flagged"], overall["true_positives"]) == (2, 2, 1)
    assert overall["precision_ratio"] == Decimal("0.5000")
    assert overall["recall_ratio"] == Decimal("0.5000")
    card = rows[("below_average", "card_testing")]
    assert (card["labelled"], card["true_positives"], card["recall_ratio"]) == (1, 1, Decimal(1))
    assert card["precision_ratio"] is None and card["flagged"] is None
    takeover = rows[("below_average", "account_takeover")]
    assert takeover["recall_ratio"] == Decimal(0)
    assert rows[("any", "all")]["flagged"] == 2


def test_time_range_counts_only_labels_and_events_inside(app_conn, admin_conn):
    setup_account(app_conn, admin_conn)
    # [T0+3h, ...): tx 4 and 5 only; tx 4 labelled and missed, tx 5 flagged, not fraud.
    rows = db.evaluate_rules(admin_conn, BELOW, T0 + timedelta(hours=3), None)
    overall = next(r for r in rows if r["rule_id"] == "below_average" and r["scenario"] == "all")
    assert (overall["labelled"], overall["flagged"], overall["true_positives"]) == (1, 1, 0)
    assert overall["precision_ratio"] == Decimal(0)


def test_labels_never_enter_transactions_and_a_relabel_replaces(app_conn, admin_conn):
    setup_account(app_conn, admin_conn)
    db.store_labels(admin_conn, [(3, "account_takeover")])
    assert admin_conn.execute("SELECT count(*) FROM transactions").fetchone()[0] == 5
    assert admin_conn.execute(
        "SELECT scenario FROM fraud_labels WHERE transaction_id = 3"
    ).fetchone() == ("account_takeover",)


def test_cli_load_labels_and_evaluate(tmp_path, database, app_conn, admin_conn, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", database.admin_url)
    setup_account(app_conn, admin_conn)
    bad = tmp_path / "bad.csv"
    bad.write_text("transaction_id,scenario\n3,card_testing\nx,card_testing\n4,Bad Name\n-1,Bad\n")
    result = CliRunner().invoke(main, ["load-labels", str(bad)])
    assert result.exit_code == 2
    assert result.output.splitlines()[0] == (
        f"error: {bad}: 3 bad row(s), at line(s) 3, 4, 5; nothing was stored"
    )
    assert "line 3: transaction_id must be an integer" in result.output
    assert "line 4: scenario must be a lower_snake_case name" in result.output
    result = CliRunner().invoke(
        main, ["evaluate", "--rules", '{"below_average": {"factor": 0.9, "min_history": 1}}']
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == (
        '5 transactions; rules that ran: {"below_average": '
        '{"factor": 0.9, "min_history": 1, "window_days": 0}}'
    )
    assert lines[1].split() == [
        "rule",
        "scenario",
        "labelled",
        "flagged",
        "caught",
        "precision",
        "recall",
        "f1",
        "per_1000",
    ]
    # F1 = 2 x 1 / (2 flagged + 2 labelled) = 0.5; 2 alerts in 5 transactions = 400 per 1,000.
    assert lines[2].split() == [
        "below_average",
        "all",
        "2",
        "2",
        "1",
        "0.5000",
        "0.5000",
        "0.5000",
        "400.0000",
    ]
    result = CliRunner().invoke(
        main,
        ["evaluate", "--json", "--rules", '{"below_average": {"factor": 0.9, "min_history": 1}}'],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["transactions"] == 5
    assert report["parameters"] == {
        "below_average": {"factor": 0.9, "min_history": 1, "window_days": 0}
    }
    assert '"factor": 0.9,' in result.output  # an exact number, not the string "0.9"
    card = next(
        r
        for r in report["rows"]
        if (r["rule_id"], r["scenario"]) == ("below_average", "card_testing")
    )
    assert (card["true_positives"], card["recall_ratio"], card["f1"]) == (1, "1.0000", None)
    result = CliRunner().invoke(main, ["evaluate", "--rules", "[1]"])
    assert result.exit_code == 2
    assert "--rules" in result.output


def test_cli_evaluate_takes_iso_times_with_z(database, app_conn, admin_conn, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", database.admin_url)
    setup_account(app_conn, admin_conn)
    result = CliRunner().invoke(
        main,
        [
            "evaluate",
            "--rules",
            '{"below_average": {"factor": 0.9, "min_history": 1}}',
            "--from",
            "2024-01-01T03:00:00Z",
        ],
    )
    assert result.exit_code == 0, result.output
    # tx 4 (labelled, missed) and tx 5 (flagged, not fraud), as in the range test above:
    # F1 0; 1 alert in the 2 transactions of the range = 500 per 1,000.
    lines = result.output.splitlines()
    assert lines[0].startswith("2 transactions; ")
    assert lines[2].split() == [
        "below_average",
        "all",
        "1",
        "1",
        "0",
        "0.0000",
        "0.0000",
        "0.0000",
        "500.0000",
    ]


def test_cli_evaluate_refuses_a_reversed_range_and_names_an_empty_one(
    database, app_conn, admin_conn, monkeypatch
):
    monkeypatch.setenv("DATABASE_URL", database.admin_url)
    setup_account(app_conn, admin_conn)
    reversed_range = ["evaluate", "--from", "2024-02-01T00:00:00Z", "--to", "2024-01-01T00:00:00Z"]
    result = CliRunner().invoke(main, reversed_range)
    assert result.exit_code == 2
    assert "Invalid value for --to: must not be before --from" in result.output
    # Labels are stored, none in this range: said so, not "no labels stored".
    result = CliRunner().invoke(main, ["evaluate", "--from", "2030-01-01T00:00:00Z"])
    assert result.exit_code == 0, result.output
    assert "no labelled transaction in [--from, --to)" in result.output
