"""Destinations for generated transactions: COPY, INSERT, HTTP and CSV.

Each sink takes an iterable of :class:`GeneratedTransaction` (consumed once,
lazily: nothing is held beyond one batch) and returns counts
``{"written", "stored", "duplicates"}``: ``written`` is how many were sent;
``stored``/``duplicates`` what the destination reported (None for CSV). The
scenario labels are never sent anywhere: callers write them to a sidecar.

The database sinks run in the caller's database transaction; the caller
commits once at the end, so a load is all-or-nothing.
"""

from __future__ import annotations

import collections
import itertools
import json
import math
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, wait
from datetime import timedelta
from typing import Any, TextIO

import psycopg
import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from pgfraud import db
from pgfraud.ahead import read_ahead
from pgfraud.errors import PgfraudError, TransactionConflict
from pgfraud.generator.stream import EPOCH, GeneratedTransaction, RawTransaction
from pgfraud.wire import format_timestamp

CSV_HEADER = "account_id,transaction_id,timestamp,amount,merchant_id\n"
LABELLED_CSV_HEADER = (
    "account_id,transaction_id,timestamp,amount,merchant_id,is_fraud,fraud_scenario\n"
)
SINKS = ("copy", "insert", "api", "csv")

Counts = dict[str, int | None]
SEND_INTERVAL = 0.05  # seconds: with a rate, batches leave at most this far apart


class Schedule:
    """When transactions leave at ``rate`` per second, spread evenly.

    Transaction ``i`` (from 0) is due ``i / rate`` seconds after the first;
    a batch leaves when its last transaction is due, never earlier. Batches
    hold ``batch_size(limit)`` transactions: as many as fall due in
    SEND_INTERVAL (at least 1, at most ``limit``), so the rate is the same
    whatever the batch size, and n transactions take (n - 1) / rate seconds.
    ``clock`` (seconds, monotonic) and ``sleep`` are injectable for tests.
    """

    def __init__(
        self,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] = time.sleep,
    ) -> None:
        if not (math.isfinite(rate) and rate > 0):
            raise ValueError("rate must be a finite number above 0")
        self.rate = rate
        self.clock = clock
        self.sleep = sleep
        self.started: float | None = None

    def batch_size(self, limit: int) -> int:
        """Transactions per batch: those due within SEND_INTERVAL, 1 .. ``limit``."""
        return max(1, min(limit, math.floor(self.rate * SEND_INTERVAL)))

    def wait(self, last_index: int) -> None:
        """Sleep until transaction ``last_index`` (from 0) is due; the clock starts at
        the first call."""
        now = self.clock()
        if self.started is None:
            self.started = now
        delay = self.started + last_index / self.rate - now
        if delay > 0:
            self.sleep(delay)


def _paced(
    transactions: Iterable[GeneratedTransaction], batch_size: int, schedule: Schedule | None
) -> Iterator[list[GeneratedTransaction]]:
    """Batches of ``batch_size`` (or the schedule's smaller size), each yielded when due."""
    if schedule is None:
        yield from _batches(transactions, batch_size)
        return
    sent = 0
    for batch in _batches(transactions, schedule.batch_size(batch_size)):
        schedule.wait(sent + len(batch) - 1)
        yield batch
        sent += len(batch)


class SinkError(PgfraudError):
    """The destination refused the generated transactions."""

    code = "sink_error"
    status = 502


def _batches(
    transactions: Iterable[GeneratedTransaction], size: int
) -> Iterator[list[GeneratedTransaction]]:
    iterator = iter(transactions)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def copy_text(
    rows: Iterable[RawTransaction], numbered: bool = False, chunk: int = 10_000
) -> Iterator[str]:
    """Generated rows as COPY text (``transaction_id, account_id, ts, amount, merchant_id``
    lines, after the row number from 1 when ``numbered``), ``chunk`` rows per
    piece: ts as ISO UTC with milliseconds and Z, amount with 2 decimals; the
    date and minute are formatted once per minute."""
    minute_of = -1
    prefix = ""
    lines: list[str] = []
    for number, (transaction_id, account_id, ms, cents, _, merchant, _) in enumerate(rows, 1):
        minute, rest = divmod(ms, 60_000)
        if minute != minute_of:
            minute_of = minute
            prefix = (EPOCH + timedelta(minutes=minute)).strftime("%Y-%m-%dT%H:%M:")
        seconds, millis = divmod(rest, 1000)
        euros, cent = divmod(cents, 100)
        ts = f"{prefix}{seconds:02d}.{millis:03d}Z"
        shop = "\\N" if merchant is None else merchant
        line = f"{transaction_id}\t{account_id}\t{ts}\t{euros}.{cent:02d}\t{shop}\n"
        lines.append(f"{number}\t{line}" if numbered else line)
        if len(lines) == chunk:
            yield "".join(lines)
            lines = []
    if lines:
        yield "".join(lines)


