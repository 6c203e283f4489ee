"""The audit trail (issue 18, part 2): audit_change() on rules, the policy,
lists and their entries, reviews and tokens writes who, when, what, before
and after from every path (psql included); a rule change that re-scores
records the alerts it added and removed; the service's role can read the
trail but not change it, and nobody can rewrite an entry."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest

from pgfraud import db

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


def _store(conn, rows: list[tuple[int, int, str]]) -> None:
    """Store (transaction_id, minutes after T0, amount) on account 7, committed."""
    db.store_transactions(
        conn,
        [
            {
                "account_id": 7,
                "transaction_id": tid,
                "timestamp": T0 + timedelta(minutes=minutes),
                "amount": Decimal(amount),
            }
            for tid, minutes, amount in rows
        ],
    )
    conn.commit()


def _entries(conn, kind: str) -> list[dict]:
    return db.get_audit(conn, object_kind=kind)


def test_a_psql_rule_change_names_the_login_and_counts_alerts_added_and_removed(
    app_conn, admin_conn
):
    # large_amount fires at 10000: on 12000 and 20000 (two alerts), not 5000.
    _store(app_conn, [(1, 0, "5000.00"), (2, 60, "12000.00"), (3, 120, "20000.00")])
    login = admin_conn.execute("SELECT session_user").fetchone()[0]
    ids_before = {
        r[0]
        for r in admin_conn.execute(
            "SELECT transaction_id FROM alerts WHERE rule_id = 'large_amount'"
        ).fetchall()
    }
    assert ids_before == {2, 3}

    # 15000: the alert on 12000 goes (removed 1); 20000 still fires, its
    # alert updated in place (neither added nor removed).
    admin_conn.execute(
        "UPDATE rules SET parameters = '{\"threshold\": 15000}' WHERE rule_id = 'large_amount'"
    )
    (raised,) = _entries(app_conn, "rule")
    assert raised["actor"] == login
    assert raised["action"] == "update"
    assert raised["object_key"] == "large_amount"
    assert raised["before"]["parameters"] == {"threshold": 10000}
    assert raised["after"]["parameters"] == {"threshold": 15000}
    assert (raised["alerts_added"], raised["alerts_removed"]) == (0, 1)

    # 4000 by the service (change_rule) as alice: 5000 and 12000 fire again.
    app_conn.execute("SELECT set_config('pgfraud.actor', 'alice', true)")
    db.change_rule(app_conn, "large_amount", None, {"threshold": 4000})
    app_conn.commit()
    lowered = _entries(app_conn, "rule")[0]
    assert lowered["actor"] == "alice"
    assert (lowered["alerts_added"], lowered["alerts_removed"]) == (2, 0)

    # Off: all three go. A description alone re-scores nothing: no counts.
    admin_conn.execute("UPDATE rules SET enabled = false WHERE rule_id = 'large_amount'")
    admin_conn.execute("UPDATE rules SET description = 'big' WHERE rule_id = 'large_amount'")
    described, off = _entries(app_conn, "rule")[:2]
    assert (off["alerts_added"], off["alerts_removed"]) == (0, 3)
    assert (described["alerts_added"], described["alerts_removed"]) == (None, None)
    assert (
        described["before"]["description"] != "big" and described["after"]["description"] == "big"
    )


def test_an_update_that_changes_nothing_records_nothing(admin_conn, app_conn):
    admin_conn.execute("UPDATE rules SET enabled = enabled")
    assert _entries(app_conn, "rule") == []


def test_reviews_name_the_actor_set_in_the_transaction(app_conn):
    _store(app_conn, [(11, 0, "10.00")])
    app_conn.execute("SELECT set_config('pgfraud.actor', 'bob', true)")
    review = db.review_transaction(app_conn, 11, "confirmed_fraud", "called")
    app_conn.commit()
    assert review["reviewer"] == "bob"
    # Without the setting: the login, as before.
    review = db.review_transaction(app_conn, 11, "false_positive")
    app_conn.commit()
    assert review["reviewer"] == "pgfraud_service"
    second, first = _entries(app_conn, "review")
    assert (first["actor"], first["object_key"], first["action"]) == ("bob", "11", "insert")
    assert first["before"] is None and first["after"]["status"] == "confirmed_fraud"
    assert second["actor"] == "pgfraud_service"


def test_a_policy_change_records_the_previous_version_as_before(app_conn):
    app_conn.execute("SELECT set_config('pgfraud.actor', 'carol', true)")
    db.set_decision_policy(app_conn, {"review_threshold": 40})
    app_conn.commit()
    (entry,) = _entries(app_conn, "policy")
    assert entry["actor"] == "carol"
    assert entry["before"]["review_threshold"] == 50
    assert entry["after"]["review_threshold"] == 40
    assert entry["after"]["set_by"] == "carol"


def test_list_and_entry_changes_are_recorded(app_conn):
    db.create_list(app_conn, "blocked", "account", "block", "", "dave")
    db.add_list_entry(app_conn, "blocked", 42, "chargebacks", None, "dave")
    db.remove_list_entry(app_conn, "blocked", 42, "erin")
    app_conn.commit()
    (created,) = _entries(app_conn, "list")
    assert (created["object_key"], created["action"]) == ("blocked", "insert")
    removed, added = _entries(app_conn, "list_entry")
    assert (added["object_key"], added["action"]) == ("blocked/42", "insert")
    assert removed["action"] == "update"
    assert removed["before"]["removed_at"] is None and removed["after"]["removed_by"] == "erin"


def test_times_in_before_and_after_are_utc_milliseconds_with_z(app_conn):
    # to_jsonb wrote timestamptz as "2099-01-02T03:04:05.678912+00:00"; the
    # audit's before/after now write them as the wire does everywhere else.
    db.create_list(app_conn, "blocked", "account", "block", "", "dave")
    expiry = datetime(2099, 1, 2, 3, 4, 5, 678912, tzinfo=UTC)
    db.add_list_entry(app_conn, "blocked", 42, "2099-01-02T03:04:05+00:00", expiry, "dave")
    db.remove_list_entry(app_conn, "blocked", 42, "erin")
    app_conn.commit()
    removed, added = _entries(app_conn, "list_entry")
    assert added["after"]["expires_at"] == "2099-01-02T03:04:05.678Z"  # truncated to ms
    assert removed["before"]["expires_at"] == "2099-01-02T03:04:05.678Z"
    assert removed["before"]["removed_at"] is None
    assert removed["after"]["removed_at"].endswith("Z")
    assert len(removed["after"]["removed_at"]) == len("2099-01-02T03:04:05.678Z")
    # Free text that reads like a time is a reason, not a time: kept as written.
    assert added["after"]["reason"] == "2099-01-02T03:04:05+00:00"


def test_token_changes_are_recorded_without_the_digest(app_conn):
    digest = hashlib.sha256(b"pgf_secret").digest()
    with db.wrap_errors():
        app_conn.execute("SELECT add_api_token('alice', 'analyst', %s, 'root')", (digest,))
        app_conn.execute("SELECT revoke_api_token('alice', 'root')")
    app_conn.commit()
    revoked, added = _entries(app_conn, "token")
    assert added["after"]["token_name"] == "alice" and added["after"]["role"] == "analyst"
    assert revoked["after"]["revoked_by"] == "root"
    for entry in (added, revoked):
        for side in (entry["before"], entry["after"]):
            assert side is None or "secret_sha256" not in side
    text = app_conn.execute("SELECT string_agg(before::text || after::text, '') FROM audit_log")
    assert digest.hex() not in text.fetchone()[0]


def test_the_service_role_cannot_change_the_trail_and_nobody_rewrites_it(app_conn, admin_conn):
    _store(app_conn, [(21, 0, "10.00")])
    db.review_transaction(app_conn, 21, "confirmed_fraud")
    app_conn.commit()
    for statement in (
        "UPDATE audit_log SET actor = 'nobody'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
        "INSERT INTO audit_log (actor, action, object_kind, object_key)"
        " VALUES ('x', 'insert', 'rule', 'x')",
    ):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            app_conn.execute(statement)
        app_conn.rollback()
    # The owner may not rewrite an entry either (append-only) ...
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
        admin_conn.execute("UPDATE audit_log SET actor = 'nobody'")
    # ... but may delete (retention).
    assert admin_conn.execute("DELETE FROM audit_log").rowcount == 1


def test_get_audit_filters_and_pages(app_conn):
    for name in ("a1", "a2", "a3"):
        app_conn.execute("SELECT set_config('pgfraud.actor', %s, true)", (name,))
        db.set_decision_policy(app_conn, {"default_score": 10 + len(name) + int(name[1])})
        app_conn.commit()
    rows = db.get_audit(app_conn, limit=2)
    assert [r["actor"] for r in rows] == ["a3", "a2"]
    rest = db.get_audit(app_conn, limit=2, before=rows[-1]["audit_id"])
    assert [r["actor"] for r in rest] == ["a1"]
    assert [r["actor"] for r in db.get_audit(app_conn, actor="a2")] == ["a2"]
    assert db.get_audit(app_conn, object_kind="rule") == []
    later = rows[0]["at"] + timedelta(milliseconds=1)
    assert db.get_audit(app_conn, start=later) == []
    assert len(db.get_audit(app_conn, end=later)) == 3


def test_a_shadow_started_promoted_and_dropped_is_in_the_trail(app_conn):
    # large_amount fires at 10000 on 12000 and 20000; its shadow at 15000.
    _store(app_conn, [(31, 0, "5000.00"), (32, 60, "12000.00"), (33, 120, "20000.00")])
    app_conn.execute("SELECT set_config('pgfraud.actor', 'carol', true)")
    db.shadow_rule(app_conn, "large_amount", {"threshold": 15000})
    app_conn.commit()
    (started,) = _entries(app_conn, "shadow_rule")
    assert (started["actor"], started["action"], started["object_key"]) == (
        "carol",
        "insert",
        "large_amount",
    )
    assert started["after"]["parameters"] == {"threshold": 15000}
    # Promoted: the shadow goes, and the rule change says what it did to the
    # alerts (the 12000 one no longer fires; 20000 keeps its alert).
    app_conn.execute("SELECT set_config('pgfraud.actor', 'dave', true)")
    db.promote_shadow_rule(app_conn, "large_amount")
    app_conn.commit()
    ended = _entries(app_conn, "shadow_rule")[0]
    assert (ended["actor"], ended["action"]) == ("dave", "promote")
    (promoted,) = _entries(app_conn, "rule")
    assert promoted["actor"] == "dave"
    assert promoted["after"]["parameters"] == {"threshold": 15000}
    assert (promoted["alerts_added"], promoted["alerts_removed"]) == (0, 1)
    db.shadow_rule(app_conn, "velocity", {"max_transactions": 3})
    db.drop_shadow_rule(app_conn, "velocity")
    app_conn.commit()
    dropped, again = _entries(app_conn, "shadow_rule")[:2]
    assert (dropped["action"], dropped["object_key"]) == ("drop", "velocity")
    assert (again["action"], again["object_key"]) == ("insert", "velocity")
