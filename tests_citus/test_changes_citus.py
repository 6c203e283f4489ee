"""Changes of rules, the policy, lists and tokens through the Citus coordinator (issue 19).

These tables are reference tables on Citus: a change is applied to every
node's copy, and the table's triggers run on each copy. Before, each copy's
audit trigger tried to write the audit_log reference table from a shard and
every change failed ("cannot execute a distributed query from a query on a
shard"); a rule change's re-score was also set-based over all accounts. Now
the coordinator's copy writes the entry and re-scores per account, and the
workers' copies do nothing but compile the users' rules for their node. The
same changes go to a plain database and a distributed one holding the same
rows: alerts, audit entries (with the alerts a rule change added and
removed), rule versions and decisions must be the same.
"""

from __future__ import annotations

import json
import re
import time

import psycopg
import pytest

from tests_citus.pairs import make_pair, run_pgfraud


@pytest.fixture(scope="module")
def pair(cluster, tmp_path_factory):
    """(single-node URL, distributed URL), each holding the same 1,500 rows."""
    return make_pair(cluster, tmp_path_factory.mktemp("labels"), "changes")


def _on_both(pair, *args: str) -> list[str]:
    """`pgfraud ARGS` on both databases; each must succeed. Their outputs."""
    outputs = []
    for url in pair:
        done = run_pgfraud(url, *args)
        assert done.returncode == 0, (url, args, done.stderr)
        outputs.append(done.stdout)
    return outputs


def _rows(url: str, query: str) -> list[tuple]:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(query).fetchall()


ALERTS = (
    "SELECT transaction_id, account_id, ts, amount, rule_id, observed, threshold, reason"
    " FROM alerts ORDER BY transaction_id, rule_id"
)
# The trail without ids and clock times (each database has its own).
AUDIT = (
    "SELECT actor, action, object_kind, object_key,"
    " before - 'created_at' - 'revoked_at' - 'added_at' - 'removed_at' - 'valid_from'"
    " - 'policy_id' - 'token_id' - 'entry_id' - 'effective_from',"
    " after - 'created_at' - 'revoked_at' - 'added_at' - 'removed_at' - 'valid_from'"
    " - 'policy_id' - 'token_id' - 'entry_id' - 'effective_from',"
    " alerts_added, alerts_removed FROM audit_log ORDER BY audit_id"
)


def test_rule_changes_rescore_and_are_audited_as_on_one_node(pair):
    single, distributed = pair
    before = _rows(single, ALERTS)
    assert len(before) > 100 and _rows(distributed, ALERTS) == before
    _on_both(pair, "rule", "set", "large_amount", "threshold=900")
    _on_both(pair, "rule", "disable", "velocity")
    _on_both(pair, "rule", "add", "big_night", "amount > 500 and count_1h >= 2")
    _on_both(pair, "rule", "enable", "big_night")
    after = _rows(single, ALERTS)
    assert _rows(distributed, ALERTS) == after
    rules = {row[4] for row in after}
    assert "velocity" not in rules and "big_night" in rules
    # Each rule change's entry counts the alerts it added and removed; a
    # user's rule added off changes no alert (0, 0).
    trail = _rows(single, AUDIT)
    assert [(r[1], r[3], r[6] is not None) for r in trail] == [
        ("update", "large_amount", True),
        ("update", "velocity", True),
        ("insert", "big_night", True),
        ("update", "big_night", True),
    ]
    velocity_before = sum(1 for row in before if row[4] == "velocity")
    assert velocity_before > 0
    assert trail[1][6:] == (0, velocity_before)
    assert trail[2][6:] == (0, 0)
    assert trail[3][6] == sum(1 for row in after if row[4] == "big_night") > 0
    assert _rows(distributed, AUDIT) == trail
    versions = (
        "SELECT rule_id, version, enabled, parameters, expression FROM rule_versions ORDER BY 1, 2"
    )
    assert _rows(distributed, versions) == _rows(single, versions)
    sets = "SELECT rule_set_id FROM decision_rule_sets ORDER BY 1"
    assert _rows(distributed, sets) == _rows(single, sets)


