"""Generate, label and deliver in one streaming pass.

The transactions flow from the stream through the label sidecar (fraudulent
ones are written as they pass) into a sink. The labels file, and a CSV
output file, appear under their final names only when the whole run
succeeded (written to a temporary file beside them, then renamed), and a
database load commits once at the end: a failed run leaves nothing half-done
(except batches an HTTP server already accepted).
"""

from __future__ import annotations

import dataclasses
import math
import os
import shlex
import shutil
import stat
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

import click
import psycopg

from pgfraud import db
from pgfraud.errors import ConfigurationError, InvalidInput, PgfraudError
from pgfraud.evaluate import read_labels
from pgfraud.generator import sinks
from pgfraud.generator.stream import (
    EPOCH,
    GeneratedTransaction,
    RawTransaction,
    Settings,
    generate_raw,
    generate_transactions,
    to_transaction,
)
from pgfraud.wire import MAX_ID, MAX_TIME, format_timestamp

LABELS_HEADER = "transaction_id,scenario,known_at\n"
PROGRESS_EVERY = 1000
Row = GeneratedTransaction | RawTransaction


class _AtomicFile:
    """A text file written under a temporary name and renamed into place on commit().

    ``keep``: start from a copy of the existing file (to add to it). A file
    replaced keeps its permissions. A path that exists but is no regular file
    (``/dev/null``, a FIFO, ``/dev/stdout``) is written in place: renaming over
    it would replace the device. A symlink is followed, so the file it points
    to is the one replaced.
    """

    def __init__(self, path: Path, keep: bool = False) -> None:
        self.path = Path(os.path.realpath(path))
        self.direct = self.path.exists() and not self.path.is_file()
        self.tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        self.keep = keep and self.path.is_file()
        self.file: TextIO | None = None

    def __enter__(self) -> TextIO:
        mode = "a" if self.keep else "w"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.direct:
            self.file = open(self.path, mode, encoding="utf-8", newline="")  # noqa: SIM115
            return self.file
        if self.keep:
            shutil.copyfile(self.path, self.tmp)
        self.file = open(self.tmp, mode, encoding="utf-8", newline="")  # noqa: SIM115
        if self.path.is_file():  # the file replaced keeps its mode (0600 stays 0600)
            os.chmod(self.tmp, stat.S_IMODE(self.path.stat().st_mode))
        return self.file

    @property
    def readable_path(self) -> Path | None:
        """Where the text written so far can be read back (after a flush): the
        temporary file, or the file itself; None for a device or FIFO."""
        return None if self.direct else self.tmp

    def commit(self) -> None:
        assert self.file is not None
        self.file.close()
        self.file = None
        if not self.direct:
            os.replace(self.tmp, self.path)

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.file is not None:
            self.file.close()
            if not self.direct:
                self.tmp.unlink(missing_ok=True)


@dataclasses.dataclass
class _Tally:
    count: int = 0
    first: GeneratedTransaction | None = None
    last: GeneratedTransaction | None = None
    fraud: Counter[str] = dataclasses.field(default_factory=Counter)


def _labelled(transactions: Iterable[Row], labels: TextIO, tally: _Tally) -> Iterator[Row]:
    """Pass transactions through, writing ``transaction_id,scenario,known_at`` for
    fraudulent ones (known_at: ISO 8601 UTC with milliseconds and Z).

    Rows are GeneratedTransaction or RawTransaction tuples: both have the id
    at 0, the scenario at 4 and known_at at 6 (a datetime, or epoch ms).
    """
    write = labels.write
    fraud = tally.fraud
    first = None
    count = 0
    t = None
    for t in transactions:
        if t[4] is not None:
            known = t[6]
            if type(known) is int:
                known = EPOCH + timedelta(milliseconds=known)
            write(f"{t[0]},{t[4]},{format_timestamp(known)}\n")
            fraud[t[4]] += 1
        if first is None:
            first = tally.first = _as_transaction(t)
        count += 1
        tally.count = count
        tally.last = t  # type: ignore[assignment]
        yield t
    if t is not None:
        tally.last = _as_transaction(t)


def _as_transaction(t: Row) -> GeneratedTransaction:
    return t if isinstance(t, GeneratedTransaction) else to_transaction(t)


