"""The `pgfraud` command against an existing server (DATABASE_URL): url, migrate, create-user."""

from __future__ import annotations

import json
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from click.testing import CliRunner

from pgfraud.cli import main


@pytest.fixture
def external(database, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", database.admin_url)
    monkeypatch.delenv("PGFRAUD_APP_DATABASE_URL", raising=False)
    return database


def test_db_url_prints_database_url_when_set(external):
    result = CliRunner().invoke(main, ["db", "url"])
    assert result.exit_code == 0
    assert result.output.strip() == external.admin_url


def test_migrate_on_a_migrated_database_is_up_to_date(external):
    result = CliRunner().invoke(main, ["migrate"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "migrated: already up to date"


def test_create_user_makes_a_least_privilege_login(external, server_admin_url):
    name = "pgfraud_test_analyst_app"
    password = "a-long-enough-password"
    try:
        result = CliRunner().invoke(main, ["db", "create-user", name, "--password", password])
        assert result.exit_code == 0, result.output
        assert f"user {name} is a member of pgfraud_app" in result.output
        parts = urlsplit(external.admin_url)
        url = urlunsplit(parts._replace(netloc=f"{name}:{password}@{parts.hostname}:{parts.port}"))
        with psycopg.connect(url) as conn:
            conn.execute(
                "SELECT * FROM store_transactions("
                '\'[{"account_id": 1, "transaction_id": 1,'
                ' "timestamp": "2024-01-01T00:00:00Z", "amount": "5.00"}]\')'
            )
            assert conn.execute("SELECT count(*) FROM is_fraud(1)").fetchone()[0] == 0
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("DELETE FROM transactions")
    finally:
        with psycopg.connect(external.admin_url, autocommit=True) as conn:
            conn.execute(f"DROP ROLE IF EXISTS {name}")


def test_create_user_refuses_a_short_password(external):
    result = CliRunner().invoke(main, ["db", "create-user", "someone", "--password", "short"])
    assert result.exit_code == 2  # bad input
    assert "password must be at least 12 characters" in result.output


def test_create_read_only_user_cannot_write(external):
    name = "pgfraud_test_analyst_ro"
    result = CliRunner().invoke(main, ["db", "create-user", name, "--read-only"])
    try:
        assert result.exit_code == 0, result.output
        password = result.output.split("password: ")[1].strip()
        parts = urlsplit(external.admin_url)
        url = urlunsplit(parts._replace(netloc=f"{name}:{password}@{parts.hostname}:{parts.port}"))
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT count(*) FROM get_rules()").fetchone()[0] == 9
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("INSERT INTO transactions VALUES (1, 1, '2024-01-01Z', 1.00)")
    finally:
        with psycopg.connect(external.admin_url, autocommit=True) as conn:
            conn.execute(f"DROP ROLE IF EXISTS {name}")


def _store_large(database, transaction_id: int, account_id: int) -> None:
    from datetime import UTC, datetime
    from decimal import Decimal

    from pgfraud import db

    with db.connect(database.app_url) as conn:
        db.store_transactions(
            conn,
            [
                {
                    "transaction_id": transaction_id,
                    "account_id": account_id,
                    "timestamp": datetime(2024, 6, 1, 12, tzinfo=UTC),
                    "amount": Decimal("25000.00"),
                }
            ],
        )
        conn.commit()


def test_alerts_lists_the_newest_and_review_records_a_decision(external):
    _store_large(external, 9001, 42)
    _store_large(external, 9002, 43)
    listed = CliRunner().invoke(main, ["alerts", "--limit", "1"])
    assert listed.exit_code == 0, listed.output
    assert listed.output == (
        "2024-06-01T12:00:00.000Z  account 43  transaction 9002  amount 25000.00"
        "  large_amount (rule version 1): amount 25000.00 is at or above the limit 10000\n"
    )
    reviewed = CliRunner().invoke(
        main, ["review", "9001", "--status", "confirmed_fraud", "--reviewer", "ana"]
    )
    assert reviewed.exit_code == 0, reviewed.output
    assert reviewed.output == "transaction 9001 (account 42): confirmed_fraud by ana\n"
    confirmed = CliRunner().invoke(main, ["alerts", "--review-status", "confirmed_fraud", "--json"])
    assert [line for line in confirmed.output.splitlines()] == [
        '{"timestamp": "2024-06-01T12:00:00.000Z", "alert_id": 1, "transaction_id": 9001,'
        ' "account_id": 42, "amount": "25000.00", "rule_id": "large_amount",'
        ' "observed": "25000.00", "threshold": "10000",'
        ' "reason": "amount 25000.00 is at or above the limit 10000",'
        f' "raised_at": {json.dumps(_raised_at(external, 1))}, "review_status": "confirmed_fraud",'
        ' "review_note": "", "reviewer": "ana", "reviewed_at": '
        f"{json.dumps(_reviewed_at(external))},"
        ' "rule_version": 1, "raised_rule_version": 1, "raised_parameters": {"threshold": 10000},'
        ' "outcome": "review", "overruled": false}'
    ]
    missing = CliRunner().invoke(main, ["review", "9999", "--status", "false_positive"])
    assert missing.exit_code == 1
    assert missing.output == "error: transaction 9999 is not stored\n"
    bad = CliRunner().invoke(main, ["review", "9001", "--status", "maybe"])
    assert bad.exit_code == 2
    assert "'maybe' is not one of 'confirmed_fraud', 'false_positive'" in bad.output


def _raised_at(database, alert_id: int) -> str:
    from pgfraud.wire import format_timestamp

    with psycopg.connect(database.admin_url) as conn:
        value = conn.execute("SELECT raised_at FROM alerts WHERE alert_id = %s", (alert_id,))
        return format_timestamp(value.fetchone()[0])


def _reviewed_at(database) -> str:
    from pgfraud.wire import format_timestamp

    with psycopg.connect(database.admin_url) as conn:
        return format_timestamp(conn.execute("SELECT max(reviewed_at) FROM reviews").fetchone()[0])


def test_alerts_follow_prints_new_alerts_as_they_come(external):
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    pgfraud = str(Path(sys.executable).with_name("pgfraud"))
    env = {**os.environ, "DATABASE_URL": external.admin_url}
    proc = subprocess.Popen(
        [pgfraud, "alerts", "--follow"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # SIGINT as a terminal's child takes it, even when the suite runs as
        # a background job of a script (which hands it down ignored).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        assert proc.stderr.readline() == "-- following new alerts (Ctrl-C stops)\n"
        _store_large(external, 9003, 44)
        assert proc.stdout.readline() == (
            "2024-06-01T12:00:00.000Z  account 44  transaction 9003  amount 25000.00"
            "  large_amount: amount 25000.00 is at or above the limit 10000\n"
        )
    finally:
        proc.send_signal(2)  # SIGINT: a clean stop
        assert proc.wait(timeout=10) == 0


def test_migrate_says_what_it_did_when_no_migration_is_pending(external):
    # A function changed by hand: migrate re-applies the files and re-scores.
    with psycopg.connect(external.admin_url, autocommit=True) as conn:
        conn.execute("COMMENT ON FUNCTION check_health() IS 'changed by hand'")
        conn.execute(
            "CREATE OR REPLACE FUNCTION check_health()"
            " RETURNS TABLE (server_version text, migrations bigint)"
            " LANGUAGE sql STABLE AS $$ SELECT 'x', 0::bigint $$"
        )
    result = CliRunner().invoke(main, ["migrate"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == (
        "migrated: no migration pending; functions re-applied (the database's differed"
        " from what migrate applied); stored transactions re-scored"
    )
    # A function file not recorded as applied: named.
    with psycopg.connect(external.admin_url, autocommit=True) as conn:
        conn.execute("UPDATE schema_code SET file_digests = file_digests - 'set_rule.sql'")
    result = CliRunner().invoke(main, ["migrate"])
    assert result.exit_code == 0, result.output
    assert (
        result.output.strip()
        == "migrated: no migration pending; 1 function file applied (set_rule.sql)"
    )
    assert CliRunner().invoke(main, ["migrate"]).output.strip() == "migrated: already up to date"
