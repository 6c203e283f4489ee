"""Small gaps left from the last round (hardening, decisions and governance polish).

Each test fails without its fix; all run against the real PostgreSQL of the
test session (the page's ones live at the end of tests/test_pages.py).
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

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


# 5. The command line refuses what HTTP refuses, in one line, exit 2, naming
# the argument; click's usage errors are one line too.


def _cli(args: list[str]):
    from click.testing import CliRunner

    from pgfraud.cli import main

    return CliRunner().invoke(main, args)


def _one_line(result, expected: str | tuple[str, ...]) -> None:
    """One line on stderr, exit 2: ``expected``, or one of them (a tuple)."""
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0] in (expected if isinstance(expected, tuple) else (expected,))


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        # Was click's four lines: "No such option '-1'".
        (
            ["rule", "score", "velocity", "-1"],
            "error: rule_scores.velocity must be from 0 to 1000, not -1",
        ),
        # Arabic-Indic digits: int() reads them as 12; HTTP refuses them.
        (
            ["rule", "score", "velocity", "١٢"],
            "error: rule_scores.velocity must be an integer, not '١٢'",
        ),
        (["policy", "set", "review=١٢"], "error: review_threshold must be an integer, not '١٢'"),
        (
            ["case", "show", "١٢"],
            "error: Invalid value for 'CASE_ID': '١٢' is not an integer (digits 0-9)",
        ),
        (
            ["review", "١٢", "--status", "confirmed_fraud"],
            "error: Invalid value for 'TRANSACTION_ID': '١٢' is not an integer (digits 0-9)",
        ),
        (
            ["alerts", "--limit", "١٢"],
            "error: Invalid value for '--limit': '١٢' is not an integer (digits 0-9)",
        ),
        (
            ["rule", "set", "velocity", "max_transactions=3", "max_transactions=4"],
            "error: parameter max_transactions of rule velocity is given twice",
        ),
        # Usage errors: one line naming the option (were usage, hint, blank, message).
        (
            ["case", "close", "1", "--resolution", "maybe"],
            "error: Invalid value for '--resolution': 'maybe' is not one of 'fraud', 'not_fraud',"
            " 'withdrawn'.",
        ),
        (
            ["case", "close", "1"],
            "error: Missing option '--resolution'. Choose from: fraud, not_fraud, withdrawn",
        ),
        (["case", "show"], "error: Missing argument 'CASE_ID'."),
        # click words this one differently by version (8.2.0: "No such option: --nope").
        (
            ["alerts", "--nope"],
            ("error: No such option '--nope'.", "error: No such option: --nope"),
        ),
        (["--nope"], ("error: No such option '--nope'.", "error: No such option: --nope")),
        (["nope"], "error: No such command 'nope'."),
    ],
)
def test_cli_refuses_bad_arguments_in_one_line(database, monkeypatch, args, expected):
    monkeypatch.setenv("DATABASE_URL", database.admin_url)
    _one_line(_cli(args), expected)


def test_cli_help_still_shows_usage(database, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", database.admin_url)
    result = _cli(["case", "close", "--help"])
    assert result.exit_code == 0
    assert result.stdout.startswith("Usage: ")
    assert "--resolution [fraud|not_fraud|withdrawn]" in result.stdout


# 6. Setting the policy to the values in force writes nothing and says so.


def _policy_rows(admin_conn) -> tuple[int, int]:
    row = admin_conn.execute(
        "SELECT (SELECT count(*) FROM decision_policies),"
        " (SELECT count(*) FROM audit_log WHERE object_kind = 'policy')"
    ).fetchone()
    admin_conn.commit()
    return row


def test_policy_set_with_the_same_values_is_a_no_op(database, monkeypatch, admin_conn, client):
    monkeypatch.setenv("DATABASE_URL", database.admin_url)
    first = _cli(["policy", "set", "review=40", "decline=90"])
    assert first.exit_code == 0, first.output
    versions, audited = _policy_rows(admin_conn)
    policy_id = client.get("/policy").get_json()["policy_id"]
    again = _cli(["policy", "set", "review=40", "decline=90"])
    assert again.exit_code == 0, again.output
    assert again.stdout == f"policy {policy_id} already has these values: nothing changed\n"
    assert _policy_rows(admin_conn) == (versions, audited)
    # A rule's score as it is, and PUT /policy with the values in force: the same.
    score = client.get("/policy").get_json()["rule_scores"]["velocity"]
    same = _cli(["rule", "score", "velocity", str(score)])
    assert same.stdout == (
        f"rule velocity scores {score} (policy {policy_id}) already: nothing changed\n"
    )
    answer = client.put("/policy", json={"review_threshold": 40, "decline_threshold": 90})
    assert answer.status_code == 200
    assert answer.get_json()["policy_id"] == policy_id
    assert _policy_rows(admin_conn) == (versions, audited)
    # A real change still writes a version and its audit row.
    changed = _cli(["policy", "set", "review=41"])
    assert changed.exit_code == 0 and "nothing changed" not in changed.stdout
    assert _policy_rows(admin_conn) == (versions + 1, audited + 1)


# 7. pgfraud alerts lists in a documented, stable order: raise order (alert
# ids), and within one store in transaction time order (ids were given in the
# rule code's output order: by account, so a batch's lines looked unordered).

T0_MS = 1_717_200_000_000  # 2024-06-01T00:00:00Z
HOUR_MS = 3_600_000


def test_cli_alerts_of_one_store_are_listed_in_transaction_time_order(
    database, monkeypatch, client
):
    monkeypatch.setenv("DATABASE_URL", database.admin_url)
    # Accounts in the opposite order to their times; each pays 20,000 once
    # (large_amount, threshold 10,000: the only rule that fires).
    batch = [
        {
            "account_id": account,
            "transaction_id": 10 + account,
            "amount": "20000.00",
            "timestamp": T0_MS + (3 - account) * HOUR_MS,
        }
        for account in (1, 2, 3)
    ]
    assert client.post("/store_data", json=batch).status_code == 201
    result = _cli(["alerts", "--json"])
    assert result.exit_code == 0, result.output
    import json

    lines = [json.loads(line) for line in result.stdout.splitlines()]
    # Oldest raised first; one store: by transaction time.
    assert [(a["transaction_id"], a["timestamp"]) for a in lines] == [
        (13, "2024-06-01T00:00:00.000Z"),
        (12, "2024-06-01T01:00:00.000Z"),
        (11, "2024-06-01T02:00:00.000Z"),
    ]
    assert [a["alert_id"] for a in lines] == sorted(a["alert_id"] for a in lines)


def test_cli_alerts_order_time_lists_the_latest_transactions(database, monkeypatch, client):
    monkeypatch.setenv("DATABASE_URL", database.admin_url)
    # Two stores: the later-raised one holds the earlier transaction.
    for account, hours in ((1, 5), (2, 0)):
        row = {
            "account_id": account,
            "transaction_id": 20 + account,
            "amount": "20000.00",
            "timestamp": T0_MS + hours * HOUR_MS,
        }
        assert client.post("/store_data", json=row).status_code == 201
    raised = _cli(["alerts", "--limit", "1"])
    assert "transaction 22" in raised.stdout  # the last raised
    timed = _cli(["alerts", "--limit", "1", "--order", "time"])
    assert timed.exit_code == 0, timed.output
    assert "transaction 21" in timed.stdout  # the latest transaction


# 8. A case's note is null until it is closed, as its resolution and the
# document's "null when not set" (it was "" on an open case).


def test_a_cases_note_is_null_until_closed(client):
    row = {"account_id": 5, "transaction_id": 50, "amount": "20000.00", "timestamp": T0_MS}
    assert client.post("/store_data", json=row).status_code == 201
    [case] = client.get("/cases").get_json()["cases"]
    assert (case["status"], case["resolution"], case["note"]) == ("open", None, None)
    assert client.get(f"/cases/{case['case_id']}").get_json()["note"] is None
    closed = client.post(f"/cases/{case['case_id']}/close", json={"resolution": "fraud"})
    assert (closed.get_json()["resolution"], closed.get_json()["note"]) == ("fraud", "")


# 9. TRUNCATE fraud_labels re-scores the shadow rules that read the labels,
# as it does the live ones. Data as tests/test_merchant_reach.py: merchant 9,
# T0 = 2024-05-01; transaction 1 at T0 known fraud from T0 + 2 h.


def test_truncating_labels_rescores_a_shadow_compromised_merchant(app_conn, admin_conn):
    from tests.test_merchant_reach import T0, store

    store(app_conn)
    db.change_rule(admin_conn, "compromised_merchant", False)
    db.shadow_rule(
        admin_conn,
        "compromised_merchant",
        {"window_days": 30, "delay_days": 1, "min_known_fraud": 1, "min_fraud_share": 0.3},
    )
    admin_conn.commit()
    admin_conn.execute(
        "INSERT INTO fraud_labels (transaction_id, scenario, known_at) VALUES (1, 'x', %s)",
        (T0 + timedelta(hours=2),),
    )
    admin_conn.commit()
    query = (
        "SELECT transaction_id, observed FROM shadow_alerts"
        " WHERE rule_id = 'compromised_merchant' ORDER BY transaction_id"
    )
    # Row 2 (T0 + 10 d) reads 1 (fraud) and 6: 1/2; row 3 (T0 + 30 d) reads 1, 6, 2: 1/3.
    assert admin_conn.execute(query).fetchall() == [(2, Decimal("0.5000")), (3, Decimal("0.3333"))]
    admin_conn.execute("TRUNCATE fraud_labels")
    admin_conn.commit()
    # No known fraud any more: no shadow alert (they stayed before the fix).
    assert admin_conn.execute(query).fetchall() == []
    assert admin_conn.execute("SELECT count(*) FROM alerts").fetchone()[0] == 0


# 10. A psql DELETE (or UPDATE) of case_alerts is in the audit trail.


def test_taking_an_alert_out_of_a_case_in_psql_is_audited(client, admin_conn):
    row = {"account_id": 5, "transaction_id": 50, "amount": "20000.00", "timestamp": T0_MS}
    assert client.post("/store_data", json=row).status_code == 201
    [case] = client.get("/cases").get_json()["cases"]
    admin_conn.execute("SET pgfraud.actor = 'dba'")
    admin_conn.execute("DELETE FROM case_alerts WHERE transaction_id = 50")
    admin_conn.commit()
    entries = client.get("/audit?object_kind=case_alert").get_json()["entries"]
    assert [
        (e["actor"], e["action"], e["object_key"], e["before"]["rule_id"], e["after"])
        for e in entries
    ] == [("dba", "delete", f"{case['case_id']}/50/large_amount", "large_amount", None)]
