"""Ground-truth labels in, precision and recall out (the CLI side of SQL ``evaluate_rules``).

A label file is the generator's sidecar CSV: a header ``transaction_id,scenario``
then one row per fraudulent transaction. Labels go to the ``fraud_labels``
table, never into ``transactions``.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import psycopg

from pgfraud import db
from pgfraud.errors import InvalidInput
from pgfraud.load import refused_file, utf8_lines
from pgfraud.wire import parse_labels


def read_labels(path: Path) -> list[tuple[int, str, datetime | None, int, Path]]:
    """(transaction_id, scenario, known_at, line, path) of each label of a label CSV
    (header: transaction_id,scenario and optionally known_at), for db.store_labels.

    ``known_at``: when the label became known, an ISO 8601 timestamp or epoch
    milliseconds like every timestamp (None when the column is absent or the
    cell empty: when it is stored); ``scenario`` as `pgfraud load
    --scenario-column` reads it (empty: ``labelled``; a number n:
    ``scenario_<n>``). Errors: InvalidInput listing every bad
    line (the header is line 1), with the same field rules as everywhere
    (pgfraud.wire).
    """
    labels, errors = read_labels_and_errors(path)
    if errors:
        raise refused_file(path, errors)
    return labels


def read_labels_and_errors(
    path: Path,
) -> tuple[list[tuple[int, str, datetime | None, int, Path]], list[dict[str, Any]]]:
    """As :func:`read_labels`, but the bad lines' errors (``{"row", "field",
    "message"}``) are returned beside the good lines' labels, not raised, so
    that `pgfraud load-labels` can check the good ones against the stored
    transactions too and report every bad line of a file at once. A file
    that is not CSV or has no header still raises InvalidInput."""
    reader = csv.DictReader(utf8_lines(path), strict=True)
    try:
        if not {"transaction_id", "scenario"} <= set(reader.fieldnames or ()):
            raise InvalidInput(
                f"line 1: {path} needs a header with transaction_id and scenario", row=1
            )
        rows, lines, extra = [], [], []
        for row in reader:
            if None in row:  # more fields than the header names: refused, as `load` does
                width = len(reader.fieldnames or ())
                extra.append(
                    {
                        "row": reader.line_num,
                        "field": None,
                        "message": f"has {width + len(row[None])} fields"
                        f" where the header names {width}",
                    }
                )
                continue
            rows.append(row)
            lines.append(reader.line_num)
    except csv.Error as exc:
        line = reader.line_num
        raise InvalidInput(f"line {line}: {path} is not valid CSV ({exc})", row=line) from None
    labels, errors = _parse_label_rows(rows, lines, path)
    return labels, sorted(errors + extra, key=lambda e: e["row"])


def _scenario_cell(value: Any) -> Any:
    """A label file's scenario cell read as `pgfraud load --scenario-column`
    reads one: empty gives ``labelled`` (known fraud of no named scenario), a
    number n ``scenario_<n>``; anything else is checked as a name."""
    if not isinstance(value, str):
        return value
    code = value.strip()
    if not code:
        return "labelled"
    if code.isascii() and code.isdigit() and len(code) <= 18:
        return f"scenario_{int(code)}"
    return value


def _parse_label_rows(
    rows: list[dict[str, Any]], lines: list[int], path: Path
) -> tuple[list[tuple[int, str, datetime | None, int, Path]], list[dict[str, Any]]]:
    """(labels of the good rows, errors of the bad ones) of a label file's rows."""
    rows = [{**row, "scenario": _scenario_cell(row.get("scenario"))} for row in rows]
    try:
        labels = parse_labels(rows, rows=lines)
    except InvalidInput as exc:
        errors = exc.errors
        bad = {e["row"] for e in errors}
        good = [(row, line) for row, line in zip(rows, lines, strict=True) if line not in bad]
        labels = parse_labels([r for r, _ in good], rows=[n for _, n in good]) if good else []
        lines = [n for _, n in good]
    else:
        errors = []
    return [
        (label.transaction_id, label.scenario, label.known_at, line, path)
        for label, line in zip(labels, lines, strict=True)
    ], errors


FOUR_PLACES = Decimal("0.0001")


def _ratio(numerator: int, denominator: int, scale: int = 1) -> Decimal | None:
    if not denominator:
        return None
    return (Decimal(numerator * scale) / Decimal(denominator)).quantize(FOUR_PLACES, ROUND_HALF_UP)


