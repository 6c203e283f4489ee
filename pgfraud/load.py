"""Load a CSV of transactions that someone else produced, by COPY, all-or-nothing.

The header must name ``account_id``, ``transaction_id``, ``amount`` and
``timestamp`` (ISO 8601, or epoch milliseconds) or ``timestamp_ms`` (epoch
milliseconds); other columns are ignored. Every row is validated
(pgfraud.wire rules) and every bad row is reported by its line number (the
header is line 1); only a file with no bad row is stored, through the
staging table, so loading the same file twice stores nothing new.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg

from pgfraud import db
from pgfraud.errors import MAX_LISTED_ERRORS, InvalidInput
from pgfraud.wire import Transaction, parse_transactions

REQUIRED = ("account_id", "transaction_id", "amount")
OPTIONAL = ("merchant_id",)  # read when the header has it; an empty cell is unknown
CHUNK = 10_000


def utf8_lines(path: Path) -> Iterator[str]:
    """The lines of ``path`` as text (UTF-8, a leading BOM dropped), line ends kept as
    csv wants them (``newline=""``), for ``csv.reader``.

    Each line is checked on its own, so a byte that is not UTF-8 is reported
    on its own line, however far into the file: the file is decoded with
    ``surrogateescape`` (a bad byte becomes a lone surrogate instead of
    failing a whole 8 KiB read-ahead block) and a line holding one is
    refused. Errors: InvalidInput ``line N: the file is not UTF-8 text
    (byte 0xNN at column C)``, ``row`` N.
    """
    with path.open(newline="", encoding="utf-8-sig", errors="surrogateescape") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                line.encode("utf-8")
            except UnicodeEncodeError as exc:
                byte = ord(line[exc.start]) - 0xDC00
                raise InvalidInput(
                    f"line {number}: the file is not UTF-8 text "
                    f"(byte 0x{byte:02x} at column {exc.start + 1})",
                    row=number,
                ) from None
            yield line


TRUE_LABELS = frozenset({"1", "true", "t", "yes", "y"})
FALSE_LABELS = frozenset({"0", "false", "f", "no", "n"})
_SCENARIO_TEXT = re.compile(r"[a-z][a-z0-9_]{0,62}")


def parse_label(
    value: str | None, scenario: str | None, label_column: str, scenario_column: str | None
) -> tuple[str | None, dict[str, str] | None]:
    """(scenario name or None for not fraud, error or None) of one row's label cells.

    ``value``: 1/0, true/false, t/f, yes/no, y/n (any case); ``scenario``:
    a lower_snake_case name, or a numeric code n stored as ``scenario_<n>``;
    no scenario column (or an empty cell) gives ``labelled``. An error is
    ``{"field", "message"}`` naming the column.
    """
    text = (value or "").strip().lower()
    if text in FALSE_LABELS:
        return None, None
    if text not in TRUE_LABELS:
        return None, {
            "field": label_column,
            "message": f"must be 1/0, true/false or yes/no, not {value!r}",
        }
    code = (scenario or "").strip()
    if not code:
        return "labelled", None
    if code.isdigit() and len(code) <= 18:
        return f"scenario_{int(code)}", None
    if _SCENARIO_TEXT.fullmatch(code):
        return code, None
    return None, {
        "field": scenario_column or "",
        "message": f"must be a number or a lower_snake_case name, not {code[:40]!r}",
    }


def _rows(path: Path, extra: tuple[str, ...] = ()) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, {field: text}) per data row; ``extra``: more columns the header must have.

    InvalidInput for a bad header, bytes that are not UTF-8 (on their line),
    or broken CSV (an unterminated quote, a field over 131,072 characters),
    naming the line.
    """
    reader = csv.reader(utf8_lines(path), strict=True)
    try:
        yield from _read(path, reader, extra)
    except csv.Error as exc:
        raise InvalidInput(
            f"line {reader.line_num}: not valid CSV ({exc})", row=reader.line_num
        ) from None


