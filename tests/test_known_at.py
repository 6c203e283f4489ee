"""Labels and reviews carry known_at: loading it, refusing it, and rules that honour it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from click.testing import CliRunner

from pgfraud import db
from pgfraud.cli import main


@pytest.fixture
def cli_env(database, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", database.admin_url)
    monkeypatch.delenv("PGFRAUD_APP_DATABASE_URL", raising=False)
    return database


LABELLED = "account_id,transaction_id,timestamp,amount,merchant_id,is_fraud,known\n"


def _labels(conn):
    return conn.execute(
        "SELECT transaction_id, scenario, known_at FROM fraud_labels ORDER BY 1"
    ).fetchall()


def test_load_takes_known_at_from_its_column(cli_env, tmp_path, admin_conn):
    path = tmp_path / "tx.csv"
    path.write_text(
        LABELLED
        + "1,1,2024-01-01T00:00:00Z,10.00,7,1,2024-01-03T00:00:00.250Z\n"
        + "1,2,2024-01-01T00:00:01Z,11.00,7,1,1704326400000\n"  # epoch ms: 2024-01-04
        + "1,3,2024-01-01T00:00:02Z,12.00,7,0,\n"
        + "1,4,2024-01-01T00:00:03Z,12.00,7,1,\n"  # empty: when stored
    )
    before = admin_conn.execute("SELECT now()").fetchone()[0]
    admin_conn.commit()
    result = CliRunner().invoke(
        main, ["load", str(path), "--label-column", "is_fraud", "--known-at-column", "known"]
    )
    assert result.exit_code == 0, result.output
    rows = _labels(admin_conn)
    assert [r[:2] for r in rows] == [(1, "labelled"), (2, "labelled"), (4, "labelled")]
    assert rows[0][2] == datetime(2024, 1, 3, 0, 0, 0, 250000, tzinfo=UTC)
    assert rows[1][2] == datetime(2024, 1, 4, tzinfo=UTC)
    assert rows[2][2] >= before


@pytest.mark.parametrize(
    ("cell", "says"),
    [
        ("2023-12-31T23:59:59.999Z", "is before the transaction's time 2024-01-01T00:00:00.000Z"),
        ("yesterday", "is not an ISO 8601 timestamp"),
        ("1704067200", "looks like epoch seconds"),
    ],
)
def test_load_refuses_a_bad_known_at_by_line(cli_env, tmp_path, admin_conn, cell, says):
    path = tmp_path / "tx.csv"
    path.write_text(
        LABELLED
        + "1,1,2024-01-01T00:00:00Z,10.00,7,0,\n"
        + f"1,2,2024-01-01T00:00:00Z,10.00,7,1,{cell}\n"
    )
    result = CliRunner().invoke(
        main, ["load", str(path), "--label-column", "is_fraud", "--known-at-column", "known"]
    )
    assert result.exit_code == 2, result.output
    assert "line 3" in result.output and says in result.output, result.output
    assert admin_conn.execute("SELECT count(*) FROM transactions").fetchone()[0] == 0
    assert admin_conn.execute("SELECT count(*) FROM fraud_labels").fetchone()[0] == 0


def test_known_at_column_needs_the_label_column(cli_env, tmp_path):
    path = tmp_path / "tx.csv"
    path.write_text(LABELLED)
    result = CliRunner().invoke(main, ["load", str(path), "--known-at-column", "known"])
    assert result.exit_code == 2
    assert "--known-at-column" in result.output


def _store(conn, rows):
    db.store_transactions(
        conn,
        [
            {
                "account_id": a,
                "transaction_id": t,
                "timestamp": ts,
                "amount": "10.00",
                "merchant_id": m,
            }
            for a, t, ts, m in rows
        ],
    )
    conn.commit()


def test_load_labels_takes_known_at_and_refuses_one_before_its_transaction(
    cli_env, tmp_path, app_conn, admin_conn
):
    _store(app_conn, [(1, 1, "2024-01-01T00:00:00Z", 7), (1, 2, "2024-01-02T00:00:00Z", 7)])
    good = tmp_path / "good.csv"
    good.write_text(
        "transaction_id,scenario,known_at\n1,skimming,2024-01-05T00:00:00.000Z\n2,skimming,\n"
    )
    result = CliRunner().invoke(main, ["load-labels", str(good)])
    assert result.exit_code == 0, result.output
    rows = _labels(admin_conn)
    assert rows[0][2] == datetime(2024, 1, 5, tzinfo=UTC)
    stored_at = rows[1][2]
    admin_conn.commit()
    # Loaded again without known_at: a label keeps the time it was first known.
    again = tmp_path / "again.csv"
    again.write_text("transaction_id,scenario\n1,skimming\n2,skimming\n")
    assert CliRunner().invoke(main, ["load-labels", str(again)]).exit_code == 0
    assert [r[2] for r in _labels(admin_conn)] == [datetime(2024, 1, 5, tzinfo=UTC), stored_at]
    admin_conn.commit()

    early = tmp_path / "early.csv"
    early.write_text(
        "transaction_id,scenario,known_at\n"
        "1,skimming,2024-01-06T00:00:00Z\n"
        "2,skimming,2024-01-01T12:00:00Z\n"  # transaction 2 is at 2024-01-02
    )
    result = CliRunner().invoke(main, ["load-labels", str(early)])
    assert result.exit_code == 2, result.output
    assert "line 3" in result.output
    assert "known_at 2024-01-01T12:00:00.000Z is before the time 2024-01-02T00:00:00.000Z" in (
        result.output
    )
    # Nothing stored: label 1 keeps its known_at.
    assert _labels(admin_conn)[0][2] == datetime(2024, 1, 5, tzinfo=UTC)

    bad = tmp_path / "bad.csv"
    bad.write_text("transaction_id,scenario,known_at\n1,skimming,soon\n")
    result = CliRunner().invoke(main, ["load-labels", str(bad)])
    assert result.exit_code == 2, result.output
    assert "line 2" in result.output and "known_at" in result.output


def test_load_labels_reports_every_bad_line_of_a_file_at_once(
    cli_env, tmp_path, app_conn, admin_conn
):
    # A known_at before its transaction (found against the stored rows) and a
    # bad scenario or unparsable known_at (found in the file) were reported on
    # separate runs, in different formats (fresh-user trial): now one report,
    # in `load`'s form, every bad line in line order, nothing stored.
    _store(app_conn, [(1, 1, "2024-01-01T00:00:00Z", 7), (1, 2, "2024-01-02T00:00:00Z", 7)])
    mixed = tmp_path / "mixed.csv"
    mixed.write_text(
        "transaction_id,scenario,known_at\n"
        "1,skimming,2023-12-31T00:00:00Z\n"  # before transaction 1 (2024-01-01)
        "2,Bad Name,\n"
        "2,skimming,soon\n"
    )
    result = CliRunner().invoke(main, ["load-labels", str(mixed)])
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines() == [
        f"error: {mixed}: 3 bad row(s), at line(s) 2, 3, 4; nothing was stored",
        "  line 2: known_at 2023-12-31T00:00:00.000Z is before the time"
        " 2024-01-01T00:00:00.000Z of transaction 1",
        "  line 3: scenario must be a lower_snake_case name, like card_testing",
        "  line 4: known_at 'soon' is not an ISO 8601 timestamp (like 2024-03-10T12:00:00.123Z)"
        " nor an integer of epoch milliseconds",
    ]
    # Only the stored-transaction check failing: the same form.
    early = tmp_path / "early_only.csv"
    early.write_text("transaction_id,scenario,known_at\n1,skimming,2023-12-31T00:00:00Z\n")
    result = CliRunner().invoke(main, ["load-labels", str(early)])
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines()[0] == (
        f"error: {early}: 1 bad row(s), at line(s) 2; nothing was stored"
    )
    assert _labels(admin_conn) == []
    admin_conn.commit()
    # An empty scenario cell is known fraud of no named scenario, and a number
    # n is scenario_<n>, as `pgfraud load --scenario-column` reads them.
    cells = tmp_path / "cells.csv"
    cells.write_text("transaction_id,scenario\n1,\n2,3\n")
    result = CliRunner().invoke(main, ["load-labels", str(cells)])
    assert result.exit_code == 0, result.output
    assert [(r[0], r[1]) for r in _labels(admin_conn)] == [(1, "labelled"), (2, "scenario_3")]


# -- the rules honour known_at --------------------------------------------------

T0 = datetime(2024, 3, 1, tzinfo=UTC)
DAY = 86400


def _at(days):
    from datetime import timedelta

    return T0 + timedelta(seconds=days * DAY)


def _put(conn, rows):
    """rows: (transaction_id, account_id, days after T0, merchant_id)."""
    db.store_transactions(
        conn,
        [
            {
                "account_id": a,
                "transaction_id": t,
                "timestamp": _at(d),
                "amount": "10.00",
                "merchant_id": m,
            }
            for t, a, d, m in rows
        ],
    )
    conn.commit()


def _alerts(conn, rule_id):
    """(transaction_id, reason) of the persisted alerts of rule_id, after checking that
    every account's alerts equal a from-scratch evaluation."""
    conn.execute("SET jit = off")  # JIT compiling the rule code costs seconds per call
    persisted = conn.execute(
        "SELECT account_id, transaction_id, rule_id, observed, threshold, reason FROM alerts"
        " ORDER BY account_id, ts, transaction_id, rule_id"
    ).fetchall()
    scratch = conn.execute(
        "SELECT e.account_id, e.transaction_id, e.rule_id, e.observed, e.threshold, e.reason"
        " FROM account_states AS a"
        " CROSS JOIN LATERAL evaluate_account(a.account_id, active_rule_parameters()) AS e"
        " ORDER BY e.account_id, e.ts, e.transaction_id, e.rule_id"
    ).fetchall()
    conn.commit()
    assert persisted == scratch
    return [(r[1], r[5]) for r in persisted if r[2] == rule_id]


