"""Defects break-it passes found, each fixed; each test failed before its fix
unless it says it guards something that held.

An earlier round (score_transactions reading the alerts, a rule change
re-scoring only that rule): the persisted alerts (and so score_transactions,
which reads them for live rules) drifted from what the rule code computes,
or a call failed that should not.

This round (SIGTERM in every command, quiet broken pipes, exact evaluate
parameters, migrate re-scoring on changed code, two API batches in flight):
signals that hung a run or left a local server running or broken, a NaN
parameter that became an internal error, a handler set from any thread,
and error wording.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from pgfraud import db

T0 = datetime(2024, 5, 1, tzinfo=UTC)


def store(conn, rows):
    """rows: (transaction_id, account_id, seconds after T0, amount text, merchant_id)."""
    db.store_transactions(
        conn,
        [
            {
                "transaction_id": tid,
                "account_id": account,
                "timestamp": T0 + timedelta(seconds=seconds),
                "amount": Decimal(amount),
                "merchant_id": merchant,
            }
            for tid, account, seconds, amount, merchant in rows
        ],
    )
    conn.commit()


def fired(conn, rule_id):
    """Transaction ids with an alert of rule_id, in order."""
    return [
        r[0]
        for r in conn.execute(
            "SELECT transaction_id FROM alerts WHERE rule_id = %s ORDER BY transaction_id",
            (rule_id,),
        )
    ]


def scored(conn, rule_id, recompute):
    return [
        r[0]
        for r in conn.execute(
            "SELECT transaction_id FROM score_transactions(NULL, NULL, NULL, %s)"
            " WHERE rule_id = %s ORDER BY transaction_id",
            (recompute, rule_id),
        )
    ]


def only_user_rules(admin_conn):
    admin_conn.execute("UPDATE rules SET enabled = false")


def test_expression_changed_in_psql_is_rescored_with_the_new_expression(app_conn, admin_conn):
    # Amounts 3, 6, 9 on account 1. 'amount > 8' fires on 3 only; 'amount > 4'
    # on 2 and 3.
    only_user_rules(admin_conn)
    store(app_conn, [(1, 1, 0, "3", None), (2, 1, 3600, "6", None), (3, 1, 7200, "9", None)])
    db.add_rule(admin_conn, "mine", "amount > 8", enabled=True)
    assert fired(admin_conn, "mine") == [3]
    # The statement trigger counts an expression change (rescore_rules), but
    # re-scores with the compiled code of the OLD expression.
    admin_conn.execute("UPDATE rules SET expression = 'amount > 4' WHERE rule_id = 'mine'")
    assert fired(admin_conn, "mine") == [2, 3]
    assert scored(admin_conn, "mine", False) == [2, 3]


def test_user_rule_inserted_in_psql_fires(app_conn, admin_conn):
    only_user_rules(admin_conn)
    store(app_conn, [(1, 1, 0, "3", None), (2, 1, 3600, "6", None), (3, 1, 7200, "9", None)])
    admin_conn.execute(
        "INSERT INTO rules (rule_id, enabled, parameters, description, expression)"
        " VALUES ('mine', true, '{}', 'd', 'amount > 4')"
    )
    assert fired(admin_conn, "mine") == [2, 3]
    # After any compile (another add_rule) the rule code fires on 2, 3 while
    # the alerts stay empty: score_transactions (alerts) != from scratch.
    db.add_rule(admin_conn, "other", "amount > 100")
    assert scored(admin_conn, "mine", False) == scored(admin_conn, "mine", True) == [2, 3]


def test_service_role_cannot_switch_off_rescoring(app_conn, admin_conn, database):
    # The service login sets the custom GUC migrate uses; add_rule (granted to
    # the service) then replaces an enabled rule's expression without any
    # re-scoring.
    only_user_rules(admin_conn)
    store(app_conn, [(1, 1, 0, "3", None), (2, 1, 3600, "6", None), (3, 1, 7200, "9", None)])
    db.add_rule(admin_conn, "mine", "amount > 8", enabled=True)
    with psycopg.connect(database.app_url) as conn:
        conn.execute("SET pgfraud.migrating = on")
        conn.execute("SELECT add_rule('mine', 'amount > 4', NULL, true)")
        conn.commit()
    assert fired(admin_conn, "mine") == [2, 3]


def test_deleting_a_review_rescores_compromised_merchant(app_conn, admin_conn):
    # Merchant 7: transaction 1 (account 1, T0) labelled fraud, transaction 2
    # (account 2, T0 + 1 h). One known fraud in the 30 days before 2 (delay 0):
    # fires on 2. A false_positive review of 1 recorded before 2 (at T0 + 30
    # min, by hand: review_transaction records now, after 2, which changes
    # nothing for 2) makes it not fraud: 2 no longer fires. Deleting that
    # review (owner, psql) makes it fraud again: 2 fires.
    only_user_rules(admin_conn)
    store(app_conn, [(1, 1, 0, "10", 7), (2, 2, 3600, "10", 7)])
    admin_conn.execute("INSERT INTO fraud_labels VALUES (1, 'card_testing', %s)", (T0,))
    admin_conn.execute(
        'SELECT set_rule(\'compromised_merchant\', true, \'{"window_days": 30, "delay_days": 0,'
        ' "min_known_fraud": 1, "min_fraud_share": 0}\')'
    )
    assert fired(admin_conn, "compromised_merchant") == [2]
    admin_conn.execute("SELECT review_transaction(1, 'false_positive', '', 'bk')")
    assert fired(admin_conn, "compromised_merchant") == [2]
    admin_conn.execute("UPDATE reviews SET reviewed_at = %s", (T0 + timedelta(minutes=30),))
    assert fired(admin_conn, "compromised_merchant") == []
    admin_conn.execute("DELETE FROM reviews")
    assert scored(admin_conn, "compromised_merchant", True) == [2]
    assert fired(admin_conn, "compromised_merchant") == [2]


def test_label_stored_while_compromised_merchant_is_being_switched_on(
    app_conn, admin_conn, database
):
    # As above, without the label at first. Connection A switches
    # compromised_merchant on (re-scored: nothing fires, no label yet) and has
    # not committed; connection B stores the label of 1: its trigger waits
    # for A's rule change, then sees the rule on and re-scores merchant 7.
    # The rule code fires on 2, and so do the alerts.
    import threading

    only_user_rules(admin_conn)
    store(app_conn, [(1, 1, 0, "10", 7), (2, 2, 3600, "10", 7)])
    with psycopg.connect(database.admin_url) as a:
        a.execute(
            "SELECT set_rule('compromised_merchant', true, '{\"window_days\": 30,"
            ' "delay_days": 0, "min_known_fraud": 1, "min_fraud_share": 0}\')'
        )

        def label() -> None:
            with psycopg.connect(database.admin_url, autocommit=True) as b:
                b.execute("INSERT INTO fraud_labels VALUES (1, 'card_testing', %s)", (T0,))

        thread = threading.Thread(target=label)
        thread.start()
        waiting = 0
        while waiting == 0 and thread.is_alive():
            waiting = admin_conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND query LIKE 'INSERT INTO fraud_labels%'"
            ).fetchone()[0]
            admin_conn.commit()
        assert waiting == 1  # B waits for A's rule change
        a.commit()
        thread.join()
    assert scored(admin_conn, "compromised_merchant", True) == [2]
    assert fired(admin_conn, "compromised_merchant") == [2]


def test_migrate_heals_a_three_argument_score_transactions(database):
    # The release before 0010 (d6d4715) re-applies its function files on any
    # `pgfraud migrate`/`load`/`run` (it does not refuse a newer database):
    # that re-creates score_transactions(timestamptz, timestamptz, jsonb)
    # next to the 4-argument one. Migration 0010 dropped it once and never
    # again, so evaluate_rules' 3-argument call is ambiguous for good:
    # `pgfraud evaluate` and backtests answer "internal error".
    from pgfraud.db.migrate import migrate

    with db.connect(database.admin_url) as conn:
        conn.execute(
            "CREATE FUNCTION score_transactions(p_from timestamptz DEFAULT NULL,"
            " p_to timestamptz DEFAULT NULL, p_rules jsonb DEFAULT NULL)"
            " RETURNS SETOF fraud_event LANGUAGE sql AS 'SELECT NULL::fraud_event WHERE false'"
        )
        conn.commit()
        assert migrate(conn) == []
        conn.commit()
        # No transactions: one row per rule and 'any', nothing flagged.
        assert conn.execute(
            'SELECT count(*) FROM evaluate_rules(\'{"large_amount": {"threshold": 5}}\')'
        ).fetchone() == (2,)


def test_a_rule_change_outside_read_committed_is_refused(app_conn, admin_conn, database):
    # Account 1 at 00:00, 00:15, 00:25. A rule change in a REPEATABLE READ
    # transaction whose snapshot predates the store would re-score velocity
    # without those rows: it is refused, and nothing changes.
    admin_conn.execute("UPDATE rules SET enabled = (rule_id = 'velocity')")
    admin_conn.execute(
        "SELECT set_rule('velocity', true, '{\"window_seconds\": 300, \"max_transactions\": 2}')"
    )
    admin_conn.commit()
    with psycopg.connect(database.admin_url) as a:
        a.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        a.execute("SELECT count(*) FROM rules")  # the snapshot is taken here
        store(app_conn, [(1, 1, 0, "3", None), (2, 1, 900, "4", None), (3, 1, 1500, "5", None)])
        try:
            a.execute(
                'UPDATE rules SET parameters = \'{"window_seconds": 3600, "max_transactions": 2}\''
                " WHERE rule_id = 'velocity'"
            )
        except psycopg.Error as exc:
            refused = (exc.sqlstate, exc.diag.message_primary)
        a.rollback()
    assert refused == (
        "25000",
        "rules can change only in a READ COMMITTED transaction (this one is REPEATABLE READ)",
    )
    # The same change in READ COMMITTED sees all three: 00:25 is the third in
    # the hour (max 2) and fires.
    admin_conn.execute(
        "SELECT set_rule('velocity', NULL, '{\"window_seconds\": 3600, \"max_transactions\": 2}')"
    )
    admin_conn.commit()
    assert scored(admin_conn, "velocity", True) == [3]
    assert fired(admin_conn, "velocity") == [3]


def test_two_rules_added_at_once_both_succeed(admin_conn, database):
    # POST /rules from two clients at once: add_rule recompiles
    # _custom_rule_events with CREATE OR REPLACE FUNCTION in each transaction;
    # the second waits on the first's pg_proc row and then fails with
    # "tuple concurrently updated" (XX000): the API answers 500.
    import threading

    errors = []
    with psycopg.connect(database.app_url) as a:
        a.execute("SELECT add_rule('first', 'amount > 1', NULL, true)")

        def second():
            try:
                with psycopg.connect(database.app_url) as b:
                    b.execute("SELECT add_rule('second', 'amount > 2', NULL, true)")
                    b.commit()
            except psycopg.Error as exc:
                errors.append(exc)

        thread = threading.Thread(target=second)
        thread.start()
        # Until the second one waits on a lock held by the first.
        waiting = 0
        while waiting == 0 and thread.is_alive():
            waiting = admin_conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND query LIKE '%add_rule(''second''%'"
            ).fetchone()[0]
        a.commit()
        thread.join()
    assert [str(e).splitlines()[0] for e in errors] == []
    assert admin_conn.execute(
        "SELECT count(*) FROM rules WHERE rule_id IN ('first', 'second')"
    ).fetchone() == (2,)


# --- generate --to api, two batches in flight (0c30298) ----------------------

PGFRAUD = str(Path(sys.executable).with_name("pgfraud"))


def sigint_as_from_a_terminal() -> None:
    """preexec_fn: SIGINT reaches the child even when the suite runs as a background job."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize(("signum", "exit_code"), [(signal.SIGTERM, 143), (signal.SIGINT, 1)])
