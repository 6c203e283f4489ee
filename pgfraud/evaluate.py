"""Ground-truth labels in, precision and recall out (the CLI side of SQL ``evaluate_rules``).

A label file is the generator's sidecar CSV: a header ``transaction_id,scenario``
then one row per fraudulent transaction. Labels go to the ``fraud_labels``
table, never into ``transactions``.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pgfraud.errors import InvalidInput
from pgfraud.load import refused_file, utf8_lines
from pgfraud.wire import parse_labels


def read_labels(path: Path) -> list[tuple[int, str]]:
    """(transaction_id, scenario) pairs of a label CSV (header: transaction_id,scenario).

    Errors: InvalidInput listing every bad line (the header is line 1), with
    the same field rules as everywhere (pgfraud.wire).
    """
    reader = csv.DictReader(utf8_lines(path), strict=True)
    try:
        if not {"transaction_id", "scenario"} <= set(reader.fieldnames or ()):
            raise InvalidInput(
                f"line 1: {path} needs a header with transaction_id and scenario", row=1
            )
        rows, lines = [], []
        for row in reader:
            rows.append(row)
            lines.append(reader.line_num)
    except csv.Error as exc:
        line = reader.line_num
        raise InvalidInput(f"line {line}: {path} is not valid CSV ({exc})", row=line) from None
    try:
        labels = parse_labels(rows, rows=lines)
    except InvalidInput as exc:
        raise refused_file(path, exc.errors) from None
    return [(label.transaction_id, label.scenario) for label in labels]


def format_report(rows: list[dict[str, Any]]) -> Iterator[str]:
    """Lines of a plain-text table of evaluate_rules rows."""
    header = ("rule", "scenario", "labelled", "flagged", "caught", "precision", "recall")
    table = [header] + [
        (
            r["rule_id"],
            r["scenario"],
            str(r["labelled"]),
            "" if r["flagged"] is None else str(r["flagged"]),
            str(r["true_positives"]),
            "" if r["precision_ratio"] is None else str(r["precision_ratio"]),
            "" if r["recall_ratio"] is None else str(r["recall_ratio"]),
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        yield "  ".join(
            cell.ljust(w) if i < 2 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