def test_a_change_in_psql_is_audited_once_on_every_node(pair, cluster):
    _, distributed = pair
    for url in pair:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "UPDATE rules SET parameters = parameters || '{\"threshold\": 950}'"
                " WHERE rule_id = 'large_amount'"
            )
    last = (
        "SELECT object_key, after -> 'parameters' ->> 'threshold'"
        " FROM audit_log ORDER BY audit_id DESC LIMIT 1"
    )
    assert _rows(distributed, last) == _rows(pair[0], last) == [("large_amount", "950")]
    assert _rows(distributed, ALERTS) == _rows(pair[0], ALERTS)
    # Every node's copy of the trail holds the same entries, once each.
    with psycopg.connect(distributed, autocommit=True) as conn:
        count, digest = conn.execute(
            "SELECT count(*),"
            " md5(string_agg(audit_id || ':' || written_xact, ',' ORDER BY audit_id))"
            " FROM audit_log"
        ).fetchone()
        copies = conn.execute(
            "SELECT result FROM run_command_on_workers($$SELECT count(*) || '/' ||"
            " md5(string_agg(audit_id || ':' || written_xact, ',' ORDER BY audit_id))"
            " FROM audit_log$$)"
        ).fetchall()
    assert copies == [(f"{count}/{digest}",)] * 2


def test_policy_lists_and_tokens_as_on_one_node(pair):
    single, distributed = pair
    start = len(_rows(single, AUDIT))
    _on_both(pair, "policy", "set", "review=40", "decline=90")
    _on_both(pair, "list", "create", "vip_accounts", "--subject", "account", "--kind", "allow")
    _on_both(pair, "list", "add", "vip_accounts", "3", "--reason", "known")
    _on_both(pair, "list", "remove", "vip_accounts", "3")
    _on_both(pair, "token", "add", "alice", "--role", "analyst")
    _on_both(pair, "token", "revoke", "alice")
    trail = _rows(single, AUDIT)[start:]
    assert [(r[1], r[2], r[3]) for r in trail] == [
        ("insert", "policy", trail[0][3]),
        ("insert", "list", "vip_accounts"),
        ("insert", "list_entry", "vip_accounts/3"),
        ("update", "list_entry", "vip_accounts/3"),
        ("insert", "token", "alice"),
        ("update", "token", "alice"),
    ]
    assert trail[0][5]["review_threshold"] == 40 and trail[0][5]["decline_threshold"] == 90
    assert _rows(distributed, AUDIT)[start:] == trail
    shown = [
        re.sub(r"\d{4}-\d\d-\d\dT[\d:.]+Z", "<time>", out)
        for out in _on_both(pair, "policy", "show")
    ]
    assert "review from 40, decline from 90" in shown[0] and shown[1] == shown[0]


def test_rules_citus_cannot_score_are_refused_and_nothing_changes(pair):
    _, distributed = pair
    trail = _rows(distributed, AUDIT)
    done = run_pgfraud(distributed, "rule", "enable", "compromised_merchant")
    assert done.returncode == 2
    assert "rule compromised_merchant reads other accounts' rows at a merchant" in done.stderr
    done = run_pgfraud(distributed, "rule", "add", "shop_hot", "merchant_fraud_7d > 2")
    assert done.returncode == 0, done.stderr  # added off: nothing to score
    done = run_pgfraud(distributed, "rule", "enable", "shop_hot")
    assert done.returncode == 2 and "rule shop_hot reads" in done.stderr
    done = run_pgfraud(distributed, "rule", "shadow", "large_amount", "threshold=800")
    assert done.returncode == 2
    assert "shadow rule large_amount: pgfraud on Citus does not score shadow rules" in done.stderr
    assert _rows(distributed, "SELECT count(*) FROM shadow_rules") == [(0,)]
    enabled = (
        "SELECT rule_id FROM rules"
        " WHERE enabled AND rule_id IN ('compromised_merchant', 'shop_hot')"
    )
    assert _rows(distributed, enabled) == []
    assert len(_rows(distributed, AUDIT)) == len(trail) + 1  # shop_hot's insert


def test_tuning_and_shadow_comparisons_say_they_need_a_single_node(pair):
    """They run the rule code over every account at once, which Citus cannot
    plan: one line naming the layout and what to do, exit 1 (not an internal
    error)."""
    _, distributed = pair
    for args in (
        [
            "tune",
            "--train-from",
            "2024-01-01",
            "--train-to",
            "2024-01-20",
            "--valid-from",
            "2024-01-20",
            "--valid-to",
            "2024-02-14",
            "--max-alerts-per-1000",
            "20",
        ],
        ["rule", "shadows"],
    ):
        done = run_pgfraud(distributed, *args)
        assert done.returncode == 1, (args, done.stderr)
        assert "do not run on pgfraud's Citus layout (docs/scaling.md)" in done.stderr, args
        assert "internal error" not in done.stderr


