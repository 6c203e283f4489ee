"""What the analyst's page reads and writes, through the API and SQL (no browser).

The history is tests/test_pages.py's: account 7 has 10.00 at 00:00, 02:00,
04:00 and 20000.00 at 06:00 on 2024-03-01 (transaction 704: amount_spike and
large_amount fire); account 8 has 5.00 at 01:00.
"""

from __future__ import annotations

import psycopg
import pytest

from pgfraud import db
from tests.test_pages import store_history


@pytest.fixture
def history(app_conn):
    store_history(app_conn)


def test_root_answers_html_to_browsers_and_json_to_others(client, history):
    browser = client.get("/", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert browser.status_code == 200
    assert browser.mimetype == "text/html"
    assert "<h1>Alerts</h1>" in browser.get_data(as_text=True)
    for accept in ("*/*", "application/json", None):
        answer = client.get("/", headers={"Accept": accept} if accept else {})
        assert answer.mimetype == "application/json"
        assert answer.get_json()["endpoints"]["page"] == "/ui/alerts"
    assert client.get("/api").get_json() == client.get("/").get_json()


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("/ui/accounts/999", 404, "account 999 has no transactions"),
        ("/ui/accounts/abc", 400, "account_id must be an integer"),
        ("/ui/alerts?review_status=maybe", 400, "must be unreviewed, confirmed_fraud or"),
        ("/ui/accounts/7?before=yesterday", 400, "before must be a cursor"),
        ("/ui/evaluation?from=soon", 400, "from and to must be times"),
    ],
)
def test_pages_say_what_is_wrong_in_html(client, history, path, status, message):
    answer = client.get(path, headers={"Accept": "text/html"})
    assert answer.status_code == status
    assert answer.mimetype == "text/html"
    text = answer.get_data(as_text=True)
    assert message in text
    assert "Traceback" not in text and "SELECT" not in text


def test_a_page_with_the_database_down_is_a_banner_not_an_error(database):
    from pgfraud.service import create_app
    from pgfraud.service.database import close_pool

    app = create_app({"DATABASE_URL": "postgresql://x:y@127.0.0.1:1/none", "POOL_TIMEOUT_S": 0.2})
    try:
        for path in ("/ui/alerts", "/ui/accounts/7", "/ui/rules", "/ui/evaluation", "/ui/overview"):
            answer = app.test_client().get(path)
            assert answer.status_code == 503
            text = answer.get_data(as_text=True)
            assert '<div id="db-banner" class="banner" role="alert" >' in text
    finally:
        close_pool(app)


def test_overview_counts_by_hour_rule_and_review(client, history, app_conn):
    body = client.get("/overview").get_json()
    assert body["until"] == "2024-03-01T07:00:00.000Z"
    assert len(body["hours"]) == 24
    assert body["hours"][0]["hour"] == "2024-02-29T07:00:00.000Z"
    busy = {
        h["hour"][11:13]: (h["transactions"], h["alerts"])
        for h in body["hours"]
        if h["transactions"]
    }
    assert busy == {"00": (1, 0), "01": (1, 0), "02": (1, 0), "04": (1, 0), "06": (1, 2)}
    assert {r["rule_id"]: (r["alerts"], r["unreviewed"]) for r in body["by_rule"]} == {
        "amount_spike": (1, 1),
        "below_average": (0, 0),
        "compromised_merchant": (0, 0),
        "large_amount": (1, 1),
        "new_merchant_large": (0, 0),
        "new_merchant_run": (0, 0),
        "rapid_succession": (0, 0),
        "same_timestamp": (0, 0),
        "velocity": (0, 0),
    }
    assert body["backlog"] == {"unreviewed": 1, "confirmed_fraud": 0, "false_positive": 0}
    db.review_transaction(app_conn, 704, "false_positive", "")
    app_conn.commit()
    body = client.get("/overview").get_json()
    assert body["backlog"] == {"unreviewed": 0, "confirmed_fraud": 0, "false_positive": 1}
    assert body["by_rule"][0] == {"rule_id": "amount_spike", "alerts": 1, "unreviewed": 0}


