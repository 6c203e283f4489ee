"""The CLI retries a transaction the database stopped for a conflict
(deadlock 40P01, serialization failure 40001) as the service does
(pgfraud.db.retry_conflicts), and its error lines are one line each."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest
from click.testing import CliRunner

from pgfraud import db
from pgfraud.cli import main
from pgfraud.errors import DatabaseConflict, PgfraudError

RULE_CHANGE_LOCK = 7231546390112208


def _wait_for(condition, what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _waiting_for_a_row(admin_url: str) -> bool:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        return (
            conn.execute(
                "SELECT count(*) FROM pg_locks"
                " WHERE NOT granted AND locktype IN ('transactionid', 'tuple')"
            ).fetchone()[0]
            > 0
        )


def test_rule_set_is_retried_after_it_loses_a_deadlock(database, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", database.admin_url)
    result: list = []
    with psycopg.connect(database.admin_url) as holder:
        # This session never gives up first: the CLI's (1 s) finds the deadlock.
        holder.execute("SET deadlock_timeout = '10min'")
        holder.execute("SELECT FROM rules WHERE rule_id = 'large_amount' FOR UPDATE")
        cli = threading.Thread(
            target=lambda: result.append(
                CliRunner().invoke(main, ["rule", "set", "large_amount", "threshold=9000"])
            )
        )
        cli.start()
        # The CLI holds the rule-change lock and waits for the row.
        _wait_for(lambda: _waiting_for_a_row(database.admin_url), "the rule change to wait")
        # Waiting for the lock the CLI holds closes the cycle: the CLI is the
        # victim (40P01), and this returns once its transaction rolled back.
        holder.execute("SELECT pg_advisory_xact_lock(%s)", (RULE_CHANGE_LOCK,))
        holder.commit()
    cli.join(120)
    outcome = result[0]
    assert outcome.exit_code == 0, outcome.output
    assert "rule large_amount (on)" in outcome.output
    with psycopg.connect(database.admin_url) as conn:
        threshold = conn.execute(
            "SELECT parameters ->> 'threshold' FROM rules WHERE rule_id = 'large_amount'"
        ).fetchone()[0]
    assert threshold == "9000"


def test_retry_gives_up_after_three_retries_with_one_line():
    calls = []

    def attempt():
        calls.append(1)
        raise DatabaseConflict()

    with pytest.raises(DatabaseConflict) as caught:
        db.retry_conflicts(attempt, backoff_s=0)
    assert len(calls) == 4
    assert caught.value.message == (
        "The database stopped this request because it conflicted with another one running"
        " at the same time (a deadlock or a serialization failure), 4 times. Nothing was"
        " stored: send it again."
    )


@pytest.mark.parametrize("error", [cls for cls in PgfraudError.__subclasses__()] + [PgfraudError])
def test_default_messages_are_one_line_without_runs_of_spaces(error):
    message = error().message
    assert "\n" not in message and "  " not in message
    assert message == message.strip()
