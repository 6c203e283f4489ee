"""Actors (issue 18, part 1): named tokens with roles over HTTP, the single
PGFRAUD_API_TOKEN as the owner named default, every write recording its
actor, tokens made and revoked over HTTP, and GET /audit."""

from __future__ import annotations

import json
import os

import pytest
import requests

from pgfraud import db
from pgfraud.service import auth

OWNER_TOKEN = "the-owner-token-for-tests"


def _bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def _add(database, name: str, role: str) -> str:
    """A named token made as `pgfraud token add` makes it; returns its secret."""
    secret = auth.new_secret()
    with db.connect(database.admin_url) as conn:
        db.add_api_token(conn, name, role, auth.digest(secret), "setup")
        conn.commit()
    return secret


@pytest.fixture
def named(app, database):
    """The app with tokens read on every request (TOKEN_CACHE_S 0), and a
    stored transaction 1 of account 7."""
    app.config["TOKEN_CACHE_S"] = 0
    client = app.test_client()
    stored = client.get(
        "/store_data?account_id=7&transaction_id=1&timestamp=2024-01-01T00:00:00Z&amount=20000"
    )
    assert stored.status_code == 201  # open: no token exists yet
    return client


def test_two_analysts_review_under_their_own_names(named, database):
    alice = _add(database, "alice", "analyst")
    bob = _add(database, "bob", "analyst")
    # Now that tokens exist, the service asks for one.
    assert named.get("/rules").status_code == 401
    for secret, status in ((alice, "confirmed_fraud"), (bob, "false_positive")):
        answer = named.post(
            "/transactions/1/review", json={"status": status}, headers=_bearer(secret)
        )
        assert answer.status_code == 201, answer.get_json()
    reviews = named.get("/accounts/7/reviews", headers=_bearer(alice)).get_json()["reviews"]
    assert [r["reviewer"] for r in reviews] == ["bob", "alice"]
    entries = named.get("/audit?object_kind=review", headers=_bearer(bob)).get_json()["entries"]
    assert [(e["actor"], e["object_key"]) for e in entries] == [("bob", "1"), ("alice", "1")]
    # A named token reviews only as itself.
    other = named.post(
        "/transactions/1/review",
        json={"status": "false_positive", "reviewer": "carol"},
        headers=_bearer(alice),
    )
    assert other.status_code == 400
    assert other.get_json()["error"]["field"] == "reviewer"


def test_an_analyst_may_not_change_what_only_an_owner_may(named, database):
    alice = _add(database, "alice", "analyst")
    carol = _add(database, "carol", "owner")
    for method, path, body in (
        ("patch", "/rules", {"velocity": {"enabled": False}}),
        ("put", "/policy", {"review_threshold": 40}),
        ("post", "/lists", {"list_name": "x", "subject": "account", "kind": "block"}),
        ("post", "/tokens", {"token_name": "dave", "role": "owner"}),
        ("get", "/tokens", None),
    ):
        answer = named.open(path, method=method.upper(), json=body, headers=_bearer(alice))
        assert answer.status_code == 403, path
        message = answer.get_json()["error"]["message"]
        assert "needs an owner token" in message and "alice" in message and "analyst" in message
    changed = named.patch(
        "/rules",
        json={"large_amount": {"parameters": {"threshold": 30000}}},
        headers=_bearer(carol),
    )
    assert changed.status_code == 200
    (entry,) = named.get("/audit?object_kind=rule", headers=_bearer(alice)).get_json()["entries"]
    assert entry["actor"] == "carol"
    assert entry["before"]["parameters"]["threshold"] == 10000
    assert entry["after"]["parameters"]["threshold"] == 30000
    # The 20000 transaction no longer reaches the threshold: its alert went.
    assert (entry["alerts_added"], entry["alerts_removed"]) == (0, 1)


def test_unknown_and_revoked_tokens_get_401(named, database):
    alice = _add(database, "alice", "analyst")
    assert named.get("/rules", headers=_bearer("pgf_not-a-token")).status_code == 401
    assert named.get("/rules", headers=_bearer(alice)).status_code == 200
    with db.connect(database.admin_url) as conn:
        db.revoke_api_token(conn, "alice", "setup")
        conn.commit()
    answer = named.get("/rules", headers=_bearer(alice))
    assert answer.status_code == 401
    assert "revoked" in answer.get_json()["error"]["message"]


