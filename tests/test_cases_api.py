"""Cases over HTTP (issue 18, part 5): GET /cases, GET /cases/<id>, assign, close.

large_amount (threshold 10,000) is the only rule that fires on these rows
(first transactions of their accounts, or hours apart).
"""

from __future__ import annotations

import pytest

T0_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z
HOUR = 3_600_000


def store(client, *rows):
    body = [
        {"transaction_id": t, "account_id": a, "timestamp": T0_MS + ms, "amount": amount}
        for t, a, ms, amount in rows
    ]
    answer = client.post("/store_data", json=body)
    assert answer.status_code == 201, answer.get_json()


def test_cases_listed_filtered_paged_shown_assigned_and_closed(client):
    store(client, (1, 7, 0, "20000"), (2, 8, 0, "15000"), (3, 9, 0, "12.00"))
    store(client, (4, 7, HOUR, "30000"), (5, 10, 0, "11000"))
    listed = client.get("/cases").get_json()
    assert [(c["account_id"], c["status"], c["alert_count"]) for c in listed["cases"]] == [
        (10, "open", 1),
        (8, "open", 1),
        (7, "open", 2),
    ]
    assert listed["count"] == 3 and listed["next"] is None
    ten, eight, seven = (c["case_id"] for c in listed["cases"])
    first = client.get("/cases?limit=2&status=open").get_json()
    assert [c["case_id"] for c in first["cases"]] == [ten, eight]
    assert first["next"] == f"/cases?limit=2&status=open&before={eight}"
    second = client.get(first["next"]).get_json()
    assert [c["case_id"] for c in second["cases"]] == [seven] and second["next"] is None
    assert [c["case_id"] for c in client.get("/cases?account_id=8").get_json()["cases"]] == [eight]

    shown = client.get(f"/cases/{seven}").get_json()
    assert [(a["transaction_id"], a["rule_id"], a["amount"]) for a in shown["alerts"]] == [
        (1, "large_amount", "20000.00"),
        (4, "large_amount", "30000.00"),
    ]

    answer = client.post(f"/cases/{seven}/assign", json={"assignee": "alice"})
    assert answer.status_code == 200
    assert (answer.get_json()["status"], answer.get_json()["assignee"]) == ("assigned", "alice")
    mine = client.get("/cases?assignee=alice").get_json()["cases"]
    assert [c["case_id"] for c in mine] == [seven]
    assert client.get("/cases?status=assigned").get_json()["count"] == 1

    answer = client.post(f"/cases/{seven}/close", json={"resolution": "fraud", "note": "stolen"})
    assert answer.status_code == 200
    closed = answer.get_json()
    assert (closed["status"], closed["resolution"], closed["note"], closed["reviewed"]) == (
        "closed",
        "fraud",
        "stolen",
        2,
    )
    assert closed["closed_at"].endswith("Z")
    reviews = client.get("/accounts/7/reviews").get_json()["reviews"]
    assert sorted((r["transaction_id"], r["status"], r["note"]) for r in reviews) == [
        (1, "confirmed_fraud", "stolen"),
        (4, "confirmed_fraud", "stolen"),
    ]
    # A new alert on account 7 opens a new case.
    store(client, (6, 7, 2 * HOUR, "50000"))
    sevens = client.get("/cases?account_id=7").get_json()["cases"]
    assert [c["status"] for c in sevens] == ["open", "closed"]


