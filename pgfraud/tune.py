"""`pgfraud tune` and POST /tune around SQL ``tune_rules``: the report and the switch.

SQL chooses the rules (see db/functions/tune_rules.sql for the search, its
grids and its greedy selection); this module adds F1 and alerts per 1,000 to
its figures exactly as `pgfraud evaluate` does (pgfraud.evaluate.add_measures),
writes the PATCH /rules body that switches the chosen set on, and applies it
through the same validated path as any rule change (SQL change_rule).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

import psycopg

from pgfraud import db
from pgfraud.evaluate import add_measures, format_decisions, format_report

SETS = ("chosen", "live")
PERIODS = ("training", "validation")


def tuning(
    conn: psycopg.Connection,
    periods: tuple[datetime, datetime, datetime, datetime],
    max_alerts_per_1000: Decimal | None,
    min_precision: Decimal | None,
    candidates: list[str] | None,
    min_marginal_precision: Decimal | None = None,
) -> dict[str, Any]:
    """tune_rules' result with F1 and alerts per 1,000 on every figures row and
    ``switch``, the PATCH /rules body that turns the chosen set on.

    ``figures[set][period]``: rows of evaluate_rules (rule_id, scenario,
    labelled, flagged, true_positives, precision_ratio, recall_ratio) plus
    transactions, flagged_per_1000, f1 and alerts_per_1000 (Decimal, 4 places)
    for set chosen|live and period training|validation.
    ``decisions[set][period]``: what those rules give as decisions under the
    policy in force (what db.evaluate_decisions gives, counted by tune_rules
    from the flags it has: the approve/review/decline mix and precision and
    recall of decline and of review or decline); None for an empty set.
    Errors: InvalidInput naming the field (see db.tune_rules).
    """
    result = db.tune_rules(
        conn, periods, max_alerts_per_1000, min_precision, candidates, min_marginal_precision
    )
    # Both sets' decisions come with tune_rules' answer, counted as
    # evaluate_decisions counts them from the flags it has (None: an empty set).
    decisions = result["decisions"]
    result["decisions"] = {name: {} for name in SETS}
    for name in SETS:
        for period in PERIODS:
            rows = result["figures"][name][period] or []
            transactions = rows[0]["transactions"] if rows else 0
            result["figures"][name][period] = add_measures(rows, transactions)
            result["decisions"][name][period] = (decisions.get(name) or {}).get(period)
    rules = conn.execute(
        "SELECT r.rule_id, r.enabled FROM rules AS r ORDER BY r.rule_id"
    ).fetchall()
    result["switch"] = switch_body(result["chosen"], dict(rules))
    return result


def switch_body(chosen: dict[str, Any], enabled: dict[str, bool]) -> dict[str, Any]:
    """The PATCH /rules body that makes ``chosen`` the live set: each chosen rule on
    with its parameters (a user's rule, which has none: on), every other rule
    that is on now switched off."""
    body: dict[str, Any] = {}
    for rule_id in sorted(set(chosen) | {r for r, on in enabled.items() if on}):
        if rule_id in chosen:
            body[rule_id] = {"enabled": True}
            if chosen[rule_id]:
                body[rule_id]["parameters"] = chosen[rule_id]
        else:
            body[rule_id] = {"enabled": False}
    return body


def apply(conn: psycopg.Connection, body: dict[str, Any]) -> list[dict[str, Any]]:
    """Apply a switch_body through SQL change_rule (set_rule's validator; the stored
    history is re-scored), in the caller's transaction: all or nothing."""
    return [
        db.change_rule(conn, rule_id, change["enabled"], change.get("parameters"))
        for rule_id, change in sorted(body.items())
    ]


def format_tuning(result: dict[str, Any], periods: tuple[datetime, ...]) -> Iterator[str]:
    """Lines of the plain-text tune report."""
    search = result["search"]
    yield (
        f"training [{periods[0].isoformat()}, {periods[1].isoformat()}): "
        f"{search['transactions']:,} transactions, {search['labelled']:,} known fraud; "
        f"{search['candidates']:,} candidate (rule, parameters) counted; each rule added"
        f" brings new alerts at least {search['min_marginal_precision']} fraud"
    )
    if result["chosen"]:
        yield f"chosen rules: {db.dumps_json(result['chosen'], sort_keys=True)}"
        for step in search["steps"]:
            yield (
                f"  + {step['rule_id']} {db.dumps_json(step['parameters'], sort_keys=True)}: "
                f"{step['flagged']:,} flagged, {step['caught']:,} caught so far"
            )
    else:
        yield "chosen rules: none (no candidate keeps the constraint and catches anything)"
    yield f"live rules: {db.dumps_json(result['live'], sort_keys=True)}"
    names = {"training": "training", "validation": "validation"}
    bounds = {"training": periods[0:2], "validation": periods[2:4]}
    for name in SETS:
        for period in PERIODS:
            rows = result["figures"][name][period]
            start, end = bounds[period]
            transactions = rows[0]["transactions"] if rows else 0
            yield ""
            yield (
                f"{name} set, {names[period]} [{start.isoformat()}, {end.isoformat()}): "
                f"{transactions:,} transactions"
            )
            yield from format_report(rows)
            if result.get("decisions", {}).get(name, {}).get(period):
                yield from format_decisions(result["decisions"][name][period])