def add_measures(rows: list[dict[str, Any]], transactions: int) -> list[dict[str, Any]]:
    """evaluate_rules rows with ``f1`` and ``alerts_per_1000`` added (Decimal, 4 places).

    ``f1`` = 2 x TP / (flagged + labelled), the harmonic mean of precision and
    recall, for scenario ``all`` only (a false positive belongs to no
    scenario); ``alerts_per_1000`` = flagged x 1000 / ``transactions`` (the
    transactions in the evaluated range), also for ``all`` only. None where
    undefined.
    """
    out = []
    for r in rows:
        overall = r["scenario"] == "all"
        flagged = r["flagged"] or 0
        out.append(
            {
                **r,
                "f1": _ratio(2 * r["true_positives"], flagged + r["labelled"]) if overall else None,
                "alerts_per_1000": _ratio(flagged, transactions, 1000) if overall else None,
            }
        )
    return out


def evaluation(
    conn: psycopg.Connection,
    rules: dict[str, Any] | None,
    start: datetime | None,
    end: datetime | None,
    policy: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The whole evaluation: ``{"parameters", "transactions", "rows", "decisions"}``.

    ``parameters``: the rules that ran, as SQL resolve_backtest_rules made them
    (each rule's parameters merged over its live ones, validated, defaults
    filled in; the enabled rules when ``rules`` is None);
    ``transactions``: how many were evaluated ([start, end), None: unbounded);
    ``rows``: evaluate_rules rows with f1 and alerts_per_1000 (add_measures);
    ``decisions``: ``{"policy", "outcomes"}`` of db.evaluate_decisions, the
    outcome mix those rules and ``policy`` (a candidate merged over the policy
    in force; None: that policy) give, and precision and recall of decline and
    of review or decline.
    Errors: InvalidInput from SQL validate_rules, naming the rule and parameter,
    or from the policy's check, naming ``policy.<field>``; RuleNotFound for a
    score of an unknown rule.
    """
    rows = db.evaluate_rules(conn, rules, start, end)
    with db.wrap_errors():
        parameters, transactions = conn.execute(
            "SELECT resolve_backtest_rules(%s::jsonb),"
            " (SELECT count(*) FROM transactions AS t"
            "  WHERE (%s::timestamptz IS NULL OR t.ts >= %s)"
            "  AND (%s::timestamptz IS NULL OR t.ts < %s))",
            (db.dumps_json(rules) if rules is not None else None, start, start, end, end),
        ).fetchone()
    return {
        "parameters": parameters,
        "transactions": transactions,
        "rows": add_measures(rows, transactions),
        "decisions": db.evaluate_decisions(conn, rules, policy, start, end),
    }


def format_decisions(decisions: dict[str, Any]) -> Iterator[str]:
    """Lines of a plain-text table of db.evaluate_decisions' outcomes, after a line
    naming the policy that ran."""
    policy = decisions["policy"]
    yield (
        f"decisions: review from {policy['review_threshold']}, decline from "
        f"{policy['decline_threshold']}; scores "
        f"{db.dumps_json(policy['rule_scores'], sort_keys=True)}"
    )
    header = ("outcome", "transactions", "per_1000", "overruled", "fraud", "precision", "recall")

    def text(value: Any) -> str:
        return "" if value is None else str(value)

    table = [header] + [
        (
            r["outcome"],
            str(r["transactions"]),
            text(r["per_1000"]),
            str(r["overruled"]),
            str(r["fraud"]),
            text(r["precision_ratio"]),
            text(r["recall_ratio"]),
        )
        for r in decisions["outcomes"]
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        yield "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )


def format_report(rows: list[dict[str, Any]]) -> Iterator[str]:
    """Lines of a plain-text table of evaluation rows (add_measures)."""
    header = (
        "rule",
        "scenario",
        "labelled",
        "flagged",
        "caught",
        "precision",
        "recall",
        "f1",
        "per_1000",
    )

    def text(value: Any) -> str:
        return "" if value is None else str(value)

    table = [header] + [
        (
            r["rule_id"],
            r["scenario"],
            str(r["labelled"]),
            text(r["flagged"]),
            str(r["true_positives"]),
            text(r["precision_ratio"]),
            text(r["recall_ratio"]),
            text(r.get("f1")),
            text(r.get("alerts_per_1000")),
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        yield "  ".join(
            cell.ljust(w) if i < 2 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