def _with_progress(
    transactions: Iterable[Row], total: int, label: str, then: str | None
) -> Iterator[Row]:
    """Pass transactions through a tqdm bar on stderr: rows, rows/s, ETA."""
    from tqdm import tqdm

    with tqdm(
        total=total, desc=label, unit=" rows", unit_scale=True, file=sys.stderr, mininterval=0.5
    ) as bar:
        pending = 0
        for t in transactions:
            yield t
            pending += 1
            if pending == PROGRESS_EVERY:
                bar.update(pending)
                pending = 0
        bar.update(pending)
    if then:
        click.echo(then, err=True)


def _has_labels_header(path: Path) -> bool:
    try:
        with open(path, encoding="utf-8", errors="replace", newline="") as f:
            return f.readline() == LABELS_HEADER
    except OSError:
        return False


def _explain(exc: PgfraudError) -> PgfraudError:
    """A plain PgfraudError from the database ("Something went wrong") with the reason."""
    cause = exc.__cause__
    if type(exc) is not PgfraudError or not isinstance(cause, psycopg.Error):
        return exc
    reason = (cause.diag.message_primary or str(cause)).strip()
    if cause.sqlstate in ("42883", "42P01"):  # undefined function / table
        return ConfigurationError(
            f"the database has no pgfraud schema ({reason}); migrate it first"
        )
    if cause.sqlstate == "42501":
        return ConfigurationError(f"the database login lacks a privilege: {reason}")
    return PgfraudError(f"database error: {reason}")


def _check_room_for_ids(last_id: int, count: int) -> None:
    """InvalidInput, in words about the stored data, when ``count`` ids do not fit after
    ``last_id``."""
    left = MAX_ID - last_id
    if count > left:
        raise InvalidInput(
            f"cannot append {count:,} transactions: the database already holds transaction id "
            f"{last_id}, so only {left:,} ids are left below {MAX_ID} (the largest pgfraud "
            "stores); append fewer, or use a database without such large ids",
            field="num_transactions",
        )


def _no_room_for_times(last_ts: datetime, count: int) -> InvalidInput:
    """The error for an append whose times would reach 2100, in words about the stored data."""
    return InvalidInput(
        f"cannot append {count:,} transactions: the latest stored transaction is at "
        f"{format_timestamp(last_ts)} and appended ones come after it, so they would reach "
        f"{format_timestamp(MAX_TIME)}, the latest pgfraud stores; append fewer, or use a "
        "database without such late timestamps",
        field="num_transactions",
    )


def _may_store_labels(conn: psycopg.Connection) -> bool:
    """Whether this login may write ``fraud_labels`` (the owner may; the service's
    login may not: labels are not the service's data)."""
    with db.wrap_errors():
        return conn.execute("SELECT has_table_privilege('fraud_labels', 'INSERT')").fetchone()[0]


def labels_reminder(summary: dict[str, Any]) -> str | None:
    """The loud note for a run whose labels went to the file only although its
    transactions went to a database or an API (None otherwise): ``pgfraud
    evaluate`` counts every generated fraud as a false positive until the
    labels are stored, and the exact command that stores them. None too when
    the run made no fraud: there is nothing to store."""
    if summary["labels_not_stored"] is None or not summary["fraud"]:
        return None
    return (
        f"WARNING: the {summary['fraud']:,} fraud labels were NOT stored in the database "
        f"({summary['labels_not_stored']}); they are only in {summary['labels']}, and "
        "`pgfraud evaluate` counts those frauds as false positives until you run:\n"
        f"  pgfraud load-labels {shlex.quote(summary['labels'])}"
    )


def _where(conn: psycopg.Connection) -> str:
    info = conn.info
    return f"database {info.dbname} at {info.host}:{info.port}"