def _backtest(conn):
    """The transactions compromised_merchant flags in a backtest over the whole history."""
    rows = conn.execute(
        "SELECT transaction_id FROM score_transactions(NULL, NULL, %s::jsonb)"
        " ORDER BY transaction_id",
        (
            '{"compromised_merchant": {"window_days": 10, "delay_days": 0,'
            ' "min_known_fraud": 1, "min_fraud_share": 0}}',
        ),
    ).fetchall()
    conn.commit()
    return [r[0] for r in rows]


def test_a_label_or_review_recorded_after_a_transaction_does_not_change_its_verdict(
    app_conn, admin_conn
):
    # Merchant 5: 1 (account 1, day 0), 2 (account 2, day 1), 3 (account 3, day 3).
    # compromised_merchant: window 10 days, delay 0, 1 known fraud fires.
    admin_conn.execute(
        "UPDATE rules SET enabled = (rule_id = 'compromised_merchant'),"
        " parameters = CASE WHEN rule_id = 'compromised_merchant' THEN"
        ' \'{"window_days": 10, "delay_days": 0, "min_known_fraud": 1,'
        ' "min_fraud_share": 0}\'::jsonb ELSE parameters END'
    )
    admin_conn.commit()
    _put(app_conn, [(1, 1, 0, 5), (2, 2, 1, 5), (3, 3, 3, 5)])
    assert _alerts(app_conn, "compromised_merchant") == [] and _backtest(app_conn) == []

    # 1 labelled fraud, known at day 2: after 2's time, before 3's.
    db.store_labels(admin_conn, [(1, "skimming", _at(2), 2, None)])
    admin_conn.commit()
    reason = (
        "merchant 5: 1 of its {} transactions from 10 to 0 days before are known fraud"
        " (as known then); the limits are 1 and a share of 0"
    )
    assert _alerts(app_conn, "compromised_merchant") == [(3, reason.format(2))]
    assert _backtest(app_conn) == [3]  # 2 is judged as it was: nothing known yet

    # 2 confirmed as fraud by a review today (years after 3): neither 2 nor 3 changes.
    db.review_transaction(app_conn, 2, "confirmed_fraud", "", "analyst")
    app_conn.commit()
    assert _alerts(app_conn, "compromised_merchant") == [(3, reason.format(2))]
    assert _backtest(app_conn) == [3]
    # A label of 2 stored now (no known_at given: known from now on) neither.
    db.store_labels(admin_conn, [(2, "skimming")])
    admin_conn.commit()
    assert _alerts(app_conn, "compromised_merchant") == [(3, reason.format(2))]
    assert _backtest(app_conn) == [3]

    # Had 1's label been known before 2 (day 0.5), 2 would fire: the label's
    # change re-scores the rows after its new known_at.
    db.store_labels(admin_conn, [(1, "skimming", _at(0.5), 2, None)])
    admin_conn.commit()
    assert _alerts(app_conn, "compromised_merchant") == [
        (2, reason.format(1)),
        (3, reason.format(2)),
    ]
    assert _backtest(app_conn) == [2, 3]


