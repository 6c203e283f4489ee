"""Only `pgfraud migrate` changes the schema, and it never deadlocks live
writers; reads (evaluate, backtests) take no lock a store waits on
(issue 15 fault 1, issue 20 item 2).

Every command used to apply the migrations and function files: DDL plus the
rule-change lock, so an `evaluate` during a `pgfraud load` aborted the load
with a deadlock, and `pgfraud migrate` under POST traffic cost stores a 503
(migrate took the rule-change lock, then CREATE OR REPLACE TRIGGER on
transactions; a store held the table and then asked for the shared
rule-change lock in its trigger). The interleavings are built step by step
here, each step waited for on pg_locks (pg_blocking_pids), never on sleeps.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import psycopg
import pytest
from click.testing import CliRunner

from pgfraud import db
from pgfraud.cli import main
from pgfraud.db.migrate import migrate, migration_files
from tests.test_alerts import assert_invariant, record

# How long a test waits for a condition before it gives up (a hang, not a
# timing assertion: each condition holds at once when the code is right).
PATIENCE_S = 120
TUNE_PERIODS = ["--train-from", "2024-01-01", "--train-to", "2024-02-01"]
TUNE_PERIODS += ["--valid-from", "2024-02-01", "--valid-to", "2024-03-01"]


def blocked_by(conn: psycopg.Connection, pid: int) -> list[int]:
    """Backends now waiting for a lock that backend ``pid`` holds."""
    return [
        row[0]
        for row in conn.execute(
            "SELECT a.pid FROM pg_stat_activity AS a WHERE %s = ANY (pg_blocking_pids(a.pid))",
            (pid,),
        )
    ]


def run_in_thread(work: Callable[[], object]) -> tuple[threading.Thread, list]:
    """Start ``work`` in a thread; its result (or exception) lands in the list."""
    out: list = []

    def target() -> None:
        try:
            out.append(work())
        except Exception as exc:  # noqa: BLE001 - the assertions show it
            out.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, out


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + PATIENCE_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for: {what}")
        time.sleep(0.02)


def open_store(app_url: str, tid: int, account: int = 1) -> psycopg.Connection:
    """A store in progress, as the service's login: one row stored by
    store_transactions (its trigger scored it: the transactions table and the
    shared rule-change lock are held) and not committed yet."""
    conn = db.connect(app_url)
    db.store_transactions(conn, [record(tid, account, tid, "20000.00")])
    return conn


@pytest.fixture
def external(monkeypatch, database):
    monkeypatch.setenv("DATABASE_URL", database.admin_url)
    monkeypatch.setenv("PGFRAUD_APP_DATABASE_URL", database.app_url)
    return database


# -- only migrate changes the schema ---------------------------------------------


def test_commands_refuse_a_schema_that_is_behind_and_change_nothing(external, tmp_path):
    last = migration_files()[-1].name.removesuffix(".sql")
    csv = tmp_path / "t.csv"
    csv.write_text("account_id,transaction_id,amount,timestamp\n1,1,5.00,2024-01-01T00:00:00Z\n")
    commands = [
        ["evaluate"],
        ["alerts"],
        ["load", str(csv)],
        ["review", "1", "--status", "false_positive"],
        ["rule", "disable", "velocity"],
        ["tune", *TUNE_PERIODS, "--max-alerts-per-1000", "5"],
        ["generate", "--to", "copy", "--num-transactions", "10", "--accounts", "2"],
        ["token", "add", "alice", "--role", "analyst"],
        ["token", "list"],
        ["audit"],
        # The decision commands (issue 17) migrated first, as tune once did.
        ["decisions"],
        ["policy", "show"],
        ["policy", "set", "review=40"],
        ["rule", "score", "velocity", "90"],
        ["list", "create", "risky", "--subject", "merchant", "--kind", "block"],
        ["list", "show"],
    ]
    with db.connect(external.admin_url, autocommit=True) as conn:
        conn.execute("DELETE FROM schema_migrations WHERE version = %s", (last,))
        for command in commands:
            result = CliRunner().invoke(main, command)
            assert result.exit_code == 2, (command, result.output)
            assert result.stderr == (
                f"error: the database's schema is behind this pgfraud (1 migration pending "
                f"({last})): run `pgfraud migrate`\n"
            ), command
        # Nothing was applied, stored or changed.
        assert conn.execute(
            "SELECT count(*) FROM schema_migrations WHERE version = %s", (last,)
        ).fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM transactions").fetchone() == (0,)
        assert conn.execute("SELECT enabled FROM rules WHERE rule_id = 'velocity'").fetchone() == (
            True,
        )
        assert conn.execute("SELECT count(*) FROM decision_policies").fetchone() == (1,)
        assert conn.execute("SELECT count(*) FROM lists").fetchone() == (0,)

        # A function file changed (as after an upgrade without a migration).
        conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (last,))
        conn.execute(
            "UPDATE schema_code SET file_digests = file_digests - 'is_fraud.sql'"
            ' || \'{"is_fraud.sql": "0"}\''
        )
        result = CliRunner().invoke(main, ["evaluate"])
        assert result.exit_code == 2
        assert result.stderr == (
            "error: the database's schema is behind this pgfraud (1 function file not applied "
            "(is_fraud.sql)): run `pgfraud migrate`\n"
        )
        # A function changed by hand.
        migrated = CliRunner().invoke(main, ["migrate"])
        assert (migrated.exit_code, migrated.output) == (
            0,
            "migrated: no migration pending; 1 function file applied (is_fraud.sql)\n",
        )
        conn.execute("ALTER FUNCTION is_fraud(bigint) SET work_mem = '8MB'")
        result = CliRunner().invoke(main, ["alerts"])
        assert result.exit_code == 2
        assert result.stderr == (
            "error: the database's schema is behind this pgfraud (the database's functions "
            "differ from what migrate applied): run `pgfraud migrate`\n"
        )
        assert CliRunner().invoke(main, ["migrate"]).exit_code == 0
        # Up to date: the commands work.
        assert CliRunner().invoke(main, ["load", str(csv)]).exit_code == 0
        assert CliRunner().invoke(main, ["alerts"]).exit_code == 0


def test_evaluate_during_a_load_waits_for_nothing(external):
    """`pgfraud evaluate` while a load is in progress (rows stored and scored,
    not committed): it answers without waiting for the load, and the load
    commits. It used to migrate first: blocked on the load (and, in the
    other order, deadlocked it)."""
    with db.connect(external.admin_url, autocommit=True) as watcher:
        load = open_store(external.app_url, 1)
        try:
            load_pid = load.info.backend_pid
            thread, out = run_in_thread(lambda: CliRunner().invoke(main, ["evaluate"]))
            while thread.is_alive():
                assert blocked_by(watcher, load_pid) == [], "evaluate waits for the load"
                thread.join(0.02)
            assert out[0].exit_code == 0, out[0].output
            load.commit()
        finally:
            load.close()
        assert watcher.execute("SELECT count(*) FROM transactions").fetchone() == (1,)


def test_migrate_with_nothing_pending_waits_for_no_store(database):
    """A deploy's migrate of a release already applied (make seed, a restart)
    only reads: it returns while a store is in progress."""
    with db.connect(database.admin_url, autocommit=True) as watcher:
        store = open_store(database.app_url, 1)
        try:
            pid = store.info.backend_pid

            def again() -> list[str]:
                with db.connect(database.admin_url) as conn:
                    return migrate(conn)

            thread, out = run_in_thread(again)
            while thread.is_alive():
                assert blocked_by(watcher, pid) == [], "migrate waits for the store"
                thread.join(0.02)
            assert out == [[]]
            store.commit()
        finally:
            store.close()


def test_migrate_that_changes_functions_does_not_deadlock_a_store(database):
    """The inversion, step by step: a store has the transactions table (its
    first statement) when migrate starts; migrate waits for it; the store's
    next statement scores (shared rule-change lock) and commits. Migrate used
    to hold the rule-change lock by then: a deadlock, and one of them failed."""
    with db.connect(database.admin_url, autocommit=True) as watcher:
        watcher.execute("UPDATE schema_code SET file_digests = '{}'")  # functions to apply
        store = db.connect(database.app_url)
        try:
            # The table lock of a store, before its trigger's rule-change lock.
            store.execute("INSERT INTO transactions SELECT * FROM transactions WHERE false")
            pid = store.info.backend_pid

            def deploy() -> list[str]:
                with db.connect(database.admin_url) as conn:
                    return migrate(conn)

            thread, out = run_in_thread(deploy)
            wait_for(lambda: blocked_by(watcher, pid) != [], "migrate waits for the store")
            db.store_transactions(store, [record(1, 1, 1, "20000.00")])
            store.commit()
        finally:
            store.close()
        thread.join(PATIENCE_S)
        assert out == [[]]
        assert watcher.execute("SELECT count(*) FROM alerts").fetchone() == (1,)  # large_amount
        assert watcher.execute("SELECT file_digests <> '{}' FROM schema_code").fetchone() == (True,)


def test_migrate_under_concurrent_stores_loses_nothing(database):
    """Several clients store (as POST /store_data does) while migrate runs
    repeatedly, every other time with function files to apply (and so a
    re-score of the history): no store fails, every row is stored once, and
    the alerts equal the rules computed from scratch."""
    clients, batch = 4, 5
    stop = threading.Event()
    migrations_done = threading.Event()
    failures: list[BaseException] = []
    stored: list[int] = []

    def client(n: int) -> None:
        account = 100 + n
        try:
            with db.connect(database.app_url) as conn:
                conn.execute("SET statement_timeout = '10s'")  # the service's
                tid = n * 1_000_000
                while not stop.is_set():
                    rows = [
                        record(tid + i, account, tid + i, "20000.00" if i == 0 else "10.00")
                        for i in range(batch)
                    ]
                    db.store_transactions(conn, rows)
                    conn.commit()
                    stored.append(batch)
                    tid += batch
                    if migrations_done.is_set():
                        return  # a batch stored after the last migrate
        except BaseException as exc:  # noqa: BLE001 - the assertion shows it
            failures.append(exc)

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(clients)]
    for t in threads:
        t.start()
    try:
        with db.connect(database.admin_url) as conn:
            for round_ in range(6):
                wanted = clients * (round_ + 1)  # a batch each since the last migrate
                wait_for(lambda n=wanted: len(stored) >= n or bool(failures), "stores")
                if round_ % 2 == 0:
                    conn.execute("UPDATE schema_code SET file_digests = '{}'")
                    conn.commit()
                assert migrate(conn) == []
                conn.commit()
        migrations_done.set()
        for t in threads:
            t.join(PATIENCE_S)
    finally:
        stop.set()
    assert failures == []
    with db.connect(database.admin_url) as conn:
        assert conn.execute("SELECT count(*) FROM transactions").fetchone() == (sum(stored),)
        assert_invariant(conn, [100 + n for n in range(clients)])


# -- a backtest holds no lock that stores wait on ------------------------------------


def test_a_backtest_in_progress_holds_only_plain_read_locks(database, client):
    """A backtest (live rules, candidate parameters, a user's rule), left open
    in its database transaction as a slow one would be: it holds no advisory
    lock and no table lock but ACCESS SHARE, and a store completes meanwhile."""
    with db.connect(database.admin_url, autocommit=True) as admin:
        db.add_rule(admin, "big_one", "amount > 100", None, True)
        for tid in range(1, 4):
            admin.execute(
                "INSERT INTO transactions VALUES (%s, 7, %s::timestamptz, 500.00)",
                (tid, f"2024-01-0{tid}Z"),
            )
        with db.connect(database.app_url) as backtest:
            for rules in (None, {"velocity": {"max_transactions": 1}, "big_one": {}}):
                db.backtest_rules(backtest, rules, None, None)
            pid = backtest.info.backend_pid
            locks = admin.execute(
                "SELECT DISTINCT l.locktype, l.mode FROM pg_locks AS l"
                " WHERE l.pid = %s AND l.locktype NOT IN ('virtualxid', 'transactionid')"
                " ORDER BY 1, 2",
                (pid,),
            ).fetchall()
            assert locks == [("relation", "AccessShareLock")]
            response = client.post(
                "/store_data",
                json={
                    "account_id": 7,
                    "transaction_id": 9,
                    "timestamp": "2024-01-09T00:00:00Z",
                    "amount": "20000.00",
                },
            )
            assert response.status_code in (200, 201), response.get_json()
            assert blocked_by(admin, pid) == []
            backtest.rollback()
        assert admin.execute("SELECT count(*) FROM transactions").fetchone() == (4,)