def test_the_single_api_token_is_the_owner_named_default(named, database):
    named.application.config["API_TOKEN"] = OWNER_TOKEN
    answer = named.post(
        "/transactions/1/review", json={"status": "false_positive"}, headers=_bearer(OWNER_TOKEN)
    )
    assert answer.status_code == 201
    assert answer.get_json()["reviewer"] == "default"
    # It may still name another reviewer (the one shared token's old use).
    answer = named.post(
        "/transactions/1/review",
        json={"status": "false_positive", "reviewer": "desk 4"},
        headers=_bearer(OWNER_TOKEN),
    )
    assert answer.get_json()["reviewer"] == "desk 4"
    assert (
        named.put(
            "/policy", json={"review_threshold": 40}, headers=_bearer(OWNER_TOKEN)
        ).status_code
        == 200
    )
    (entry,) = named.get("/audit?object_kind=policy", headers=_bearer(OWNER_TOKEN)).get_json()[
        "entries"
    ]
    assert entry["actor"] == "default"


def test_tokens_over_http_show_the_secret_once_and_refuse_bad_input(named, database):
    carol = _add(database, "carol", "owner")
    made = named.post("/tokens", json={"token_name": "erin", "role": "analyst"},
                      headers=_bearer(carol))  # fmt: skip
    assert made.status_code == 201
    secret = made.get_json()["secret"]
    assert made.get_json()["created_by"] == "carol" and made.get_json()["role"] == "analyst"
    assert named.get("/alerts", headers=_bearer(secret)).status_code == 200
    listed = named.get("/tokens", headers=_bearer(carol))
    assert [t["token_name"] for t in listed.get_json()["tokens"]] == ["carol", "erin"]
    assert secret not in listed.get_data(as_text=True)
    assert "secret" not in listed.get_data(as_text=True)
    for body, field in (
        ({"token_name": "erin", "role": "analyst"}, "token_name"),  # in use
        ({"token_name": "default", "role": "owner"}, "token_name"),
        ({"token_name": "Bad Name", "role": "owner"}, "token_name"),
        ({"token_name": "frank", "role": "admin"}, "role"),
    ):
        answer = named.post("/tokens", json=body, headers=_bearer(carol))
        assert answer.status_code == 400, body
        assert answer.get_json()["error"]["field"] == field, body
    revoked = named.delete("/tokens/erin", headers=_bearer(carol))
    assert revoked.status_code == 200 and revoked.get_json()["revoked_by"] == "carol"
    assert named.get("/alerts", headers=_bearer(secret)).status_code == 401
    again = named.delete("/tokens/erin", headers=_bearer(carol))
    assert again.status_code == 400 and again.get_json()["error"]["field"] == "token_name"
    kinds = named.get("/audit?object_kind=token&actor=carol", headers=_bearer(carol)).get_json()
    assert [e["action"] for e in kinds["entries"]] == ["update", "insert"]
    assert secret not in str(kinds)


