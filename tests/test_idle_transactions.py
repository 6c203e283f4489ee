"""A transaction left open and idle (`BEGIN; SELECT pg_current_xact_id();`)
holds both live feeds back: the roles pgfraud creates end it after
PGFRAUD_IDLE_TRANSACTION_TIMEOUT_MS, and GET /health and `pgfraud db status`
say which session holds the feeds and for how long."""

from __future__ import annotations

import time
import uuid

import psycopg
from click.testing import CliRunner

from pgfraud import cli as cli_module
from pgfraud.cli import main
from tests.conftest import _with_user


def _wait_for(condition, what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _alive(admin_url: str, pid: int) -> bool:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        return (
            conn.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()[
                0
            ]
            == 1
        )


def test_an_analysts_idle_transaction_is_ended_after_the_timeout(database, monkeypatch):
    name = f"analyst_{uuid.uuid4().hex[:12]}"
    password = "a-long-enough-password"
    monkeypatch.setenv("DATABASE_URL", database.admin_url)
    monkeypatch.setenv("PGFRAUD_IDLE_TRANSACTION_TIMEOUT_MS", "300")
    result = CliRunner().invoke(
        main, ["db", "create-user", name, "--password", password, "--read-only"]
    )
    assert result.exit_code == 0, result.output
    try:
        with psycopg.connect(database.admin_url, autocommit=True) as admin:
            settings = admin.execute(
                "SELECT s.setconfig FROM pg_db_role_setting AS s"
                " JOIN pg_roles AS r ON r.oid = s.setrole WHERE r.rolname = %s",
                (name,),
            ).fetchone()[0]
        assert "idle_in_transaction_session_timeout=300ms" in settings
        analyst = psycopg.connect(_with_user(database.admin_url, name, password))
        analyst.execute("SELECT pg_current_xact_id()")  # BEGIN; ... and left idle
        pid = analyst.info.backend_pid
        _wait_for(lambda: not _alive(database.admin_url, pid), "the idle transaction to end")
        analyst.close()
    finally:
        with psycopg.connect(database.admin_url, autocommit=True) as admin:
            admin.execute(f'DROP OWNED BY "{name}"')
            admin.execute(f'DROP ROLE "{name}"')


def test_the_service_role_gets_the_default_sixty_seconds(database):
    with psycopg.connect(database.app_url) as conn:
        assert conn.execute("SHOW idle_in_transaction_session_timeout").fetchone()[0] == "1min"


def test_health_and_db_status_name_the_session_holding_the_feeds(app, database, monkeypatch):
    app.config["FEED_HELD_AFTER_MS"] = 0
    client = app.test_client()
    assert client.get("/health").get_json() == {"status": "ok"}
    monkeypatch.setenv("DATABASE_URL", database.admin_url)
    monkeypatch.setattr(cli_module, "FEED_HELD_AFTER_MS", 0)
    assert "alert feed: live" in CliRunner().invoke(main, ["db", "status"]).output
    with psycopg.connect(database.admin_url) as holder:
        holder.execute("SELECT pg_current_xact_id()")
        pid = holder.info.backend_pid
        body = client.get("/health").get_json()
        assert body["status"] == "ok"
        assert body["feed_held_by"]["pid"] == pid
        assert body["feed_held_by"]["state"] == "idle in transaction"
        assert body["feed_held_by"]["held_ms"] >= 0
        output = CliRunner().invoke(main, ["db", "status"]).output
        assert f"alert feed: held by pid {pid} for " in output
        assert f"pg_terminate_backend({pid})" in output
        holder.rollback()
    assert client.get("/health").get_json() == {"status": "ok"}
