"""Small gaps left from the last round (hardening, decisions and governance polish).

Each test fails without its fix; all run against the real PostgreSQL of the
test session (the page's ones live at the end of tests/test_pages.py).
"""

from __future__ import annotations

import pytest

from pgfraud import db


def _large(transaction_id: int, amount: str = "5000.00") -> dict:
    return {
        "account_id": 77,
        "transaction_id": transaction_id,
        "timestamp": f"2024-06-0{transaction_id % 9 + 1}T09:00:00Z",
        "amount": amount,
    }


# 2. POST /store_data's alerts name their rule version, as GET /alerts does.


def test_store_data_alerts_carry_their_rule_version(client, admin_conn):
    db.change_rule(admin_conn, "large_amount", True, {"threshold": 1000})
    admin_conn.commit()
    # The migration's version 1, then this change: version 2.
    single = client.post("/store_data", json=_large(1))
    assert single.status_code == 201
    [alert] = [a for a in single.get_json()["alerts"] if a["rule_id"] == "large_amount"]
    assert alert["rule_version"] == 2
    db.change_rule(admin_conn, "large_amount", True, {"threshold": 2000})
    admin_conn.commit()
    batch = client.post("/store_data", json=[_large(2)])
    assert batch.status_code == 201
    [alert2] = [
        a for a in batch.get_json()["results"][0]["alerts"] if a["rule_id"] == "large_amount"
    ]
    assert alert2["rule_version"] == 3
    # The same numbers as the queue.
    queue = client.get("/alerts?rule_id=large_amount").get_json()["alerts"]
    assert sorted((a["transaction_id"], a["rule_version"]) for a in queue) == [(1, 3), (2, 3)]
    # GET /store_data too.
    query = client.get(
        "/store_data?account_id=77&transaction_id=3&timestamp=2024-06-09T09:00:00Z&amount=5000"
    )
    assert [
        a["rule_version"] for a in query.get_json()["alerts"] if a["rule_id"] == "large_amount"
    ] == [3]


# 3. POST /lists/<unknown>/entries is a 404 list_not_found (it was a 400), as
# GET /lists/<unknown> and the API document say.


def test_an_entry_for_an_unknown_list_is_a_404_naming_list_name(client):
    response = client.post("/lists/nope/entries", json={"value": 1, "reason": "x"})
    assert response.status_code == 404
    assert response.get_json() == {
        "error": {"code": "list_not_found", "message": "no list named nope", "field": "list_name"}
    }
    assert client.get("/lists/nope").status_code == 404
    assert client.get("/audit?object_kind=list_entry").get_json()["entries"] == []


# 4. A body that is JSON but not an object, on the endpoints that take an
# object: a 400 naming the body (they answered the transaction fields'
# message, or one without a field).

OBJECT_ENDPOINTS = [
    ("post", "/rules"),
    ("patch", "/rules"),
    ("put", "/rules/velocity/shadow"),
    ("post", "/transactions/1/review"),
    ("post", "/evaluate"),
    ("post", "/tune"),
    ("put", "/policy"),
    ("post", "/lists"),
    ("post", "/lists/blocked/entries"),
    ("post", "/tokens"),
    ("post", "/cases/1/assign"),
    ("post", "/cases/1/close"),
]


@pytest.mark.parametrize(("method", "url"), OBJECT_ENDPOINTS)
@pytest.mark.parametrize(
    ("body", "kind"),
    [
        ("[1, 2]", "an array"),
        ('"x"', "a string"),
        ("5", "a number"),
        ("null", "null"),
        ("true", "true or false"),
    ],
)
def test_a_body_that_is_not_an_object_is_a_400_naming_the_body(client, method, url, body, kind):
    response = getattr(client, method)(url, data=body, content_type="application/json")
    assert response.status_code == 400
    assert response.get_json() == {
        "error": {
            "code": "invalid_input",
            "message": f"body must be a JSON object (got {kind})",
            "field": "body",
        }
    }