def _read(
    path: Path, reader: Any, extra: tuple[str, ...] = ()
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Header check, then (line, {field: text}) per non-blank data row."""
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise InvalidInput(f"{path} is empty: it needs a header line") from None
    missing = [name for name in (*REQUIRED, *extra) if name not in header]
    time_column = next((c for c in ("timestamp", "timestamp_ms") if c in header), None)
    if time_column is None:
        missing.append("timestamp (or timestamp_ms)")
    if missing:
        raise InvalidInput(
            f"line 1: the header lacks {', '.join(missing)}",
            field=missing[0].split()[0],
            row=1,
        )
    optional = tuple(name for name in OPTIONAL if name in header)
    index = {name: header.index(name) for name in (*REQUIRED, time_column, *optional, *extra)}
    for values in reader:
        if not values or all(not v.strip() for v in values):
            continue  # blank line
        line = reader.line_num
        row = {name: values[i] if i < len(values) else None for name, i in index.items()}
        row["timestamp"] = row.pop(time_column)
        yield line, {k: v for k, v in row.items() if v is not None}


def _check(
    chunk: list[tuple[int, dict[str, Any]]], extra: tuple[str, ...] = ()
) -> list[tuple[int, Transaction]]:
    lines = [line for line, _ in chunk]
    rows = [{k: v for k, v in row.items() if k not in extra} for _, row in chunk]
    return list(zip(lines, parse_transactions(rows, rows=lines), strict=True))


def load_csv(
    conn: psycopg.Connection,
    path: Path,
    label_column: str | None = None,
    scenario_column: str | None = None,
) -> dict[str, int]:
    """Validate and store ``path`` by COPY in one pass, in the caller's database transaction.

    Rows are validated in chunks and streamed into the staging table; after
    the first bad row nothing more is staged, but validation goes on so that
    every bad line (up to 100) is reported. Only a file without bad rows is
    merged into ``transactions``; otherwise the caller rolls back. Returns
    ``{"rows": n, "stored": s, "duplicate": d}``, and ``"labels"`` (fraud rows)
    when ``label_column`` names the column of fraud labels (see
    :func:`parse_label`; ``scenario_column``: the scenario codes): those are
    stored in ``fraud_labels`` before the transactions, so scoring on
    arrival already reads them, which needs the owner's connection.
    Errors: InvalidInput (bad
    header or rows, ``errors`` holds ``{"row"/"line", "field", "message"}`` per
    problem), TransactionConflict (an id already stored with other content;
    ``row`` is its line).
    """
    errors: list[dict[str, Any]] = []
    labels: list[tuple[int, str]] = []
    count = 0
    extra = tuple(c for c in (label_column, scenario_column) if c)

    def staged_rows() -> Iterator[tuple[int, int, int, Any, Any]]:
        nonlocal count
        chunk: list[tuple[int, dict[str, Any]]] = []
        for item in _rows(path, extra):
            count += 1
            chunk.append(item)
            if len(chunk) == CHUNK:
                yield from validate(chunk)
                chunk = []
                if len(errors) >= MAX_LISTED_ERRORS:
                    return
        if chunk:
            yield from validate(chunk)

    def validate(chunk: list[tuple[int, dict[str, Any]]]) -> Iterator[tuple]:
        fraud: dict[int, str] = {}
        if label_column:
            for line, row in chunk:
                scenario, error = parse_label(
                    row.get(label_column),
                    row.get(scenario_column or ""),
                    label_column,
                    scenario_column,
                )
                if error:
                    errors.append({"row": line, **error})
                elif scenario:
                    fraud[line] = scenario
        try:
            good = _check(chunk, extra)
        except InvalidInput as exc:
            errors.extend(exc.errors)
            errors.sort(key=lambda e: e["row"])
            return
        if not errors:
            labels.extend((t.transaction_id, fraud[line]) for line, t in good if line in fraud)
            for line, t in good:
                yield (line, t.transaction_id, t.account_id, t.timestamp, t.amount, t.merchant_id)

    db.stage_transactions(conn, staged_rows())
    if errors:
        raise refused_file(path, errors)
    if not label_column:
        return {"rows": count, **db.store_staged(conn)}
    db.store_labels(conn, labels)
    return {"rows": count, **db.store_staged(conn), "labels": len(labels)}


def refused_file(path: Path, errors: list[dict[str, Any]]) -> InvalidInput:
    """The InvalidInput for a file with bad lines: ``errors`` are ``{"row": line, ...}``
    items (each also gets ``"line"``); the message lists their lines."""
    for e in errors:
        e["line"] = e["row"]
    shown = errors[:MAX_LISTED_ERRORS]
    bad_lines = list(dict.fromkeys(e["row"] for e in shown))  # a line may have several problems
    # Lists stop at MAX_LISTED_ERRORS, so reaching it means there may be more.
    at_least = "at least " if len(shown) == MAX_LISTED_ERRORS else ""
    return InvalidInput(
        f"{path}: {at_least}{len(bad_lines)} bad row(s), "
        f"at line(s) {', '.join(map(str, bad_lines))}; nothing was stored",
        field=shown[0].get("field"),
        row=shown[0]["row"],
        errors=errors,
    )
