"""Rule versions (issue 18, part 3): every change of a rule's enabled flag,
parameters or expression appends a version (rule_versions, by a trigger on
rules, so psql changes count); every alert names the version that produced it
as it is now (rule_version) and the one in force when it was first raised
(raised_rule_version), and every decision's rule entries the version that
fired. Values worked out by hand from the seeded rules (large_amount's
threshold 10000 at version 1)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from pgfraud import db


def store(conn, transaction_id, amount, account_id=7, minute=0):
    db.store_transactions(
        conn,
        [
            {
                "account_id": account_id,
                "transaction_id": transaction_id,
                "timestamp": datetime(2024, 1, 1, 12, minute, tzinfo=UTC),
                "amount": Decimal(amount),
            }
        ],
    )
    conn.commit()


def large_alerts(conn):
    return conn.execute(
        "SELECT transaction_id, threshold, parameters, rule_version, raised_rule_version"
        " FROM alerts WHERE rule_id = 'large_amount' ORDER BY transaction_id"
    ).fetchall()


def versions(conn, rule_id):
    return conn.execute(
        "SELECT version, enabled, parameters, actor FROM rule_versions"
        " WHERE rule_id = %s ORDER BY version",
        (rule_id,),
    ).fetchall()


def test_alerts_and_decisions_name_the_version_in_force(app_conn, admin_conn):
    assert versions(admin_conn, "large_amount") == [
        (1, True, {"threshold": 10000}, versions(admin_conn, "large_amount")[0][3])
    ]
    store(app_conn, 1, "20000.00")
    assert large_alerts(admin_conn) == [(1, Decimal("10000"), {"threshold": 10000}, 1, 1)]

    # A change in psql, by a named actor: version 2, and the re-scoring moves
    # the alert that still fires (20000 >= 15000) to it; it still says it was
    # raised under version 1.
    admin_conn.execute("SET pgfraud.actor = 'alice'")
    admin_conn.execute(
        "UPDATE rules SET parameters = '{\"threshold\": 15000}' WHERE rule_id = 'large_amount'"
    )
    assert versions(admin_conn, "large_amount")[1] == (2, True, {"threshold": 15000}, "alice")
    assert large_alerts(admin_conn) == [(1, Decimal("15000"), {"threshold": 15000}, 2, 1)]

    # The decision is the record of what was answered: version 1, never rewritten.
    decision = db.get_decision(app_conn, 1)
    assert [(r["rule_id"], r["rule_version"]) for r in decision["rules"]] == [("large_amount", 1)]

    # A new arrival is scored with version 2.
    store(app_conn, 2, "16000.00", account_id=8)
    assert large_alerts(admin_conn)[1] == (2, Decimal("15000"), {"threshold": 15000}, 2, 2)
    decision = db.get_decision(app_conn, 2)
    assert [(r["rule_id"], r["rule_version"]) for r in decision["rules"]] == [("large_amount", 2)]

    # The description alone is no new version; switching off is one (3), and its alerts go.
    admin_conn.execute("UPDATE rules SET description = 'x' WHERE rule_id = 'large_amount'")
    assert len(versions(admin_conn, "large_amount")) == 2
    admin_conn.execute("SELECT set_rule('large_amount', false)")
    assert versions(admin_conn, "large_amount")[2][:3] == (3, False, {"threshold": 15000})
    assert large_alerts(admin_conn) == []
    # Back on at 10000: version 4; both alerts come back raised under it.
    admin_conn.execute("SELECT set_rule('large_amount', true, '{\"threshold\": 10000}')")
    assert [r[3:] for r in large_alerts(admin_conn)] == [(4, 4), (4, 4)]
    # The decisions still name the versions they were made with.
    assert db.get_decision(app_conn, 1)["rules"][0]["rule_version"] == 1
    assert db.get_decision(app_conn, 2)["rules"][0]["rule_version"] == 2


def test_a_change_to_one_rule_leaves_the_others_versions(app_conn, admin_conn):
    # 20000, then 1.00 five seconds later: rapid_succession fires (gap 5 < 10).
    store(app_conn, 1, "20000.00", minute=0)
    db.store_transactions(
        app_conn,
        [
            {
                "account_id": 7,
                "transaction_id": 2,
                "timestamp": datetime(2024, 1, 1, 12, 0, 5, tzinfo=UTC),
                "amount": Decimal("1.00"),
            }
        ],
    )
    app_conn.commit()
    admin_conn.execute("SELECT set_rule('rapid_succession', NULL, '{\"min_gap_seconds\": 6}')")
    rows = admin_conn.execute(
        "SELECT transaction_id, rule_id, rule_version, raised_rule_version, threshold"
        " FROM alerts ORDER BY transaction_id, rule_id"
    ).fetchall()
    assert rows == [
        (1, "large_amount", 1, 1, Decimal("10000")),
        (2, "rapid_succession", 2, 1, Decimal("6")),
    ]


def test_get_alerts_shows_the_versions_and_the_raised_parameters(client, app_conn, admin_conn):
    store(app_conn, 1, "20000.00")
    admin_conn.execute("SELECT set_rule('large_amount', NULL, '{\"threshold\": 12000}')")
    response = client.get("/alerts?rule_id=large_amount")
    assert response.status_code == 200
    (alert,) = response.get_json()["alerts"]
    assert alert["threshold"] == "12000"
    assert alert["parameters"] == {"threshold": 12000}
    assert alert["rule_version"] == 2
    assert alert["raised_rule_version"] == 1
    assert alert["raised_parameters"] == {"threshold": 10000}


def test_the_queue_row_names_the_rule_version(client, app_conn, admin_conn):
    store(app_conn, 1, "20000.00")
    admin_conn.execute("SELECT set_rule('large_amount', NULL, '{\"threshold\": 12000}')")
    page = client.get("/ui/alerts", headers={"Accept": "text/html"}).get_data(as_text=True)
    assert (
        'title="rule version 2: {&#34;threshold&#34;: 12000};'
        ' raised under version 1: {&#34;threshold&#34;: 10000}"'
    ) in page


def test_every_rule_has_a_version_equal_to_it(admin_conn, app_conn):
    # Migration 0027 recorded the rules as they were (version 1); the trigger
    # every change since. A user's rule added in psql counts too.
    admin_conn.execute(
        "INSERT INTO rules (rule_id, enabled, parameters, description, expression)"
        " VALUES ('big_spend', false, '{}', 'x', 'amount > 5000')"
    )
    latest = admin_conn.execute(
        "SELECT r.rule_id FROM rules AS r JOIN LATERAL ("
        "  SELECT v.enabled, v.parameters, v.expression FROM rule_versions AS v"
        "  WHERE v.rule_id = r.rule_id ORDER BY v.version DESC LIMIT 1) AS v ON true"
        " WHERE (v.enabled, v.parameters, v.expression)"
        "       IS NOT DISTINCT FROM (r.enabled, r.parameters, r.expression)"
        " ORDER BY 1"
    ).fetchall()
    every = admin_conn.execute("SELECT rule_id FROM rules ORDER BY 1").fetchall()
    assert latest == every
    assert versions(admin_conn, "big_spend")[0][:3] == (1, False, {})