def test_api_run_stops_at_once_on_a_signal_while_the_server_does_not_answer(
    tmp_path: Path, signum: int, exit_code: int
) -> None:
    # A server that takes the two requests in flight and never answers
    # (hung, or a load balancer in front of a dead one). SIGTERM or Ctrl-C
    # must end the run now; the worker threads of the ThreadPoolExecutor
    # were joined first: each request waits out its 60 s timeout and its
    # retries (minutes), so the run hung after the signal.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/store_data"
    proc = subprocess.Popen(
        [PGFRAUD, "generate", "--to", "api", "--post-url", url, "--labels", "l.csv"]
        + ["--num-transactions", "5000", "--batch-size", "100"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=sigint_as_from_a_terminal,
    )
    held = []
    try:
        listener.settimeout(60)
        while len(held) < 2:  # both requests are in flight
            held.append(listener.accept()[0])
        proc.send_signal(signum)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for conn in held:
            conn.close()
        listener.close()
    assert proc.returncode == exit_code
    assert "Traceback" not in stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no labels file, whole or half


# --- SIGTERM while a command starts the local PostgreSQL (d488994) -----------

_PG_CTL = """#!/bin/sh
# pg_ctl; after a start, or before a stop: say so, then wait for the test's go.
if [ "$1" = stop ]; then
    touch "{marks}/stop"
    while [ ! -e "{marks}/go-stop" ]; do sleep 0.05; done
fi
"{real}/pg_ctl" "$@"
rc=$?
if [ "$1" = start ]; then
    touch "{marks}/start"
    while [ ! -e "{marks}/go-start" ]; do sleep 0.05; done
fi
exit $rc
"""


@pytest.mark.parametrize("phase", ["start", "stop"])
def test_sigterm_while_a_command_starts_or_stops_the_local_server_stops_it(
    tmp_path: Path, phase: str
) -> None:
    # `pgfraud migrate` starts the local server (pg_ctl start) and stops it
    # when done. SIGTERM arrived while pg_ctl start was still running (it
    # is slow: seconds on a busy machine): SystemExit left before the
    # try/finally that stops the server, which then ran on with nobody to
    # stop it (`pgfraud db status`: running). The same when it arrived as
    # pg_ctl stop began (a second Ctrl-C): pg_ctl was killed before it
    # asked. Here pg_ctl is the real one, and the signal comes once it has
    # started the server, before it exits; or before it stops it.
    import shutil
    import tempfile

    from pgfraud.db.server import LocalServer, find_bindir

    real = find_bindir()
    folder = Path(tempfile.mkdtemp(prefix="pgfraud-breakit-bin-", dir="/tmp"))
    marks = folder / "marks"
    marks.mkdir()
    os.chmod(folder, 0o755)
    os.chmod(marks, 0o777)  # the server's user (as root) writes the marks
    (folder / "pg_ctl").write_text(_PG_CTL.format(real=real, marks=marks))
    (folder / "pg_ctl").chmod(0o755)
    for name in ("initdb", "postgres"):
        (folder / name).symlink_to(real / name)
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(PGFRAUD_HOME=str(home), PGFRAUD_PG_BIN=str(folder))
    other = {"start": "stop", "stop": "start"}[phase]
    (marks / f"go-{other}").touch()  # only the phase under test waits
    proc = subprocess.Popen(
        [PGFRAUD, "migrate"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 120
        while not (marks / phase).exists() and proc.poll() is None:
            assert time.monotonic() < deadline, f"pg_ctl {phase} never ran"
            time.sleep(0.05)
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGTERM)
        (marks / f"go-{phase}").touch()
        stdout, stderr = proc.communicate(timeout=120)
        running = LocalServer(home).is_running()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        (marks / "go-start").touch()
        (marks / "go-stop").touch()
        LocalServer(home).destroy()
        shutil.rmtree(folder, ignore_errors=True)
    assert (proc.returncode, stdout, stderr) == (143, "", "")
    assert not running


# --- evaluate --json, exact parameters (1523be7) -----------------------------


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_evaluate_refuses_a_non_finite_parameter_naming_it(database, monkeypatch, constant) -> None:
    # loads_json keeps NaN/Infinity as Decimals for a validator to refuse;
    # the CLI handed them to db.dumps_json, which cannot write them:
    # "error: internal error (ValueError: Out of range float values ...)".
    from click.testing import CliRunner

    from pgfraud.cli import main

    monkeypatch.setenv("DATABASE_URL", database.admin_url)
    rules = f'{{"large_amount": {{"threshold": {constant}}}}}'
    result = CliRunner().invoke(main, ["evaluate", "--rules", rules, "--json"])
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert result.stderr.splitlines()[-1] == (
        f"error: Invalid value for --rules: parameter threshold of rule large_amount must be"
        f" a finite number (NaN and Infinity are refused); got {constant}"
    )


# --- the SIGTERM handler of every command (d488994) --------------------------


def test_commands_run_from_another_thread_and_leave_sigterm_as_they_found_it(
    database, monkeypatch
) -> None:
    # A program (or a test) calling pgfraud's main() from a worker thread:
    # signal.signal raised "ValueError: signal only works in main thread",
    # so every command failed; and from the main thread the handler stayed
    # installed after the command, so SIGTERM no longer killed the caller.
    import threading

    from click.testing import CliRunner

    from pgfraud.cli import main

    monkeypatch.setenv("DATABASE_URL", database.admin_url)
    results = []
    thread = threading.Thread(
        target=lambda: results.append(CliRunner().invoke(main, ["db", "url"]))
    )
    thread.start()
    thread.join()
    assert (results[0].exit_code, results[0].stdout) == (0, database.admin_url + "\n")
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    assert CliRunner().invoke(main, ["db", "url"]).exit_code == 0
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_api_failure_with_nothing_stored_says_no_more() -> None:
    # Batch 1 and batch 2 (sent meanwhile) both fail to reach the server:
    # the error said batch 2 "was refused too" (it reached nobody) and
    # "sending again is harmless: stored ones count as duplicates" with
    # nothing stored.
    from pgfraud.generator import Settings, generate_transactions
    from pgfraud.generator.sinks import SinkError, to_api

    with pytest.raises(SinkError) as info:
        to_api("http://", generate_transactions(Settings(num_transactions=30, accounts=3)), 10)
    assert info.value.message == (
        "batch 1 (transactions 1..10): cannot reach http://: Invalid URL 'http://':"
        " No host supplied; batch 2, sent meanwhile, failed too"
    )


# --- migrate re-scores when function code changed (7a4b2c8) -----------------


def test_migrate_with_users_rules_recompiles_the_same_code_and_rescores_nothing(database):
    # A user's rule compiles into _custom_rule_events; every migrate applies
    # _compile_custom_rules.sql, which compiles it again. The code must come
    # out byte-identical, or every restart re-scores the whole history. Seen
    # with an alert the owner deleted: it stays gone (no re-score). A
    # function added by hand in the schema (and one dropped: migrate puts
    # it back, then re-scores) does not break migrate.
    from pgfraud.db.migrate import migrate

    custom = "SELECT count(*) FROM alerts WHERE rule_id = 'big_one'"
    with db.connect(database.admin_url) as conn:
        db.add_rule(conn, "big_one", "amount > 100 AND count_24h >= 1", "d", True)
        db.add_rule(conn, "odd_cents", "merchant_id IS NULL OR first_at_merchant", None, True)
        conn.execute("INSERT INTO transactions VALUES (7, 1, '2024-01-01Z', 200.00)")
        conn.execute(
            "CREATE FUNCTION my_helper(p_x integer) RETURNS integer LANGUAGE sql AS 'SELECT 1'"
        )
        conn.commit()
        assert conn.execute(custom).fetchone()[0] == 1  # 200 > 100, the first in 24 h
        conn.execute("DELETE FROM alerts")
        conn.commit()
        assert migrate(conn) == []
        conn.commit()
        assert conn.execute(custom).fetchone()[0] == 0
        conn.execute("DROP FUNCTION get_overview")
        conn.commit()
        assert migrate(conn) == []
        conn.commit()
        assert conn.execute(custom).fetchone()[0] == 1
