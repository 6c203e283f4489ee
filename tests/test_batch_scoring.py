"""Batch scoring (SQL ``score_transactions``): persisted alerts for live rules.

A rule that is live with the parameters asked for is read from ``alerts``;
any other rule runs through the rule code from scratch; ``p_recompute``
runs every rule from scratch. These tests prove that the read gives exactly
the from-scratch result on generated data (with late arrivals, a user's
rule and every built-in rule on), and that each source is the one used.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from pgfraud import db
from pgfraud.generator import Settings, generate_transactions

T0 = datetime(2024, 1, 1, tzinfo=UTC)
COLUMNS = "transaction_id, account_id, ts, amount, rule_id, observed, threshold, reason"


def store(conn, rows):
    """rows: (transaction_id, account_id, seconds after T0, amount text)."""
    db.store_transactions(
        conn,
        [
            {
                "transaction_id": tid,
                "account_id": account,
                "timestamp": T0 + timedelta(seconds=seconds),
                "amount": Decimal(amount),
            }
            for tid, account, seconds, amount in rows
        ],
    )
    conn.commit()


def batch(conn, *args):
    placeholders = ", ".join(["%s"] * len(args))
    return conn.execute(
        f"SELECT {COLUMNS} FROM score_transactions({placeholders})", args
    ).fetchall()


def test_the_read_of_alerts_equals_the_rules_from_scratch_on_generated_data(app_conn, admin_conn):
    admin_conn.execute("SELECT set_rule('compromised_merchant', true, NULL)")
    # The rules off by default since migration 0022, on: every rule is exercised.
    admin_conn.execute("SELECT set_rule('amount_spike', true, NULL)")
    admin_conn.execute("SELECT set_rule('new_merchant_run', true, NULL)")
    db.add_rule(admin_conn, "big_in_an_hour", "amount > 2 * prior_average AND count_1h >= 1")
    admin_conn.execute("SELECT set_rule('big_in_an_hour', true, NULL)")
    admin_conn.commit()
    generated = list(generate_transactions(Settings(num_transactions=3000, accounts=30, seed=11)))
    rows = [
        (n, t.transaction_id, t.account_id, t.timestamp, t.amount, t.merchant_id)
        for n, t in enumerate(generated, 1)
    ]
    # Every 40th row arrives after the rest: a late arrival re-scores its account.
    db.copy_transactions(app_conn, [r for r in rows if r[0] % 40])
    app_conn.commit()
    db.copy_transactions(app_conn, [r for r in rows if not r[0] % 40])
    app_conn.commit()

    per_account = [
        event
        for (account,) in app_conn.execute(
            "SELECT account_id FROM account_states ORDER BY account_id"
        ).fetchall()
        for event in app_conn.execute(
            f"SELECT {COLUMNS} FROM evaluate_account(%s, active_rule_parameters())", (account,)
        ).fetchall()
    ]
    read = batch(app_conn)
    assert read == batch(app_conn, None, None, None, True) == per_account
    fired = {e[4] for e in read}
    # The data must exercise the rules, or the equality proves little.
    assert {"below_average", "amount_spike", "rapid_succession", "big_in_an_hour"} <= fired

    # A time range: the same rows, cut by transaction time.
    start, end = T0 + timedelta(days=2), T0 + timedelta(days=5)
    window = batch(app_conn, start, end)
    assert window == [e for e in per_account if start <= e[2] < end]
    assert window == batch(app_conn, start, end, None, True)


def test_live_rules_are_read_from_alerts_and_the_others_computed(app_conn, admin_conn):
    # Live: below_average (set to factor 0.9, min_history 1) and
    # rapid_succession (10 s): 10.00 five seconds after 100.00 fires both;
    # 95.00 an hour later, against the average 55.00 x 0.9 = 49.50, fires
    # neither (nor does any other default rule: 2 payments in 600 s, no spike).
    admin_conn.execute(
        "SELECT set_rule('below_average', NULL, '{\"factor\": 0.9, \"min_history\": 1}')"
    )
    admin_conn.commit()
    store(app_conn, [(1, 1, 0, "100.00"), (2, 1, 5, "10.00"), (3, 1, 3600, "95.00")])
    live = batch(app_conn)
    assert [(e[0], e[4]) for e in live] == [(2, "below_average"), (2, "rapid_succession")]

    # The alert rows are the source for live rules: an alert removed by the
    # owner is missing from the read, and still computed from scratch.
    admin_conn.execute(
        "DELETE FROM alerts WHERE transaction_id = 2 AND rule_id = 'rapid_succession'"
    )
    admin_conn.commit()
    assert [(e[0], e[4]) for e in batch(app_conn)] == [(2, "below_average")]
    assert batch(app_conn, None, None, None, True) == live

    # A candidate factor of 2 for below_average (not live) is computed:
    # 10.00 < 2 x 100.00 (threshold 200) and 95.00 < 2 x 55.00 (threshold 110)
    # fire; the other rules, live as they are, still come from the alerts.
    rules = app_conn.execute(
        "SELECT (active_rule_parameters() || %s::jsonb)::text",
        ('{"below_average": {"factor": 2, "min_history": 1}}',),
    ).fetchone()[0]
    mixed = batch(app_conn, None, None, rules)
    assert [(e[0], e[4], e[6]) for e in mixed] == [
        (2, "below_average", Decimal("200.0000")),
        (3, "below_average", Decimal("110.0000")),
    ]
    # Only the candidate is computed: the deleted alert stays missing.
    assert "rapid_succession" not in {e[4] for e in mixed}


def test_parameters_written_differently_are_computed_not_read(app_conn, admin_conn):
    # {"threshold": 10000.00} is not the stored {"threshold": 10000}: the rule
    # runs from scratch, and its one alert (20000.00 > 10000) is found there.
    store(app_conn, [(1, 1, 0, "20000.00")])
    admin_conn.execute("DELETE FROM alerts")
    admin_conn.commit()
    assert batch(app_conn, None, None, '{"large_amount": {"threshold": 10000}}') == []
    computed = batch(app_conn, None, None, '{"large_amount": {"threshold": 10000.00}}')
    assert [(e[0], e[4], e[5], e[6]) for e in computed] == [
        (1, "large_amount", Decimal("20000.00"), Decimal("10000.00"))
    ]


def test_batches_stored_at_once_out_of_time_order_give_the_same_alerts(
    app_conn, admin_conn, database
):
    """`generate --to api` keeps two batches in flight: the later batch may be
    stored first, and the earlier one at the same moment on another
    connection. Here batch 2 is stored first (not committed), batch 1 runs
    beside it on another connection (it waits on batch 2's accounts, then
    arrives late), then batch 3: the alerts equal the rules from scratch,
    and equal storing the three in order would have given."""
    admin_conn.execute("SELECT set_rule('compromised_merchant', true, NULL)")
    # The rules off by default since migration 0022, on: every rule is exercised.
    admin_conn.execute("SELECT set_rule('amount_spike', true, NULL)")
    admin_conn.execute("SELECT set_rule('new_merchant_run', true, NULL)")
    admin_conn.commit()
    generated = list(generate_transactions(Settings(num_transactions=1500, accounts=15, seed=5)))
    records = [
        {
            "transaction_id": t.transaction_id,
            "account_id": t.account_id,
            "timestamp": t.timestamp,
            "amount": t.amount,
            "merchant_id": t.merchant_id,
        }
        for t in generated
    ]
    first, second, third = records[:500], records[500:1000], records[1000:]
    assert {r["account_id"] for r in first} & {r["account_id"] for r in second}
    db.store_transactions(app_conn, second)  # batch 2: stored, not committed yet
    failures: list[BaseException] = []

    def store_first() -> None:
        try:
            with db.connect(database.app_url) as other:
                db.store_transactions(other, first)
                other.commit()
        except BaseException as exc:  # noqa: BLE001 (shown by the assertion below)
            failures.append(exc)

    beside = threading.Thread(target=store_first)
    beside.start()
    beside.join(timeout=1.0)
    assert beside.is_alive()  # batch 1 waits for batch 2's accounts ...
    app_conn.commit()
    beside.join(timeout=60)
    assert not beside.is_alive() and failures == []  # ... then re-scores after its rows
    db.store_transactions(app_conn, third)
    app_conn.commit()

    stored = batch(app_conn)
    assert stored == batch(app_conn, None, None, None, True)
    # The data must exercise the rules, or the equality proves little.
    assert {"below_average", "amount_spike", "rapid_succession"} <= {e[4] for e in stored}

    # The same rows stored in order, one batch after the other, from empty.
    app_conn.commit()
    admin_conn.execute("TRUNCATE transactions")
    admin_conn.commit()
    for part in (first, second, third):
        db.store_transactions(app_conn, part)
        app_conn.commit()
    assert batch(app_conn) == stored