def test_a_session_cookie_names_its_token_and_ends_with_it(named, database):
    alice = _add(database, "alice", "analyst")
    assert named.post("/session", headers=_bearer(alice)).status_code == 204
    page = named.get("/ui/alerts", headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert 'data-actor="alice"' in page.get_data(as_text=True)
    with db.connect(database.admin_url) as conn:
        db.revoke_api_token(conn, "alice", "setup")
        conn.commit()
    assert named.get("/ui/alerts", headers={"Accept": "text/html"}).status_code == 401


def test_audit_pages_and_refuses_bad_parameters(named, database):
    carol = _add(database, "carol", "owner")
    for threshold in (40, 41, 42):
        named.put("/policy", json={"review_threshold": threshold}, headers=_bearer(carol))
    first = named.get("/audit?object_kind=policy&limit=2", headers=_bearer(carol)).get_json()
    assert first["count"] == 2
    assert [e["after"]["review_threshold"] for e in first["entries"]] == [42, 41]
    rest = named.get(first["next"], headers=_bearer(carol)).get_json()
    assert [e["after"]["review_threshold"] for e in rest["entries"]] == [40]
    assert rest["next"] is None
    assert first["entries"][0]["at"].endswith("Z")
    for query, field in (
        ("limit=0", "limit"),
        ("object_kind=Rule", "object_kind"),
        ("object_kind=nosuch", "object_kind"),  # an empty answer read as "no changes"
        ("from=2025-01-01T00:00:00Z&to=2024-01-01T00:00:00Z", "to"),
        ("before=x", "before"),
        ("from=yesterday", "from"),
        ("colour=red", "colour"),
    ):
        answer = named.get(f"/audit?{query}", headers=_bearer(carol))
        assert answer.status_code == 400, query
        assert answer.get_json()["error"]["field"] == field, query


# -- the CLI: pgfraud token, --actor, pgfraud audit -----------------------------


@pytest.fixture
def external(database, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", database.admin_url)
    monkeypatch.delenv("PGFRAUD_APP_DATABASE_URL", raising=False)
    monkeypatch.delenv("PGFRAUD_ACTOR", raising=False)
    return database


def cli(*args):
    from click.testing import CliRunner

    from pgfraud.cli import main

    return CliRunner().invoke(main, list(args))


def test_token_commands_show_the_secret_once_and_store_its_digest(external, app):
    made = cli("--actor", "lead", "token", "add", "alice", "--role", "analyst")
    assert made.exit_code == 0, made.output
    secret = made.stdout.strip()
    assert secret.startswith("pgf_") and len(secret) == 47
    assert "token alice (analyst) made by lead" in made.stderr
    with db.connect(external.admin_url) as conn:
        stored = conn.execute("SELECT secret_sha256 FROM api_tokens").fetchone()[0]
    assert bytes(stored) == auth.digest(secret)
    listed = cli("token", "list")
    assert listed.exit_code == 0
    assert listed.stdout.startswith("alice  analyst  made by lead at ")
    assert secret not in listed.stdout
    # The token lets alice in, and her review is hers.
    app.config["TOKEN_CACHE_S"] = 0
    client = app.test_client()
    assert client.get("/rules").status_code == 401
    assert client.get("/rules", headers=_bearer(secret)).status_code == 200
    revoked = cli("--actor", "lead", "token", "revoke", "alice")
    assert revoked.exit_code == 0 and revoked.stdout == "token alice revoked by lead\n"
    assert client.get("/rules", headers=_bearer(secret)).status_code == 401
    assert cli("token", "list").stdout == ""
    assert "revoked by lead" in cli("token", "list", "--revoked").stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("token", "add", "alice", "--role", "admin"),
         "error: role: --role must be analyst or owner (given: 'admin')\n"),
        (("token", "add", "alice"), "error: role: --role must be analyst or owner (given: none)\n"),
        (("token", "add", "Alice Smith", "--role", "owner"),
         "error: token_name must start with a letter and have at most 63 of a-z,"
         " 0-9, _, . and -\n"),
        (("token", "add", "default", "--role", "owner"),
         "error: token_name default is the name of PGFRAUD_API_TOKEN; choose another\n"),
        (("token", "revoke", "nobody"),
         "error: token_name: no token named nobody (that is not revoked already)\n"),
        (("audit", "--kind", "Rule"),
         "error: --kind: object_kind must be one of rule, shadow_rule, policy, list,"
         " list_entry, review, token, case, case_alert\n"),
        (("audit", "--kind", "nosuch"),
         "error: --kind: object_kind must be one of rule, shadow_rule, policy, list,"
         " list_entry, review, token, case, case_alert\n"),
        (("audit", "--from", "yesterday"), None),
    ],
)  # fmt: skip
def test_bad_token_and_audit_input_is_one_line_exit_2(external, args, message):
    result = cli(*args)
    assert result.exit_code == 2, result.output
    assert len(result.stderr.splitlines()) == 1
    if message is not None:
        assert result.stderr == message
    assert cli("token", "list", "--revoked").stdout == ""


def test_a_duplicate_name_is_refused_and_nothing_changes(external):
    assert cli("token", "add", "alice", "--role", "analyst").exit_code == 0
    again = cli("token", "add", "alice", "--role", "owner")
    assert again.exit_code == 2
    assert again.stderr == (
        "error: token_name: a token named alice exists; revoke it first to give the name a new"
        " token\n"
    )
    assert again.stdout == ""  # no secret printed for a token not made
    assert len(json.loads(cli("token", "list", "--json").stdout)) == 1


def test_cli_writes_name_the_actor_and_audit_shows_them(external, app_conn, monkeypatch):
    app_conn.execute(
        'SELECT store_transactions(\'[{"account_id": 7, "transaction_id": 1,'
        ' "timestamp": "2024-01-01T00:00:00Z", "amount": "20000"}]\')'
    )
    app_conn.commit()
    reviewed = cli("--actor", "alice", "review", "1", "--status", "confirmed_fraud")
    assert reviewed.exit_code == 0, reviewed.output
    assert reviewed.stdout.endswith("confirmed_fraud by alice\n")
    monkeypatch.setenv("PGFRAUD_ACTOR", "bob")
    assert cli("rule", "set", "large_amount", "threshold=30000").exit_code == 0
    monkeypatch.delenv("PGFRAUD_ACTOR")
    # Without --actor: the login name of whoever runs the command.
    import getpass

    assert cli("policy", "set", "review=40").exit_code == 0
    shown = cli("audit")
    assert shown.exit_code == 0, shown.output
    lines = shown.stdout.splitlines()
    assert len(lines) == 4
    assert "  alice  insert review 1" in lines[0]
    assert "  bob  update rule large_amount  alerts +0 -1  parameters: " in lines[1]
    assert '{"threshold": 10000} -> {"threshold": 30000}' in lines[1]
    # The change left account 7's open case with no alert raised: closed as
    # withdrawn, by bob, in the same change.
    assert "  bob  update case " in lines[2]
    assert 'resolution: null -> "withdrawn"' in lines[2]
    assert f"  {getpass.getuser()}  insert policy 2" in lines[3]
    only_bob = cli("audit", "--actor", "bob", "--kind", "rule", "--json")
    (entry,) = [json.loads(line) for line in only_bob.stdout.splitlines()]
    assert (entry["object_key"], entry["alerts_added"], entry["alerts_removed"]) == (
        "large_amount",
        0,
        1,
    )
    assert entry["at"].endswith("Z")
    assert cli("audit", "--kind", "token").stdout == ""


