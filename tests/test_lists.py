"""Allow and block lists (issue 17, part 2): named lists of accounts or merchants,
entries versioned in time (in force from added_at until removed or expired),
bad input refused naming the field, and users' rules testing membership with
account_in_list('…') / merchant_in_list('…')."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from pgfraud import db
from pgfraud.errors import InvalidInput, ListNotFound


def test_create_add_show_remove(app_conn):
    created = db.create_list(app_conn, "risky_merchants", "merchant", "block", "breached shops")
    assert created["kind"] == "block" and created["subject"] == "merchant"
    assert created["entries"] == []
    # Creating it again alike changes nothing.
    assert db.create_list(app_conn, "risky_merchants", "merchant", "block")["list_name"] == (
        "risky_merchants"
    )
    entry = db.add_list_entry(app_conn, "risky_merchants", 42, "chargebacks", actor="ana")
    assert (entry["value"], entry["reason"], entry["added_by"], entry["expires_at"]) == (
        42,
        "chargebacks",
        "ana",
        None,
    )
    app_conn.commit()
    shown = db.get_list(app_conn, "risky_merchants")
    assert [(e["value"], e["reason"]) for e in shown["entries"]] == [(42, "chargebacks")]
    assert db.get_lists(app_conn)[0]["entries"] == 1
    removed = db.remove_list_entry(app_conn, "risky_merchants", 42, actor="bo")
    app_conn.commit()
    assert removed["removed_by"] == "bo"
    assert db.get_list(app_conn, "risky_merchants")["entries"] == []
    # Kept, with its time in force: the entry is still readable at its time.
    at_time = app_conn.execute(
        "SELECT get_list('risky_merchants', e.added_at) FROM list_entries AS e"
    ).fetchone()[0]
    assert [e["value"] for e in at_time["entries"]] == [42]
    assert app_conn.execute("SELECT count(*) FROM list_entries").fetchone()[0] == 1


def test_adding_again_replaces_the_entry_in_force(app_conn):
    db.create_list(app_conn, "vip", "account", "allow")
    db.add_list_entry(app_conn, "vip", 7, "first")
    second = db.add_list_entry(app_conn, "vip", 7, "second")
    app_conn.commit()
    assert [(e["entry_id"], e["reason"]) for e in db.get_list(app_conn, "vip")["entries"]] == [
        (second["entry_id"], "second")
    ]
    rows = app_conn.execute(
        "SELECT reason, removed_at IS NOT NULL FROM list_entries ORDER BY entry_id"
    ).fetchall()
    assert rows == [("first", True), ("second", False)]


def test_an_expired_entry_is_out_of_force(app_conn, admin_conn):
    db.create_list(app_conn, "vip", "account", "allow")
    db.add_list_entry(app_conn, "vip", 7, "until soon", datetime.now(UTC) + timedelta(hours=1))
    app_conn.commit()
    assert len(db.get_list(app_conn, "vip")["entries"]) == 1
    later = app_conn.execute("SELECT get_list('vip', now() + interval '2 hours')").fetchone()[0]
    assert later["entries"] == []


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda c: db.create_list(c, "Risky", "merchant", "block"), "list_name"),
        (lambda c: db.create_list(c, "risky-shops", "merchant", "block"), "list_name"),
        (lambda c: db.create_list(c, "1risky", "merchant", "block"), "list_name"),
        (lambda c: db.create_list(c, "x" * 64, "merchant", "block"), "list_name"),
        (lambda c: db.create_list(c, "risky", "card", "block"), "subject"),
        (lambda c: db.create_list(c, "risky", "merchant", "deny"), "kind"),
        (lambda c: db.create_list(c, "blocked", "merchant", "allow"), "list_name"),
        (lambda c: db.add_list_entry(c, "blocked", -1, "x"), "value"),
        (lambda c: db.add_list_entry(c, "blocked", 1, " "), "reason"),
        (
            lambda c: db.add_list_entry(c, "blocked", 1, "x", datetime.now(UTC) - timedelta(1)),
            "expires_at",
        ),
    ],
)
def test_bad_input_is_refused_naming_the_field(app_conn, admin_conn, call, field):
    admin_conn.execute("SELECT create_list('blocked', 'merchant', 'block')")
    with pytest.raises(InvalidInput) as caught:
        call(app_conn)
    app_conn.rollback()
    assert caught.value.field == field
    assert app_conn.execute("SELECT count(*) FROM list_entries").fetchone()[0] == 0
    assert app_conn.execute("SELECT count(*) FROM lists").fetchone()[0] == 1


def test_unknown_list_or_entry_is_not_found(app_conn):
    with pytest.raises(ListNotFound) as caught:
        db.get_list(app_conn, "nope")
    assert caught.value.field == "list_name"
    app_conn.rollback()
    db.create_list(app_conn, "vip", "account", "allow")
    with pytest.raises(ListNotFound) as caught:
        db.remove_list_entry(app_conn, "vip", 5)
    assert caught.value.field == "value"


# -- users' rules testing membership ---------------------------------------------------


def test_rule_expressions_name_existing_lists_of_the_right_subject(app_conn):
    db.create_list(app_conn, "risky_merchants", "merchant", "block")
    db.create_list(app_conn, "vip", "account", "allow")
    app_conn.commit()
    rule = db.add_rule(
        app_conn, "risky_shop", "merchant_in_list('risky_merchants') AND amount > 100"
    )
    assert rule["expression"] == "merchant_in_list('risky_merchants') AND amount > 100"
    app_conn.rollback()
    for expression, message in [
        ("merchant_in_list('nowhere')", "no list nowhere"),
        ("account_in_list('risky_merchants')", "holds merchants"),
        ("merchant_in_list('vip')", "holds accounts"),
        ("merchant_in_list('risky_merchants') OR 'x' = 'x'", "may not use '"),
        ("merchant_in_list(risky_merchants)", "may not use merchant_in_list"),
    ]:
        with pytest.raises(InvalidInput) as caught:
            db.add_rule(app_conn, "bad", expression)
        app_conn.rollback()
        assert caught.value.field == "expression"
        assert message in caught.value.message, caught.value.message


def test_a_rule_sees_the_list_as_it_was_at_the_transactions_time(app_conn, admin_conn):
    now = datetime.now(UTC).replace(microsecond=0)
    db.create_list(app_conn, "risky_merchants", "merchant", "block")
    db.add_rule(app_conn, "risky_shop", "merchant_in_list('risky_merchants')", enabled=True)
    app_conn.commit()
    before = {
        "transaction_id": 1,
        "account_id": 7,
        "timestamp": now - timedelta(hours=1),
        "amount": Decimal("10.00"),
        "merchant_id": 42,
    }
    db.store_transactions(app_conn, [before])
    app_conn.commit()
    db.add_list_entry(app_conn, "risky_merchants", 42, "breach")
    app_conn.commit()
    later = {**before, "transaction_id": 2, "timestamp": now + timedelta(hours=1)}
    other = {**later, "transaction_id": 3, "merchant_id": 43}
    (row, row_other) = db.store_transactions(app_conn, [later, other])
    app_conn.commit()
    assert [a["rule_id"] for a in row["alerts"]] == ["risky_shop"]
    assert row_other["alerts"] == []
    # The earlier payment (before the entry) does not fire, also from scratch.
    fired = app_conn.execute(
        "SELECT transaction_id, rule_id FROM evaluate_account(7, active_rule_parameters())"
    ).fetchall()
    assert fired == [(2, "risky_shop")]
    stored = app_conn.execute("SELECT transaction_id, rule_id FROM alerts").fetchall()
    assert stored == fired
