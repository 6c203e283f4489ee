"""Migrations: named by the pattern, applied once in order under a lock; functions re-applied."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import psycopg
import pytest

from pgfraud import db
from pgfraud.db.migrate import MIGRATION_NAME, function_files, migrate, migration_files

ROOT = Path(__file__).resolve().parent.parent


def test_migration_file_names_follow_the_pattern():
    names = sorted(p.name for p in (ROOT / "db" / "migrations").iterdir())
    assert names == [f.name for f in migration_files()]
    assert all(MIGRATION_NAME.match(n) for n in names)
    # Numbers are unique and start at 0001; parallel work takes numbers from
    # ranges handed out beforehand (0080-0089 ...), so gaps are allowed.
    numbers = [int(n[:4]) for n in names]
    assert numbers[0] == 1
    assert len(set(numbers)) == len(numbers)


def test_every_function_file_has_a_header_and_a_comment():
    for f in function_files():
        text = f.read_text()
        assert text.startswith("-- "), f.name
        assert "COMMENT ON FUNCTION" in text, f.name
        assert "REVOKE ALL ON FUNCTION" in text, f.name


def test_migrate_again_applies_nothing_and_keeps_data(database):
    with db.connect(database.admin_url) as conn:
        conn.execute("INSERT INTO transactions VALUES (1, 1, '2024-01-01Z', 5.00)")
        conn.commit()
        assert migrate(conn) == []
        conn.commit()
        assert conn.execute("SELECT count(*) FROM transactions").fetchone()[0] == 1
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY 1")]
    assert versions == [f.name.removesuffix(".sql") for f in migration_files()]


def test_two_migrators_on_an_empty_database_do_not_race(server_admin_url):
    name = "pgfraud_test_race"
    with psycopg.connect(server_admin_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")
    url = server_admin_url.rsplit("/", 1)[0] + f"/{name}"
    results: list[object] = []

    def run() -> None:
        try:
            with db.connect(url) as conn:
                results.append(migrate(conn))
                conn.commit()
        except Exception as exc:  # noqa: BLE001 - the assertion shows it
            results.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        applied = sorted(results, key=lambda r: len(r) if isinstance(r, list) else -1)
        assert applied[0] == []
        assert applied[1] == [f.name.removesuffix(".sql") for f in migration_files()]
    finally:
        with psycopg.connect(server_admin_url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.mark.parametrize(
    "values, constraint",
    [
        ("(1, 1, '2024-01-01Z', -0.01)", "transactions_amount_check"),
        ("(1, 1, '2024-01-01Z', 'NaN')", "transactions_amount_check"),
        ("(1, 1, '2024-01-01Z', 'Infinity')", "transactions_amount_check"),
        ("(1, 1, '2024-01-01Z', 12.345)", "transactions_amount_check"),
        ("(1, 1, '2024-01-01Z', 10000000000000)", "transactions_amount_check"),
        ("(1, 1, '2024-01-01 00:00:00.0005Z', 1)", "transactions_ts_check"),
        ("(1, -1, '2024-01-01Z', 1)", "transactions_account_id_check"),
        ("(-1, 1, '2024-01-01Z', 1)", "transactions_transaction_id_check"),
    ],
)
def test_table_constraints_refuse_bad_rows_from_any_path(admin_conn, values, constraint):
    with pytest.raises(psycopg.errors.CheckViolation) as info:
        admin_conn.execute(f"INSERT INTO transactions VALUES {values}")
    assert info.value.diag.constraint_name == constraint


def test_copy_is_refused_by_the_same_constraints(admin_conn):
    with pytest.raises(psycopg.errors.CheckViolation):
        with admin_conn.cursor().copy("COPY transactions FROM STDIN") as copy:
            copy.write_row((1, 1, "2024-01-01Z", "12.345", None))


def test_service_role_cannot_change_schema_or_delete(app_conn):
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        app_conn.execute("DELETE FROM transactions")
    app_conn.rollback()
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        app_conn.execute("UPDATE rules SET enabled = false")
    app_conn.rollback()
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        app_conn.execute("CREATE TABLE sneaky (x int)")
    app_conn.rollback()
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        app_conn.execute("SELECT set_rule('velocity', false)")
    app_conn.rollback()


def test_wheel_installs_one_namespace_with_the_sql(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True,
    )
    (wheel,) = tmp_path.glob("pgfraud-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.startswith("pgfraud-")}
    assert top == {"pgfraud"}
    assert "pgfraud/db/migrations/0001_create_transactions.sql" in names
    assert "pgfraud/db/functions/is_fraud.sql" in names
    assert "pgfraud/service/routes.py" in names


@pytest.mark.parametrize(
    "server_version_num, message",
    [
        (130014, "PostgreSQL 13.14 found; pgfraud needs PostgreSQL 14 or later"),
        (120000, "PostgreSQL 12.0 found; pgfraud needs PostgreSQL 14 or later"),
        (90624, "PostgreSQL 9.6.24 found; pgfraud needs PostgreSQL 14 or later"),
    ],
)
def test_servers_older_than_14_are_refused_in_one_line(server_version_num, message):
    from pgfraud.db.migrate import check_server_version
    from pgfraud.errors import ConfigurationError

    with pytest.raises(ConfigurationError) as info:
        check_server_version(server_version_num)
    assert str(info.value) == message


@pytest.mark.parametrize("server_version_num", [140000, 150004, 160002, 180000])
def test_servers_from_14_on_pass(server_version_num):
    from pgfraud.db.migrate import check_server_version

    assert check_server_version(server_version_num) is None


def test_the_test_server_passes_the_check(database):
    from pgfraud.db.migrate import MIN_SERVER_VERSION_NUM

    with db.connect(database.admin_url) as conn:
        version = conn.execute("SELECT current_setting('server_version_num')::int").fetchone()[0]
        assert conn.info.server_version == version >= MIN_SERVER_VERSION_NUM
        assert migrate(conn) == []


def test_migrate_validates_the_stored_rules_with_the_new_functions(database):
    from pgfraud.db.migrate import MigrationError

    with db.connect(database.admin_url) as conn:
        # Stored before validation existed (or by a migration that bypassed the trigger).
        conn.execute("SET pgfraud.migrating = 'on'")
        conn.execute(
            'UPDATE rules SET parameters = \'{"factor": 0.9, "min_history": 1e20}\''
            " WHERE rule_id = 'below_average'"
        )
        conn.execute("RESET pgfraud.migrating")
        # As after an upgrade: function files that migrate has not applied.
        conn.execute("UPDATE schema_code SET file_digests = '{}'")
        conn.commit()
        with pytest.raises(MigrationError) as info:
            migrate(conn)
        conn.rollback()
        assert str(info.value) == (
            "the rules table: parameter min_history of rule below_average must be an integer"
            " from 1 to 1000000; got 100000000000000000000"
        )
        conn.execute(
            'UPDATE rules SET parameters = \'{"factor": 0.9, "min_history": 2.0}\''
            " WHERE rule_id = 'below_average'"
        )
        conn.commit()
        assert migrate(conn) == []
        conn.commit()
        row = conn.execute(
            "SELECT parameters::text FROM rules WHERE rule_id = 'below_average'"
        ).fetchone()
    # window_days is optional: its default is written in.
    assert row == ('{"factor": 0.9, "min_history": 2, "window_days": 0}',)


def test_migrate_rescores_when_a_function_changed_and_only_then(database):
    """A release may change a rule's code without a migration: migrate then
    re-scores the stored history. A restart of the same release re-scores
    nothing. Shown with an alert the owner deleted: it stays gone after a
    migrate that changed nothing, and comes back after one that changed code."""
    alerts = "SELECT count(*) FROM alerts WHERE rule_id = 'large_amount'"
    with db.connect(database.admin_url) as conn:
        conn.execute("INSERT INTO transactions VALUES (7, 1, '2024-01-01Z', 20000.00)")
        conn.commit()
        assert conn.execute(alerts).fetchone()[0] == 1
        conn.execute("DELETE FROM alerts")
        conn.commit()
        assert migrate(conn) == []
        conn.commit()
        assert conn.execute(alerts).fetchone()[0] == 0
        # The installed code differs from the function files (as an older
        # release's would): migrate puts the files' code back and re-scores.
        conn.execute("ALTER FUNCTION is_fraud(bigint) SET work_mem = '8MB'")
        conn.commit()
        assert migrate(conn) == []
        conn.commit()
        assert conn.execute(alerts).fetchone()[0] == 1
        config = conn.execute(
            "SELECT proconfig FROM pg_proc WHERE oid = 'is_fraud(bigint)'::regprocedure"
        ).fetchone()[0]
    assert config is None


def test_a_second_migrator_waits_for_the_first_then_finds_nothing_to_do(database):
    # Two `pgfraud migrate` at once on the local server: both set the service
    # login's settings after the schema (ALTER ROLE ... SET), and one failed
    # with "tuple concurrently updated" (XX000, exit 1). prepare() now holds
    # the migrators' lock throughout: held here, as by a first migrator, a
    # second waits on it (before the fix it went on and set the role at once).
    from types import SimpleNamespace
    from urllib.parse import urlsplit

    from pgfraud.cli import prepare
    from pgfraud.config import Database
    from pgfraud.db.migrate import MIGRATION_LOCK_KEY

    local = Database(
        admin_url=database.admin_url,
        app_url=database.app_url,
        server=SimpleNamespace(app_password=urlsplit(database.app_url).password),
    )
    first = psycopg.connect(database.admin_url, autocommit=True)
    first.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
    outcome: list[object] = []
    second = threading.Thread(target=lambda: outcome.append(prepare(local)))
    second.start()
    try:
        waited = False
        for _ in range(6000):  # bounded by a count, not timed
            waited = first.execute(
                "SELECT count(*) > 0 FROM pg_stat_activity WHERE datname = current_database()"
                " AND wait_event_type = 'Lock' AND wait_event = 'advisory'"
            ).fetchone()[0]
            if waited or not second.is_alive():
                break
            time.sleep(0.01)
        assert waited, f"the second migrator did not wait: {outcome}"
        assert outcome == []
    finally:
        first.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))
        second.join(60)
        first.close()
    assert outcome == [[]]  # nothing pending: "migrated: already up to date"
