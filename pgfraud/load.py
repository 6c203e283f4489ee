"""Load a CSV of transactions that someone else produced, by COPY, all-or-nothing.

The header must name ``account_id``, ``transaction_id``, ``amount`` and
``timestamp`` (ISO 8601, or epoch milliseconds) or ``timestamp_ms`` (epoch
milliseconds); ``merchant_id`` is read when present (empty: unknown), and
the label columns when asked (``label_column``, ``scenario_column``); other
columns are ignored. Every row is validated
(pgfraud.wire rules) and every bad row is reported by its line number (the
header is line 1); only a file with no bad row is stored, through the
staging table, so loading the same file twice stores nothing new.
"""

from __future__ import annotations

import contextlib
import csv
import re
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg

from pgfraud import db
from pgfraud.errors import MAX_LISTED_ERRORS, InvalidInput
from pgfraud.wire import (
    copy_line,
    format_timestamp,
    parse_timestamp,
    parse_transactions,
    plain_copy_line,
)

REQUIRED = ("account_id", "transaction_id", "amount")
CHUNK = 10_000


FIELDS = ("account_id", "transaction_id", "timestamp", "amount", "merchant_id")
# account_id, transaction_id, timestamp, amount, merchant_id, label, scenario, known_at:
# None for a required value the row lacks; "" for an optional one (or column).
Values = tuple[str | None, ...]
_PLAIN_MERCHANT = re.compile(r"[0-9]{1,18}")

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
    if code.isascii() and code.isdigit() and len(code) <= 18:
        return f"scenario_{int(code)}", None
    if _SCENARIO_TEXT.fullmatch(code):
        return code, None
    return None, {
        "field": scenario_column or "",
        "message": f"must be a number or a lower_snake_case name, not {code[:40]!r}",
    }


def parse_known_at(
    value: str | None, timestamp: str | None, known_at_column: str
) -> tuple[datetime | None, dict[str, str] | None]:
    """(known_at or None for "when stored", error or None) of a labelled row's known_at cell.

    ``value``: ISO 8601 or epoch milliseconds, like every timestamp; empty:
    None. It may not be before the row's own ``timestamp`` (not checked when
    that is itself bad: the row is refused for it anyway). An error is
    ``{"field", "message"}`` naming the column.
    """
    text = (value or "").strip()
    if not text:
        return None, None
    try:
        known_at = parse_timestamp(text)
    except ValueError as exc:
        return None, {"field": known_at_column, "message": str(exc)}
    try:
        happened = parse_timestamp((timestamp or "").strip())
    except ValueError:
        return known_at, None
    if known_at < happened:
        return None, {
            "field": known_at_column,
            "message": f"{text[:40]!r} is before the transaction's time "
            f"{format_timestamp(happened)}: a label cannot be known before its transaction",
        }
    return known_at, None


def utf8_lines(path: Path, opened: Callable[[Any], None] | None = None) -> Iterator[str]:
    """The lines of ``path`` as text (UTF-8, a leading BOM dropped), line ends kept as
    csv wants them (``newline=""``), for ``csv.reader``.

    Each line is checked on its own, so a byte that is not UTF-8 is reported
    on its own line, however far into the file: the file is decoded with
    ``surrogateescape`` (a bad byte becomes a lone surrogate instead of
    failing a whole 8 KiB read-ahead block) and a line holding one is
    refused. ``opened(handle)`` is called with the open file (to follow its
    position). Errors: InvalidInput ``line N: the file is not UTF-8 text
    (byte 0xNN at column C)``, ``row`` N.
    """
    with path.open(newline="", encoding="utf-8-sig", errors="surrogateescape") as handle:
        if opened is not None:
            opened(handle)
        for number, line in enumerate(handle, start=1):
            if line.isascii():  # the common case, checked in C without a copy
                yield line
                continue
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


def _rows(
    path: Path,
    seen: Callable[[int], None] | None = None,
    labels: tuple[str | None, ...] = (None, None, None),
) -> Iterator[tuple[int, Values]]:
    """(line number, (account_id, transaction_id, timestamp, amount) texts) per
    data row; None for a value the row lacks. ``seen(bytes)`` is told how far
    into the file reading has got, every CHUNK rows (for a progress bar).

    InvalidInput for a bad header, bytes that are not UTF-8 (on their line),
    or broken CSV (an unterminated quote, a field over 131,072 characters),
    naming the line.
    """
    holder: list[Any] = []
    reader = csv.reader(utf8_lines(path, holder.append), strict=True)
    try:
        for n, item in enumerate(_read(path, reader, labels), start=1):
            yield item
            if seen is not None and n % CHUNK == 0:
                seen(holder[0].buffer.tell())
    except csv.Error as exc:
        raise InvalidInput(
            f"line {reader.line_num}: not valid CSV ({exc})", row=reader.line_num
        ) from None


