"""Rule scores and the decision policy (issue 17, part 1): defaults, validation
naming the field, versions in time (effective_from), as the owner and through
the service role's SECURITY DEFINER function."""

from __future__ import annotations

import json

import pytest

from pgfraud import db
from pgfraud.errors import InvalidInput, RuleNotFound


def test_default_policy_scores_every_rule(app_conn):
    policy = db.get_decision_policy(app_conn)
    assert policy["review_threshold"] == 50
    assert policy["decline_threshold"] == 100
    assert policy["default_score"] == 50
    assert policy["rule_scores"] == {
        "amount_spike": 25,
        "below_average": 100,
        "compromised_merchant": 50,
        "large_amount": 50,
        "new_merchant_large": 25,
        "new_merchant_run": 25,
        "rapid_succession": 50,
        "same_timestamp": 50,
        "velocity": 100,
    }
    assert policy["effective_from"] is None
    assert policy["set_by"] == "pgfraud"


def test_a_change_is_a_new_version_merged_over_the_last(app_conn):
    first = db.set_decision_policy(app_conn, {"review_threshold": 40}, actor="ana")
    app_conn.commit()
    second = db.set_decision_policy(app_conn, {"rule_scores": {"velocity": 70}})
    app_conn.commit()
    assert first["review_threshold"] == 40 and first["decline_threshold"] == 100
    assert first["set_by"] == "ana"
    assert second["review_threshold"] == 40
    assert second["rule_scores"]["velocity"] == 70
    assert second["rule_scores"]["below_average"] == 100
    assert second["set_by"] == "pgfraud_service"  # the login role when no actor is given
    assert second["policy_id"] > first["policy_id"]
    # What was in force at the first version's start is still readable.
    # (Times are stored to the microsecond, shown to the millisecond.)
    at_first = app_conn.execute(
        "SELECT get_decision_policy(p.effective_from) FROM decision_policies AS p"
        " WHERE p.policy_id = %s",
        (first["policy_id"],),
    ).fetchone()[0]
    assert at_first["policy_id"] == first["policy_id"]
    assert at_first["rule_scores"]["velocity"] == 100
    count = app_conn.execute("SELECT count(*) FROM decision_policies").fetchone()[0]
    assert count == 3


def test_a_users_rule_scores_the_default(app_conn, admin_conn):
    admin_conn.execute("SELECT add_rule('tiny', 'amount < 1', NULL, false)")
    assert db.get_decision_policy(app_conn)["rule_scores"]["tiny"] == 50
    policy = db.set_decision_policy(app_conn, {"default_score": 10})
    assert policy["rule_scores"]["tiny"] == 10
    policy = db.set_decision_policy(app_conn, {"rule_scores": {"tiny": 0}})
    assert policy["rule_scores"]["tiny"] == 0


@pytest.mark.parametrize(
    ("text", "field", "error"),
    [
        ('{"review_threshold": 0}', "review_threshold", InvalidInput),
        ('{"review_threshold": 1001}', "review_threshold", InvalidInput),
        ('{"decline_threshold": 49}', "decline_threshold", InvalidInput),
        ('{"review_threshold": 101}', "review_threshold", InvalidInput),
        ('{"review_threshold": 50.5}', "review_threshold", InvalidInput),
        ('{"review_threshold": "50"}', "review_threshold", InvalidInput),
        ('{"review_threshold": null}', "review_threshold", InvalidInput),
        ('{"default_score": -1}', "default_score", InvalidInput),
        ('{"rule_scores": {"velocity": 1e400}}', "rule_scores.velocity", InvalidInput),
        ('{"rule_scores": {"velocity": true}}', "rule_scores.velocity", InvalidInput),
        ('{"rule_scores": {"velocity": 1001}}', "rule_scores.velocity", InvalidInput),
        ('{"rule_scores": {"no_such_rule": 5}}', "rule_scores.no_such_rule", RuleNotFound),
        ('{"rule_scores": []}', "rule_scores", InvalidInput),
        ('{"colour": 1}', "colour", InvalidInput),
        ("{}", None, InvalidInput),
        ("[]", None, InvalidInput),
    ],
)
def test_bad_policy_is_refused_naming_the_field_and_nothing_changes(app_conn, text, field, error):
    with pytest.raises(error) as caught:
        db.set_decision_policy(app_conn, text)
    app_conn.rollback()
    assert caught.value.field == field
    assert app_conn.execute("SELECT count(*) FROM decision_policies").fetchone()[0] == 1


def test_a_refused_change_in_a_batch_keeps_the_others_out(app_conn):
    # A valid review threshold with an invalid score: neither is stored.
    with pytest.raises(InvalidInput):
        db.set_decision_policy(
            app_conn, json.dumps({"review_threshold": 60, "rule_scores": {"velocity": -5}})
        )
    app_conn.rollback()
    assert db.get_decision_policy(app_conn)["review_threshold"] == 50


def test_python_refuses_a_non_finite_score_before_sql(app_conn):
    from decimal import Decimal

    with pytest.raises(InvalidInput):
        db.set_decision_policy(app_conn, {"rule_scores": {"velocity": Decimal("NaN")}})