def _features(reason):
    """The feature values a user's rule's reason shows: {name: text}."""
    shown = reason.split(" with ", 1)[1]
    return dict(item.split(" = ") for item in shown.split(", "))


def test_merchant_features_count_the_fraud_known_at_the_transaction_time(app_conn, admin_conn):
    # Merchant 9, all on other accounts:
    #   101 day 0, label known day 0.5      102 day 10, label known day 25
    #   103 day 20, confirmed by a review at day 21
    #   104 day 22, label known day 30      105 day 26 (probe)   106 day 40 (probe)
    # For 105 (day 26), 30 days [-4, 26): 101..104, 4 rows; known before day 26:
    #   101, 102, 103 (104's label comes at day 30): 3, share 0.7500.
    #   7 days [19, 26): 103, 104: 2 rows, 1 known (103), share 0.5000.
    # For 106 (day 40), 30 days [10, 40): 102..105, 4 rows; known: 102, 103, 104: 3,
    #   share 0.7500. 7 days [33, 40): none: 0, 0, share NULL.
    # For 101 (no earlier row): 0, 0, NULL both ways.
    admin_conn.execute("UPDATE rules SET enabled = false")
    db.add_rule(
        admin_conn,
        "risky_merchant",
        "merchant_transactions_7d >= 0 AND merchant_fraud_7d >= 0"
        " AND coalesce(merchant_fraud_share_7d, 0) >= 0 AND merchant_transactions_30d >= 0"
        " AND merchant_fraud_30d >= 0 AND coalesce(merchant_fraud_share_30d, 0) >= 0",
        enabled=True,
    )
    admin_conn.commit()
    _put(
        app_conn,
        [
            (101, 1, 0, 9),
            (102, 2, 10, 9),
            (103, 3, 20, 9),
            (104, 4, 22, 9),
            (105, 5, 26, 9),
            (106, 6, 40, 9),
            (107, 7, 41, None),
        ],
    )
    db.store_labels(
        admin_conn,
        [(101, "x", _at(0.5), 2, None), (102, "x", _at(25), 3, None), (104, "x", _at(30), 4, None)],
    )
    admin_conn.execute(
        "INSERT INTO reviews (transaction_id, account_id, status, reviewer, reviewed_at)"
        " VALUES (103, 3, 'confirmed_fraud', 'analyst', %s)",
        (_at(21),),
    )
    admin_conn.commit()
    fired = dict(_alerts(app_conn, "risky_merchant"))
    assert sorted(fired) == [101, 102, 103, 104, 105, 106]  # 107 has no merchant: NULLs
    assert _features(fired[105]) == {
        "merchant_fraud_30d": "3",
        "merchant_fraud_7d": "1",
        "merchant_fraud_share_30d": "0.7500",
        "merchant_fraud_share_7d": "0.5000",
        "merchant_transactions_30d": "4",
        "merchant_transactions_7d": "2",
    }
    assert _features(fired[106]) == {
        "merchant_fraud_30d": "3",
        "merchant_fraud_7d": "0",
        "merchant_fraud_share_30d": "0.7500",
        "merchant_fraud_share_7d": "null",
        "merchant_transactions_30d": "4",
        "merchant_transactions_7d": "0",
    }
    assert _features(fired[101]) == {
        "merchant_fraud_30d": "0",
        "merchant_fraud_7d": "0",
        "merchant_fraud_share_30d": "null",
        "merchant_fraud_share_7d": "null",
        "merchant_transactions_30d": "0",
        "merchant_transactions_7d": "0",
    }
    # A false_positive review of 102 at day 30 changes 106 (day 40), not 105.
    admin_conn.execute(
        "INSERT INTO reviews (transaction_id, account_id, status, reviewer, reviewed_at)"
        " VALUES (102, 2, 'false_positive', 'analyst', %s)",
        (_at(30),),
    )
    admin_conn.commit()
    again = dict(_alerts(app_conn, "risky_merchant"))
    assert again[105] == fired[105]
    assert _features(again[106])["merchant_fraud_30d"] == "2"
    assert _features(again[106])["merchant_fraud_share_30d"] == "0.5000"


