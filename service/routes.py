"""The endpoints. Each view: validate, one database call, serialise.

Amounts, observed values and thresholds are JSON strings of exact decimals
(currency units); timestamps are ISO 8601 UTC strings with milliseconds and Z.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from flask import (
    Blueprint,
    Response,
    current_app,
    g,
    jsonify,
    request,
    stream_with_context,
    url_for,
)
from werkzeug.exceptions import MethodNotAllowed, RequestEntityTooLarge, UnsupportedMediaType

from pgfraud import __version__, db
from pgfraud.errors import (
    DatabaseConflict,
    DatabaseFailed,
    DatabaseUnavailable,
    InvalidInput,
    MalformedJson,
    TooManyRows,
)
from pgfraud.service import auth, feed
from pgfraud.service.auth import ANALYST, OWNER, PUBLIC, READ, requires
from pgfraud.service.database import (
    heavy_transaction,
    read,
    retrying_conflicts,
    take_rule_change_slot,
    transaction,
    write,
)
from pgfraud.service.openapi import openapi_document
from pgfraud.wire import (
    TOKEN_NAME,
    AlertQuery,
    AuditQuery,
    Backtest,
    DecisionQuery,
    EventPage,
    HistoryPage,
    ListCreate,
    ListEntry,
    NotText,
    Review,
    ShadowStart,
    TokenCreate,
    Tune,
    format_alert_cursor,
    format_event_cursor,
    format_history_cursor,
    format_timestamp,
    loads_json,
    parse_backtest_policy,
    parse_event_cursor,
    parse_feed_position,
    parse_history_cursor,
    parse_id,
    parse_model,
    parse_policy_change,
    parse_rule_changes,
    parse_rule_id,
    parse_transaction,
    parse_transactions,
    show,
    to_record,
)

bp = Blueprint("api", __name__)
LIMIT = re.compile(r"[0-9]{1,5}")


def _json_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return format_timestamp(value)
    return value


def _serialise(row: dict[str, Any], rename: dict[str, str] | None = None) -> dict[str, Any]:
    rename = rename or {}
    out = {rename.get(k, k): _json_value(v) for k, v in row.items()}
    if isinstance(row.get("amount"), Decimal):
        # Always 2 places ("13.00"), also for a row stored before the store
        # functions wrote scale 2; stored amounts never have more than 2.
        out["amount"] = f"{row['amount']:.2f}"
    return out


@bp.get("/api")
@requires(READ)
def index():
    """Where to go: the endpoints of this service (also ``/`` for clients that do
    not ask for HTML; browsers get the analyst's page there)."""
    return jsonify(
        {
            "service": "pgfraud",
            "version": __version__,
            "endpoints": {
                "health": url_for("api.health"),
                "rules": url_for("api.rules"),
                "is_fraud": "/is_fraud/<account_id>?limit=1000&after=<cursor>",
                "alerts": url_for("api.alerts"),
                "alert_stream": url_for("api.alert_stream"),
                "review": "/transactions/<transaction_id>/review (POST JSON)",
                "account_transactions": "/accounts/<account_id>/transactions?limit=100",
                "store_data": "/store_data (POST JSON, or GET with query parameters)",
                "account_history": "/accounts/<account_id>/history?limit=100&before=<cursor>",
                "account_reviews": "/accounts/<account_id>/reviews?limit=100",
                "overview": url_for("api.overview"),
                "evaluate": "/evaluate (POST JSON: rules, from, to)",
                "tune": "/tune (POST JSON: train_from, train_to, valid_from, valid_to,"
                " max_alerts_per_1000, min_precision, min_marginal_precision, candidates)",
                "change_rules": "/rules (PATCH JSON: {rule_id: {enabled, parameters}})",
                "decision": "/transactions/<transaction_id>/decision",
                "decisions": "/decisions?outcome=review&account_id=&from=&to=&limit=100",
                "decision_stream": url_for("api.decision_stream"),
                "policy": "/policy (GET; PUT JSON: thresholds and rule_scores)",
                "lists": "/lists (GET; POST JSON), /lists/<name>, /lists/<name>/entries",
                "audit": "/audit?actor=&object_kind=&object_key=&from=&to=&limit=100",
                "tokens": "/tokens (GET; POST JSON: token_name, role), /tokens/<name> (DELETE)",
                "openapi": url_for("api.openapi"),
                "session": "/session (POST with the bearer token: the page's session cookie)",
                "page": url_for("pages.queue"),
            },
        }
    )


@bp.get("/health")
@requires(PUBLIC)
def health():
    """200 ``{"status": "ok"}`` when the database answers; 503 (database_unavailable)
    otherwise. Public (no token), so it says little else: no versions, no counts.
    When a session has held a transaction id open for FEED_HELD_AFTER_MS (10 s)
    or more, the live feeds deliver nothing newer than it: the answer then also
    has ``"feed_held_by": {"pid": int, "held_ms": int, "state": str}`` (end it
    with pg_terminate_backend(pid); docs/operations.md)."""
    read(db.check_health)
    holder = read(lambda conn: db.get_feed_holder(conn, current_app.config["FEED_HELD_AFTER_MS"]))
    if holder is None:
        return jsonify({"status": "ok"})
    return jsonify({"status": "ok", "feed_held_by": holder})


@bp.get("/openapi.json")
@requires(PUBLIC)
def openapi():
    """The OpenAPI 3.1 document of this API, each operation with what it needs."""
    return jsonify(openapi_document(auth.operation_access(current_app)))


@bp.get("/rules")
@requires(READ)
def rules():
    """The rule catalogue: ``{"rules": [{rule_id, enabled, parameters, description}]}``."""
    rows = read(db.get_rules)
    return jsonify({"rules": [_serialise(r) for r in rows]})


@bp.post("/rules")
@requires(OWNER, writes=True)
def add_rule():
    """Add (or replace) a user's rule (SQL ``add_rule``).

    Body (JSON): ``{"rule_id": lower_snake_case, "expression": boolean SQL
    over the features of rule_features, "description": text (optional),
    "enabled": boolean (optional, default false: backtest it first with
    ``pgfraud evaluate --rules '{"<rule_id>": {}}'``)}``. 201 with the rule
    ``{rule_id, enabled, parameters, description, expression}``; 400 naming
    the bad field (an expression that uses anything but the features,
    numbers, operators and the allowed functions, or is not boolean); 401
    without the token (when one is configured); 415 unless JSON.
    """
    body = _json_object()
    unknown = sorted(set(body) - {"rule_id", "expression", "description", "enabled"})
    if unknown:
        raise InvalidInput(f"{unknown[0]} is not a field of a rule", field=unknown[0])
    for field in ("rule_id", "expression", "description"):
        value = body.get(field)
        if (value is not None or field != "description") and not isinstance(value, str):
            raise InvalidInput(f"{field} must be a string", field=field)
        if isinstance(value, str) and "\x00" in value:
            raise InvalidInput(f"{field} may not contain the character NUL", field=field)
    description = body.get("description")
    enabled = body.get("enabled", False)
    if not isinstance(enabled, bool):
        raise InvalidInput("enabled must be true or false", field="enabled")
    row = _rule_change(
        lambda conn: db.add_rule(conn, body["rule_id"], body["expression"], description, enabled)
    )
    return jsonify(_serialise(row)), 201


def _rule_change(work: Callable[[Any], Any]) -> Any:
    """Run ``work(conn)``, a change of the rules that re-scores the stored
    history, as heavy work (one of MAX_HEAVY slots: TooBusy, 429, when all
    are taken) in one database transaction whose statement timeout is
    RULE_CHANGE_TIMEOUT_MS (SET LOCAL; default 10 minutes) instead of the
    service's STATEMENT_TIMEOUT_MS for ordinary statements; a conflict is
    retried as every write is (:func:`write`). Out of time, the transaction
    rolls back whole: RuleChangeTimeout (503), rules and alerts as they were."""
    limit = int(current_app.config["RULE_CHANGE_TIMEOUT_MS"])

    def attempt() -> Any:
        with heavy_transaction("rule change") as conn, db.rule_change_time(conn, limit):
            return work(conn)

    return retrying_conflicts(attempt)


def _owner_change(work: Callable[[Any], Any]) -> Any:
    """Run ``work(conn)``, an owner's quick change that takes the exclusive
    rule-change lock (a shadow started or dropped, the decision policy, a
    list entry), as :func:`write` does, after taking one of the
    MAX_RULE_CHANGES slots that rule changes count against too (TooBusy, 429,
    when all are taken): a burst of such changes cannot queue without bound on
    the lock that every store needs the shared side of."""

    def changing(conn: Any) -> Any:
        take_rule_change_slot(conn)
        return work(conn)

    return write(changing)


def _untrimmed_refused(schema: dict[str, Any], value: str) -> bool:
    """Whether ``value``, which has spaces around it, is refused by its query
    parameter's schema for them: an integer, or a string whose pattern
    does not match it (cursors, ids); free text (``actor``, ``object_key``)
    whose pattern admits spaces is left to the view."""
    if schema.get("type") == "integer":
        return True
    pattern = schema.get("pattern")
    return pattern is not None and re.search(pattern, value) is None


def check_query_parameters(app: Any) -> None:
    """Refuse, on every route of ``app``, a query parameter that the OpenAPI
    document does not list for its operation, and spaces around the value of
    one whose schema has none (an integer: ``limit=%201``; a cursor, an id):
    InvalidInput (400) naming the parameter, before the view runs (after the
    token check, so a caller without one still gets 401). The document is the
    one list: what it says an operation takes is what the server accepts.
    Routes it does not describe (static files) are left as they are."""
    document = openapi_document()
    accepted: dict[tuple[str, str], tuple[tuple[str, ...], dict[str, dict[str, Any]]]] = {}
    for rule in app.url_map.iter_rules():
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule).rstrip("/") or "/"
        operations = document["paths"].get(path, {})
        for method in rule.methods or ():
            operation = operations.get("get" if method == "HEAD" else method.lower())
            if operation is None:
                continue
            query = [p for p in operation.get("parameters", []) if p["in"] == "query"]
            names = tuple(p["name"] for p in query)
            schemas = {p["name"]: p["schema"] for p in query}
            accepted[(rule.rule, method)] = (names, schemas)

    @app.before_request
    def refuse_unknown_parameters() -> None:
        if not request.args or request.url_rule is None:
            return
        known = accepted.get((request.url_rule.rule, request.method))
        if known is None:
            return
        names, schemas = known
        for name, value in request.args.items(multi=True):
            if name not in names and name:  # "=&": no name, nothing to refuse or read
                takes = f"parameters: {', '.join(names)}" if names else "it takes none"
                raise InvalidInput(f"{name} is not a parameter here ({takes})", field=name)
            if (
                name in schemas
                and value != value.strip()
                and _untrimmed_refused(schemas[name], value)
            ):
                raise InvalidInput(f"{name} must be given without spaces around it", field=name)


