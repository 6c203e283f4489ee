"""Decisions over HTTP (issue 17, part 4): the store answers carry the decision,
GET /transactions/<id>/decision, GET /decisions with filters and integer-ms
cursors, the policy and the lists with the token, 400 naming the field and
nothing half-changed. Values by hand from the default policy (review 50,
decline 100; large_amount 50)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pgfraud.service import create_app
from pgfraud.service.database import close_pool

T0 = 1704067200000  # 2024-01-01T00:00:00Z in epoch ms


def post(client, body, **headers):
    return client.post("/store_data", json=body, headers=headers)


def test_store_answers_carry_the_decision(client):
    first = post(
        client, {"account_id": 5000, "transaction_id": 1, "timestamp": T0, "amount": "100.00"}
    )
    assert first.status_code == 201
    body = first.get_json()
    assert set(body) == {"transaction_id", "status", "alerts", "decision"}
    assert body["decision"]["outcome"] == "approve"
    second = client.get(
        "/store_data?account_id=5000&transaction_id=2&timestamp=2024-01-01T00:05:00Z"
        "&amount=12500.00"
    ).get_json()
    decision = second["decision"]
    assert (decision["outcome"], decision["score"]) == ("review", 50)
    assert decision["rules"] == [
        {
            "rule_id": "large_amount",
            "rule_version": 1,
            "score": 50,
            "observed": "12500.00",
            "threshold": "10000",
            "reason": second["alerts"][0]["reason"],
        }
    ]
    batch = post(
        client, [{"account_id": 5001, "transaction_id": 3, "timestamp": T0, "amount": "1.00"}]
    ).get_json()
    assert batch["results"][0]["decision"]["outcome"] == "approve"
    assert client.get("/transactions/2/decision").get_json() == decision
    missing = client.get("/transactions/99/decision")
    assert missing.status_code == 404
    assert missing.get_json()["error"]["code"] == "transaction_not_found"
    assert client.get("/transactions/x/decision").status_code == 400


def test_decisions_filter_and_page_with_millisecond_cursors(client):
    # 2004-03-01T12:00:00.001Z .. .004Z: timestamps whose float ms were 1 low (issue 15).
    start = int(datetime(2004, 3, 1, 12, tzinfo=UTC).timestamp()) * 1000
    rows = [
        {
            "account_id": 7 + i,  # each the first of its account: no history
            "transaction_id": 10 + i,
            "timestamp": start + 1 + i,
            "amount": "12500.00" if i % 2 else "5.00",
        }
        for i in range(4)
    ]
    assert post(client, rows).status_code == 201
    seen = []
    url = "/decisions?limit=1"
    while url:
        page = client.get(url).get_json()
        seen += [d["transaction_id"] for d in page["decisions"]]
        url = page["next"]
    assert seen == [13, 12, 11, 10]
    review = client.get("/decisions?outcome=review").get_json()
    assert [d["transaction_id"] for d in review["decisions"]] == [13, 11]
    window = client.get(f"/decisions?from={start + 2}&to={start + 4}").get_json()
    assert [d["transaction_id"] for d in window["decisions"]] == [12, 11]
    only = client.get("/decisions?account_id=8").get_json()["decisions"]
    assert [d["transaction_id"] for d in only] == [11]
    for query, field in [
        ("outcome=maybe", "outcome"),
        ("limit=0", "limit"),
        ("before=x", "before"),
        ("colour=red", "colour"),
    ]:
        response = client.get(f"/decisions?{query}")
        assert response.status_code == 400
        assert response.get_json()["error"]["field"] == field


def test_policy_read_and_changed(client):
    policy = client.get("/policy").get_json()
    assert (policy["review_threshold"], policy["decline_threshold"]) == (50, 100)
    changed = client.put(
        "/policy", json={"decline_threshold": 120, "rule_scores": {"large_amount": 120}}
    )
    assert changed.status_code == 200
    assert changed.get_json()["rule_scores"]["large_amount"] == 120
    answer = post(
        client, {"account_id": 1, "transaction_id": 1, "timestamp": T0, "amount": "20000.00"}
    ).get_json()
    assert (answer["decision"]["outcome"], answer["decision"]["score"]) == ("decline", 120)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"review_threshold": 0}, "review_threshold"),
        ({"review_threshold": 50.5}, "review_threshold"),
        ({"review_threshold": True}, "review_threshold"),
        ({"decline_threshold": 10}, "decline_threshold"),
        ({"rule_scores": {"velocity": -1}}, "rule_scores.velocity"),
        ({"rule_scores": {"velocity": "5"}}, "rule_scores.velocity"),
        ({"rule_scores": 5}, "rule_scores"),
        ({"colour": 5}, "colour"),
    ],
)
def test_bad_policy_is_400_naming_the_field(client, body, field):
    response = client.put("/policy", json=body)
    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == field
    assert client.get("/policy").get_json()["policy_id"] == 1


def test_non_finite_policy_numbers_are_400(client):
    for text in (
        '{"review_threshold": NaN}',
        '{"rule_scores": {"velocity": Infinity}}',
        '{"review_threshold": 1e400}',
    ):
        response = client.put("/policy", data=text, headers={"Content-Type": "application/json"})
        assert response.status_code == 400, text
        assert response.get_json()["error"]["field"] in ("review_threshold", "rule_scores.velocity")


def test_lists_block_and_allow_over_http(client):
    created = client.post(
        "/lists", json={"list_name": "risky_merchants", "subject": "merchant", "kind": "block"}
    )
    assert created.status_code == 201
    earlier = post(
        client,
        {
            "account_id": 1,
            "transaction_id": 1,
            "timestamp": T0,
            "amount": "20.00",
            "merchant_id": 42,
        },
    ).get_json()
    assert earlier["decision"]["outcome"] == "approve"
    entry = client.post("/lists/risky_merchants/entries", json={"value": 42, "reason": "breach"})
    assert entry.status_code == 201
    later = post(
        client,
        {
            "account_id": 2,
            "transaction_id": 2,
            "timestamp": T0 + 1000,
            "amount": "20.00",
            "merchant_id": 42,
        },
    ).get_json()
    assert later["decision"]["outcome"] == "decline"
    assert [(e["list_name"], e["value"]) for e in later["decision"]["lists"]] == [
        ("risky_merchants", 42)
    ]
    assert client.get("/transactions/1/decision").get_json() == earlier["decision"]
    shown = client.get("/lists/risky_merchants").get_json()
    assert [e["value"] for e in shown["entries"]] == [42]
    assert client.get("/lists").get_json()["lists"][0]["entries"] == 1
    removed = client.delete("/lists/risky_merchants/entries/42")
    assert removed.status_code == 200 and removed.get_json()["removed_at"]
    assert client.delete("/lists/risky_merchants/entries/42").status_code == 404
    # An allow-listed account's large payment: approve, its alert overruled.
    client.post("/lists", json={"list_name": "trusted", "subject": "account", "kind": "allow"})
    client.post("/lists/trusted/entries", json={"value": 3, "reason": "treasury"})
    allowed = post(
        client, {"account_id": 3, "transaction_id": 3, "timestamp": T0, "amount": "50000.00"}
    ).get_json()
    assert [a["rule_id"] for a in allowed["alerts"]] == ["large_amount"]
    assert allowed["decision"]["outcome"] == "approve"
    assert allowed["decision"]["overruled"] is True


@pytest.mark.parametrize(
    ("method", "url", "body", "field"),
    [
        (
            "post",
            "/lists",
            {"list_name": "Risky", "subject": "merchant", "kind": "block"},
            "list_name",
        ),
        ("post", "/lists", {"list_name": "r", "subject": "card", "kind": "block"}, "subject"),
        ("post", "/lists", {"list_name": "r", "subject": "merchant", "kind": "deny"}, "kind"),
        ("post", "/lists", {"list_name": "r", "subject": "merchant"}, "kind"),
        ("post", "/lists/Nope/entries", {"value": 1, "reason": "x"}, "list_name"),
        ("post", "/lists/blocked/entries", {"value": -1, "reason": "x"}, "value"),
        ("post", "/lists/blocked/entries", {"value": 1, "reason": ""}, "reason"),
        (
            "post",
            "/lists/blocked/entries",
            {"value": 1, "reason": "x", "expires_at": "2024-01-01T00:00:00Z"},
            "expires_at",
        ),
        ("get", "/lists/NOPE", None, "list_name"),
        ("delete", "/lists/blocked/entries/x", None, "value"),
    ],
)
def test_bad_list_input_is_400_naming_the_field(client, method, url, body, field):
    client.post("/lists", json={"list_name": "blocked", "subject": "merchant", "kind": "block"})
    response = (
        getattr(client, method)(url, json=body)
        if body is not None
        else getattr(client, method)(url)
    )
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["error"]["field"] == field
    lists = client.get("/lists").get_json()["lists"]
    assert [(item["list_name"], item["entries"]) for item in lists] == [("blocked", 0)]


def test_writes_need_the_token_when_one_is_configured(database):
    app = create_app({"TESTING": True, "DATABASE_URL": database.app_url, "API_TOKEN": "s3cret"})
    try:
        client = app.test_client()
        assert client.put("/policy", json={"review_threshold": 60}).status_code == 401
        assert (
            client.post(
                "/lists", json={"list_name": "a", "subject": "account", "kind": "block"}
            ).status_code
            == 401
        )
        assert client.post("/lists/a/entries", json={"value": 1, "reason": "x"}).status_code == 401
        assert client.delete("/lists/a/entries/1").status_code == 401
        bearer = {"Authorization": "Bearer s3cret"}
        assert client.get("/policy").status_code == 401  # reads too, once a token is set
        assert client.get("/policy", headers=bearer).get_json()["review_threshold"] == 50
        ok = client.put(
            "/policy", json={"review_threshold": 60}, headers={"Authorization": "Bearer s3cret"}
        )
        assert ok.status_code == 200
    finally:
        close_pool(app)


def test_expiry_in_the_future_is_kept(client):
    client.post("/lists", json={"list_name": "vip", "subject": "account", "kind": "allow"})
    expires = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    entry = client.post(
        "/lists/vip/entries", json={"value": 1, "reason": "x", "expires_at": expires}
    ).get_json()
    assert entry["expires_at"].startswith(expires[:16])
