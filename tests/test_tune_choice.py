"""tune's choice under an alert budget: a rule is added only if its new alerts are
at least min_marginal_precision fraud (default 0.5), worked out by hand.

Training (January 2024), 20 transactions, each on its own account an hour
apart: fraud at 1000, 900 and 550; legit at 800, 700, 650 and 600 and
thirteen at 10. Validation (February): fraud at 950, legit 10 and 700.
large_amount's grid is the training fraud amounts: 550, 900, 1000.
  threshold 1000 flags {1000}: 1 caught of 1;
  threshold 900 flags {1000, 900}: 2 of 2;
  threshold 550 flags those, 800, 700, 650, 600 and 550: 3 of 7 (0.4286).
A budget of 350 per 1,000 allows 7 alerts of 20. Without a floor on the
marginal precision, 550 wins (3 caught against 2). With a floor, the greedy
run by most caught still takes 550 when 3/7 reaches it, but against the run
by precision (900: 2 of 2) it adds 1 fraud for 5 alerts (0.2): it wins only
if the floor is at most 0.2; at the default 0.5, 900 is chosen.
"""

from __future__ import annotations

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
    training = [("1000", True), ("900", True), ("550", True)]
    training += [(a, False) for a in ("800", "700", "650", "600")] + [("10", False)] * 13
    validation = [("950", True), ("10", False), ("700", False)]
    for start, amounts in [(JAN, training), (FEB, validation)]:
        for amount, fraud in amounts:
            tx = len(rows) + 1
            rows.append(
                {
                    "account_id": tx,
                    "transaction_id": tx,
                    "timestamp": start + timedelta(hours=tx),
                    "amount": Decimal(amount),
                }
            )
            if fraud:
                labels.append((tx, "stolen_card"))
    db.store_transactions(app_conn, rows)
    app_conn.commit()
    db.store_labels(admin_conn, labels)
    admin_conn.commit()


@pytest.mark.parametrize(
    ("marginal", "threshold", "flagged", "caught"),
    [
        (Decimal(0), 550, 7, 3),  # no floor: the budget is spent at 3/7
        (None, 900, 2, 2),  # the default, 0.5
        (Decimal("0.5"), 900, 2, 2),
        (Decimal("0.2"), 550, 7, 3),  # 1 more fraud for 5 more alerts: 0.2
        (Decimal("0.21"), 900, 2, 2),
        (Decimal("0.43"), 900, 2, 2),  # 550's own 3/7 = 0.4286 < 0.43
        (Decimal(1), 900, 2, 2),  # 2 of 2 is 1
    ],
)
def test_budget_spends_alerts_only_at_the_marginal_precision(
    app_conn, admin_conn, marginal, threshold, flagged, caught
):
    setup_data(app_conn, admin_conn)
    result = db.tune_rules(
        admin_conn, (JAN, FEB, FEB, MAR), Decimal(350), None, ["large_amount"], marginal
    )
    assert result["chosen"] == {"large_amount": {"threshold": threshold}}
    search = result["search"]
    assert (search["flagged"], search["caught"]) == (flagged, caught)
    assert search["min_marginal_precision"] == (Decimal("0.5") if marginal is None else marginal)
    # February: 900 flags the 950 only; 550 flags the 950 and the 700.
    validation = next(
        r
        for r in result["figures"]["chosen"]["validation"]
        if (r["rule_id"], r["scenario"]) == ("any", "all")
    )
    assert (validation["flagged"], validation["true_positives"]) == (
        (1, 1) if threshold == 900 else (2, 1)
    )