def test_overview_of_an_empty_database(client):
    assert client.get("/overview").get_json() == {
        "until": None,
        "hours": [],
        "by_rule": [
            {"rule_id": r, "alerts": 0, "unreviewed": 0}
            for r in (
                "amount_spike",
                "below_average",
                "compromised_merchant",
                "large_amount",
                "new_merchant_large",
                "new_merchant_run",
                "rapid_succession",
                "same_timestamp",
                "velocity",
            )
        ],
        "backlog": {"unreviewed": 0, "confirmed_fraud": 0, "false_positive": 0},
    }


def test_account_history_pages_with_alerts_and_reviews(client, history, app_conn):
    first = client.get("/accounts/7/history?limit=3").get_json()
    assert [t["transaction_id"] for t in first["transactions"]] == [704, 703, 702]
    assert [a["rule_id"] for a in first["transactions"][0]["alerts"]] == [
        "amount_spike",
        "large_amount",
    ]
    assert first["transactions"][0]["alerts"][1]["observed"] == "20000.00"
    assert first["transactions"][1]["alerts"] == []
    # 2024-03-01T02:00:00Z is 1709258400 s after the epoch.
    assert first["next"] == "/accounts/7/history?limit=3&before=1709258400000.702"
    rest = client.get(first["next"]).get_json()
    assert [t["transaction_id"] for t in rest["transactions"]] == [701]
    assert rest["next"] is None
    assert client.get("/accounts/999/history").status_code == 404
    bad = client.get("/accounts/7/history?before=1.2.3")
    assert bad.status_code == 400 and bad.get_json()["error"]["field"] == "before"

    assert client.get("/accounts/7/reviews").get_json() == {"account_id": 7, "reviews": []}
    db.review_transaction(app_conn, 704, "confirmed_fraud", "first look", "ana")
    db.review_transaction(app_conn, 704, "false_positive", "customer travelling", "bo")
    app_conn.commit()
    reviews = client.get("/accounts/7/reviews").get_json()["reviews"]
    assert [(r["status"], r["note"], r["reviewer"]) for r in reviews] == [
        ("false_positive", "customer travelling", "bo"),
        ("confirmed_fraud", "first look", "ana"),
    ]
    top = client.get("/accounts/7/history?limit=1").get_json()["transactions"][0]
    assert top["review_status"] == "false_positive"


def test_evaluate_backtests_candidate_rules(client, history, admin_conn):
    db.store_labels(admin_conn, [(704, "account_takeover"), (701, "card_testing")])
    live = client.post("/evaluate", json={}).get_json()["results"]
    large = next(r for r in live if r["rule_id"] == "large_amount" and r["scenario"] == "all")
    # 5 transactions; 704 flagged and labelled, 701 labelled and missed.
    assert large == {
        "rule_id": "large_amount",
        "scenario": "all",
        "labelled": 2,
        "flagged": 1,
        "true_positives": 1,
        "precision_ratio": "1.0000",
        "recall_ratio": "0.5000",
        "transactions": 5,
        "flagged_per_1000": "200.00",
    }
    answer = client.post(
        "/evaluate",
        json={
            "rules": {"large_amount": {"threshold": 5}},
            "from": "2024-03-01T00:00:00Z",
            "to": "2024-03-01T03:00:00Z",
        },
    )
    rows = answer.get_json()["results"]
    # In [00:00, 03:00): 701 (10.00), 801 (5.00), 702 (10.00), all >= 5.
    assert [(r["rule_id"], r["scenario"], r["flagged"], r["true_positives"]) for r in rows] == [
        ("large_amount", "all", 3, 1),
        ("large_amount", "card_testing", None, 1),
        ("any", "all", 3, 1),
        ("any", "card_testing", None, 1),
    ]
    assert rows[0]["flagged_per_1000"] == "1000.00"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"rules": []}, "rules"),
        ({"rules": {"large_amount": 5}}, "rules"),
        ({"rules": {"large_amount": {"threshold": "ten"}}}, "rules"),
        ({"from": "tomorrow"}, "from"),
        ({"window": 1}, "window"),
        ({"rules": {"large_amount": {"threshold": -1}}}, "rules.large_amount.threshold"),
    ],
)
def test_evaluate_names_the_bad_field(client, body, field):
    answer = client.post("/evaluate", json=body)
    assert answer.status_code == 400
    assert answer.get_json()["error"]["field"] == field