def _read(
    path: Path, reader: Any, labels: tuple[str | None, ...] = (None, None, None)
) -> Iterator[tuple[int, Values]]:
    """Header check, then (line, values) per non-blank data row."""
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise InvalidInput(f"{path} is empty: it needs a header line") from None
    missing = [name for name in (*REQUIRED, *(c for c in labels if c)) if name not in header]
    time_column = next((c for c in ("timestamp", "timestamp_ms") if c in header), None)
    if time_column is None:
        missing.append("timestamp (or timestamp_ms)")
    if missing:
        raise InvalidInput(
            f"line 1: the header lacks {', '.join(missing)}",
            field=missing[0].split()[0],
            row=1,
        )
    required = [header.index(n) for n in ("account_id", "transaction_id", time_column, "amount")]
    # Optional columns: -1 when absent (read as "").
    optional = [header.index(n) if n and n in header else -1 for n in ("merchant_id", *labels)]
    columns = required + optional
    width = max(required) + 1
    for values in reader:
        if len(values) >= width or (values and not all(not v.strip() for v in values)):
            short = len(values) < width
            # Last: the number of fields when the row has more than the header
            # names (a shifted or broken row: refused), else None.
            yield (
                reader.line_num,
                tuple(
                    (values[i] if 0 <= i < len(values) else ("" if k >= 4 else None))
                    if short or k >= 4
                    else values[i]
                    for k, i in enumerate(columns)
                )
                + (
                    f"{len(values)} fields where the header names {len(header)}"
                    if len(values) > len(header)
                    else None,
                ),
            )


def _full_check(
    slow: list[tuple[int, Values]], errors: list[dict[str, Any]]
) -> list[tuple[int, str]]:
    """The full wire rules (pydantic) for rows the plain path did not take:
    (line, COPY line) of the good ones; the problems go to ``errors``."""
    lines = [line for line, _ in slow]
    rows = [
        {k: v for k, v in zip(FIELDS, values[:5], strict=True) if v is not None}
        for _, values in slow
    ]
    try:
        checked = parse_transactions(rows, rows=lines)
    except InvalidInput as exc:
        errors.extend(exc.errors)
        return []
    return [(line, copy_line(t)) for line, t in zip(lines, checked, strict=True)]