def test_a_rule_change_holds_scoring_on_the_workers_until_it_commits(pair):
    """The rule-change lock is cluster-wide: the trigger that takes it runs on
    every node's copy of `rules`, so a store delegated to a worker waits for a
    rule change that is not committed, then scores by the changed rule."""
    import threading

    _, distributed = pair
    row = json.dumps(
        [{"transaction_id": 920001, "timestamp": "2024-03-02T08:00:00.000", "amount": "60000.00"}]
    )
    change = psycopg.connect(distributed)  # left open: the change is not committed
    answers: list = []
    try:
        change.execute("SELECT set_rule('large_amount', NULL, '{\"threshold\": 100000}')")

        def store() -> None:
            with psycopg.connect(distributed, autocommit=True) as conn:
                answers.append(
                    conn.execute(
                        "SELECT status, alerts FROM store_account_transactions(301, %s::jsonb)",
                        (row,),
                    ).fetchone()
                )

        storing = threading.Thread(target=store)
        storing.start()
        # The store waits on a worker for the rule-change lock (an advisory lock).
        deadline = time.monotonic() + 60
        waiting = False
        with psycopg.connect(distributed, autocommit=True) as conn:
            while not waiting and time.monotonic() < deadline:
                waiting = any(
                    result == "1"
                    for (result,) in conn.execute(
                        "SELECT result FROM run_command_on_workers($$SELECT count(*) FROM"
                        " pg_stat_activity WHERE wait_event_type = 'Lock'"
                        " AND wait_event = 'advisory'"
                        " AND query LIKE '%store_account_transactions%'$$)"
                    )
                )
                if not waiting:
                    time.sleep(0.1)
        assert waiting and storing.is_alive() and answers == []
        change.commit()
        storing.join(60)
    finally:
        change.close()
    assert answers and answers[0][0] == "stored"
    # Scored by the changed rule: 60,000 is below the new threshold of 100,000.
    assert [a["rule_id"] for a in answers[0][1]] == []
    assert (
        _rows(
            distributed,
            "SELECT rule_id FROM alerts WHERE account_id = 301 AND transaction_id = 920001",
        )
        == []
    )


def test_the_http_faces_answer_on_citus(pair, caplog):
    """Every read of the API answers on the distributed layout; tuning and
    shadow comparisons answer 501 not_on_citus, logged as one warning line
    (not an error with a traceback)."""
    import logging

    from pgfraud import db
    from pgfraud.service import auth, create_app

    _, distributed = pair
    secret = auth.new_secret()  # tokens exist here (alice's): an owner's
    with db.connect(distributed) as conn:
        db.add_api_token(conn, "carol", "owner", auth.digest(secret), "setup")
        conn.commit()
    app = create_app({"TESTING": True, "DATABASE_URL": distributed})
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {secret}"
    caplog.set_level(logging.INFO, logger=app.logger.name)
    account = _rows(distributed, "SELECT min(account_id) FROM account_states")[0][0]
    for path in (
        "/health",
        "/rules",
        "/alerts",
        "/alerts?order=time",
        "/decisions",
        "/cases",
        "/lists",
        "/policy",
        "/audit",
        "/overview",
        f"/is_fraud/{account}",
        f"/accounts/{account}/transactions",
        "/rules/large_amount/versions",
    ):
        assert client.get(path).status_code == 200, path
    assert client.post("/evaluate", json={"rules": {"velocity": {}}}).status_code == 200
    for method, path, body in (
        ("GET", "/rules/shadows", None),
        (
            "POST",
            "/tune",
            {
                "train_from": "2024-01-01T00:00:00Z",
                "train_to": "2024-01-20T00:00:00Z",
                "valid_from": "2024-01-20T00:00:00Z",
                "valid_to": "2024-02-14T00:00:00Z",
                "max_alerts_per_1000": 10,
            },
        ),
    ):
        answer = client.open(path, method=method, json=body)
        assert answer.status_code == 501, path
        assert answer.get_json()["error"]["code"] == "not_on_citus"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