def test_run_listens_off_loopback_with_a_named_token_only(database):
    """`pgfraud run --host 0.0.0.0` needs a token: PGFRAUD_API_TOKEN, or (now)
    a live named token in the database; without either it is refused."""
    import subprocess

    from tests.test_run import PGFRAUD, free_port, interrupt, sigint_as_from_a_terminal, wait_for

    env = {k: v for k, v in os.environ.items() if not k.startswith("PGFRAUD_")}
    env.update(
        DATABASE_URL=database.admin_url,
        PGFRAUD_APP_DATABASE_URL=database.app_url,
        PORT=str(free_port()),
        PGFRAUD_SEED_TRANSACTIONS="0",
        PGFRAUD_WORKERS="1",
    )
    refused = subprocess.run(
        [PGFRAUD, "run", "--host", "0.0.0.0"], env=env, capture_output=True, text=True, timeout=60
    )
    assert refused.returncode == 2
    assert refused.stderr.startswith(
        "error: refusing to listen on 0.0.0.0 without PGFRAUD_API_TOKEN or a named token"
    )
    secret = _add(database, "alice", "analyst")
    proc = subprocess.Popen(
        [PGFRAUD, "run", "--host", "0.0.0.0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=sigint_as_from_a_terminal,
    )
    try:
        base = f"http://127.0.0.1:{env['PORT']}"
        assert wait_for(f"{base}/health", proc).status_code == 200
        assert requests.get(f"{base}/rules", timeout=10).status_code == 401
        assert requests.get(f"{base}/rules", headers=_bearer(secret), timeout=10).status_code == 200
    finally:
        interrupt(proc)


def test_a_quiet_alert_stream_ends_within_a_probe_of_its_token_revoked(named, database, app):
    # Break-it tester (round 10, F2): with no new alerts, /alerts/stream looked
    # at its token only when it read the feed again (at the next heartbeat,
    # 15 s), so it went on 12 s after the token was revoked. It now looks at
    # each blank line it writes (one a second, FEED_PROBE_S). No heartbeat
    # read comes during this test.
    app.config["FEED_HEARTBEAT_S"] = 3600
    alice = _add(database, "alice", "analyst")
    response = named.get("/alerts/stream", headers=_bearer(alice), buffered=False)
    assert response.status_code == 200
    chunks = iter(response.response)
    assert b": connected" in next(chunks)
    # Revoked once the stream waits: after its first blank line.
    assert next(chunks) in (b"\n", "\n")
    with db.connect(database.admin_url) as conn:
        db.revoke_api_token(conn, "alice", "setup")
        conn.commit()
    seen = b""
    blank_lines = 0
    for chunk in chunks:
        chunk = chunk if isinstance(chunk, bytes) else chunk.encode()
        seen += chunk
        if b"event: revoked" in seen or blank_lines > 5:
            break
        blank_lines += chunk == b"\n"
    assert b"event: revoked\ndata: the token was revoked; the stream ends\n\n" in seen, (
        f"still streaming after {blank_lines} blank lines"
    )
    assert blank_lines <= 2
    assert next(chunks, None) is None  # the stream has ended
    response.close()


@pytest.mark.parametrize("path", ["/decisions/stream", "/alerts/stream"])
def test_an_open_stream_ends_when_its_token_is_revoked(named, database, path):
    # Break-it tester: a stream opened with a token went on delivering
    # decisions and alerts after the token was revoked.
    alice = _add(database, "alice", "analyst")
    response = named.get(path, headers=_bearer(alice), buffered=False)
    assert response.status_code == 200
    chunks = iter(response.response)
    assert b": connected" in next(chunks)
    with db.connect(database.admin_url) as conn:
        db.revoke_api_token(conn, "alice", "setup")
        conn.commit()
    seen = b""
    for _, chunk in zip(range(200), chunks, strict=False):  # blank lines every probe
        seen += chunk if isinstance(chunk, bytes) else chunk.encode()
        if b"event: revoked" in seen:
            break
    assert b"event: revoked\ndata: the token was revoked; the stream ends\n\n" in seen
    assert next(chunks, None) is None  # the stream has ended
    response.close()
