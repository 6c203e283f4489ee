"""Every route refuses a query parameter it does not take, and spaces around
an integer's digits, with 400 naming the parameter (hardening round).

GET /accounts/<id>/transactions, /lists/<name>, /rules, /policy, /overview,
/cases/<id> and /ui/rules answered 200 to ``?nope=1`` (the parameter
ignored in silence), and ``limit=%201`` (a space before the digits) was
read as 1. The OpenAPI document is the one list of what each operation
takes (service.routes.check_query_parameters), so the server and the
document (tests/test_openapi.py's schemathesis) cannot drift apart.
"""

from __future__ import annotations

import re

import pytest

from pgfraud.service.openapi import openapi_document

ROW = {"account_id": 7001, "transaction_id": 700100, "timestamp": 1717200000000, "amount": "5"}


@pytest.fixture
def stored(client):
    assert client.post("/store_data", json=ROW).status_code == 201


@pytest.mark.parametrize(
    "url",
    [
        "/accounts/7001/transactions?nope=1",
        "/lists/blocked_accounts?nope=1",
        "/rules?nope=1",
        "/policy?nope=1",
        "/overview?nope=1",
        "/cases/1?nope=1",
        "/health?nope=1",
        "/is_fraud/7001?nope=1",
        "/alerts?nope=1",
    ],
)
def test_an_unknown_query_parameter_is_a_400_naming_it(client, stored, url):
    response = client.get(url)
    assert response.status_code == 400, url
    error = response.get_json()["error"]
    assert error["code"] == "invalid_input"
    assert error["field"] == "nope"
    assert error["message"].startswith("nope is not a parameter here (")


def test_the_message_lists_what_the_route_takes(client, stored):
    takes = client.get("/accounts/7001/transactions?nope=1").get_json()["error"]["message"]
    assert takes == "nope is not a parameter here (parameters: limit)"
    none = client.get("/rules?nope=1").get_json()["error"]["message"]
    assert none == "nope is not a parameter here (it takes none)"


def test_writes_refuse_them_too_and_store_nothing(client, app_conn):
    response = client.post("/store_data?nope=1", json=ROW)
    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == "nope"
    assert app_conn.execute("SELECT count(*) FROM transactions").fetchone()[0] == 0


@pytest.mark.parametrize(
    "url, field",
    [
        ("/accounts/7001/transactions?limit=%201", "limit"),
        ("/accounts/7001/transactions?limit=1%20", "limit"),
        ("/accounts/7001/reviews?limit=%201", "limit"),
        ("/is_fraud/7001?limit=%201", "limit"),
        ("/alerts?account_id=%207001", "account_id"),
        ("/audit?before=%205", "before"),
        ("/cases?before=5%20", "before"),
    ],
)
def test_spaces_around_an_integer_are_a_400_naming_it(client, stored, url, field):
    response = client.get(url)
    assert response.status_code == 400, url
    error = response.get_json()["error"]
    assert error["field"] == field
    assert error["message"] == f"{field} must be given without spaces around it"


def test_what_the_routes_take_still_works(client, stored):
    answer = client.get("/accounts/7001/transactions?limit=1")
    assert answer.status_code == 200
    assert [t["transaction_id"] for t in answer.get_json()["transactions"]] == [700100]
    assert client.get("/alerts?account_id=7001&limit=5&order=time").status_code == 200
    assert client.get("/rules").status_code == 200


def test_free_text_keeps_its_spaces(client, stored):
    """Free text whose pattern admits spaces (the audit's object_key, actor)
    is searched as given, spaces and all: the document allows them
    (schemathesis found the 400 for ``object_key=%20a``)."""
    answer = client.get("/audit?object_key=%20velocity%20&actor=%20alice")
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["entries"] == []


def test_a_page_refuses_them_as_a_page(client):
    response = client.get("/ui/rules?nope=1", headers={"Accept": "text/html"})
    assert response.status_code == 400
    assert response.content_type.startswith("text/html")
    assert "nope is not a parameter here (it takes none)" in response.get_data(as_text=True)
    # The forms' own fields still pass, spaces and all (the account box trims them).
    assert client.get("/ui/accounts?account_id=%207001").status_code in (200, 404)
    assert client.get("/ui/alerts?rule_id=&account_id=").status_code == 200


def test_every_route_refuses_an_unknown_parameter(app, client):
    """Each operation of the document, called with ?nope=1, is refused before its view."""
    document = openapi_document()
    for path, operations in document["paths"].items():
        url = re.sub(r"\{[^}]+\}", "1", path)
        for method in operations:
            response = client.open(url + "?nope=1", method=method.upper())
            assert response.status_code == 400, (method, path, response.status_code)