def test_a_rule_combining_merchant_risk_with_the_account(app_conn, admin_conn):
    # The docs' example: a payment at a merchant with 2 or more known frauds
    # making half of its last 30 days, above 3 x the account's average.
    admin_conn.execute("UPDATE rules SET enabled = false")
    db.add_rule(
        admin_conn,
        "risky_merchant_spike",
        "merchant_fraud_30d >= 2 AND merchant_fraud_share_30d >= 0.5"
        " AND amount > 3 * prior_average",
        enabled=True,
    )
    admin_conn.commit()
    _put(app_conn, [(1, 1, 0, 3), (2, 2, 1, 3), (3, 3, 2, 3), (4, 9, 2, 8), (5, 9, 2.5, 8)])
    db.store_labels(admin_conn, [(1, "x", _at(0), 2, None), (2, "x", _at(1), 3, None)])
    admin_conn.commit()
    db.store_transactions(
        app_conn,
        [
            {
                "account_id": 9,
                "transaction_id": 6,
                "timestamp": _at(3),
                "amount": "50.00",
                "merchant_id": 3,
            },
            {
                "account_id": 9,
                "transaction_id": 7,
                "timestamp": _at(4),
                "amount": "20.00",
                "merchant_id": 3,
            },
        ],
    )
    app_conn.commit()
    # 6: merchant 3 has 1, 2, 3 in 30 days, 1 and 2 known fraud (2 of 3 >= 0.5),
    # 50.00 > 3 x 10.00. 7: 3 of 4 rows... 20.00 is not above 3 x 23.3333.
    assert [t for t, _ in _alerts(app_conn, "risky_merchant_spike")] == [6]