def generate_to(
    settings: Settings,
    sink: str,
    *,
    labels_path: Path = Path("labels.csv"),
    database_url: str | None = None,
    post_url: str | None = None,
    api_token: str | None = None,
    batch_size: int = 1000,
    rate: float | None = None,
    output: str | Path = "-",
    append: bool = False,
    progress: bool = False,
    label_columns: bool = False,
    labels_database_url: str | None = None,
) -> dict[str, Any]:
    """Generate ``settings`` into ``sink`` (one of sinks.SINKS), labels to ``labels_path``.

    Labels in the database (``copy``, ``insert``): the labels of the run are
    stored in ``fraud_labels`` too (as ``pgfraud load-labels`` stores them), so
    that ``pgfraud evaluate`` counts the generated frauds: in the same database
    transaction as the transactions when ``database_url``'s login may write
    labels, otherwise after it with ``labels_database_url`` (the owner's URL),
    when given. ``api`` cannot send labels. When they are not stored, the
    summary says why (``labels_not_stored``), and the caller tells the user to
    run ``pgfraud load-labels`` on the file.

    ``label_columns`` (csv): the labels also go in the CSV itself, as columns
    is_fraud and fraud_scenario (for ``pgfraud load --label-column``).

    ``copy`` and ``insert`` need ``database_url`` (libpq URL; the service's
    login is enough) and run in one database transaction; ``insert`` sends
    ``batch_size`` rows per call. ``api`` POSTs ``batch_size`` per request to
    ``post_url`` with ``api_token`` as bearer token. ``rate`` (api and
    insert): transactions per second, spread evenly (sinks.Schedule).
    ``csv`` writes to ``output`` (a path, or
    ``"-"`` for stdout). ``append`` (database sinks): continue after what is
    stored: ids from max stored id + 1, times after the latest stored time
    (an empty table keeps ``settings``), and labels added to an existing
    labels file (one that starts with the header); a file of another shape
    is replaced. ``progress``: a progress bar on stderr.

    Returns ``{"sink", "destination", "generated", "written", "stored",
    "duplicates", "fraud", "fraud_by_scenario", "labels", "labels_stored",
    "labels_not_stored", "first_transaction_id", "last_transaction_id",
    "first_timestamp", "last_timestamp"}`` (stored/duplicates None for csv;
    timestamps ISO text; labels_stored: db.store_labels's counts, or None
    with labels_not_stored saying why; both None for csv).
    Errors: InvalidInput for bad arguments, SinkError (api),
    TransactionConflict, DatabaseUnavailable, ConfigurationError (database
    not migrated, missing privilege).
    """
    if sink not in sinks.SINKS:
        raise InvalidInput(f"sink must be one of {', '.join(sinks.SINKS)}", field="sink")
    if batch_size < 1:
        raise InvalidInput("batch_size must be at least 1", field="batch_size")
    if rate is not None and not (math.isfinite(rate) and rate > 0):
        raise InvalidInput("rate must be a finite number above 0 per second", field="rate")
    if rate is not None and sink not in ("api", "insert"):
        raise InvalidInput("rate works with the api and insert sinks only", field="rate")
    if sink in ("copy", "insert") and not database_url:
        raise InvalidInput(f"the {sink} sink needs a database URL", field="database_url")
    if sink == "api" and not post_url:
        raise InvalidInput("the api sink needs a post URL", field="post_url")
    if label_columns and sink != "csv":
        raise InvalidInput("label columns go in CSV output only", field="label_columns")
    if append and sink not in ("copy", "insert"):
        raise InvalidInput("append works with the copy and insert sinks only", field="append")

    tally = _Tally()
    labels_stored: dict[str, int] | None = None
    scored: dict[str, int] | None = None
    citus = False
    keep_labels = append and _has_labels_header(labels_path)
    labels_file = _AtomicFile(labels_path, keep=keep_labels)

    def stream(run_settings: Settings, labels: TextIO, raw: bool = False) -> Iterator[Row]:
        rows: Iterable[Row] = (generate_raw if raw else generate_transactions)(run_settings)
        rows = _labelled(rows, labels, tally)
        if progress:
            then = "storing (one database transaction) ..." if sink == "copy" else None
            rows = _with_progress(rows, run_settings.num_transactions, "generating", then)
        return iter(rows)

    try:
        with labels_file as labels:
            if not keep_labels:
                labels.write(LABELS_HEADER)
            if sink in ("copy", "insert"):
                assert database_url is not None
                with db.connect(database_url) as conn:
                    last_ts = None
                    if append:
                        last_id, last_ts = db.get_latest(conn)
                        if last_id is not None and last_ts is not None:
                            _check_room_for_ids(last_id, settings.num_transactions)
                            settings = dataclasses.replace(
                                settings, first_transaction_id=last_id + 1, start=last_ts
                            )
                    destination = _where(conn)
                    try:
                        if sink == "copy":
                            first = settings.first_transaction_id
                            counts = sinks.to_copy(
                                conn,
                                stream(settings, labels, raw=True),  # type: ignore[arg-type]
                                id_range=(first, first + settings.num_transactions - 1),
                            )
                        else:
                            schedule = sinks.Schedule(rate) if rate is not None else None
                            counts = sinks.to_insert(
                                conn, stream(settings, labels), batch_size, schedule=schedule
                            )
                    except InvalidInput as exc:
                        if last_ts is None or exc.field != "start":
                            raise
                        raise _no_room_for_times(last_ts, settings.num_transactions) from None
                    if _may_store_labels(conn) and labels_file.readable_path is not None:
                        labels.flush()
                        labels_stored = db.store_labels(
                            conn, read_labels(labels_file.readable_path)
                        )
                    conn.commit()
                    citus = db.on_citus(conn)
                if citus:
                    # On Citus the rows went in raw: score the touched accounts.
                    from pgfraud.db.citus import score_pending

                    scored = score_pending(database_url)
            elif sink == "api":
                assert post_url is not None
                destination = post_url
                counts = sinks.to_api(
                    post_url, stream(settings, labels), batch_size, rate=rate, token=api_token
                )
            elif str(output) == "-":
                destination = "stdout"
                counts = sinks.to_csv(sys.stdout, stream(settings, labels), label_columns)
                sys.stdout.flush()
            else:
                destination = str(output)
                output_file = _AtomicFile(Path(output))
                with output_file as out:
                    counts = sinks.to_csv(out, stream(settings, labels), label_columns)
                    output_file.commit()
            labels_file.commit()
    except PgfraudError as exc:
        raise _explain(exc) from exc
    labels_not_stored = None
    if sink == "api":
        labels_not_stored = "the HTTP API takes no labels"
    elif sink in ("copy", "insert") and labels_stored is None:
        labels_not_stored = "the database login may not write labels"
        if labels_database_url and not labels_file.direct:
            try:  # the transactions are committed; the labels file is in place
                with db.connect(labels_database_url) as owner:
                    labels_stored = db.store_labels(owner, read_labels(labels_path))
                    owner.commit()
                labels_not_stored = None
            except PgfraudError as exc:
                labels_not_stored = f"storing them failed: {exc.message}"
        elif labels_file.direct:
            labels_not_stored = f"{labels_path} is not a regular file to read them back from"

    def iso(t: GeneratedTransaction | None) -> str | None:
        return format_timestamp(t.timestamp) if t else None

    return {
        "sink": sink,
        "destination": destination,
        "generated": tally.count,
        "written": counts["written"],
        "stored": counts["stored"],
        "duplicates": counts["duplicates"],
        "fraud": sum(tally.fraud.values()),
        "fraud_by_scenario": {name: tally.fraud[name] for name in settings.scenarios},
        "labels": str(labels_path),
        "labels_stored": labels_stored,
        "labels_not_stored": labels_not_stored,
        # Citus layout: the per-account scoring pass after the raw load.
        "scored": scored,
        "first_transaction_id": tally.first.transaction_id if tally.first else None,
        "last_transaction_id": tally.last.transaction_id if tally.last else None,
        "first_timestamp": iso(tally.first),
        "last_timestamp": iso(tally.last),
    }