def to_copy(
    conn: psycopg.Connection,
    rows: Iterable[RawTransaction],
    id_range: tuple[int, int] | None = None,
) -> Counts:
    """Store by one streamed COPY, in the caller's transaction (pgfraud.db.store_copy_text).

    ``rows``: generated rows (stream.generate_raw), consumed once.
    ``id_range``: (first, last) transaction id of the rows; when none of
    them is stored the COPY goes straight into ``transactions``; otherwise
    (or without it) through the staging table, duplicates counted.
    Errors: TransactionConflict when an id is stored with other content (or
    written meanwhile by someone else), InvalidInput, DatabaseUnavailable
    (nothing is stored; the caller rolls back).
    """
    written = 0
    used = False

    def counted() -> Iterator[RawTransaction]:
        nonlocal written
        for row in rows:
            written += 1
            yield row

    def chunks(numbered: bool) -> Iterator[str]:
        nonlocal used
        if used:  # the stream is consumed: an id stored meanwhile by another writer
            raise TransactionConflict(
                "a generated transaction id was stored by someone else during the load; "
                "run it again (stored ones then count as duplicates)",
                field="transaction_id",
            )
        used = True
        return copy_text(counted(), numbered=numbered)

    db.lift_statement_timeout(conn)
    direct = id_range is not None and not db.any_stored(conn, id_range)
    counts = db.store_copy_text(conn, chunks, direct=direct)
    assert counts is not None
    return {"written": written, "stored": counts["stored"], "duplicates": counts["duplicate"]}


def to_insert(
    conn: psycopg.Connection,
    transactions: Iterable[GeneratedTransaction],
    batch_size: int,
    *,
    schedule: Schedule | None = None,
) -> Counts:
    """Store in batches of ``batch_size`` (pgfraud.db.store_transactions), in the
    caller's transaction (commit once at the end: all-or-nothing).

    ``schedule``: pace the calls at its rate (see Schedule); None: at once.
    Errors: as to_copy; a conflict's ``row`` is its index within its batch.
    """
    written = stored = 0
    for batch in _paced(transactions, batch_size, schedule):
        records = [
            {
                "account_id": t.account_id,
                "transaction_id": t.transaction_id,
                "timestamp": t.timestamp,
                "amount": t.amount,
                "merchant_id": t.merchant_id,
            }
            for t in batch
        ]
        results = db.store_transactions(conn, records)
        written += len(batch)
        stored += sum(1 for r in results if r["status"] == "stored")
    return {"written": written, "stored": stored, "duplicates": written - stored}


def to_json(t: GeneratedTransaction) -> dict[str, Any]:
    """The wire form of a transaction: ISO timestamp (ms, Z) and the amount as a string."""
    return {
        "account_id": t.account_id,
        "transaction_id": t.transaction_id,
        "timestamp": format_timestamp(t.timestamp),
        "amount": str(t.amount),
        "merchant_id": t.merchant_id,
    }


def _server_error(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        return text[:500] if text else "(empty body)"
    if isinstance(body, dict) and "error" in body:
        body = body["error"]
    return json.dumps(body, default=str)[:2000]


# A store is idempotent (a re-sent batch is answered duplicate, stored once),
# so a POST that met a restarting server (503, or a refused or dropped
# connection) is sent again: 8 tries over about 25 s, backing off.
RETRY = Retry(
    total=8,
    backoff_factor=0.2,
    backoff_max=8,
    status_forcelist=(502, 503, 504),
    allowed_methods=None,  # every method, POST included: stores are idempotent
    raise_on_status=False,
)


def api_session() -> requests.Session:
    """A requests session that retries idempotent stores (see RETRY)."""
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=RETRY)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


