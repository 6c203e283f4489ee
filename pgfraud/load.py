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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg

from pgfraud import db
from pgfraud.errors import MAX_LISTED_ERRORS, InvalidInput
from pgfraud.wire import Transaction, parse_transactions

REQUIRED = ("account_id", "transaction_id", "amount")
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


def _rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, {field: text}) per data row.

    InvalidInput for a bad header, bytes that are not UTF-8 (on their line),
    or broken CSV (an unterminated quote, a field over 131,072 characters),
    naming the line.
    """
    reader = csv.reader(utf8_lines(path), strict=True)
    try:
        yield from _read(path, reader)
    except csv.Error as exc:
        raise InvalidInput(
            f"line {reader.line_num}: not valid CSV ({exc})", row=reader.line_num
        ) from None


def _read(path: Path, reader: Any) -> Iterator[tuple[int, dict[str, Any]]]:
    """Header check, then (line, {field: text}) per non-blank data row."""
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


def _check(chunk: list[tuple[int, dict[str, Any]]]) -> list[tuple[int, Transaction]]:
    lines = [line for line, _ in chunk]
    return list(zip(lines, parse_transactions([row for _, row in chunk], rows=lines), strict=True))


def load_csv(conn: psycopg.Connection, path: Path) -> dict[str, int]:
    """Validate and store ``path`` by COPY in one pass, in the caller's database transaction.

    Rows are validated in chunks and streamed into the staging table; after
    the first bad row nothing more is staged, but validation goes on so that
    every bad line (up to 100) is reported. Only a file without bad rows is
    merged into ``transactions``; otherwise the caller rolls back. Returns
    ``{"rows": n, "stored": s, "duplicate": d}``. Errors: InvalidInput (bad
    header or rows, ``errors`` holds ``{"row"/"line", "field", "message"}`` per
    problem), TransactionConflict (an id already stored with other content;
    ``row`` is its line).
    """
    errors: list[dict[str, Any]] = []
    count = 0

    def staged_rows() -> Iterator[tuple[int, int, int, Any, Any]]:
        nonlocal count
        chunk: list[tuple[int, dict[str, Any]]] = []
        for item in _rows(path):
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
        try:
            good = _check(chunk)
        except InvalidInput as exc:
            errors.extend(exc.errors)
            return
        if not errors:
            for line, t in good:
                yield (line, t.transaction_id, t.account_id, t.timestamp, t.amount)

    db.stage_transactions(conn, staged_rows())
    if errors:
        raise refused_file(path, errors)
    return {"rows": count, **db.store_staged(conn)}


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