def seed_database(
    database_url: str,
    num_transactions: int = 10_000,
    accounts: int = 100,
    seed: int = 42,
    labels_path: Path = Path("labels.csv"),
    progress: bool = False,
    mix: str = "realistic",
) -> dict[str, Any]:
    """Load generated transactions into a database by COPY, all-or-nothing.

    ``mix``: a name of mixes.MIXES (the realistic mix by default); all
    scenarios at the mix's fraud rate, start 2024-01-01T00:00:00Z, ids from 1.
    Running it again with the same arguments stores nothing new (every row
    is a duplicate). Returns generate_to's summary. Errors: as generate_to.
    """
    settings = Settings(num_transactions=num_transactions, accounts=accounts, seed=seed, mix=mix)
    return generate_to(
        settings, "copy", labels_path=labels_path, database_url=database_url, progress=progress
    )


def summary_line(summary: dict[str, Any]) -> str:
    """One line for people: what went where, and where the labels are."""
    n = summary["generated"]
    where = f"{summary['sink']} -> {summary['destination']}"
    if summary["stored"] is None:
        result = f"{summary['written']} written"
    else:
        result = f"{summary['stored']} stored, {summary['duplicates']} duplicates"
    if summary.get("scored"):
        result += f", {summary['scored']['accounts']} accounts scored per account"
    ids = f"ids {summary['first_transaction_id']}..{summary['last_transaction_id']}"
    span = f"{summary['first_timestamp']}..{summary['last_timestamp']}"
    by = ", ".join(f"{k} {v}" for k, v in summary["fraud_by_scenario"].items())
    stored = " and stored in the database" if summary.get("labels_stored") else ""
    return (
        f"generated {n} transactions ({ids}, {span}) to {where}: {result}; "
        f"{summary['fraud']} fraudulent ({by}) labelled in {summary['labels']}{stored}"
    )