IN_FLIGHT = 2  # batches sent and not yet answered, when sending as fast as the server answers


def to_api(
    url: str,
    transactions: Iterable[GeneratedTransaction],
    batch_size: int,
    *,
    rate: float | None = None,
    token: str | None = None,
    timeout: float = 60.0,
    session: requests.Session | None = None,
    schedule: Schedule | None = None,
    in_flight: int = IN_FLIGHT,
) -> Counts:
    """POST JSON arrays of up to ``batch_size`` transactions to ``url`` (pgfraud's /store_data).

    ``rate``: transactions per second, spread evenly whatever ``batch_size``
    (live replay, see Schedule: batches shrink to what falls due in
    SEND_INTERVAL), one batch at a time; None sends as fast as the server
    answers: the next batch is generated and encoded while others are sent,
    and up to ``in_flight`` batches are on their way at once (each on its
    own connection), so that the server parses one while PostgreSQL stores
    another. Their rows may then be stored out of time order; the server
    scores a late arrival and re-scores what follows it, so the alerts are
    the same as with one batch at a time (docs/data.md, "late arrivals").
    ``schedule``: a ready Schedule instead of ``rate`` (tests inject its
    clock). ``token``: sent as ``Authorization: Bearer <token>``.
    ``timeout`` in seconds per request. Counts come from the answers'
    ``stored`` and ``duplicates``; a 2xx answer without them is a SinkError
    (not pgfraud). Each batch is all-or-nothing on the server; a failed
    batch stops the run, and the batches answered before it stay stored, as
    may one sent meanwhile (the error says which); sending again is
    harmless. A batch answered 502/503/504, or whose connection was refused
    or cut, is sent again (RETRY: up to 8 tries over about 25 s), which is
    safe because stores are idempotent: a database restart during a run
    loses and doubles nothing. Errors: SinkError naming the batch and its
    transaction ids, with the server's JSON error, on another non-2xx
    answer or when the server cannot be reached after the retries.
    """
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if schedule is None and rate is not None:
        schedule = Schedule(rate)
    batches: Iterator[tuple[list[GeneratedTransaction], str]] = (
        (batch, json.dumps([to_json(t) for t in batch]))
        for batch in _paced(transactions, batch_size, schedule)
    )
    if schedule is None:
        # As fast as the server answers: the next batch is generated and
        # encoded by a helper thread while earlier ones are sent and stored.
        batches = read_ahead(batches, depth=2)
    else:
        in_flight = 1
    sessions: queue.SimpleQueue[requests.Session] = queue.SimpleQueue()
    opened: list[requests.Session] = []
    for _ in range(max(1, in_flight)):
        if session is not None and not opened:
            sessions.put(session)  # the caller's, used by one request at a time
            opened.append(session)
            continue
        opened.append(api_session())
        sessions.put(opened[-1])

    def post(body: str) -> requests.Response | requests.RequestException:
        http = sessions.get()
        try:
            return http.post(url, data=body, headers=headers, timeout=timeout)
        except requests.RequestException as exc:
            return exc
        finally:
            sessions.put(http)

    counts = {"written": 0, "stored": 0, "duplicates": 0}
    sent: collections.deque[tuple[int, list[GeneratedTransaction], Future]] = collections.deque()
    try:
        for number, (batch, body) in enumerate(batches, start=1):
            sent.append((number, batch, _in_background(post, body)))
            if len(sent) >= max(1, in_flight):
                _answered(url, sent, counts)
        while sent:
            _answered(url, sent, counts)
    except (KeyboardInterrupt, SystemExit):
        # Ctrl-C or SIGTERM: leave at once. A request in flight may wait
        # minutes on a server that does not answer (timeout, retries); its
        # daemon thread ends with the process, and its batch is stored or
        # not, as with a request cut short.
        raise
    except BaseException:
        wait([future for _, _, future in sent])  # what stays stored is then known
        _close(opened, session)
        raise
    _close(opened, session)
    return counts


def _close(opened: list[requests.Session], keep: requests.Session | None) -> None:
    for http in opened:
        if http is not keep:
            http.close()


