"""What a pooled connection keeps between requests (issue 17, Speed): GET
/is_fraud runs its prepared statement on a cursor the connection keeps, so
psycopg builds its adapters once per connection rather than once per request.
What must not be kept: a connection whose backend was ended is replaced and
the next request succeeds, and one request's actor (``pgfraud.actor``) never
reaches the next request on the same connection."""

from __future__ import annotations

import time
from decimal import Decimal

import psycopg
import pytest

from pgfraud import db
from pgfraud.db.server import APP_USER
from pgfraud.service import auth, create_app
from pgfraud.service.database import close_pool, get_pool
from pgfraud.wire import from_epoch_ms

EVENT_1 = (
    '{"transaction_id":2,"account_id":7,"timestamp":"2024-01-01T00:00:10.000Z",'
    '"amount":"20000.00","rule_id":"large_amount","observed":"20000.00",'
    '"threshold":"10000","reason":"amount 20000.00 is at or above the limit 10000"}'
)


@pytest.fixture
def one_connection_app(database):
    """The app with a pool of one connection (every request on the same one),
    tokens read on every request, and account 7: transaction 1 (10.00, no
    alert) and transaction 2 (20,000.00 ten seconds later: large_amount)."""
    app = create_app(
        {"TESTING": True, "DATABASE_URL": database.app_url, "POOL_MAX_SIZE": 1, "TOKEN_CACHE_S": 0}
    )
    with db.connect(database.app_url) as conn:
        db.store_transactions(
            conn,
            [
                {
                    "transaction_id": 1,
                    "account_id": 7,
                    "timestamp": from_epoch_ms(1704067200000),
                    "amount": Decimal("10.00"),
                },
                {
                    "transaction_id": 2,
                    "account_id": 7,
                    "timestamp": from_epoch_ms(1704067210000),
                    "amount": Decimal("20000.00"),
                },
            ],
        )
        conn.commit()
    yield app
    close_pool(app)


def _backend_pids(database) -> list[int]:
    with psycopg.connect(database.admin_url, autocommit=True) as conn:
        return [
            r[0]
            for r in conn.execute(
                "SELECT pid FROM pg_stat_activity"
                " WHERE usename = %s AND datname = current_database()",
                (APP_USER,),
            )
        ]


def _wait_until(condition, what: str) -> None:
    """Wait for ``condition()`` (bounded by a count, not timed)."""
    for _ in range(2000):
        if condition():
            return
        time.sleep(0.01)
    raise AssertionError(f"never: {what}")


def test_is_fraud_runs_on_the_connections_own_cursor(one_connection_app, monkeypatch):
    client = one_connection_app.test_client()
    made = []
    original = psycopg.Connection.cursor

    def counted(self, *args, **kwargs):
        made.append(args)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(psycopg.Connection, "cursor", counted)
    expected = f'{{"account_id":7,"count":1,"events":[{EVENT_1}],"next":null}}\n'
    first = client.get("/is_fraud/7")
    assert first.status_code == 200
    assert first.get_data(as_text=True) == expected
    assert first.headers["Content-Type"] == "application/json"
    made.clear()  # the first request made the connection's cursor (and the token read's)
    for _ in range(3):
        again = client.get("/is_fraud/7/")
        assert again.get_data(as_text=True) == expected
    # Only the token reads (TOKEN_CACHE_S 0) make cursors now: one per request.
    assert len(made) == 3
    # The cursor stays with the connection.
    with one_connection_app.app_context(), get_pool().connection() as conn:
        assert getattr(conn, db._EVENTS_CURSOR).connection is conn


def test_a_terminated_backend_is_replaced_and_the_next_request_succeeds(
    one_connection_app, database
):
    client = one_connection_app.test_client()
    first = client.get("/is_fraud/7")
    assert first.status_code == 200
    (before,) = _backend_pids(database)
    # As an administrator (or an idle timeout) would end it.
    with psycopg.connect(database.admin_url, autocommit=True) as conn:
        assert conn.execute("SELECT pg_terminate_backend(%s)", (before,)).fetchone()[0]
    _wait_until(lambda: before not in _backend_pids(database), "the backend ended")
    again = client.get("/is_fraud/7")
    assert again.status_code == 200, again.get_json()
    assert again.get_data() == first.get_data()
    (after,) = _backend_pids(database)
    assert after != before
    # And a write after the next termination.
    with psycopg.connect(database.admin_url, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(%s)", (after,))
    _wait_until(lambda: after not in _backend_pids(database), "the backend ended")
    stored = client.post(
        "/store_data",
        json={"account_id": 7, "transaction_id": 3, "timestamp": 1704067220000, "amount": "5"},
    )
    assert stored.status_code == 201, stored.get_json()
    assert stored.get_json()["status"] == "stored"


def test_one_requests_actor_never_reaches_the_next_on_the_same_connection(
    one_connection_app, database
):
    client = one_connection_app.test_client()
    alice = auth.new_secret()
    with db.connect(database.admin_url) as conn:
        db.add_api_token(conn, "alice", "analyst", auth.digest(alice), "setup")
        conn.commit()
    answer = client.post(
        "/transactions/2/review",
        json={"status": "confirmed_fraud"},
        headers={"Authorization": f"Bearer {alice}"},
    )
    assert answer.status_code == 201, answer.get_json()
    assert answer.get_json()["reviewer"] == "alice"
    # The pool's one connection served alice's write; what it holds now is
    # what the next request starts with.
    (pid,) = _backend_pids(database)
    with one_connection_app.app_context(), get_pool().connection() as conn:
        setting, actor, backend = conn.execute(
            "SELECT current_setting('pgfraud.actor', true), current_actor(), pg_backend_pid()"
        ).fetchone()
    assert backend == pid
    assert setting in (None, "")
    assert actor == APP_USER