def load_csv(
    conn: psycopg.Connection,
    path: Path,
    progress: bool = False,
    label_column: str | None = None,
    scenario_column: str | None = None,
    known_at_column: str | None = None,
) -> dict[str, int]:
    """Validate and store ``path`` by COPY in one pass, in the caller's database transaction.

    Rows in the plain form pgfraud writes are checked by fast code
    (pgfraud.wire.plain_copy_line) and sent as COPY text; other rows go
    through the full rules (pgfraud.wire.parse_transactions), which refuse
    bad ones with a message. When the file's first ids are not stored yet,
    the rows are copied straight into ``transactions`` (as fast as
    PostgreSQL's COPY); otherwise, or when an id turns out to be stored
    after all, through the staging table with duplicates counted (the file
    is then read a second time). After the first bad row nothing more is
    sent, but validation goes on so that every bad line (up to 100) is
    reported; a file with bad rows stores nothing (the caller rolls back).
    ``progress``: a progress bar on stderr (rows, rows/s, ETA). Memory is
    flat in the size of the file. Returns ``{"rows": n, "stored": s,
    "duplicate": d}``, and ``"labels"`` (fraud rows) when ``label_column``
    names the column of fraud labels (:func:`parse_label`; ``scenario_column``
    its scenario codes; ``known_at_column`` when each label became known, ISO
    8601 or epoch milliseconds, not before the row's timestamp; an empty cell
    or no such column: when stored): they are stored in ``fraud_labels`` in the same
    database transaction, after the transactions (the labels' trigger
    re-scores what compromised_merchant reads), which needs the owner's
    connection. Errors: InvalidInput (bad header or rows, ``errors``
    holds ``{"row"/"line", "field", "message"}`` per problem),
    TransactionConflict (an id already stored with other content; ``row`` is
    its line).
    """
    errors: list[dict[str, Any]] = []
    labels: list[tuple[int, str, datetime | None, int]] = []
    count = 0
    first_ids: list[int] = []
    columns = (
        label_column,
        scenario_column if label_column else None,
        known_at_column if label_column else None,
    )

    def chunks(numbered: bool) -> Iterator[str]:
        nonlocal count
        errors.clear()
        labels.clear()
        count = 0
        with _progress(path, progress) as seen:
            buffer: list[str] = []
            slow: list[tuple[int, Values]] = []
            for line, values in _rows(path, seen, columns):
                count += 1
                if values[-1] is not None:
                    errors.append(
                        {
                            "row": line,
                            "field": None,
                            "message": f"has {values[-1]}",
                        }
                    )
                if label_column:
                    scenario, error = parse_label(
                        values[5], values[6], label_column, scenario_column
                    )
                    known_at, known_error = (
                        parse_known_at(values[7], values[2], known_at_column)
                        if scenario and known_at_column
                        else (None, None)
                    )
                    if error or known_error:
                        errors.append({"row": line, **(error or known_error)})  # type: ignore[dict-item]
                    elif scenario and (values[1] or "").strip().isdigit():
                        labels.append(
                            (int(values[1].strip()), scenario, known_at, line)  # type: ignore[union-attr]
                        )
                merchant = (values[4] or "").strip()
                text = (
                    None
                    if None in values[:4]
                    or not (merchant == "" or _PLAIN_MERCHANT.fullmatch(merchant))
                    else plain_copy_line(*values[:4])  # type: ignore[arg-type]
                )
                if text is not None:
                    text += "\t" + (merchant or "\\N")
                if text is None:
                    slow.append((line, values))
                elif numbered:
                    buffer.append(f"{line}\t{text}\n")
                else:
                    buffer.append(text + "\n")
                if count % CHUNK == 0:
                    yield from flush(buffer, slow, numbered)
                    buffer, slow = [], []
                    if len(errors) >= MAX_LISTED_ERRORS:
                        return
            yield from flush(buffer, slow, numbered)

    def flush(buffer: list[str], slow: list[tuple[int, Values]], numbered: bool) -> Iterator[str]:
        if slow:
            for line, text in _full_check(slow, errors):
                buffer.append(f"{line}\t{text}\n" if numbered else text + "\n")
        if buffer and not errors:
            yield "".join(buffer)

    db.lift_statement_timeout(conn)
    # Probe: are the file's first ids stored already (a file loaded again)?
    for _, values in _rows(path, None, columns):
        if values[1] is not None and values[1].strip().isdigit() and len(first_ids) < CHUNK:
            first_ids.append(min(int(values[1].strip()), 2**63 - 1))
        if len(first_ids) >= CHUNK:
            break
    direct = not db.any_stored(conn, first_ids) if first_ids else True
    counts = db.store_copy_text(conn, chunks, direct=direct, valid=lambda: not errors)
    if errors or counts is None:
        raise refused_file(path, sorted(errors, key=lambda e: e["row"]))
    if not label_column:
        return {"rows": count, **counts}
    db.store_labels(conn, labels)
    return {"rows": count, **counts, "labels": len(labels)}


@contextlib.contextmanager
def _progress(path: Path, enabled: bool) -> Iterator[Callable[[int], None] | None]:
    """A tqdm bar over the file's bytes showing rows and rows/s (None when disabled)."""
    if not enabled:
        yield None
        return
    from tqdm import tqdm

    size = path.stat().st_size
    started = time.monotonic()
    rows = 0
    with tqdm(
        total=size,
        unit="B",
        unit_scale=True,
        file=sys.stderr,
        desc=f"loading {path.name}",
        bar_format="{desc}: {percentage:3.0f}%|{bar:20}| {postfix} [{elapsed}<{remaining}]",
        mininterval=0.5,
    ) as bar:

        def seen(position: int) -> None:
            nonlocal rows
            rows += CHUNK
            rate = rows / max(time.monotonic() - started, 1e-9)
            bar.set_postfix_str(f"{rows:,} rows, {rate:,.0f} rows/s", refresh=False)
            bar.update(position - bar.n)

        yield seen
        bar.update(size - bar.n)


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
