"""Break-it (hardening round): a rule change and a shadow rule deadlock.

set_rule (change_rule, PATCH /rules, `pgfraud rule set`) locks the rule's
row FOR UPDATE first and only then, in the rules trigger, takes the
exclusive rule-change lock; shadow_rule (PUT /rules/<id>/shadow) and
promote_shadow_rule take the rule-change lock first and the rule's row
after. docs/rules.md says every path takes its locks in one order and
never deadlocks. Under traffic (3 PATCH + 3 shadow PUT clients for 40 s on
one server) PostgreSQL logged 64 deadlocks and 6 requests were answered
503 database_conflict; `pgfraud rule set` (no retry in the CLI) failed 11
times out of 12 while two clients PUT shadows.

This test makes the interleaving deterministic with the service's own SQL
calls: a policy change holds the rule-change lock; a shadow queues for it;
a rule change then locks the rule's row and queues too. When the policy
change commits the shadow gets the lock and waits for the row, the rule
change waits for the lock: a deadlock. It fails until both paths take the
locks in one order.
"""

from __future__ import annotations

import threading
import time

import psycopg

from pgfraud import db

RULE_CHANGE_LOCK = 7231546390112208


def _waiting_for_rule_change_lock(admin_url: str) -> int:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        return conn.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            " AND ((classid::bigint << 32) | objid::bigint) = %s",
            (RULE_CHANGE_LOCK,),
        ).fetchone()[0]


def _wait_for(condition, what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_a_rule_change_and_a_shadow_of_the_same_rule_never_deadlock(database):
    errors: list[BaseException] = []

    def run(call) -> None:
        try:
            with db.connect(database.app_url) as conn:
                call(conn)
                conn.commit()
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    with db.connect(database.app_url) as holder:
        # A policy change in progress holds the exclusive rule-change lock.
        db.set_decision_policy(holder, {"review_threshold": 55})
        shadow = threading.Thread(
            target=run, args=(lambda c: db.shadow_rule(c, "large_amount", {"threshold": 5000}),)
        )
        shadow.start()
        _wait_for(
            lambda: _waiting_for_rule_change_lock(database.admin_url) == 1, "the shadow to queue"
        )
        change = threading.Thread(
            target=run,
            args=(lambda c: db.change_rule(c, "large_amount", None, {"threshold": 9000}),),
        )
        change.start()
        _wait_for(
            lambda: _waiting_for_rule_change_lock(database.admin_url) == 2,
            "the rule change to queue",
        )
        holder.commit()
    shadow.join(120)
    change.join(120)
    assert errors == []