def _in_background(post: Callable[[str], Any], body: str) -> Future:
    """``post(body)`` in a daemon thread; its outcome in the returned Future.
    Daemon: the process can exit (Ctrl-C, SIGTERM) while it still waits on
    a server, which the worker threads of a ThreadPoolExecutor forbid (they
    are joined at exit)."""
    future: Future = Future()

    def run() -> None:
        try:
            outcome = post(body)
        except BaseException as exc:  # handed to the waiting caller
            future.set_exception(exc)
        else:
            future.set_result(outcome)

    threading.Thread(target=run, name="pgfraud-post", daemon=True).start()
    return future


def _answered(
    url: str,
    sent: collections.deque[tuple[int, list[GeneratedTransaction], Future]],
    counts: dict[str, int],
) -> None:
    """Wait for the oldest batch of ``sent`` and count its answer into ``counts``.

    On a failure: wait for the batches sent after it too, and raise one
    SinkError that says what stays stored (see to_api)."""
    number, batch, future = sent.popleft()
    outcome = future.result()
    try:
        answer = _counts(url, number, batch, outcome)
    except SinkError as exc:
        written = f"{counts['written']} transactions"
        done = ""
        if number == 2:
            done = f"; batch 1 was sent ({written}) and stays stored"
        elif number > 2:
            done = f"; batches 1..{number - 1} were sent ({written}) and stay stored"
        stored = number > 1
        for later, later_batch, later_future in sent:
            try:
                _counts(url, later, later_batch, later_future.result())
                done += f"; batch {later}, sent meanwhile, was stored too"
                stored = True
            except SinkError:
                done += f"; batch {later}, sent meanwhile, failed too"
        sent.clear()
        if stored:
            done += " (sending again is harmless: stored ones count as duplicates)"
        raise SinkError(f"{exc.message}{done}", row=number) from exc.__cause__
    counts["written"] += len(batch)
    counts["stored"] += answer["stored"]
    counts["duplicates"] += int(answer.get("duplicates") or 0)


def _counts(
    url: str,
    number: int,
    batch: list[GeneratedTransaction],
    outcome: requests.Response | requests.RequestException,
) -> dict[str, Any]:
    """pgfraud's answer to batch ``number``: ``{"stored": n, "duplicates": m}``.
    Errors: SinkError naming the batch, its ids and what the server said."""
    ids = f"transactions {batch[0].transaction_id}..{batch[-1].transaction_id}"
    if isinstance(outcome, requests.RequestException):
        error = SinkError(f"batch {number} ({ids}): cannot reach {url}: {outcome}")
        error.__cause__ = outcome
        raise error
    response = outcome
    if not 200 <= response.status_code < 300:
        raise SinkError(
            f"batch {number} ({ids}) refused by {url}: HTTP {response.status_code}: "
            f"{_server_error(response)}",
            row=number,
        )
    try:
        answer = response.json()
    except ValueError:
        answer = {}
    if not (isinstance(answer, dict) and isinstance(answer.get("stored"), int)):
        # Not pgfraud's answer (another server at that URL?): what it
        # stored is unknown, so it is not counted as stored.
        raise SinkError(
            f"batch {number} ({ids}): {url} answered HTTP {response.status_code} "
            f"without pgfraud's counts (stored, duplicates): is it pgfraud's /store_data?",
            row=number,
        )
    return answer


def to_csv(
    out: TextIO, transactions: Iterable[GeneratedTransaction], label_columns: bool = False
) -> Counts:
    """Write CSV to ``out``: header ``account_id,transaction_id,timestamp,amount,merchant_id``
    (``label_columns``: then ``is_fraud`` 1/0 and ``fraud_scenario``, empty when not
    fraud), ``\\n`` line ends, ISO timestamps with milliseconds and Z, amounts with 2
    decimals."""
    out.write(LABELLED_CSV_HEADER if label_columns else CSV_HEADER)
    written = 0
    for t in transactions:
        merchant = "" if t.merchant_id is None else t.merchant_id
        ts = format_timestamp(t.timestamp)
        line = f"{t.account_id},{t.transaction_id},{ts},{t.amount},{merchant}"
        if label_columns:
            line += f",1,{t.scenario}" if t.scenario else ",0,"
        out.write(line + "\n")
        written += 1
    return {"written": written, "stored": None, "duplicates": None}
