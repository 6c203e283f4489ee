"""A named token's times are shown as every other time pgfraud shows: UTC,
milliseconds, Z (`2026-12-04T21:26:38.694Z`), in `pgfraud token list` (text
and --json) and GET /tokens. They were the database's microseconds with
+00:00 (fresh-user trial)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from pgfraud.cli import main


@pytest.fixture
def external(database, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", database.admin_url)
    monkeypatch.delenv("PGFRAUD_APP_DATABASE_URL", raising=False)
    return database


def test_token_list_and_get_tokens_show_utc_milliseconds(external, admin_conn, client):
    def run(*args):
        result = CliRunner().invoke(main, ["--actor", "ana", *args])
        assert result.exit_code == 0, result.output
        return result

    run("token", "add", "alice", "--role", "analyst")
    owner_secret = run("token", "add", "olga", "--role", "owner").stdout.strip()
    run("token", "revoke", "alice")
    # Known times with microseconds, and in a session on another time zone.
    admin_conn.execute("SET TIME ZONE 'America/New_York'")
    admin_conn.execute(
        "UPDATE api_tokens SET created_at = '2026-12-04 16:26:38.694828-05',"
        " revoked_at = CASE WHEN revoked_at IS NOT NULL"
        " THEN '2026-12-04 16:27:28.347934-05'::timestamptz END"
    )
    listed = run("token", "list", "--revoked")
    assert listed.stdout.splitlines() == [
        "alice  analyst  made by ana at 2026-12-04T21:26:38.694Z,"
        " revoked by ana at 2026-12-04T21:27:28.347Z",
        "olga  owner  made by ana at 2026-12-04T21:26:38.694Z",
    ]
    as_json = json.loads(run("token", "list", "--revoked", "--json").stdout)
    assert [(t["created_at"], t["revoked_at"]) for t in as_json] == [
        ("2026-12-04T21:26:38.694Z", "2026-12-04T21:27:28.347Z"),
        ("2026-12-04T21:26:38.694Z", None),
    ]
    answer = client.get("/tokens?revoked=true", headers={"Authorization": f"Bearer {owner_secret}"})
    assert answer.status_code == 200, answer.get_json()
    assert [(t["created_at"], t["revoked_at"]) for t in answer.get_json()["tokens"]] == [
        ("2026-12-04T21:26:38.694Z", "2026-12-04T21:27:28.347Z"),
        ("2026-12-04T21:26:38.694Z", None),
    ]