def test_change_rules_through_the_api(client, history):
    answer = client.patch("/rules", json={"large_amount": {"parameters": {"threshold": 30000}}})
    assert answer.status_code == 200
    assert [(r["rule_id"], r["parameters"]) for r in answer.get_json()["rules"]] == [
        ("large_amount", {"threshold": 30000})
    ]
    events = client.get("/is_fraud/7").get_json()["events"]
    assert [e["rule_id"] for e in events] == ["amount_spike"]
    both = client.patch(
        "/rules",
        json={"velocity": {"enabled": False}, "amount_spike": {"enabled": False}},
    ).get_json()["rules"]
    assert [(r["rule_id"], r["enabled"]) for r in both] == [
        ("amount_spike", False),
        ("velocity", False),
    ]
    assert client.get("/is_fraud/7").get_json()["events"] == []

    # All-or-nothing: the bad second rule leaves the first unchanged.
    refused = client.patch(
        "/rules",
        json={"amount_spike": {"enabled": True}, "large_amount": {"parameters": {"limit": 5}}},
    )
    assert refused.status_code == 400
    message = refused.get_json()["error"]["message"]
    assert "large_amount" in message and "limit" in message
    assert client.get("/is_fraud/7").get_json()["events"] == []

    assert client.patch("/rules", json={"nope": {"enabled": True}}).status_code == 404
    error = client.patch("/rules", json={"velocity": {"enabled": "yes"}}).get_json()["error"]
    assert error["field"] == "velocity.enabled"
    assert client.patch("/rules", json={}).status_code == 400
    assert client.patch("/rules", json={"velocity": {}}).status_code == 400
    assert client.patch("/rules", data="x").status_code == 415


def test_change_rules_needs_the_token_when_one_is_set(database, history):
    from pgfraud.service import create_app
    from pgfraud.service.database import close_pool

    app = create_app({"DATABASE_URL": database.app_url, "API_TOKEN": "rule-token-123"})
    try:
        client = app.test_client()
        body = {"large_amount": {"parameters": {"threshold": 1}}}
        assert client.patch("/rules", json=body).status_code == 401
        headers = {"Authorization": "Bearer rule-token-123"}
        assert client.patch("/rules", json=body, headers=headers).status_code == 200
        # A backtest needs it too (issue 20), and is let in with it.
        assert client.post("/evaluate", json={}).status_code == 401
        assert client.post("/evaluate", json={}, headers=headers).status_code == 200
    finally:
        close_pool(app)


def test_the_documented_rule_parameters_are_the_validators(app_conn):
    from pgfraud.service.openapi import RULE_PARAMETERS

    rows = app_conn.execute(
        "SELECT rule_id, parameter, kind, minimum, maximum, maximum_excluded "
        "FROM rule_parameter_ranges()"
    ).fetchall()
    assert {
        (rule, name, kind, low, high, excluded)
        for rule, names in RULE_PARAMETERS.items()
        for name, (kind, low, high, excluded) in names.items()
    } == set(rows)


def test_the_service_role_changes_rules_only_through_change_rule(app_conn):
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        app_conn.execute("UPDATE rules SET enabled = false")
    app_conn.rollback()
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        app_conn.execute("SELECT set_rule('velocity', false)")
    app_conn.rollback()
    # fraud_labels is readable (migration 0007): compromised_merchant reads the
    # known fraud when the service role runs the rules (score_transactions).
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        app_conn.execute("INSERT INTO fraud_labels VALUES (1, 'x')")
    app_conn.rollback()
    row = db.change_rule(app_conn, "velocity", False)
    assert row["enabled"] is False


def test_the_account_table_pages_from_a_typed_account(client, app_conn):
    rows = [
        {
            "account_id": 3,
            "transaction_id": 300 + i,
            "timestamp": 1709251200000 + i * 3_600_000,  # hourly from 2024-03-01
            "amount": "1.00",
        }
        for i in range(55)
    ]
    assert client.post("/store_data", json=rows).status_code == 201
    first = client.get("/ui/accounts?account_id=3").get_data(as_text=True)
    assert first.count('<td class="time">') == 50
    older = "/ui/accounts/3?before="
    assert older in first
    link = first[first.index(older) :].split('"')[0].replace("&amp;", "&")
    second = client.get(link).get_data(as_text=True)
    # 55 transactions, 50 on the first page: the 5 oldest on the second.
    assert second.count('<td class="time">') == 5
    assert "Older transactions" not in second
