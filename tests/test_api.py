"""The HTTP API against a real PostgreSQL: answers, and every bad input of issue 2.

Each bad input must get a clear 4xx JSON error naming the field (and row),
and leave the stored data unchanged.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from pgfraud import db

GOOD = {
    "account_id": 1,
    "transaction_id": 100,
    "timestamp": "2024-01-01T00:00:00Z",
    "amount": "19.99",
}


def post(client, body, **kwargs):
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    headers = kwargs.pop("headers", {})
    return client.post(
        "/store_data",
        data=data,
        headers={"Content-Type": "application/json", **headers},
        **kwargs,
    )


def stored(database):
    with db.connect(database.admin_url) as conn:
        return conn.execute(
            "SELECT transaction_id, account_id, ts, amount::text FROM transactions"
            " ORDER BY transaction_id"
        ).fetchall()


def test_store_and_read_back(client, database):
    response = post(client, GOOD)
    assert response.status_code == 201
    answer = response.get_json()
    assert answer.pop("decision")["outcome"] == "approve"  # tests/test_decisions_api.py
    assert answer == {"transaction_id": 100, "status": "stored", "alerts": []}
    response = client.get("/accounts/1/transactions")
    assert response.get_json()["transactions"] == [
        {
            "transaction_id": 100,
            "account_id": 1,
            "timestamp": "2024-01-01T00:00:00.000Z",
            "amount": "19.99",
            "merchant_id": None,
        }
    ]


def test_merchant_id_is_stored_and_read_back(client, database):
    assert post(client, {**GOOD, "merchant_id": "42"}).status_code == 201
    assert post(client, {**GOOD, "transaction_id": 101, "merchant_id": None}).status_code == 201
    rows = client.get("/accounts/1/transactions").get_json()["transactions"]
    assert [(r["transaction_id"], r["merchant_id"]) for r in rows] == [(101, None), (100, 42)]
    response = post(client, {**GOOD, "transaction_id": 102, "merchant_id": -1})
    assert response.status_code == 400
    assert response.get_json()["error"]["errors"][0]["field"] == "merchant_id"


@pytest.mark.parametrize(
    "amount, message_part",
    [
        ("NaN", "not a finite number"),
        ("Infinity", "not a finite number"),
        ("-5", ">= 0"),
        ("12.345", "more than 2 decimal places"),
        ("abc", "not a decimal number"),
        ("", "is empty"),
    ],
)
def test_bad_amount_text_is_refused(client, database, amount, message_part):
    response = post(client, {**GOOD, "amount": amount})
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "invalid_input"
    assert error["field"] == "amount"
    assert message_part in error["message"]
    assert stored(database) == []


@pytest.mark.parametrize(
    "raw_amount", ["NaN", "Infinity", "-Infinity", "1e999", "-5", "12.345", "true", "null"]
)
def test_bad_amount_json_literal_is_refused(client, database, raw_amount):
    body = (
        '{"account_id": 1, "transaction_id": 100, "timestamp": "2024-01-01T00:00:00Z", '
        f'"amount": {raw_amount}}}'
    )
    response = post(client, body)
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["error"]["field"] == "amount"
    assert stored(database) == []


def test_missing_amount_is_refused(client, database):
    body = {k: v for k, v in GOOD.items() if k != "amount"}
    response = post(client, body)
    assert response.status_code == 400
    assert response.get_json()["error"] == {
        "code": "invalid_input",
        "message": "amount is required",
        "field": "amount",
        "errors": [{"field": "amount", "message": "amount is required"}],
    }


@pytest.mark.parametrize(
    "amount, text", [(0, "0.00"), ("0.00", "0.00"), ("19.99", "19.99"), ("13", "13.00")]
)
def test_zero_and_exact_amounts_are_stored(client, database, amount, text):
    response = post(client, {**GOOD, "amount": amount})
    assert response.status_code == 201
    assert stored(database)[0][3] == text


def test_account_zero_is_valid(client, database):
    assert post(client, {**GOOD, "account_id": 0}).status_code == 201
    response = client.get("/is_fraud/0")
    assert response.status_code == 200
    assert response.get_json() == {"account_id": 0, "count": 0, "events": [], "next": None}


def test_epoch_milliseconds_are_stored_exactly(client, database):
    response = post(client, {**GOOD, "timestamp": 1700000000123})
    assert response.status_code == 201
    row = client.get("/accounts/1/transactions").get_json()["transactions"][0]
    assert row["timestamp"] == "2023-11-14T22:13:20.123Z"


def test_epoch_seconds_are_refused_naming_the_unit(client, database):
    response = post(client, {**GOOD, "timestamp": 1700000000})
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["field"] == "timestamp"
    assert "epoch seconds" in error["message"]
    assert "milliseconds" in error["message"]
    assert stored(database) == []


@pytest.mark.parametrize(
    "sent, read_back",
    [
        ("2024-03-10T12:00:00.123+02:00", "2024-03-10T10:00:00.123Z"),
        ("2024-03-10T12:00:00.123Z", "2024-03-10T12:00:00.123Z"),
        ("2024-03-10T12:00:00.123+00:00", "2024-03-10T12:00:00.123Z"),
        ("2024-03-10T12:00:00", "2024-03-10T12:00:00.000Z"),  # no offset: UTC
        ("2024-03-10T12:00:00.123999Z", "2024-03-10T12:00:00.123Z"),  # truncated, not rounded
    ],
)
def test_iso_timestamps_read_back_in_utc(client, database, sent, read_back):
    assert post(client, {**GOOD, "timestamp": sent}).status_code == 201
    row = client.get("/accounts/1/transactions").get_json()["transactions"][0]
    assert row["timestamp"] == read_back


def test_account_past_32_bits_is_stored_and_queried(client, database):
    assert post(client, {**GOOD, "account_id": 2147483648}).status_code == 201
    response = client.get("/is_fraud/2147483648")
    assert response.status_code == 200
    assert response.get_json()["account_id"] == 2147483648


def test_account_past_64_bits_is_refused(client, database):
    response = post(client, {**GOOD, "account_id": 9223372036854775808})
    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == "account_id"
    assert stored(database) == []


@pytest.mark.parametrize("path", ["/is_fraud/99999999999999999999", "/is_fraud/-1", "/is_fraud/x"])
def test_is_fraud_with_a_bad_account_is_a_400(client, path):
    response = client.get(path)
    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == "account_id"


def test_is_fraud_unknown_account_is_a_json_404(client):
    response = client.get("/is_fraud/42")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "account_not_found"


def test_is_fraud_answers_with_and_without_trailing_slash(client, database):
    post(
        client,
        [
            {**GOOD, "transaction_id": 1, "amount": "100.00"},
            {
                **GOOD,
                "transaction_id": 2,
                "amount": "20000.00",
                "timestamp": "2024-01-02T00:00:00Z",
            },
        ],
    )
    with_slash = client.get("/is_fraud/1/")
    without = client.get("/is_fraud/1")
    assert with_slash.status_code == without.status_code == 200
    assert with_slash.get_json() == without.get_json()
    assert without.get_json()["events"] == [
        {
            "transaction_id": 2,
            "account_id": 1,
            "timestamp": "2024-01-02T00:00:00.000Z",
            "amount": "20000.00",
            "rule_id": "large_amount",
            "observed": "20000.00",
            "threshold": "10000",
            "reason": "amount 20000.00 is at or above the limit 10000",
        }
    ]


def test_same_transaction_twice_is_stored_once(client, database):
    assert post(client, GOOD).status_code == 201
    second = post(client, GOOD)
    assert second.status_code == 200
    answer = second.get_json()
    # A duplicate answers the decision made when it was first stored.
    assert answer.pop("decision") == post(client, GOOD).get_json()["decision"]
    assert answer == {"transaction_id": 100, "status": "duplicate", "alerts": []}
    assert len(stored(database)) == 1


def test_same_id_other_amount_is_a_409(client, database):
    post(client, GOOD)
    response = post(client, {**GOOD, "amount": "20.00"})
    assert response.status_code == 409
    error = response.get_json()["error"]
    assert error["code"] == "transaction_conflict"
    assert error["field"] == "transaction_id"
    assert stored(database)[0][3] == "19.99"


def test_batch_with_two_versions_of_one_id_is_refused_whole(client, database):
    batch = [
        {**GOOD, "transaction_id": 1},
        {**GOOD, "transaction_id": 2},
        {**GOOD, "transaction_id": 2, "amount": "5.00"},
    ]
    response = post(client, batch)
    assert response.status_code == 409
    assert response.get_json()["error"]["row"] == 2
    assert stored(database) == []


def test_batch_reports_every_bad_row_and_stores_nothing(client, database):
    batch = [
        {**GOOD, "transaction_id": 1},
        {**GOOD, "transaction_id": 2, "amount": "four"},
        {**GOOD, "transaction_id": 3, "timestamp": 1700000000},
    ]
    response = post(client, batch)
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert [(e["row"], e["field"]) for e in error["errors"]] == [(1, "amount"), (2, "timestamp")]
    assert stored(database) == []


def test_batch_stores_and_reports_duplicates(client, database):
    post(client, {**GOOD, "transaction_id": 1})
    response = post(
        client,
        [
            {**GOOD, "transaction_id": 1},
            {**GOOD, "transaction_id": 2, "timestamp": "2024-01-01T00:00:05Z"},
        ],
    )
    assert response.status_code == 201
    answer = response.get_json()
    # Each result also carries its decision (tests/test_decisions_api.py):
    # rapid_succession scores 50, a review.
    outcomes = [r.pop("decision")["outcome"] for r in answer["results"]]
    assert outcomes == ["approve", "review"]
    assert answer == {
        "stored": 1,
        "duplicates": 1,
        "results": [
            {"row": 0, "transaction_id": 1, "status": "duplicate", "alerts": []},
            # Same account, 5 s after transaction 1.
            {
                "row": 1,
                "transaction_id": 2,
                "status": "stored",
                "alerts": [
                    {
                        "alert_id": 1,
                        "rule_id": "rapid_succession",
                        "rule_version": 1,
                        "observed": "5.000",
                        "threshold": "10",
                        "reason": "5.000 seconds since the previous transaction; the minimum is 10",
                    }
                ],
            },
        ],
    }


def test_get_store_data_from_query_parameters(client, database):
    response = client.get(
        "/store_data?account_id=5&transaction_id=7&timestamp=1700000000123&amount=12.50"
    )
    assert response.status_code == 201
    assert stored(database) == [
        (7, 5, datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=UTC), "12.50")
    ]
    bad = client.get("/store_data?account_id=5&transaction_id=8&timestamp=1700000000&amount=1")
    assert bad.status_code == 400
    assert bad.get_json()["error"]["field"] == "timestamp"


def test_failure_inside_the_database_does_not_break_the_next_request(client, database):
    post(client, GOOD)
    assert post(client, {**GOOD, "amount": "1.00"}).status_code == 409
    assert post(client, {**GOOD, "transaction_id": 101}).status_code == 201
    assert client.get("/is_fraud/1").status_code == 200


def test_wrong_content_type_is_a_415(client, database):
    response = client.post("/store_data", data="account_id=1", content_type="text/plain")
    assert response.status_code == 415
    assert response.get_json()["error"]["code"] == "unsupported_media_type"


def test_malformed_json_is_a_400(client, database):
    response = post(client, '{"account_id": 1,')
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "malformed_json"


def test_body_over_the_limit_is_a_413(app, database):
    app.config["MAX_CONTENT_LENGTH"] = 1000
    response = post(app.test_client(), [GOOD] * 50)
    assert response.status_code == 413
    assert stored(database) == []


def test_too_many_rows_is_a_413(app, database):
    app.config["MAX_BATCH_ROWS"] = 2
    response = post(app.test_client(), [GOOD, GOOD, GOOD])
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "too_many_rows"


def test_unknown_route_and_method_are_json(client):
    assert client.get("/nope").get_json()["error"]["code"] == "not_found"
    response = client.delete("/store_data")
    assert response.status_code == 405
    assert response.get_json()["error"]["code"] == "method_not_allowed"


def test_health_and_rules(client):
    # Public, so it says up or down and nothing else (issue 20).
    assert client.get("/health").get_json() == {"status": "ok"}
    rules = {r["rule_id"]: r for r in client.get("/rules").get_json()["rules"]}
    # The measured defaults of migration 0007.
    assert rules["below_average"]["parameters"] == {
        "factor": 0.05,
        "min_history": 5,
        "window_days": 0,
    }


def test_writes_need_the_token_when_one_is_set(app, database):
    app.config["API_TOKEN"] = "s3cret-token"
    client = app.test_client()
    assert post(client, GOOD).status_code == 401
    ok = post(client, GOOD, headers={"Authorization": "Bearer s3cret-token"})
    assert ok.status_code == 201
    # Reads need it too (issue 20; tests/test_security.py covers every route).
    assert client.get("/is_fraud/1").status_code == 401
    read = client.get("/is_fraud/1", headers={"Authorization": "Bearer s3cret-token"})
    assert read.status_code == 200


def test_health_is_503_when_the_database_is_down():
    from pgfraud.service import create_app

    app = create_app(
        {"DATABASE_URL": "postgresql://nobody:x@127.0.0.1:1/none", "POOL_TIMEOUT_S": 1}
    )
    response = app.test_client().get("/health")
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "database_unavailable"


@pytest.mark.parametrize("path", ["/accounts//transactions", "/is_fraud//", "/is_fraud/%2F"])
def test_odd_paths_answer_without_redirect(client, path):
    response = client.get(path)
    assert 400 <= response.status_code < 500
    assert response.get_json()["error"]["code"] in ("not_found", "invalid_input")


def test_health_with_a_trailing_slash_answers(client):
    assert client.get("/health/").status_code == 200


def test_a_batch_error_lists_at_most_100_problems_and_counts_them_all(client, database):
    # 150 empty objects miss 4 fields each: 600 problems, 100 listed.
    response = post(client, [{}] * 150)
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["message"] == "row 0: account_id is required (and 599 more)"
    assert len(error["errors"]) == 100
    assert error["errors"][-1] == {"row": 24, "field": "amount", "message": "amount is required"}
