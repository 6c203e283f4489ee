"""A rule change has its own time limit, not the 10 s of ordinary statements
(issue 15 fault 7).

PATCH /rules (the page's "Switch on") re-scores the stored history in its
database transaction; under the service's statement timeout it failed at
about 1M rows (40 s at 10M). It now runs under RULE_CHANGE_TIMEOUT_MS (SET
LOCAL in that transaction alone), and one that runs out of it changes
nothing. A rule change is made to outlast a timeout without timed
assertions: it waits for the rule-change lock, held by the test, and a
store queued behind it runs out of the ordinary timeout first.
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from pgfraud import db
from pgfraud.cli import main
from pgfraud.service import create_app
from pgfraud.service.database import close_pool
from pgfraud.service.feed import stop_listener
from tests.test_schema_locks import blocked_by, run_in_thread, wait_for

RULE_CHANGE_LOCK = 7231546390112208
CHANGE = {"large_amount": {"parameters": {"threshold": 15000}}, "velocity": {"enabled": False}}


def state(conn) -> tuple[list, list]:
    rules = conn.execute(
        "SELECT rule_id, enabled, parameters::text FROM rules ORDER BY rule_id"
    ).fetchall()
    alerts = conn.execute(
        "SELECT alert_id, transaction_id, rule_id, threshold FROM alerts ORDER BY alert_id"
    ).fetchall()
    return rules, alerts


def seed(conn) -> None:
    """Four transactions of one account within a minute: large_amount fires
    on the 16,000 and 20,000 (threshold 10,000), velocity on the last ones."""
    for tid, amount in ((1, "16000.00"), (2, "12.00"), (3, "20000.00"), (4, "11.00")):
        conn.execute(
            "INSERT INTO transactions VALUES (%s, 5, '2024-01-01Z'::timestamptz"
            " + %s * interval '1 second', %s)",
            (tid, tid, amount),
        )


@pytest.fixture
def make_app(database):
    apps = []

    def make(**config):
        app = create_app({"TESTING": True, "DATABASE_URL": database.app_url, **config})
        apps.append(app)
        return app

    yield make
    for app in apps:
        stop_listener(app)
        close_pool(app)


def store_body(tid: int) -> dict:
    return {
        "account_id": 6,
        "transaction_id": tid,
        "timestamp": "2024-02-01T00:00:00Z",
        "amount": "5",
    }


def test_a_rule_change_outlives_the_ordinary_statement_timeout(database, make_app):
    app = make_app(STATEMENT_TIMEOUT_MS=300)
    client = app.test_client()
    with db.connect(database.admin_url, autocommit=True) as admin:
        seed(admin)
        before = state(admin)
        holder = db.connect(database.admin_url)
        try:
            holder.execute("SELECT pg_advisory_xact_lock_shared(%s)", (RULE_CHANGE_LOCK,))
            thread, out = run_in_thread(lambda: client.patch("/rules", json=CHANGE))
            pid = holder.info.backend_pid
            wait_for(lambda: len(blocked_by(admin, pid)) == 1, "the rule change waits")
            # A store queues behind the waiting change and runs out of the
            # ordinary timeout: the change has waited longer than that.
            stored = app.test_client().post("/store_data", json=store_body(99))
            assert stored.status_code == 503
            assert thread.is_alive()
            assert len(blocked_by(admin, pid)) == 1
        finally:
            holder.close()
        thread.join(120)
        response = out[0]
        assert response.status_code == 200, response.get_json()
        assert [r["rule_id"] for r in response.get_json()["rules"]] == ["large_amount", "velocity"]
        rules, alerts = state(admin)
        assert rules != before[0]
        # large_amount at 15,000 fires on both big ones again; velocity's are gone.
        changed = [(a[1], a[2], a[3]) for a in alerts if a[2] in CHANGE]
        assert sorted(changed) == [
            (1, "large_amount", 15000),
            (3, "large_amount", 15000),
        ]


def test_a_rule_change_out_of_time_changes_nothing(database, make_app):
    client = make_app(RULE_CHANGE_TIMEOUT_MS=300).test_client()
    with db.connect(database.admin_url, autocommit=True) as admin:
        seed(admin)
        before = state(admin)
        assert {a[2] for a in before[1]} >= {"large_amount", "velocity"}
        with db.connect(database.admin_url) as holder:
            holder.execute("SELECT pg_advisory_xact_lock_shared(%s)", (RULE_CHANGE_LOCK,))
            response = client.patch("/rules", json=CHANGE)
            holder.rollback()
        assert response.status_code == 503
        assert response.get_json() == {
            "error": {
                "code": "rule_change_timeout",
                "message": "the rule change did not finish within 0.3 s "
                "(PGFRAUD_RULE_CHANGE_TIMEOUT_MS); nothing was changed",
            }
        }
        assert state(admin) == before
        # The same change with time to run goes through.
        assert client.patch("/rules", json=CHANGE).status_code == 200
        assert state(admin) != before


def test_the_cli_rule_change_has_the_same_limit(database, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", database.admin_url)
    monkeypatch.setenv("PGFRAUD_RULE_CHANGE_TIMEOUT_MS", "300")
    with db.connect(database.admin_url, autocommit=True) as admin:
        seed(admin)
        before = state(admin)
        with db.connect(database.admin_url) as holder:
            holder.execute("SELECT pg_advisory_xact_lock_shared(%s)", (RULE_CHANGE_LOCK,))
            thread, out = run_in_thread(
                lambda: CliRunner().invoke(main, ["rule", "disable", "velocity"])
            )
            wait_for(lambda: not thread.is_alive(), "the rule change gives up")
            holder.rollback()
        result = out[0]
        assert result.exit_code == 1
        assert result.stderr == (
            "error: the rule change did not finish within 0.3 s "
            "(PGFRAUD_RULE_CHANGE_TIMEOUT_MS); nothing was changed\n"
        )
        assert state(admin) == before
        monkeypatch.setenv("PGFRAUD_RULE_CHANGE_TIMEOUT_MS", "soon")
        result = CliRunner().invoke(main, ["rule", "disable", "velocity"])
        assert (result.exit_code, result.stderr) == (
            1,
            "error: PGFRAUD_RULE_CHANGE_TIMEOUT_MS must be an integer number of milliseconds "
            "from 0 (no limit) to 2147483647; got 'soon'\n",
        )
        monkeypatch.setenv("PGFRAUD_RULE_CHANGE_TIMEOUT_MS", "0")
        result = CliRunner().invoke(main, ["rule", "disable", "velocity"])
        assert result.exit_code == 0, result.output
        assert state(admin) != before