def test_the_marginal_floor_counts_only_the_new_alerts(app_conn, admin_conn):
    """velocity (60 s, at most 1 before) flags account 100's second payment, 30
    seconds after its first: 1 caught of 1 new alert, while large_amount 900
    is already chosen; large_amount 550 would add 5 alerts and 1 fraud (0.2),
    refused at 0.5."""
    setup_data(app_conn, admin_conn)
    db.store_transactions(
        app_conn,
        [
            {
                "account_id": 100,
                "transaction_id": 100,
                "timestamp": JAN + timedelta(days=10),
                "amount": Decimal("5"),
            },
            {
                "account_id": 100,
                "transaction_id": 101,
                "timestamp": JAN + timedelta(days=10, seconds=30),
                "amount": Decimal("5"),
            },
        ],
    )
    app_conn.commit()
    db.store_labels(admin_conn, [(101, "card_testing")])
    admin_conn.commit()
    result = db.tune_rules(
        admin_conn, (JAN, FEB, FEB, MAR), Decimal(350), None, ["large_amount", "velocity"], None
    )
    assert result["chosen"] == {
        "large_amount": {"threshold": 900},
        "velocity": {"window_seconds": 60, "max_transactions": 1},
    }
    assert [(s["rule_id"], s["flagged"], s["caught"]) for s in result["search"]["steps"]] == [
        ("large_amount", 2, 2),
        ("velocity", 3, 3),
    ]


ARGS = [
    "tune",
    "--train-from",
    "2024-01-01T00:00:00Z",
    "--train-to",
    "2024-02-01T00:00:00Z",
    "--valid-from",
    "2024-02-01T00:00:00Z",
    "--valid-to",
    "2024-03-01T00:00:00Z",
    "--max-alerts-per-1000",
    "350",
    "--candidates",
    "large_amount",
]


