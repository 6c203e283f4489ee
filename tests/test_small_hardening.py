"""Smaller faults of issue 15: a misspelt rule id in the alert queue's filter, and
the default description of a long user's rule."""

from __future__ import annotations

from click.testing import CliRunner

from pgfraud import db
from pgfraud.cli import main


def test_http_alerts_with_an_unknown_rule_id_is_a_400_naming_it(client):
    response = client.get("/alerts?rule_id=large_amout")
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["field"] == "rule_id"
    assert error["message"].startswith("unknown rule large_amout; the rules are amount_spike, ")
    assert client.get("/alerts?rule_id=large_amount").status_code == 200


def test_http_alerts_of_a_users_rule_is_a_known_rule(client, admin_conn):
    db.add_rule(admin_conn, "big_one", "amount > 15000", None, False)
    assert client.get("/alerts?rule_id=big_one").get_json()["alerts"] == []


def test_cli_alerts_with_an_unknown_rule_exits_2_naming_it(database, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", database.admin_url)
    result = CliRunner().invoke(main, ["alerts", "--rule", "large_amout"])
    assert result.exit_code == 2
    assert (
        "error: Invalid value for --rule: unknown rule large_amout; the rules are " in result.stderr
    )
    assert CliRunner().invoke(main, ["alerts", "--rule", "large_amount"]).exit_code == 0


def test_a_long_expression_without_a_description_is_described_by_its_start(admin_conn):
    expression = " OR ".join(["amount >= 0"] * 50)  # 50 x 11 + 49 x 4 = 746 characters
    assert len(expression) == 746
    row = db.add_rule(admin_conn, "long_one", expression, None, False)
    assert row["expression"] == expression
    assert row["description"] == expression[:499] + "…"
    assert len(row["description"]) == 500


def test_a_description_given_too_long_says_how_long_it_is(client):
    body = {"rule_id": "long_one", "expression": "amount > 1", "description": "x" * 501}
    response = client.post("/rules", json=body)
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error == {
        "code": "invalid_input",
        "message": "description must be 1 to 500 characters; got 501",
        "field": "description",
    }


# A reversed [from, to) range is refused naming `to` (it answered 200 with
# nothing, which reads as "no alerts there").
REVERSED = {"from": "2024-02-01T00:00:00Z", "to": "2024-01-01T00:00:00Z"}


def test_http_lists_refuse_a_to_before_from(client):
    for path in ("/alerts", "/decisions"):
        response = client.get(path, query_string=REVERSED)
        assert response.status_code == 400, path
        error = response.get_json()["error"]
        assert error["field"] == "to", path
        assert error["message"] == "to must not be before from", path
    same = {"from": REVERSED["to"], "to": REVERSED["to"]}  # an empty range is a range
    assert client.get("/alerts", query_string=same).status_code == 200


def test_http_backtest_refuses_a_to_before_from(client):
    response = client.post("/evaluate", json=REVERSED)
    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == "to"
    assert client.post("/evaluate", json={"to": REVERSED["from"]}).status_code == 200


def test_evaluation_page_says_a_to_before_from(client):
    response = client.get("/ui/evaluation", query_string=REVERSED)
    assert response.status_code == 400
    assert "to must not be before from" in response.get_data(as_text=True)


# -- break-it tester's findings after issue 18 landed ----------------------------


def test_a_policy_score_of_a_name_that_cannot_be_a_rule_names_rule_scores(client):
    response = client.put("/policy", json={"rule_scores": {"a\u0000": 1}})
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["field"] == "rule_scores"
    assert error["message"] == "rule_scores: 'a\\x00' is not a rule id, like large_amount"


def test_revoking_a_token_name_that_cannot_be_one_is_a_400_naming_it(client):
    for name, shown in (("a%00", "'a\\x00'"), ("a" * 3000, "'" + "a" * 38)):
        response = client.delete(f"/tokens/{name}")
        assert response.status_code == 400
        error = response.get_json()["error"]
        assert error["field"] == "token_name"
        assert error["message"].startswith(shown)
        assert len(error["message"]) < 200


def test_cli_refuses_an_actor_that_is_not_printable_text(database, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", database.admin_url)
    for actor in ("a\tb", "a\nb", "\udced\udca0"):
        result = CliRunner().invoke(main, ["--actor", actor, "policy", "set", "review=50"])
        assert result.exit_code == 2, actor
        assert result.stderr == "error: --actor must be printable UTF-8 text\n"


def test_cli_text_that_is_not_utf8_is_refused_not_an_internal_error(database, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", database.admin_url)
    created = CliRunner().invoke(
        main, ["list", "create", "tmp_l", "--subject", "merchant", "--kind", "block"]
    )
    assert created.exit_code == 0, created.stderr
    # Undecodable bytes on a command line reach Python as lone surrogates.
    result = CliRunner().invoke(main, ["list", "add", "tmp_l", "9", "--reason", "\udcff"])
    assert result.exit_code == 2
    assert result.stderr == "error: an argument is not valid UTF-8 text\n"


def test_a_path_id_with_spaces_is_refused_as_the_document_says(client):
    # The document's path ids are integers; /accounts/8%20/reviews answered 200
    # (schemathesis ST201 in the CI simulation's floors run).
    for path in ("/accounts/8%20/reviews", "/is_fraud/%208", "/transactions/1%20/decision"):
        response = client.get(path)
        assert response.status_code == 400, path
        error = response.get_json()["error"]
        assert error["message"].endswith("must be digits, without spaces"), path
    assert client.get("/accounts/8/reviews").status_code == 200
