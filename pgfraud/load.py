"""Load a CSV of transactions that someone else produced, by COPY, all-or-nothing.

The header must name ``account_id``, ``transaction_id``, ``amount`` and
``timestamp`` (ISO 8601, or epoch milliseconds) or ``timestamp_ms`` (epoch
milliseconds); other columns are ignored. Every row is validated first
(pgfraud.wire rules), and every bad row is reported by its line number (the
header is line 1); only a file with no bad row is stored, through the
staging table, so loading the same file twice stores nothing new.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg

from pgfraud import db
from pgfraud.errors import InvalidInput
from pgfraud.wire import Transaction, parse_transactions

REQUIRED = ("account_id", "transaction_id", "amount")
CHUNK = 10_000
MAX_ERRORS = 100


def _rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, {field: text}) per data row; InvalidInput for a bad header."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise InvalidInput(f"{path} is empty: it needs a header line") from None
        missing = [name for name in REQUIRED if name not in header]
        time_column = next((c for c in ("timestamp", "timestamp_ms") if c in header), None)
        if time_column is None:
            missing.append("timestamp (or timestamp_ms)")
        if missing:
            raise InvalidInput(
                f"line 1: the header lacks {', '.join(missing)}",
                field=missing[0].split()[0],
                row=1,
            )
        index = {name: header.index(name) for name in (*REQUIRED, time_column)}
        for values in reader:
            if not values or all(not v.strip() for v in values):
                continue  # blank line
            line = reader.line_num
            row = {name: values[i] if i < len(values) else None for name, i in index.items()}
            row["timestamp"] = row.pop(time_column)
            yield line, {k: v for k, v in row.items() if v is not None}


def _validated(path: Path) -> Iterator[tuple[int, Transaction]]:
    chunk: list[tuple[int, dict[str, Any]]] = []
    for item in _rows(path):
        chunk.append(item)
        if len(chunk) == CHUNK:
            yield from _check(chunk)
            chunk = []
    if chunk:
        yield from _check(chunk)


def _check(chunk: list[tuple[int, dict[str, Any]]]) -> Iterator[tuple[int, Transaction]]:
    lines = [line for line, _ in chunk]
    return zip(lines, parse_transactions([row for _, row in chunk], rows=lines), strict=True)


def validate_csv(path: Path) -> int:
    """Check every row; returns the number of rows. InvalidInput listing every bad
    line (up to 100) as ``{"row": line, "field", "message"}``."""
    errors: list[dict[str, Any]] = []
    count = 0
    chunk: list[tuple[int, dict[str, Any]]] = []

    def flush() -> None:
        try:
            list(_check(chunk))
        except InvalidInput as exc:
            errors.extend(exc.errors)

    for item in _rows(path):
        count += 1
        chunk.append(item)
        if len(chunk) == CHUNK:
            flush()
            chunk = []
        if len(errors) >= MAX_ERRORS:
            break
    if chunk:
        flush()
    if errors:
        for e in errors:
            e["line"] = e["row"]
        lines = ", ".join(str(e["row"]) for e in errors[:MAX_ERRORS])
        raise InvalidInput(
            f"{path}: {len(errors)} bad row(s), at line(s) {lines}; nothing was stored",
            field=errors[0].get("field"),
            row=errors[0]["row"],
            errors=errors[:MAX_ERRORS],
        )
    return count


def load_csv(conn: psycopg.Connection, path: Path) -> dict[str, int]:
    """Validate ``path`` whole, then store it by COPY in the caller's database transaction.

    Returns ``{"rows": n, "stored": s, "duplicate": d}``. Errors:
    InvalidInput (bad header or rows; nothing stored), TransactionConflict
    (an id already stored with other content; ``row`` is its line).
    """
    rows = validate_csv(path)
    counts = db.copy_transactions(
        conn,
        (
            (line, t.transaction_id, t.account_id, t.timestamp, t.amount)
            for line, t in _validated(path)
        ),
    )
    return {"rows": rows, **counts}