def _single_value_args() -> dict[str, str]:
    """The query parameters as a dict; InvalidInput for one given more than once."""
    duplicated = [k for k in request.args if len(request.args.getlist(k)) > 1]
    if duplicated:
        raise InvalidInput(f"{duplicated[0]} is given more than once", field=duplicated[0])
    return request.args.to_dict()


FIRST_EVENT_PAGE = parse_model(EventPage, {})  # GET /is_fraud without parameters


@bp.get("/is_fraud/<account_id>")
@bp.get("/is_fraud/<account_id>/")
@requires(READ)
def is_fraud(account_id: str):
    """The fraudulent events of one account (SQL ``is_fraud``: the alerts persisted
    when its transactions were stored), a page at a time.

    ``?limit=`` events per page, 1..10000 (default 1000); ``?after=`` the
    cursor from the previous page's ``next``. 200 ``{"account_id", "count",
    "events": [{transaction_id, account_id, timestamp, amount, rule_id,
    observed, threshold, reason}], "next"}`` in (timestamp, transaction_id,
    rule_id) order; ``next`` is the URL of the next page, or null on the last
    one. 400 for an account id outside 0..2^63-1 or a bad limit or cursor;
    404 (account_not_found) for an account with no transactions.
    ``/is_fraud/42`` and ``/is_fraud/42/`` answer alike.
    """
    account = parse_id(account_id, "account_id")
    # The seed's call has no query parameters: its page, checked once per process.
    page = parse_model(EventPage, _single_value_args()) if request.args else FIRST_EVENT_PAGE
    after = parse_event_cursor(page.after) if page.after is not None else None
    count, events, last = read(lambda conn: db.is_fraud_json(conn, account, page.limit, after))
    following = b"null"
    if last is not None:
        cursor = format_event_cursor(*last)
        query = urlencode({"limit": page.limit, "after": cursor})
        following = json.dumps(f"{request.path}?{query}").encode()
    # The events array is JSON made by PostgreSQL (db.is_fraud_json), passed
    # on as the bytes it sent; only the envelope is written here.
    body = b'{"account_id":%d,"count":%d,"events":%b,"next":%b}\n' % (
        account,
        count,
        events,
        following,
    )
    return current_app.response_class(body, content_type="application/json")


@bp.get("/alerts")
@requires(READ)
def alerts():
    """The alert queue (SQL ``get_alerts``, ``count_alerts``).

    Filters (query parameters, each optional): ``account_id``, ``rule_id``,
    ``review_status`` (unreviewed, confirmed_fraud, false_positive: the latest
    review of the alert's transaction), ``from``/``to`` (transaction time,
    [from, to), ISO 8601 or epoch ms); ``order``: ``raised`` (default, newest
    raised first) or ``time`` (newest transaction first: re-raised alerts of
    old transactions, after a rule change, stay in their place); paging:
    ``limit`` 1..1000 (default 100) and ``before`` (the cursor in ``next``: an
    alert_id in raised order, ``<epoch ms>.<alert_id>`` in time order). 200
    ``{"count", "total", "alerts": [{alert_id, transaction_id, account_id,
    timestamp, amount, rule_id, observed, threshold, reason, parameters,
    raised_at, review_status, review_note, reviewer, reviewed_at, outcome,
    overruled}], "next"}``: count on this page, total over all pages;
    outcome and overruled are the transaction's decision (null when it has
    none); 400 naming the bad parameter.
    """
    query = parse_model(AlertQuery, _single_value_args())
    before_ts, before = query.cursor()
    filters = {
        "account_id": query.account_id,
        "rule_id": query.rule_id,
        "review_status": query.review_status,
        "start": query.from_,
        "end": query.to,
        "outcome": query.outcome,
    }

    def page(conn) -> tuple[int, list[dict[str, Any]]]:
        rows = db.get_alerts(
            conn,
            **filters,
            before=before,
            before_ts=before_ts,
            order=query.order,
            limit=query.limit + 1,
        )
        return db.count_alerts(conn, **filters), rows

    total, rows = read(page)
    following = None
    if len(rows) > query.limit:
        rows = rows[: query.limit]
        args = {k: v for k, v in request.args.items() if k != "before"}
        cursor = format_alert_cursor(rows[-1], query.order)
        following = f"{request.path}?{urlencode({**args, 'before': cursor})}"
    return jsonify(
        {
            "count": len(rows),
            "total": total,
            "alerts": [_serialise(r, {"ts": "timestamp"}) for r in rows],
            "next": following,
        }
    )


