"""The `pgfraud` command against an existing server (DATABASE_URL): url, migrate, create-user."""

from __future__ import annotations

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
    assert result.exit_code == 1
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
            assert conn.execute("SELECT count(*) FROM get_rules()").fetchone()[0] == 5
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("INSERT INTO transactions VALUES (1, 1, '2024-01-01Z', 1.00)")
    finally:
        with psycopg.connect(external.admin_url, autocommit=True) as conn:
            conn.execute(f"DROP ROLE IF EXISTS {name}")