def test_cli_option_and_bad_values(database, app_conn, admin_conn, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", database.admin_url)
    setup_data(app_conn, admin_conn)
    result = CliRunner().invoke(main, [*ARGS, "--json"])
    assert result.exit_code == 0, result.output
    assert '"threshold": 900' in result.output
    result = CliRunner().invoke(main, [*ARGS, "--min-marginal-precision", "0"])
    assert result.exit_code == 0, result.output
    assert 'chosen rules: {"large_amount": {"threshold": 550}}' in result.output
    assert "new alerts at least 0 fraud" in result.output
    before = admin_conn.execute("SELECT active_rule_parameters()").fetchone()[0]
    for value in ["1.5", "-0.1", "half"]:
        result = CliRunner().invoke(main, [*ARGS, "--min-marginal-precision", value, "--apply"])
        assert result.exit_code == 2, result.output
        assert "--min-marginal-precision" in result.output
        assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    assert admin_conn.execute("SELECT active_rule_parameters()").fetchone()[0] == before


def test_http_field_and_bad_values(database, app_conn, admin_conn):
    from pgfraud.service import create_app
    from pgfraud.service.database import close_pool
    from pgfraud.service.feed import stop_listener

    setup_data(app_conn, admin_conn)
    app = create_app({"TESTING": True, "DATABASE_URL": database.app_url})
    try:
        client = app.test_client()
        body = {
            "train_from": "2024-01-01T00:00:00Z",
            "train_to": "2024-02-01T00:00:00Z",
            "valid_from": "2024-02-01T00:00:00Z",
            "valid_to": "2024-03-01T00:00:00Z",
            "max_alerts_per_1000": 350,
            "candidates": ["large_amount"],
        }
        response = client.post("/tune", json=body)
        assert response.status_code == 200, response.get_json()
        assert response.get_json()["chosen"] == {"large_amount": {"threshold": 900}}
        response = client.post("/tune", json={**body, "min_marginal_precision": 0})
        assert response.status_code == 200, response.get_json()
        assert response.get_json()["chosen"] == {"large_amount": {"threshold": 550}}
        for value in [1.5, -0.1, "half", True]:
            response = client.post("/tune", json={**body, "min_marginal_precision": value})
            assert response.status_code == 400, (value, response.get_json())
            assert response.get_json()["error"]["field"] == "min_marginal_precision"
    finally:
        stop_listener(app)
        close_pool(app)


@pytest.mark.parametrize("enabled", [False, True])
def test_a_user_rule_is_an_on_off_candidate(database, app_conn, admin_conn, monkeypatch, enabled):
    """A user's rule (`pgfraud rule add`), on or off, competes at its expression:
    'amount >= 900 OR amount = 550' flags the three frauds and nothing else (3
    of 3), better than any large_amount threshold; chosen with every rule a
    candidate, and when named in --candidates; --apply switches it on."""
    monkeypatch.setenv("DATABASE_URL", database.admin_url)
    setup_data(app_conn, admin_conn)
    admin_conn.execute(
        "SELECT add_rule('fraud_amounts', 'amount >= 900 OR amount = 550', NULL, %s)", (enabled,)
    )
    admin_conn.commit()
    result = db.tune_rules(admin_conn, (JAN, FEB, FEB, MAR), Decimal(350), None, None, None)
    assert result["chosen"] == {"fraud_amounts": {}}
    assert (result["search"]["flagged"], result["search"]["caught"]) == (3, 3)
    runner = CliRunner()
    args = [*ARGS[:-1], "large_amount,fraud_amounts", "--apply"]
    out = runner.invoke(main, args)
    assert out.exit_code == 0, out.output
    assert 'switched on: {"fraud_amounts": {}}' in out.output
    rules = dict(admin_conn.execute("SELECT rule_id, enabled FROM rules").fetchall())
    assert rules["fraud_amounts"] is True
    assert [r for r, on in rules.items() if on] == ["fraud_amounts"]
    # An unknown rule among the candidates: exit 2 naming the option.
    out = runner.invoke(main, [*ARGS[:-1], "fraud_amounts,no_such_rule"])
    assert out.exit_code == 2 and "--candidates" in out.output and "no_such_rule" in out.output


def test_the_surplus_run_takes_a_precise_rule_before_a_broad_one(app_conn, admin_conn):
    """January, candidates large_amount and velocity, budget 500 per 1,000.
    Fraud: 1000 alone on its account; 600 three times and 10 twice, each the
    second payment of a pair 30 s apart on its own account (first payment 10);
    legit: 700 alone, four more pairs of 10 and 10, ten single 10s (30 rows).
    large_amount (grid 10, 600, 1000): 1000 flags 1 of 1; 600 flags 1000, 700
    and the 600s, 4 of 5; 10 flags all 30 (6 fraud: 0.2, below the floor).
    velocity (max 1 in any window) flags the nine second payments, 5 of 9.
    By most caught: velocity, then large_amount 1000 (ties on caught: fewer
    alerts): 6 of 10. By precision: large_amount 1000, then velocity: 6 of 10.
    By surplus (caught - 0.5 x alerts): large_amount 600 (1.5 against 0.5 and
    0.5), then velocity would add 2 of 6 (0.33): 4 of 5. 6 of 10 catches 2 more
    for 5 more alerts (0.4 < 0.5): the surplus run wins. Without the floor
    (0), 6 of 10."""
    rows = []
    labels = []

    def add(account, ts, amount, fraud=False):
        rows.append(
            {
                "account_id": account,
                "transaction_id": len(rows) + 1,
                "timestamp": ts,
                "amount": Decimal(amount),
            }
        )
        if fraud:
            labels.append((len(rows), "card_testing"))

    add(1, JAN + timedelta(hours=1), "1000", True)
    add(2, JAN + timedelta(hours=2), "700")
    pairs = [("600", True)] * 3 + [("10", True)] * 2 + [("10", False)] * 4
    for i, (amount, fraud) in enumerate(pairs):
        at = JAN + timedelta(days=1 + i)
        add(10 + i, at, "10")
        add(10 + i, at + timedelta(seconds=30), amount, fraud)
    for i in range(10):
        add(30 + i, JAN + timedelta(days=20, hours=i), "10")
    add(50, FEB + timedelta(hours=1), "10")
    db.store_transactions(app_conn, rows)
    app_conn.commit()
    db.store_labels(admin_conn, labels)
    admin_conn.commit()
    periods = (JAN, FEB, FEB, MAR)
    candidates = ["large_amount", "velocity"]
    result = db.tune_rules(admin_conn, periods, Decimal(500), None, candidates, None)
    assert result["chosen"] == {"large_amount": {"threshold": 600}}
    assert (result["search"]["flagged"], result["search"]["caught"]) == (5, 4)
    result = db.tune_rules(admin_conn, periods, Decimal(500), None, candidates, Decimal(0))
    assert result["chosen"] == {
        "large_amount": {"threshold": 1000},
        "velocity": {"window_seconds": 60, "max_transactions": 1},
    }
    assert (result["search"]["flagged"], result["search"]["caught"]) == (10, 6)