FEED_HELD_POLL_S = 0.25  # seconds between reads while alerts are held back
FEED_PROBE_S = 1.0  # seconds between writes that find a client gone


def _sse(event_id: str, event: str, data: dict[str, Any]) -> str:
    return f"id: {event_id}\nevent: {event}\ndata: {json.dumps(data)}\n\n"


def _sse_position(position: tuple[int, int]) -> str:
    # The stream's position as an event id, sent when the stream opens and
    # with each heartbeat: a client that has received no alert yet still
    # reconnects with a Last-Event-ID, so an outage loses nothing. As an
    # ``event: position`` too, since a page can read an id only from an event.
    event_id = f"{position[0]}-{position[1]}"
    return _sse(event_id, "position", {"last_event_id": event_id})


# The last event of a stream whose token was revoked (or no longer suffices)
# while it was open: the client should not reconnect with the same token.
_STREAM_REVOKED = "event: revoked\ndata: the token was revoked; the stream ends\n\n"


@bp.get("/alerts/stream")
@requires(READ)
def alert_stream():
    """Server-sent events: one ``alert`` event per new alert, as it is raised.

    Each event: ``id: <xact>-<alert_id>`` (the position), ``event: alert``,
    ``data:`` the alert as JSON (alert_id, transaction_id, account_id,
    timestamp, amount, rule_id, observed, threshold, reason, raised_at). When
    the stream opens, and with each heartbeat (a comment line ``: heartbeat``
    every FEED_HEARTBEAT_S seconds, default 15, when nothing happens), an
    ``event: position`` whose ``id:`` is the stream's current position
    (``data: {"last_event_id": ...}``), so that a client that has received
    no alert yet also reconnects from where it was. Blank lines (no event)
    every second or so find a client that went away. Resumes after the
    position in the ``Last-Event-ID`` header (browsers send it when they
    reconnect) or the ``last_event_id`` query parameter; otherwise starts
    from now. While the database is unreachable the stream stays open, says
    so in a comment, and catches up when it is back. Each stream holds a
    server thread: at most FEED_MAX_STREAMS (default 16) per server process
    (under ``pgfraud run``: workers x FEED_MAX_STREAMS per server, and one
    worker up to its threads less POOL_MAX_SIZE), so that requests always
    find a thread; one more is answered 503 (too_many_streams) with
    Retry-After. A browser does not retry after a 503: the page reopens its
    stream itself. 400 for a malformed position or an unknown parameter.
    """
    args = _single_value_args()  # only last_event_id: check_query_parameters
    position = _resume_position(args)
    listener = feed.get_listener()
    heartbeat = float(current_app.config["FEED_HEARTBEAT_S"])
    release = feed.take_stream_slot(int(current_app.config["FEED_MAX_STREAMS"]))

    def events() -> Iterator[str]:
        nonlocal position
        seen = listener.generation
        yield "retry: 1000\n: connected\n" + _sse_position(position)
        # When the next heartbeat and the next blank line are due: kept across
        # reads, so a held-back feed (read every FEED_HELD_POLL_S) still gets both.
        heartbeat_at = time.monotonic() + heartbeat
        probe_at = time.monotonic() + FEED_PROBE_S
        while True:
            if not auth.still_identified():  # revoked while streaming
                yield _STREAM_REVOKED
                return
            held = False
            try:
                with transaction() as conn:
                    rows = db.get_alert_feed(conn, position)
                    if len(rows) < 1000:
                        last = parse_feed_position(rows[-1]["event_id"]) if rows else position
                        held = db.is_alert_feed_held(conn, last)
            except (DatabaseUnavailable, DatabaseConflict, DatabaseFailed):
                rows = []
                yield ": the database is unavailable; retrying\n\n"
            for row in rows:
                position = parse_feed_position(row["event_id"])
                data = _serialise(
                    {k: v for k, v in row.items() if k != "event_id"}, {"ts": "timestamp"}
                )
                yield _sse(row["event_id"], "alert", data)
            if rows:
                heartbeat_at = time.monotonic() + heartbeat
                probe_at = time.monotonic() + FEED_PROBE_S
            if len(rows) >= 1000:
                continue
            # Alerts held back by an older running transaction (see
            # get_alert_feed) come without a notification: look again soon.
            read_at = heartbeat_at
            if held:
                read_at = min(read_at, time.monotonic() + FEED_HELD_POLL_S)
            generation = seen
            while True:
                now = time.monotonic()
                if now >= probe_at and now < heartbeat_at:
                    # A blank line (no event) every FEED_PROBE_S: writing is the
                    # only way a WSGI server finds a client that went away, so its
                    # stream slot is free within seconds, not at the next heartbeat.
                    # The token is looked at then too: a quiet stream ends within
                    # a probe of its revocation (TOKEN_CACHE_S), not at the next read.
                    if not auth.still_identified():
                        yield _STREAM_REVOKED
                        return
                    yield "\n"
                    probe_at = now + FEED_PROBE_S
                if now >= read_at:
                    break
                generation = listener.wait(seen, min(read_at, probe_at) - now)
                if generation != seen or listener.stopping:
                    break
            if listener.stopping:  # the server is shutting down
                return
            seen = generation
            if time.monotonic() >= heartbeat_at:
                yield ": heartbeat\n" + _sse_position(position)
                heartbeat_at = time.monotonic() + heartbeat
                probe_at = time.monotonic() + FEED_PROBE_S

    response = Response(
        stream_with_context(events()),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
    response.call_on_close(release)
    return response


@bp.post("/transactions/<transaction_id>/review")
@requires(ANALYST, writes=True)
def review(transaction_id: str):
    """Record an analyst's decision on a stored transaction (SQL ``review_transaction``).

    Body (JSON): ``{"status": "confirmed_fraud" | "false_positive", "note":
    text (optional, <= 2000 characters), "reviewer": text (optional, 1..200;
    default the caller's token name, or the service's database login when no
    token is configured; with a named token only that name)}``. 201 ``{review_id,
    transaction_id, account_id, status, note, reviewer, reviewed_at}``; 400
    naming the bad field; 401 without the token (when one is configured); 404
    (transaction_not_found) for a transaction that is not stored; 415 unless
    JSON. The latest review of a transaction counts as its label in
    ``pgfraud evaluate`` and survives re-scoring.
    """
    transaction_ref = parse_id(transaction_id, "transaction_id")
    body = _json_object()
    decision = parse_model(Review, body)
    identity = auth.current_identity()
    if (
        identity is not None
        and identity.name != auth.DEFAULT_NAME
        and decision.reviewer not in (None, identity.name)
    ):
        raise InvalidInput(
            f"reviewer must be left out or be {identity.name}, the name of your token",
            field="reviewer",
        )
    row = write(
        lambda conn: db.review_transaction(
            conn, transaction_ref, decision.status, decision.note, decision.reviewer
        )
    )
    return jsonify(_serialise(row)), 201


@bp.get("/accounts/<account_id>/transactions")
@requires(READ)
def account_transactions(account_id: str):
    """An account's latest transactions, newest first: ``?limit=`` 1..10000 (default 100).

    200 ``{"account_id", "transactions": [{transaction_id, account_id,
    timestamp, amount}]}``; 400 for a bad id or limit; 404 for an unknown account.
    """
    account = parse_id(account_id, "account_id")
    limits = request.args.getlist("limit") or ["100"]
    if len(limits) > 1:
        raise InvalidInput("limit is given more than once", field="limit")
    if not LIMIT.fullmatch(limits[0]) or not 1 <= int(limits[0]) <= 10_000:
        raise InvalidInput("limit must be an integer from 1 to 10000", field="limit")
    limit = int(limits[0])
    rows = read(lambda conn: db.get_account_transactions(conn, account, limit))
    return jsonify(
        {"account_id": account, "transactions": [_serialise(r, {"ts": "timestamp"}) for r in rows]}
    )


def _resume_position(args: dict[str, str]) -> tuple[int, int]:
    """Where a live stream starts: after the position in the ``Last-Event-ID``
    header or the ``last_event_id`` parameter, else now. 400 naming the field
    for a malformed position, or for one the feed has not reached (its
    database transaction id not yet given out: a position of another server,
    or saved before a restore), which would otherwise be followed in silence,
    delivering nothing. A Last-Event-ID header sent empty is a 400 too: no
    browser sends one, and granian hands a header value with a byte that is
    not ASCII over as "" (which the stream would follow from now, skipping
    events)."""
    if request.headers.get("Last-Event-ID") == "":
        raise InvalidInput(
            "Last-Event-ID is empty or not ASCII (an event id is <xact>-<id>, digits;"
            " reconnect without the header to start from now)",
            field="Last-Event-ID",
        )
    for field, text in (
        ("Last-Event-ID", request.headers.get("Last-Event-ID")),
        ("last_event_id", args.get("last_event_id")),
    ):
        if text:
            position = parse_feed_position(text, field)
            if read(lambda conn, at=position: db.is_feed_position_ahead(conn, at)):
                raise InvalidInput(
                    f"{field} {text.strip()} is ahead of this feed (not an event id of this"
                    " server's feed; reconnect without it to start from now)",
                    field=field,
                )
            return position
    return parse_feed_position(read(db.get_alert_feed_start))


def _body_bytes() -> bytes:
    """The request body, at most MAX_CONTENT_LENGTH bytes: 413 for more.

    A body of unknown length (Transfer-Encoding: chunked, which the WSGI
    server marks wsgi.input_terminated) is read here from the server's own
    stream: werkzeug's limited stream stops at the limit without a word, so
    the first 2 MiB of a longer body would be read as if they were all."""
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    if request.content_length is not None or not request.environ.get("wsgi.input_terminated"):
        return request.get_data(cache=False)
    stream = request.environ["wsgi.input"]
    chunks: list[bytes] = []
    total = 0
    while chunk := stream.read(min(1 << 16, limit + 1 - total)):
        chunks.append(chunk)
        total += len(chunk)
        if total > limit:
            raise RequestEntityTooLarge(f"the body is over {limit} bytes")
    return b"".join(chunks)


def _json_body() -> Any:
    """The request body parsed as exact JSON: 415 unless Content-Type is JSON,
    400 (malformed_json) when it does not parse, 400 (invalid_input, naming the
    field) for a string that is not Unicode text, 413 when too large."""
    if not request.is_json:
        raise UnsupportedMediaType("Content-Type must be application/json")
    try:  # Flask answers 413 here for a body over MAX_CONTENT_LENGTH
        return loads_json(_body_bytes())
    except NotText as exc:  # a lone surrogate ("x\ud800"): 400 naming the field
        raise InvalidInput(str(exc), field=exc.field, row=exc.row) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedJson(f"the body is not valid JSON: {exc}") from None


_JSON_KINDS = {list: "an array", str: "a string", bool: "true or false", type(None): "null"}


def _json_object() -> dict[str, Any]:
    """The request body as :func:`_json_body`, which must be a JSON object: 400
    (invalid_input, field ``body``) for an array, a string, a number, true,
    false or null, naming what was sent."""
    body = _json_body()
    if not isinstance(body, dict):
        kind = _JSON_KINDS.get(type(body), "a number")
        raise InvalidInput(f"body must be a JSON object (got {kind})", field="body")
    return body


def _store(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # One statement; run again after a conflict (a re-sent row is a duplicate).
    return write(lambda conn: db.store_transactions(conn, records), single_statement=True)


def _single_answer(result: dict[str, Any]):
    body = {
        "transaction_id": result["transaction_id"],
        "status": result["status"],
        "alerts": result["alerts"],
        "decision": result["decision"],
    }
    return jsonify(body), 201 if result["status"] == "stored" else 200


@bp.get("/store_data")
@requires(ANALYST, writes=True)
def store_data_query():
    """Store one transaction from query parameters (the seed's form):
    ``?account_id=…&transaction_id=…&timestamp=…&amount=…[&merchant_id=…]``.

    201 ``{"transaction_id", "status": "stored", "alerts": [...], "decision":
    {...}}``; 200 with status ``duplicate`` when it was already stored
    unchanged (its decision as first answered); 400 naming the field; 409
    when the id is stored with other content. ``alerts`` is the verdict,
    scored in the same database transaction: ``[{alert_id, rule_id,
    rule_version, observed, threshold, reason}]`` (decimals as strings;
    rule_version as in GET /alerts), [] when no rule fired. ``decision``
    (made in the same database transaction, never rewritten): ``{outcome:
    approve|review|decline, score, score_outcome, overruled, rules:
    [{rule_id, rule_version, score, observed, threshold, reason}],
    lists: [{entry_id, list_name, subject, kind, value, reason, added_by,
    added_at, expires_at}], policy, rule_set_id, decided_at, ...}`` (see GET
    /transactions/<id>/decision).
    """
    if request.method == "HEAD":  # Flask adds HEAD to GET routes; HEAD must not write
        raise MethodNotAllowed(valid_methods=["GET", "POST"])
    if not request.args:
        raise InvalidInput(
            "give account_id, transaction_id, timestamp and amount as query parameters, "
            "or POST JSON"
        )
    args = _single_value_args()
    # Optional here means absent: a given merchant_id must be an integer.
    if "merchant_id" in args and not args["merchant_id"].strip():
        raise InvalidInput(
            "merchant_id must be an integer from 0 to 9223372036854775807 (or left out)",
            field="merchant_id",
        )
    transaction_in = parse_transaction(args)
    return _single_answer(_store([to_record(transaction_in)])[0])


@bp.post("/store_data")
@requires(ANALYST, writes=True)
def store_data_json():
    """Store one JSON object, or an array of them all-or-nothing (at most MAX_BATCH_ROWS).

    One object: as GET. An array: 201 (200 when nothing new) ``{"stored",
    "duplicates", "results": [{row, transaction_id, status, alerts, decision}]}``; any bad row
    refuses the whole array (400 listing every bad row and field, 409 for a
    conflicting id). 415 unless Content-Type is application/json; 400 for
    malformed JSON; 413 for a body over MAX_CONTENT_LENGTH or too many rows.
    """
    payload = _json_body()
    if isinstance(payload, dict):
        transaction_in = parse_transaction(payload)
        return _single_answer(_store([to_record(transaction_in)])[0])
    if not isinstance(payload, list):
        raise InvalidInput("the body must be a JSON object or an array of objects")
    if not payload:
        raise InvalidInput("the array is empty")
    limit = int(current_app.config["MAX_BATCH_ROWS"])
    if len(payload) > limit:
        raise TooManyRows(f"at most {limit} transactions per request; got {len(payload)}")
    batch = parse_transactions(payload)
    results = _store([to_record(t) for t in batch])
    stored = sum(1 for r in results if r["status"] == "stored")
    body = {"stored": stored, "duplicates": len(results) - stored, "results": results}
    return jsonify(body), 201 if stored else 200


def _limit_arg(default: int, maximum: int) -> int:
    limits = request.args.getlist("limit") or [str(default)]
    if len(limits) > 1:
        raise InvalidInput("limit is given more than once", field="limit")
    if not LIMIT.fullmatch(limits[0]) or not 1 <= int(limits[0]) <= maximum:
        raise InvalidInput(f"limit must be an integer from 1 to {maximum}", field="limit")
    return int(limits[0])


def history_json(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of get_account_history as JSON objects (timestamp, amount as a string)."""
    return [_serialise(r, {"ts": "timestamp"}) for r in rows]


@bp.get("/accounts/<account_id>/history")
@requires(READ)
def account_history(account_id: str):
    """An account's transactions, newest first, each with the alerts it raised and its
    latest review (SQL ``get_account_history``), a page at a time.

    ``?limit=`` 1..1000 (default 100); ``?before=`` the cursor from the
    previous page's ``next``. 200 ``{"account_id", "transactions":
    [{transaction_id, account_id, timestamp, amount, alerts: [{alert_id,
    rule_id, observed, threshold, reason}], review_status}], "next"}``
    (``next`` null on the last page); 400 for a bad id, limit or cursor; 404
    for an unknown account.
    """
    account = parse_id(account_id, "account_id")
    page = parse_model(HistoryPage, _single_value_args())
    before = parse_history_cursor(page.before) if page.before is not None else None
    rows = read(lambda conn: db.get_account_history(conn, account, page.limit + 1, before))
    following = None
    if len(rows) > page.limit:
        rows = rows[: page.limit]
        cursor = format_history_cursor(rows[-1]["ts"], rows[-1]["transaction_id"])
        following = f"{request.path}?{urlencode({'limit': page.limit, 'before': cursor})}"
    return jsonify({"account_id": account, "transactions": history_json(rows), "next": following})


@bp.get("/accounts/<account_id>/reviews")
@requires(READ)
def account_reviews(account_id: str):
    """The review history of one account, newest first (SQL ``get_account_reviews``):
    ``?limit=`` 1..10000 (default 100). 200 ``{"account_id", "reviews":
    [{review_id, transaction_id, account_id, status, note, reviewer,
    reviewed_at}]}`` (empty when none); 400 for a bad id or limit."""
    account = parse_id(account_id, "account_id")
    limit = _limit_arg(100, 10_000)
    rows = read(lambda conn: db.get_account_reviews(conn, account, limit))
    return jsonify({"account_id": account, "reviews": [_serialise(r) for r in rows]})


@bp.get("/overview")
@requires(READ)
def overview():
    """Transactions and alerts per hour over the last day stored, alerts by rule and the
    review backlog (SQL ``get_overview``): 200 ``{"until", "hours": [{hour,
    transactions, alerts}], "by_rule": [{rule_id, alerts, unreviewed}],
    "backlog": {unreviewed, confirmed_fraud, false_positive}}``."""
    return jsonify(read(db.get_overview))


def backtest_json(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of backtest_rules as JSON objects (ratios as decimal strings)."""
    return [_serialise(r) for r in rows]


@bp.post("/evaluate")
@requires(ANALYST)
def evaluate():
    """Precision and recall per rule and scenario, for the live rules or a backtest of
    candidate parameters (SQL ``backtest_rules``, i.e. ``evaluate_rules``). Reads only.

    Body (JSON, each optional): ``{"rules": {rule_id: {parameter: number}}``
    (the whole set of rules to run, each with the parameters it changes,
    merged over its live ones as PATCH /rules merges them: ``{}`` runs a rule
    as it is, a user's rule included; absent: the enabled rules), ``"from"``,
    ``"to"`` (transaction time [from, to), ISO 8601 or epoch ms), ``"policy"``:
    a candidate decision policy ``{review_threshold, decline_threshold,
    default_score, rule_scores: {rule_id: int}}`` merged over the policy in
    force, checked as PUT /policy checks it (absent: the policy in force)}.
    200 ``{"results": [{rule_id, scenario, labelled, flagged, true_positives,
    precision_ratio, recall_ratio, transactions, flagged_per_1000}],
    "decisions": {"policy": {based_on, review_threshold, decline_threshold,
    default_score, rule_scores}, "outcomes": [{outcome (approve, review,
    decline, review_or_decline), transactions, per_1000, overruled,
    labelled, fraud, precision_ratio, recall_ratio}]}}`` (SQL
    ``evaluate_decisions``: the rules and policy deciding each transaction,
    lists as in force at its time), ratios as decimal strings or null; 400
    naming the bad field by its path in the body (``rules.<rule_id>[.<parameter>]``,
    ``policy.<field>``); 404
    (rule_not_found) for a score of an unknown rule; 415 unless JSON.
    """
    body = _json_object()
    query = parse_model(Backtest, body)
    policy = parse_backtest_policy(query.policy)
    with _fields_under("rules", query.rules), heavy_transaction("backtest") as conn:
        rows = db.backtest_rules(conn, query.rules, query.from_, query.to)
        measured = db.evaluate_decisions(conn, query.rules, policy, query.from_, query.to)
    decisions = {"policy": measured["policy"], "outcomes": backtest_json(measured["outcomes"])}
    return jsonify({"results": backtest_json(rows), "decisions": decisions})


@contextlib.contextmanager
def _fields_under(key: str, given: dict[str, Any] | None) -> Iterator[None]:
    """Name a field of the body's ``key`` object by its path in the body: the
    rule checks (SQL validate_rules) name ``<rule_id>`` or
    ``<rule_id>.<parameter>``, which in POST /evaluate's body is
    ``rules.<rule_id>...``. Other fields (``from``, ``policy.*``) pass as named."""
    try:
        yield
    except InvalidInput as exc:
        if given and exc.field and exc.field.split(".")[0] in given:
            exc.field = f"{key}.{exc.field}"
        raise


@bp.post("/tune")
@requires(ANALYST)
def tune():
    """Choose which rules run and their parameters from the stored labels (SQL
    ``tune_rules``): maximise recall on the training period under an alert
    budget and/or a precision floor; report the chosen and the live set on
    both periods. Changes nothing: sending ``switch`` to PATCH /rules turns
    the chosen set on.

    Body (JSON): ``{"train_from", "train_to", "valid_from", "valid_to"``
    (ISO 8601 or epoch ms; [from, to), the validation period at or after the
    training one), ``"max_alerts_per_1000"`` (number > 0) and/or
    ``"min_precision"`` (number in (0, 1]), ``"min_marginal_precision"``
    (number in [0, 1], default 0.5: a rule is added only if at least that
    share of the alerts it adds is fraud), ``"candidates"`` (optional list of
    rule ids; default every rule)``}``. 200 ``{"chosen": {rule_id:
    parameters}, "live": {...}, "search": {transactions, labelled, flagged,
    caught, candidates, steps: [{rule_id, parameters, flagged, caught}]},
    "figures": {"chosen"|"live": {"training"|"validation": [rows as POST
    /evaluate's, plus f1 and alerts_per_1000]}}, "decisions": {"chosen"|"live":
    {"training"|"validation": POST /evaluate's decisions, or null for an
    empty chosen set}}, "switch": PATCH /rules
    body}``, ratios as decimal strings; 400 naming the bad field (a period
    empty or reversed, no known fraud in training, budget not above 0,
    precision not in (0, 1], marginal precision not in [0, 1], an unknown
    candidate); 401 without the token
    (when one is configured); 415 unless JSON. Heavy work: 429 with
    Retry-After when PGFRAUD_MAX_HEAVY are running; its statements may take
    PGFRAUD_HEAVY_TIMEOUT_MS (default 5 minutes, not the service's statement
    timeout); 503 time_limit_exceeded past that.
    """
    from pgfraud.tune import tuning

    body = _json_object()
    query = parse_model(Tune, body)
    periods = (query.train_from, query.train_to, query.valid_from, query.valid_to)
    with heavy_transaction("tune") as conn:
        result = tuning(
            conn,
            periods,
            query.max_alerts_per_1000,
            query.min_precision,
            query.candidates,
            query.min_marginal_precision,
        )
    figures = {
        name: {period: backtest_json(rows) for period, rows in sets.items()}
        for name, sets in result["figures"].items()
    }
    decisions = {
        name: {
            period: None
            if measured is None
            else {"policy": measured["policy"], "outcomes": backtest_json(measured["outcomes"])}
            for period, measured in sets.items()
        }
        for name, sets in result["decisions"].items()
    }
    return jsonify({**result, "figures": figures, "decisions": decisions})


@bp.get("/rules/<rule_id>/versions")
@requires(READ)
def rule_versions(rule_id: str):
    """Every version of a rule, newest first (SQL ``get_rule_versions``), to explain
    an alert (``rule_version``, ``raised_rule_version``) or a decision's rule entry
    (``rule_version``). 200 ``{"rule_id", "versions": [{version, enabled,
    parameters, expression, description, valid_from, actor}]}``; 400 for a path
    that is not a rule id; 404 (rule_not_found) for a rule that never existed.
    """
    rule = parse_rule_id(rule_id)
    rows = read(lambda conn: db.get_rule_versions(conn, rule))
    return jsonify(
        {
            "rule_id": rule,
            "versions": [{k: v for k, v in _serialise(r).items() if k != "rule_id"} for r in rows],
        }
    )


@bp.get("/rules/shadows")
@requires(READ)
def rule_shadows():
    """Every shadow rule against its live rule (SQL ``compare_shadow_rules``) over the
    transactions stored since the shadow started. 200 ``{"shadows": [{rule_id,
    live_enabled, live_version, live_parameters, shadow_parameters, started_at,
    started_by, transactions, labelled, live_alerts, shadow_alerts, live_per_1000,
    shadow_per_1000 (decimal strings, 2 places, null with no transaction),
    live_true_positives, shadow_true_positives, live_precision, live_recall,
    shadow_precision, shadow_recall (decimal strings, 4 places, null when the
    denominator is 0)}]}`` in rule_id order.
    """
    rows = read(db.compare_shadow_rules)
    return jsonify({"shadows": [_serialise(r) for r in rows]})


@bp.put("/rules/<rule_id>/shadow")
@requires(OWNER, writes=True)
def start_shadow(rule_id: str):
    """Put a rule in shadow (SQL ``shadow_rule``): from now on each stored transaction
    is also scored with the candidate parameters, into shadow alerts that neither
    is_fraud, the decisions nor the queue show; a shadow already there starts
    again. Body (JSON): ``{"parameters": {name: number}}`` merged over the live
    ones (``{}`` or absent: the rule as it is, e.g. a rule that is off). 200
    ``{rule_id, parameters, live_version, started_at, started_by}``; 400 naming
    the parameter (the same validator as PATCH /rules); 404 (rule_not_found);
    415 unless JSON. A refused shadow changes nothing.
    """
    rule = parse_rule_id(rule_id)
    body = parse_model(ShadowStart, _json_object())
    row = _owner_change(lambda conn: db.shadow_rule(conn, rule, body.parameters))
    return jsonify(_serialise(row))


@bp.delete("/rules/<rule_id>/shadow")
@requires(OWNER, writes=True)
def drop_shadow(rule_id: str):
    """End a rule's shadow (SQL ``drop_shadow_rule``); its shadow alerts go, the live
    rule is untouched. 200 the removed shadow ``{rule_id, parameters, live_version,
    started_at, started_by}``; 404 (rule_not_found) when the rule has no shadow.
    """
    rule = parse_rule_id(rule_id)
    row = _owner_change(lambda conn: db.drop_shadow_rule(conn, rule))
    return jsonify(_serialise(row))


@bp.post("/rules/<rule_id>/shadow/promote")
@requires(OWNER, writes=True)
def promote_shadow(rule_id: str):
    """Make a rule's shadow live in one action (SQL ``promote_shadow_rule``): the rule
    is switched on with the shadow's parameters (a new rule version) and the
    stored history re-scored as by PATCH /rules; the shadow goes. 200 the rule
    ``{rule_id, enabled, parameters, description, expression}``; 404
    (rule_not_found) when the rule has no shadow; 503 rule_change_timeout as
    PATCH /rules.
    """
    rule = parse_rule_id(rule_id)
    row = _rule_change(lambda conn: db.promote_shadow_rule(conn, rule))
    return jsonify(_serialise(row))


@bp.patch("/rules")
@requires(OWNER, writes=True)
def change_rules():
    """Turn rules on or off and/or change their parameters, all-or-nothing (SQL
    ``change_rule`` per rule, which calls ``set_rule`` and its validator); the
    stored history is re-scored in the same database transaction.

    Body (JSON): ``{rule_id: {"enabled": true|false (optional), "parameters":
    {name: number} (optional, merged over the current ones)}}``, at least one
    rule. 200 ``{"rules": [{rule_id, enabled, parameters, description}]}``,
    the changed rules in rule_id order; 400 naming the bad field (the
    validator's message for a bad parameter, naming rule and parameter); 401
    without the token (when one is configured); 404 (rule_not_found); 415
    unless JSON; 503 rule_change_timeout when the re-scoring outlasts
    RULE_CHANGE_TIMEOUT_MS (default 10 minutes, not the 10 s of ordinary
    statements). A refused or timed-out change changes nothing.
    """
    body = _json_object()
    changes = parse_rule_changes(body)
    rows = _rule_change(
        lambda conn: [
            db.change_rule(conn, rule_id, change.enabled, change.parameters)
            for rule_id, change in sorted(changes.items())
        ]
    )
    return jsonify({"rules": [_serialise(r) for r in rows]})


# -- decisions, policy and lists (issue 17) ------------------------------------------

LIST_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")


def _list_name(text: str) -> str:
    """A list name from a URL path; InvalidInput naming list_name unless lower_snake_case."""
    if not LIST_NAME.fullmatch(text):
        raise InvalidInput(
            "list_name must be lower_snake_case (a-z, 0-9 and _, starting with a letter, "
            "at most 63 characters)",
            field="list_name",
        )
    return text


@bp.get("/transactions/<transaction_id>/decision")
@requires(READ)
def transaction_decision(transaction_id: str):
    """The decision made when a transaction was stored, as answered then (SQL
    ``get_decision``): 200 ``{transaction_id, account_id, timestamp, amount,
    merchant_id, outcome, score, score_outcome, overruled, rules: [{rule_id,
    score, observed, threshold, reason}], lists: [{entry_id, list_name,
    subject, kind, value, reason, added_by, added_at, expires_at}], policy:
    {policy_id, review_threshold, decline_threshold}, rule_set_id,
    decided_at}``; 400 for a bad id; 404 (transaction_not_found) when there
    is none (not stored, or stored before decisions existed)."""
    transaction = parse_id(transaction_id, "transaction_id")
    return jsonify(read(lambda conn: db.get_decision(conn, transaction)))


@bp.get("/decisions")
@requires(READ)
def decisions():
    """Decisions, newest transaction time first (SQL ``get_decisions``).

    Filters (query parameters, each optional): ``outcome`` (approve, review,
    decline), ``account_id``, ``from``/``to`` (transaction time, [from, to),
    ISO 8601 or epoch ms); paging: ``limit`` 1..1000 (default 100) and
    ``before`` (the cursor in ``next``: ``<epoch ms>.<transaction_id>``). 200
    ``{"count", "decisions": [decision as GET /transactions/<id>/decision],
    "next"}`` (``next`` null on the last page); 400 naming the bad parameter.
    """
    query = parse_model(DecisionQuery, _single_value_args())
    before = parse_history_cursor(query.before) if query.before is not None else None
    rows = read(
        lambda conn: db.get_decisions(
            conn,
            outcome=query.outcome,
            account_id=query.account_id,
            start=query.from_,
            end=query.to,
            before=before,
            limit=query.limit + 1,
        )
    )
    following = None
    if len(rows) > query.limit:
        rows = rows[: query.limit]
        last = rows[-1]
        ts = datetime.fromisoformat(last["timestamp"].replace("Z", "+00:00"))
        cursor = format_history_cursor(ts, last["transaction_id"])
        args = {k: v for k, v in request.args.items() if k != "before"}
        following = f"{request.path}?{urlencode({**args, 'before': cursor})}"
    return jsonify({"count": len(rows), "decisions": rows, "next": following})


@bp.get("/decisions/stream")
@requires(READ)
def decision_stream():
    """Server-sent events: one ``decision`` event per decision, as it is made.

    Each event: ``id: <xact>-<transaction_id>`` (the position), ``event:
    decision``, ``data:`` the decision as JSON (as GET
    /transactions/<id>/decision). Positions, heartbeats, ``event:
    position``, resuming (``Last-Event-ID`` header or ``last_event_id``
    parameter; otherwise from now), the database going away and the stream
    slots (FEED_MAX_STREAMS, shared with /alerts/stream; 503
    too_many_streams with Retry-After) are as on /alerts/stream. Every
    stored transaction gets a decision, and not every store sends a
    notification (only new alerts do; a notification per store would
    serialise every commit), so a stream also reads every
    FEED_DECISION_POLL_S (default 0.5 s): a decision arrives within that
    once its database transaction and every older one have ended. 400 for
    a malformed position or an unknown parameter.
    """
    args = _single_value_args()  # only last_event_id: check_query_parameters
    position = _resume_position(args)
    listener = feed.get_listener()
    heartbeat = float(current_app.config["FEED_HEARTBEAT_S"])
    poll = float(current_app.config["FEED_DECISION_POLL_S"])
    release = feed.take_stream_slot(int(current_app.config["FEED_MAX_STREAMS"]))

    def events() -> Iterator[str]:
        nonlocal position
        seen = listener.generation
        quiet_since = time.monotonic()
        yield "retry: 1000\n: connected\n" + _sse_position(position)
        while True:
            if not auth.still_identified():  # revoked while streaming
                yield _STREAM_REVOKED
                return
            try:
                with transaction() as conn:
                    rows = db.get_decision_feed(conn, position)
            except (DatabaseUnavailable, DatabaseConflict, DatabaseFailed):
                rows = []
                yield ": the database is unavailable; retrying\n\n"
            for event_id, decision in rows:
                position = parse_feed_position(event_id)
                yield _sse(event_id, "decision", decision)
            if rows:
                quiet_since = time.monotonic()
            if len(rows) >= 1000:
                continue
            # Woken by a notification (a store that raised alerts) or after
            # FEED_DECISION_POLL_S, whichever comes first. The blank line
            # finds a client that went away (as on /alerts/stream).
            generation = listener.wait(seen, poll)
            if listener.stopping:  # the server is shutting down
                return
            seen = generation
            yield "\n"
            if time.monotonic() - quiet_since >= heartbeat:
                quiet_since = time.monotonic()
                yield ": heartbeat\n" + _sse_position(position)

    response = Response(
        stream_with_context(events()),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
    response.call_on_close(release)
    return response


@bp.get("/policy")
@requires(READ)
def policy():
    """The decision policy in force (SQL ``get_decision_policy``): 200
    ``{policy_id, review_threshold, decline_threshold, default_score,
    rule_scores: {rule_id: score}, effective_from, set_by}``. A
    transaction's score is the sum of the scores of the rules that fire on
    it: decline from decline_threshold, review from review_threshold,
    approve below."""
    return jsonify(read(db.get_decision_policy))


@bp.put("/policy")
@requires(OWNER, writes=True)
def change_policy():
    """Put a new version of the policy in force from now (SQL
    ``set_decision_policy``); earlier decisions keep theirs.

    Body (JSON): ``{"review_threshold": int, "decline_threshold": int,
    "default_score": int, "rule_scores": {rule_id: int}}``, each optional,
    merged over the policy in force. 200 with the policy now in force; 400
    naming the field (not an integer, thresholds outside 1..1000, scores
    outside 0..1000, decline_threshold below review_threshold); 401 without
    the token (when one is configured); 404 (rule_not_found) for a score of
    an unknown rule; 415 unless JSON. A refused change changes nothing; so
    does one that leaves every value as it is (200 with the policy in force,
    its policy_id unchanged: no new version, no audit row).
    """
    changes = parse_policy_change(_json_object())
    row = _owner_change(lambda conn: db.set_decision_policy(conn, changes))
    return jsonify(row)


@bp.get("/lists")
@requires(READ)
def lists():
    """Every allow/block list (SQL ``get_lists``): 200 ``{"lists": [{list_name,
    subject, kind, description, created_by, created_at, entries}]}``,
    entries the number in force now."""
    return jsonify({"lists": read(db.get_lists)})


@bp.post("/lists")
@requires(OWNER, writes=True)
def create_list():
    """Create a list (SQL ``create_list``; the same again changes nothing).

    Body (JSON): ``{"list_name": lower_snake_case, "subject": "account" |
    "merchant", "kind": "block" | "allow", "description": text (optional)}``.
    A block list forces decline, an allow list approve (its alerts are kept
    and shown overruled). 201 with the list; 400 naming the field; 401
    without the token (when one is configured); 415 unless JSON.
    """
    body = parse_model(ListCreate, _json_object())
    row = write(
        lambda conn: db.create_list(conn, body.list_name, body.subject, body.kind, body.description)
    )
    return jsonify(row), 201


@bp.get("/lists/<list_name>")
@requires(READ)
def list_entries(list_name: str):
    """One list and its entries in force now (SQL ``get_list``): 200 ``{list_name,
    subject, kind, description, created_by, created_at, entries: [{entry_id,
    value, reason, added_by, added_at, expires_at}]}``; 404 (list_not_found)."""
    name = _list_name(list_name)
    return jsonify(read(lambda conn: db.get_list(conn, name)))


@bp.post("/lists/<list_name>/entries")
@requires(OWNER, writes=True)
def add_list_entry(list_name: str):
    """Put an account or merchant id on a list from now (SQL ``add_list_entry``; an
    entry in force for it is replaced).

    Body (JSON): ``{"value": id, "reason": text (1..2000), "expires_at":
    ISO 8601 or epoch ms (optional, in the future)}``. 201 with the entry
    ``{entry_id, list_name, subject, kind, value, reason, added_by, added_at,
    expires_at}``; 400 naming the field (expires_at not in the future); 401
    without the token (when one is configured); 404 (list_not_found, field
    list_name) when no list has that name; 415 unless JSON.
    """
    name = _list_name(list_name)
    body = parse_model(ListEntry, _json_object())
    row = _owner_change(
        lambda conn: db.add_list_entry(conn, name, body.value, body.reason, body.expires_at)
    )
    return jsonify(row), 201


@bp.delete("/lists/<list_name>/entries/<value>")
@requires(OWNER, writes=True)
def remove_list_entry(list_name: str, value: str):
    """Take an id off a list from now (SQL ``remove_list_entry``; the entry is kept
    with removed_at, so earlier decisions still name it). 200 with the entry;
    400 for a bad id; 401 without the token (when one is configured); 404
    (list_not_found) when the list does not exist or the id is not on it."""
    name = _list_name(list_name)
    entry = parse_id(value, "value")
    row = _owner_change(lambda conn: db.remove_list_entry(conn, name, entry))
    return jsonify(row)


# -- tokens and the audit trail (issue 18) --------------------------------------


def audit_json(row: dict[str, Any]) -> dict[str, Any]:
    """An audit_log row as JSON (``at`` ISO 8601 UTC with milliseconds)."""
    return _serialise(row)


@bp.get("/audit")
@requires(READ)
def audit():
    """The audit trail, newest first (SQL ``get_audit``): every change of rules,
    the policy, lists and their entries, reviews and tokens, from the
    service, the CLI or psql, with who made it.

    Filters (query parameters, each optional): ``actor`` (a token's name or
    a login, exact), ``object_kind`` (rule, policy, list, list_entry,
    review, token), ``object_key`` (exact: a rule_id, a list name,
    ``<list>/<value>``, a transaction id, a token name), ``from``/``to``
    (time of the change, [from, to), ISO 8601 or epoch ms); paging:
    ``limit`` 1..1000 (default 100) and ``before`` (an audit_id: the cursor
    in ``next``). 200 ``{"count", "entries": [{audit_id, at, actor, action
    (insert, update, delete), object_kind, object_key, before, after,
    alerts_added, alerts_removed}], "next"}``: before/after the object's
    row as JSON (null for an insert's before and a delete's after; never a
    token's secret or digest); alerts_added/alerts_removed the alerts a
    rule change that re-scored the stored history added and removed (null
    otherwise). Any valid token may read it. 400 naming the bad parameter.
    """
    query = parse_model(AuditQuery, _single_value_args())
    rows = read(
        lambda conn: db.get_audit(
            conn,
            actor=query.actor,
            object_kind=query.object_kind,
            object_key=query.object_key,
            start=query.from_,
            end=query.to,
            before=query.before,
            limit=query.limit + 1,
        )
    )
    following = None
    if len(rows) > query.limit:
        rows = rows[: query.limit]
        args = {k: v for k, v in request.args.items() if k != "before"}
        following = f"{request.path}?{urlencode({**args, 'before': rows[-1]['audit_id']})}"
    return jsonify(
        {"count": len(rows), "entries": [audit_json(r) for r in rows], "next": following}
    )


@bp.get("/tokens")
@requires(OWNER)
def tokens():
    """The named tokens, never their secrets (SQL ``get_api_tokens``): 200
    ``{"tokens": [{token_name, role, created_by, created_at, revoked_by,
    revoked_at}]}``, the live ones (``?revoked=true``: revoked ones too).
    Owner only."""
    args = _single_value_args()  # only revoked: check_query_parameters
    if args.get("revoked", "false") not in ("true", "false"):
        raise InvalidInput("revoked must be true or false", field="revoked")
    revoked = args.get("revoked") == "true"
    return jsonify({"tokens": read(lambda conn: db.get_api_tokens(conn, revoked))})


@bp.post("/tokens")
@requires(OWNER, writes=True)
def add_token():
    """Make a named token (SQL ``add_api_token``): body ``{"token_name",
    "role": "analyst" | "owner"}``. 201 ``{token_name, role, created_by,
    created_at, revoked_by, revoked_at, "secret"}``: the secret is shown
    this once and stored only as its SHA-256 digest. 400 naming the field
    (token_name malformed, "default", or in use by a live token; role).
    Owner only. The new token counts within TOKEN_CACHE_S seconds."""
    body = parse_model(TokenCreate, _json_object())
    secret = auth.new_secret()
    row = write(
        lambda conn: db.add_api_token(conn, body.token_name, body.role, auth.digest(secret))
    )
    auth.forget_tokens()
    return jsonify({**row, "secret": secret}), 201


@bp.delete("/tokens/<token_name>")
@requires(OWNER, writes=True)
def revoke_token(token_name: str):
    """Revoke the live token ``token_name`` (SQL ``revoke_api_token``): 200 the
    token with revoked_at and revoked_by; it stops working within
    TOKEN_CACHE_S seconds and its sessions end. 400 naming token_name when
    no live token has that name, or for a name that cannot be one. Owner only."""
    if not TOKEN_NAME.fullmatch(token_name):
        raise InvalidInput(
            f"{show(token_name)} is not a token name (lower case letters, digits, _ . -;"
            " at most 63 characters)",
            field="token_name",
        )
    row = write(lambda conn: db.revoke_api_token(conn, token_name))
    auth.forget_tokens()
    return jsonify(row)


@bp.post("/session")
@requires(READ)
def start_session():
    """Exchange the bearer token for the browser's session cookie (the analyst's
    page does this once; EventSource and page loads cannot send a header).

    Needs ``Authorization: Bearer <token>`` (the cookie itself does not count
    here). 204 with ``Set-Cookie: pgfraud_session=…; HttpOnly; SameSite=Strict;
    Path=/; Max-Age=SESSION_MAX_AGE_S`` (and ``Secure`` over HTTPS); the
    cookie then authenticates reads (GET of pages, reads and the live feed),
    never writes. 204 and no cookie when no token is configured; 401 without
    a valid token.
    """
    return auth.start_session(g.identity)