def test_refused_case_requests(client):
    store(client, (1, 7, 0, "20000"))
    (case,) = client.get("/cases").get_json()["cases"]
    url = f"/cases/{case['case_id']}"

    def error(answer, status):
        assert answer.status_code == status, answer.get_json()
        return answer.get_json()["error"]

    assert error(client.get("/cases/999"), 404)["code"] == "case_not_found"
    assert error(client.post("/cases/999/close", json={"resolution": "fraud"}), 404)["code"] == (
        "case_not_found"
    )
    assert error(client.get("/cases/x"), 400)["field"] == "case_id"
    bad = error(client.post(f"{url}/close", json={"resolution": "maybe"}), 400)
    assert (bad["code"], bad["field"]) == ("invalid_input", "resolution")
    assert "fraud, not_fraud or withdrawn" in bad["message"]
    raised = error(client.post(f"{url}/close", json={"resolution": "withdrawn"}), 400)
    assert (raised["code"], raised["field"]) == ("invalid_input", "resolution")
    assert "alert(s) still raised" in raised["message"]
    assert error(client.post(f"{url}/close", json={}), 400)["field"] == "resolution"
    assert (
        error(client.post(f"{url}/close", json={"resolution": "fraud", "x": 1}), 400)["field"]
        == "x"
    )
    assert error(client.post(f"{url}/close", json=["fraud"]), 400)["code"] == "invalid_input"
    assert error(client.post(f"{url}/close", data="resolution=fraud"), 415)
    assert error(client.post(f"{url}/assign", json={"assignee": ""}), 400)["field"] == "assignee"
    assert error(client.get("/cases?status=pending"), 400)["field"] == "status"
    assert error(client.get("/cases?limit=0"), 400)["field"] == "limit"
    assert error(client.get("/cases?before=x"), 400)["field"] == "before"
    # Nothing was written by any of them.
    assert client.get(url).get_json()["status"] == "open"
    assert client.get("/accounts/7/reviews").get_json()["reviews"] == []

    assert client.post(f"{url}/close", json={"resolution": "not_fraud"}).status_code == 200
    twice = error(client.post(f"{url}/close", json={"resolution": "fraud"}), 409)
    assert twice["code"] == "case_conflict"
    assert error(client.post(f"{url}/assign", json={"assignee": "bob"}), 409)["code"] == (
        "case_conflict"
    )
    reviews = client.get("/accounts/7/reviews").get_json()["reviews"]
    assert [(r["transaction_id"], r["status"]) for r in reviews] == [(1, "false_positive")]


@pytest.mark.parametrize("path", ["/cases/1/assign", "/cases/1/close"])
def test_case_writes_need_an_analysts_token(app, path):
    from pgfraud.service import auth

    access = auth.access_of(app, f"cases.{path.rsplit('/', 1)[1]}")
    assert (access.level, access.writes) == ("analyst", True)


def test_analysts_work_cases_under_their_token_names_and_the_audit_shows_it(app, database):
    from pgfraud import db
    from pgfraud.service import auth

    app.config["TOKEN_CACHE_S"] = 0
    client = app.test_client()
    store(client, (1, 7, 0, "20000"))  # open: no token exists yet
    secrets = {}
    with db.connect(database.admin_url) as conn:
        for name in ("alice", "bob"):
            secrets[name] = auth.new_secret()
            db.add_api_token(conn, name, "analyst", auth.digest(secrets[name]), "setup")
        conn.commit()

    def as_(name):
        return {"Authorization": f"Bearer {secrets[name]}"}

    assert client.get("/cases").status_code == 401
    (case,) = client.get("/cases", headers=as_("alice")).get_json()["cases"]
    url = f"/cases/{case['case_id']}"
    assigned = client.post(f"{url}/assign", json={"assignee": "bob"}, headers=as_("alice"))
    assert assigned.status_code == 200 and assigned.get_json()["assigned_by"] == "alice"
    closed = client.post(f"{url}/close", json={"resolution": "fraud"}, headers=as_("bob"))
    assert closed.status_code == 200 and closed.get_json()["closed_by"] == "bob"
    reviews = client.get("/accounts/7/reviews", headers=as_("bob")).get_json()["reviews"]
    assert [(r["transaction_id"], r["reviewer"]) for r in reviews] == [(1, "bob")]
    entries = client.get("/audit?object_kind=case", headers=as_("bob")).get_json()["entries"]
    # Newest first: bob's close, alice's assign; opening the case is not an action.
    assert [(e["actor"], e["action"], e["object_key"]) for e in entries] == [
        ("bob", "update", str(case["case_id"])),
        ("alice", "update", str(case["case_id"])),
    ]
    assert (entries[0]["before"]["status"], entries[0]["after"]["status"]) == ("assigned", "closed")
    assert entries[0]["after"]["resolution"] == "fraud"
    assert (entries[1]["before"]["assignee"], entries[1]["after"]["assignee"]) == (None, "bob")
