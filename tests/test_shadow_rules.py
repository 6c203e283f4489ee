"""Shadow rules (issue 18, part 4): a rule put in shadow with candidate
parameters is scored on arrival into shadow_alerts, which is_fraud, alerts,
decisions and the queue never show; compare_shadow_rules sets it against
the live rule over the transactions stored since it started; promote makes
it live (re-scoring as any rule change), drop removes it; invalid parameters
are refused by the live validator. Values worked out by hand from the
seeded rules (large_amount's threshold 10000)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from pgfraud import db
from pgfraud.errors import InvalidInput, RuleNotFound

T0 = datetime(2024, 1, 1, 12, tzinfo=UTC)


def store(conn, transaction_id, account_id, amount, seconds=0):
    (result,) = db.store_transactions(
        conn,
        [
            {
                "account_id": account_id,
                "transaction_id": transaction_id,
                "timestamp": T0 + timedelta(seconds=seconds),
                "amount": Decimal(amount),
            }
        ],
    )
    conn.commit()
    return result


def shadow_alerts(conn, rule_id="large_amount"):
    return conn.execute(
        "SELECT transaction_id, observed, threshold FROM shadow_alerts WHERE rule_id = %s"
        " ORDER BY transaction_id",
        (rule_id,),
    ).fetchall()


def live_alerts(conn, rule_id="large_amount"):
    return [
        r[0]
        for r in conn.execute(
            "SELECT transaction_id FROM alerts WHERE rule_id = %s ORDER BY transaction_id",
            (rule_id,),
        ).fetchall()
    ]


def test_shadow_is_scored_on_arrival_but_decides_nothing(app_conn, admin_conn):
    store(app_conn, 1, 7, "20000.00")  # before the shadow: live alert only
    admin_conn.execute("SET pgfraud.actor = 'bob'")
    shadow = db.shadow_rule(admin_conn, "large_amount", {"threshold": 15000})
    assert shadow["parameters"] == {"threshold": 15000}
    assert (shadow["live_version"], shadow["started_by"]) == (1, "bob")
    assert shadow_alerts(admin_conn) == []

    second = store(app_conn, 2, 8, "12000.00")  # live fires (>= 10000), shadow not
    third = store(app_conn, 3, 9, "16000.00")  # both fire
    store(app_conn, 4, 10, "500.00")  # neither
    assert shadow_alerts(admin_conn) == [(3, Decimal("16000.00"), Decimal("15000"))]
    assert live_alerts(admin_conn) == [1, 2, 3]
    # The answer, is_fraud and the decision are the live rules' alone.
    assert [a["rule_id"] for a in second["alerts"]] == ["large_amount"]
    assert [a["rule_id"] for a in third["alerts"]] == ["large_amount"]
    assert [r["rule_id"] for r in third["decision"]["rules"]] == ["large_amount"]
    events = app_conn.execute("SELECT transaction_id, threshold FROM is_fraud(9)").fetchall()
    assert events == [(3, Decimal("10000"))]

    # Labels known so far: 3 is fraud (label), 2 was reviewed false_positive.
    db.store_labels(admin_conn, [(3, "account_takeover"), (2, "account_takeover")])
    app_conn.execute("SELECT review_transaction(2, 'false_positive', '', 'ana')")
    app_conn.commit()
    (row,) = db.compare_shadow_rules(app_conn)
    assert row["rule_id"] == "large_amount"
    assert (row["live_parameters"], row["shadow_parameters"]) == (
        {"threshold": 10000},
        {"threshold": 15000},
    )
    # Transactions 2, 3, 4 (1 was stored before the shadow); live flags 2 and 3,
    # the shadow 3; one known fraud (3).
    assert {k: row[k] for k in ("transactions", "labelled", "live_alerts", "shadow_alerts")} == {
        "transactions": 3,
        "labelled": 1,
        "live_alerts": 2,
        "shadow_alerts": 1,
    }
    assert (row["live_per_1000"], row["shadow_per_1000"]) == (Decimal("666.67"), Decimal("333.33"))
    assert (row["live_precision"], row["live_recall"]) == (Decimal("0.5000"), Decimal("1.0000"))
    assert (row["shadow_precision"], row["shadow_recall"]) == (
        Decimal("1.0000"),
        Decimal("1.0000"),
    )

    # A removed transaction takes its shadow alert with it.
    admin_conn.execute("DELETE FROM transactions WHERE transaction_id = 3")
    assert shadow_alerts(admin_conn) == []


def test_promote_makes_the_shadow_live_and_removes_it(app_conn, admin_conn):
    store(app_conn, 1, 7, "20000.00")
    store(app_conn, 2, 8, "12000.00")
    db.shadow_rule(admin_conn, "large_amount", {"threshold": 15000})
    store(app_conn, 3, 9, "16000.00")
    assert shadow_alerts(admin_conn) == [(3, Decimal("16000.00"), Decimal("15000"))]
    rule = db.promote_shadow_rule(admin_conn, "large_amount")
    assert (rule["enabled"], rule["parameters"]) == (True, {"threshold": 15000})
    # Re-scored as any rule change: 12000 no longer fires; the rest name version 2.
    rows = admin_conn.execute(
        "SELECT transaction_id, threshold, rule_version, raised_rule_version FROM alerts"
        " WHERE rule_id = 'large_amount' ORDER BY transaction_id"
    ).fetchall()
    assert rows == [(1, Decimal("15000"), 2, 1), (3, Decimal("15000"), 2, 1)]
    assert admin_conn.execute("SELECT count(*) FROM shadow_rules").fetchone()[0] == 0
    assert shadow_alerts(admin_conn) == []
    with pytest.raises(RuleNotFound, match="large_amount has no shadow"):
        db.promote_shadow_rule(admin_conn, "large_amount")


def test_a_rule_that_is_off_can_run_in_shadow(app_conn, admin_conn):
    admin_conn.execute("SELECT set_rule('large_amount', false)")
    db.shadow_rule(admin_conn, "large_amount")
    store(app_conn, 1, 7, "20000.00")
    assert live_alerts(admin_conn) == []
    assert shadow_alerts(admin_conn) == [(1, Decimal("20000.00"), Decimal("10000"))]
    db.promote_shadow_rule(admin_conn, "large_amount")
    assert live_alerts(admin_conn) == [1]


def test_drop_removes_the_shadow_and_its_alerts(app_conn, admin_conn):
    db.shadow_rule(admin_conn, "large_amount", {"threshold": 15000})
    store(app_conn, 1, 7, "20000.00")
    assert len(shadow_alerts(admin_conn)) == 1
    dropped = db.drop_shadow_rule(admin_conn, "large_amount")
    assert dropped["parameters"] == {"threshold": 15000}
    assert shadow_alerts(admin_conn) == []
    assert live_alerts(admin_conn) == [1]
    with pytest.raises(RuleNotFound):
        db.drop_shadow_rule(admin_conn, "large_amount")


def test_invalid_shadow_parameters_are_refused_like_live_ones(admin_conn):
    with pytest.raises(InvalidInput) as refused:
        db.shadow_rule(admin_conn, "large_amount", {"threshold": -1})
    assert refused.value.field == "large_amount.threshold"
    with pytest.raises(InvalidInput) as live:
        db.change_rule(admin_conn, "large_amount", None, {"threshold": -1})
    assert (live.value.field, live.value.message) == (refused.value.field, refused.value.message)
    with pytest.raises(InvalidInput) as unknown:
        db.shadow_rule(admin_conn, "velocity", {"max_transaction": 3})
    assert unknown.value.field == "velocity.max_transaction"
    with pytest.raises(RuleNotFound):
        db.shadow_rule(admin_conn, "no_such_rule", {})
    assert admin_conn.execute("SELECT count(*) FROM shadow_rules").fetchone()[0] == 0


def test_shadow_alerts_equal_the_rule_code_under_late_arrivals(app_conn, admin_conn):
    # velocity in shadow with at most 3 transactions an hour: rows at 0, 60 and
    # 120 s are 3 (none fires); a late row at -30 s makes the one at 120 s the
    # fourth in its hour, and it fires, as the rule code from scratch says.
    db.shadow_rule(admin_conn, "velocity", {"window_seconds": 3600, "max_transactions": 3})
    for transaction_id, seconds in ((1, 0), (2, 60), (3, 120)):
        store(app_conn, transaction_id, 7, "10.00", seconds)
    assert shadow_alerts(admin_conn, "velocity") == []
    store(app_conn, 4, 7, "10.00", -30)
    assert shadow_alerts(admin_conn, "velocity") == [(3, Decimal("4"), Decimal("3"))]
    expected = app_conn.execute(
        "SELECT transaction_id, observed, threshold FROM evaluate_account(7, %s::jsonb)",
        ('{"velocity": {"window_seconds": 3600, "max_transactions": 3}}',),
    ).fetchall()
    assert expected == shadow_alerts(admin_conn, "velocity")
    # The live alerts are the live rules' result, untouched by the shadow.
    live = app_conn.execute(
        "SELECT transaction_id, rule_id FROM evaluate_account(7, active_rule_parameters())"
        " ORDER BY transaction_id, rule_id"
    ).fetchall()
    stored = admin_conn.execute(
        "SELECT transaction_id, rule_id FROM alerts ORDER BY transaction_id, rule_id"
    ).fetchall()
    assert stored == live


# -- HTTP -------------------------------------------------------------------------------

TOKEN = "shadow-test-token-0123456789"


def test_http_shadow_gathers_alerts_that_is_fraud_does_not_show(app, client, admin_conn):
    app.config["API_TOKEN"] = TOKEN
    owner = {"Authorization": f"Bearer {TOKEN}"}
    body = {"parameters": {"threshold": 15000}}
    assert client.put("/rules/large_amount/shadow", json=body).status_code == 401
    started = client.put("/rules/large_amount/shadow", json=body, headers=owner)
    assert started.status_code == 200, started.get_json()
    assert started.get_json()["parameters"] == {"threshold": 15000}

    for transaction_id, account_id, amount in ((1, 8, "12000.00"), (2, 9, "16000.00")):
        stored = client.post(
            "/store_data",
            json={
                "account_id": account_id,
                "transaction_id": transaction_id,
                "timestamp": "2024-01-01T12:00:00Z",
                "amount": amount,
            },
            headers=owner,
        )
        assert stored.status_code == 201
    # Live alone in is_fraud, its alert's threshold the live one.
    events = client.get("/is_fraud/9", headers=owner).get_json()["events"]
    assert [(e["rule_id"], e["threshold"]) for e in events] == [("large_amount", "10000")]
    assert shadow_alerts(admin_conn) == [(2, Decimal("16000.00"), Decimal("15000"))]
    (row,) = client.get("/rules/shadows", headers=owner).get_json()["shadows"]
    assert {k: row[k] for k in ("rule_id", "transactions", "live_alerts", "shadow_alerts")} == {
        "rule_id": "large_amount",
        "transactions": 2,
        "live_alerts": 2,
        "shadow_alerts": 1,
    }
    assert (row["live_per_1000"], row["shadow_per_1000"]) == ("1000.00", "500.00")
    # No label known yet: nothing flagged is fraud, and recall has no denominator.
    assert (row["live_precision"], row["live_recall"]) == ("0.0000", None)

    # Refused like a live change: 400 naming the parameter, nothing changed.
    bad = client.put(
        "/rules/large_amount/shadow", json={"parameters": {"threshold": -1}}, headers=owner
    )
    assert bad.status_code == 400
    assert bad.get_json()["error"]["field"] == "large_amount.threshold"
    assert shadow_alerts(admin_conn) == [(2, Decimal("16000.00"), Decimal("15000"))]
    assert client.put("/rules/nope/shadow", json={}, headers=owner).status_code == 404

    promoted = client.post("/rules/large_amount/shadow/promote", headers=owner)
    assert promoted.status_code == 200
    assert promoted.get_json()["parameters"] == {"threshold": 15000}
    assert client.get("/rules/shadows", headers=owner).get_json()["shadows"] == []
    assert live_alerts(admin_conn) == [2]
    versions = client.get("/rules/large_amount/versions", headers=owner).get_json()["versions"]
    assert [(v["version"], v["parameters"]) for v in versions] == [
        (2, {"threshold": 15000}),
        (1, {"threshold": 10000}),
    ]
    assert client.delete("/rules/large_amount/shadow", headers=owner).status_code == 404


# -- CLI --------------------------------------------------------------------------------


@pytest.fixture
def cli(database, monkeypatch):
    from click.testing import CliRunner

    from pgfraud.cli import main

    monkeypatch.setenv("DATABASE_URL", database.admin_url)

    def run(*args: str):
        return CliRunner().invoke(main, list(args))

    return run


def test_cli_shadow_compare_promote_and_drop(cli, app_conn, admin_conn):
    refused = cli("rule", "shadow", "large_amount", "threshold=-1")
    assert refused.exit_code == 2
    assert refused.stderr.startswith("error: ") and "threshold" in refused.stderr
    assert "\n" not in refused.stderr.rstrip("\n")
    assert cli("rule", "shadows").stdout == "no rule is in shadow\n"

    started = cli("rule", "shadow", "large_amount", "threshold=15000")
    assert started.exit_code == 0, started.output
    assert started.stdout == (
        'rule large_amount in shadow: {"threshold": 15000} (live version 1);'
        " new transactions are scored by it\n"
    )
    store(app_conn, 1, 8, "12000.00")
    store(app_conn, 2, 9, "16000.00")
    lines = cli("rule", "shadows").stdout.splitlines()
    assert lines[1:] == [
        "  2 transactions since, 0 known fraud",
        "  live:   2 alerts (1000.00 per 1,000), precision 0.0000, recall -",
        "  shadow: 1 alerts (500.00 per 1,000), precision 0.0000, recall -",
    ]
    assert lines[0].startswith('large_amount: shadow {"threshold": 15000} since ')
    assert lines[0].endswith('; live (on, version 1) {"threshold": 10000}')

    promoted = cli("rule", "promote", "large_amount")
    assert promoted.exit_code == 0, promoted.output
    assert live_alerts(admin_conn) == [2]
    versions = cli("rule", "versions", "large_amount").stdout.splitlines()
    assert [line.split("  from ")[0] for line in versions] == [
        'large_amount version 2 (on): {"threshold": 15000}',
        'large_amount version 1 (on): {"threshold": 10000}',
    ]
    missing = cli("rule", "drop-shadow", "large_amount")
    assert (missing.exit_code, missing.stderr) == (2, "error: rule large_amount has no shadow\n")
    assert cli("rule", "shadow", "velocity").exit_code == 0
    dropped = cli("rule", "drop-shadow", "velocity")
    assert (dropped.exit_code, dropped.stdout) == (0, "shadow of rule velocity dropped\n")


def test_a_merchant_rule_in_shadow_follows_labels_of_other_accounts(app_conn, admin_conn):
    # compromised_merchant off live, in shadow: 201 (day 2.25) reads merchant
    # 900's rows in [day -7.75, day 1.25) and what was known of them before
    # day 1.25: labels of 101 (known day 0.2) and 102 (day 0.6) make 2 of 3.
    admin_conn.execute("SELECT set_rule('compromised_merchant', false)")
    db.shadow_rule(
        admin_conn,
        "compromised_merchant",
        {"window_days": 10, "delay_days": 1, "min_known_fraud": 2, "min_fraud_share": 0.5},
    )
    day = 86400
    rows = [(101, 51, 0), (102, 52, 0.5 * day), (103, 53, day), (201, 60, 2.25 * day)]
    db.store_transactions(
        app_conn,
        [
            {
                "account_id": account_id,
                "transaction_id": transaction_id,
                "timestamp": T0 + timedelta(seconds=seconds),
                "amount": Decimal("1.00"),
                "merchant_id": 900,
            }
            for transaction_id, account_id, seconds in rows
        ],
    )
    app_conn.commit()
    assert shadow_alerts(admin_conn, "compromised_merchant") == []
    for transaction_id, known_days in ((101, 0.2), (102, 0.6)):
        admin_conn.execute(
            "INSERT INTO fraud_labels (transaction_id, scenario, known_at)"
            " VALUES (%s, 'skimming', %s)",
            (transaction_id, T0 + timedelta(days=known_days)),
        )
    assert shadow_alerts(admin_conn, "compromised_merchant") == [
        (201, Decimal("0.6667"), Decimal("0.5"))
    ]
    assert live_alerts(admin_conn, "compromised_merchant") == []


def test_shadow_and_live_alerts_equal_the_rule_code_after_mixed_changes(app_conn, admin_conn):
    # A fixed pseudo-random mix of single and batch stores, late arrivals and
    # removals over 4 accounts, with three shadows running: afterwards every
    # account's shadow alerts are the rule code's result for the shadow
    # parameters (every row came after the shadows started), and its alerts
    # the live rules' result.
    import random

    shadows = {
        "velocity": {"window_seconds": 600, "max_transactions": 2},
        "rapid_succession": {"min_gap_seconds": 120},
        "amount_spike": {"multiplier": 2, "min_history": 1, "window_days": 0},
    }
    for rule_id, parameters in shadows.items():
        db.shadow_rule(admin_conn, rule_id, parameters)
    chosen = admin_conn.execute(
        "SELECT jsonb_object_agg(rule_id, parameters) FROM shadow_rules"
    ).fetchone()[0]
    rng = random.Random(18)
    next_id = 1
    for _ in range(40):
        if rng.random() < 0.15 and next_id > 1:
            admin_conn.execute(
                "DELETE FROM transactions WHERE transaction_id = %s", (rng.randrange(1, next_id),)
            )
            continue
        batch = []
        for _ in range(rng.choice((1, 1, 3))):
            batch.append(
                {
                    "account_id": rng.randrange(4),
                    "transaction_id": next_id,
                    "timestamp": T0 + timedelta(seconds=rng.randrange(0, 7200)),
                    "amount": Decimal(rng.choice(("5.00", "20.00", "75.00", "300.00"))),
                }
            )
            next_id += 1
        db.store_transactions(app_conn, batch)
        app_conn.commit()
    for account_id in range(4):
        expected = app_conn.execute(
            "SELECT transaction_id, rule_id, observed, threshold, reason"
            " FROM evaluate_account(%s, %s::jsonb) ORDER BY 1, 2",
            (account_id, db.dumps_json(chosen)),
        ).fetchall()
        stored = admin_conn.execute(
            "SELECT transaction_id, rule_id, observed, threshold, reason FROM shadow_alerts"
            " WHERE account_id = %s ORDER BY 1, 2",
            (account_id,),
        ).fetchall()
        assert stored == expected, account_id
        live = app_conn.execute(
            "SELECT transaction_id, rule_id, observed, threshold, reason"
            " FROM evaluate_account(%s, active_rule_parameters()) ORDER BY 1, 2",
            (account_id,),
        ).fetchall()
        alerts = admin_conn.execute(
            "SELECT transaction_id, rule_id, observed, threshold, reason FROM alerts"
            " WHERE account_id = %s ORDER BY 1, 2",
            (account_id,),
        ).fetchall()
        assert alerts == live, account_id
    assert admin_conn.execute("SELECT count(*) FROM shadow_alerts").fetchone()[0] > 0


def test_start_promote_and_drop_are_audited_with_their_actor(admin_conn):
    admin_conn.execute("SET pgfraud.actor = 'olga'")
    db.shadow_rule(admin_conn, "large_amount", {"threshold": 15000})
    db.shadow_rule(admin_conn, "velocity", {"max_transactions": 3})
    db.drop_shadow_rule(admin_conn, "velocity")
    db.promote_shadow_rule(admin_conn, "large_amount")
    rows = admin_conn.execute(
        "SELECT actor, action, object_kind, object_key, before ->> 'parameters',"
        " after ->> 'parameters' FROM audit_log"
        " WHERE object_kind IN ('shadow_rule', 'rule') ORDER BY audit_id"
    ).fetchall()
    velocity = '{"window_seconds": 600, "max_transactions": 3}'
    assert [r[:4] for r in rows] == [
        ("olga", "insert", "shadow_rule", "large_amount"),
        ("olga", "insert", "shadow_rule", "velocity"),
        ("olga", "drop", "shadow_rule", "velocity"),
        ("olga", "promote", "shadow_rule", "large_amount"),
        ("olga", "update", "rule", "large_amount"),
    ]
    assert rows[2][4] == velocity
    assert (rows[4][4], rows[4][5]) == ('{"threshold": 10000}', '{"threshold": 15000}')
