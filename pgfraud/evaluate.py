"""Ground-truth labels in, precision and recall out (the CLI side of SQL ``evaluate_rules``).

A label file is the generator's sidecar CSV: a header ``transaction_id,scenario``
then one row per fraudulent transaction. Labels go to the ``fraud_labels``
table, never into ``transactions``.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pgfraud.errors import InvalidInput
from pgfraud.wire import parse_id

SCENARIO = re.compile(r"[a-z][a-z0-9_]{0,62}")


def read_labels(path: Path) -> list[tuple[int, str]]:
    """(transaction_id, scenario) pairs of a label CSV.

    Errors: InvalidInput listing every bad line (header is line 1).
    """
    labels: list[tuple[int, str]] = []
    errors: list[dict[str, Any]] = []
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle, strict=True)
            if not reader.fieldnames or not {"transaction_id", "scenario"} <= set(
                reader.fieldnames
            ):
                raise InvalidInput(
                    f"line 1: {path} needs a header with transaction_id and scenario", row=1
                )
            for row in reader:
                line = reader.line_num
                try:
                    transaction_id = parse_id(row["transaction_id"] or "")
                except Exception as exc:  # noqa: BLE001 - the validator's message
                    errors.append(
                        {"row": line, "field": "transaction_id", "message": f"transaction_id {exc}"}
                    )
                    continue
                scenario = (row["scenario"] or "").strip()
                if not SCENARIO.fullmatch(scenario):
                    errors.append(
                        {
                            "row": line,
                            "field": "scenario",
                            "message": "scenario must be a lower_snake_case name",
                        }
                    )
                    continue
                labels.append((transaction_id, scenario))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InvalidInput(f"{path} is not a UTF-8 CSV file: {exc}") from None
    if errors:
        raise InvalidInput(
            f"{path}: {len(errors)} bad label line(s); nothing was stored",
            row=errors[0]["row"],
            field=errors[0]["field"],
            errors=errors[:100],
        )
    return labels


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
