"""The analyst's page: server-rendered HTML over the same SQL functions as the API.

A blueprint of its own (templates in service/templates, vendored static files
in service/static). Every view reads through the functions of pgfraud.db that
the JSON API calls, and the page's JavaScript writes through the JSON API
itself (reviews, rule changes, backtests), so psql, HTTP and the page agree.

Pages: ``/`` (the alert queue for browsers; JSON index for other clients),
``/ui/alerts``, ``/ui/accounts/<id>`` (or ``/ui/accounts?account_id=``),
``/ui/rules``, ``/ui/evaluation``, ``/ui/overview``, ``/ui/cases``. A failure renders as a
page with a message (never a stack trace); a database that is down renders
a banner, and the page reloads itself when /health answers again.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, current_app, jsonify, render_template, request, url_for
from pydantic import BaseModel, ConfigDict, Field
from werkzeug.exceptions import HTTPException

from pgfraud import db
from pgfraud.errors import DatabaseUnavailable, InvalidInput, PgfraudError
from pgfraud.service import auth, routes
from pgfraud.service.auth import ANALYST, READ, requires
from pgfraud.service.database import heavy_transaction, transaction
from pgfraud.service.openapi import RULE_PARAMETERS
from pgfraud.wire import (
    AUDIT_KINDS,
    AlertQuery,
    AuditQuery,
    CaseQuery,
    Timestamp,
    format_alert_cursor,
    format_history_cursor,
    format_timestamp,
    parse_history_cursor,
    parse_id,
    parse_model,
)

# Templates and static files are the app's own folders (service/templates,
# service/static, served at /static): the app and this blueprint share a root.
bp = Blueprint("pages", __name__)

QUEUE_PAGE = 50  # alerts per page of the queue
CASES_PAGE = 20  # cases per page of the case queue
HISTORY_PAGE = 50  # transactions per page of an account's table
CHART_POINTS = 2000  # an account's latest transactions drawn in its chart
REVIEW_STATUSES = ("unreviewed", "confirmed_fraud", "false_positive")
OUTCOMES = ("approve", "review", "decline")


class TimeRange(BaseModel):
    """A [from, to) transaction-time range from a page's form (empty: unbounded)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    from_: Timestamp | None = Field(default=None, alias="from")
    to: Timestamp | None = None


def _form_args() -> dict[str, str]:
    """The page's query parameters, empty ones dropped (an empty field means any)."""
    return {k: v.strip() for k, v in request.args.items() if v.strip()}


def _render(template: str, status: int = 200, **context: Any):
    """Render a page; ``api_token_needed`` tells the page whether writes ask for a token."""
    context.setdefault("error", None)
    context.setdefault("database_down", False)
    try:
        token_needed = auth.tokens_required()
    except PgfraudError:  # the database is down: the page says so itself
        token_needed = bool(current_app.config.get("API_TOKEN"))
    health_ms = int(float(current_app.config["PAGE_HEALTH_INTERVAL_S"]) * 1000)
    return render_template(
        template, token_needed=token_needed, health_interval_ms=health_ms, **context
    ), status


def _failure(template: str, exc: PgfraudError, **context: Any):
    """The page with a message instead of its data: the banner when the database is down."""
    if isinstance(exc, DatabaseUnavailable):
        return _render(template, 503, database_down=True, **context)
    html, status = _render(template, exc.status, error=exc, **context)
    if exc.retry_after is not None:
        return html, status, {"Retry-After": str(exc.retry_after)}
    return html, status


@bp.app_template_filter("ts")
def _ts_filter(value: datetime | None) -> str:
    """A timestamp as shown on the page: UTC, seconds, ``2024-01-01 10:00:00``."""
    if value is None:
        return ""
    return format_timestamp(value)[:19].replace("T", " ")


@bp.app_template_filter("ratio")
def _ratio_filter(value: Any) -> str:
    return "–" if value is None else f"{value:.4f}"


@bp.get("/")
@requires(READ)
def home():
    """The alert queue for a browser (Accept prefers text/html); the JSON index of the
    API for any other client (curl, scripts), as before."""
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    if best == "text/html":
        return queue()
    return routes.index()


@bp.get("/ui/alerts")
@requires(READ)
def queue():
    """The alert queue (SQL ``get_alerts``), newest raised first or (order=time)
    newest transaction first, filtered by the form, with the total that
    matches (``count_alerts``)."""
    args = _form_args()
    rule_ids: list[str] = []
    context: dict[str, Any] = {
        "args": args,
        "rule_ids": rule_ids,
        "statuses": REVIEW_STATUSES,
        "outcomes": OUTCOMES,
    }
    try:
        query = parse_model(AlertQuery, {**args, "limit": str(QUEUE_PAGE)})
        with transaction() as conn:
            rule_ids += [r["rule_id"] for r in db.get_rules(conn)]
            # Taken before the rows are read: the live feed starts from here,
            # so nothing raised between this page and its stream is missed
            # (an alert both in the rows and in the feed is shown once).
            context["feed_position"] = db.get_alert_feed_start(conn)
            filters = {
                "account_id": query.account_id,
                "rule_id": query.rule_id,
                "review_status": query.review_status,
                "start": query.from_,
                "end": query.to,
                "outcome": query.outcome,
            }
            before_ts, before = query.cursor()
            rows = db.get_alerts(
                conn,
                **filters,
                before=before,
                before_ts=before_ts,
                order=query.order,
                limit=QUEUE_PAGE + 1,
            )
            context["total"] = db.count_alerts(conn, **filters)
    except PgfraudError as exc:
        return _failure("queue.html", exc, alerts=[], older=None, live=False, **context)
    older = None
    if len(rows) > QUEUE_PAGE:
        rows = rows[:QUEUE_PAGE]
        older = "?" + urlencode({**args, "before": format_alert_cursor(rows[-1], query.order)})
    return _render(
        "queue.html",
        alerts=rows,
        older=older,
        live="before" not in args,
        order=query.order,
        **context,
    )


@bp.get("/ui/accounts")
@bp.get("/ui/accounts/<account_id>")
@requires(READ)
def account(account_id: str | None = None):
    """One account: chart of its latest transactions (flagged ones by rule), the paged
    table (SQL ``get_account_history``) and its review history (``get_account_reviews``)."""
    args = _form_args()
    # The box at the top may carry spaces around the id; a path may not.
    raw = account_id if account_id is not None else (args.get("account_id") or "").strip() or None
    context: dict[str, Any] = {"account_id": raw or "", "history": [], "chart": [], "reviews": []}
    if raw is None:
        return _render("account.html", asked=False, **context)
    try:
        account_ref = parse_id(raw, "account_id")
        before = parse_history_cursor(args["before"]) if "before" in args else None
        with transaction() as conn:
            chart = db.get_account_history(conn, account_ref, CHART_POINTS)
            history = (
                chart[: HISTORY_PAGE + 1]
                if before is None
                else db.get_account_history(conn, account_ref, HISTORY_PAGE + 1, before)
            )
            reviews = db.get_account_reviews(conn, account_ref, 100)
    except PgfraudError as exc:
        return _failure("account.html", exc, asked=True, **context)
    following = None
    if len(history) > HISTORY_PAGE:
        history = history[:HISTORY_PAGE]
        cursor = format_history_cursor(history[-1]["ts"], history[-1]["transaction_id"])
        following = url_for("pages.account", account_id=account_ref, before=cursor)
    return _render(
        "account.html",
        asked=True,
        account_id=account_ref,
        history=history,
        chart=routes.history_json(chart),
        chart_limit=CHART_POINTS,
        reviews=reviews,
        following=following,
        first_page=before is None,
    )


@bp.get("/ui/rules")
@requires(READ)
def rules():
    """The rules with their description, switch and parameters (SQL ``get_rules``);
    editing a parameter backtests it (POST /evaluate) before it is switched on
    (PATCH /rules). Then the decisions (issue 17): the policy in force with
    every rule's score (``get_decision_policy``; changed with PUT /policy)
    and the allow/block lists with their entries in force (``get_lists``,
    ``get_list``; changed with POST /lists, POST and DELETE
    /lists/<name>/entries)."""
    try:
        with transaction() as conn:
            rows = db.get_rules(conn)
            policy = db.get_decision_policy(conn)
            lists = [db.get_list(conn, row["list_name"]) for row in db.get_lists(conn)]
    except PgfraudError as exc:
        return _failure("rules.html", exc, rules=[], policy=None, lists=[])
    return _render("rules.html", rules=rows, policy=policy, lists=lists)


@bp.get("/ui/evaluation")
@requires(ANALYST)
def evaluation():
    """Precision and recall per rule x scenario of the live rules (SQL
    ``backtest_rules``) over the form's time range, and a precision-recall sweep
    for one rule (drawn by the page, one POST /evaluate per threshold)."""
    args = _form_args()
    context: dict[str, Any] = {"args": args, "results": [], "rules": [], "range_error": None}
    try:
        span = TimeRange.model_validate(args) if args else TimeRange()
    except ValueError:
        exc = InvalidInput("from and to must be times like 2024-01-01T00:00:00Z", field="from")
        return _failure("evaluation.html", exc, **context)
    if span.from_ is not None and span.to is not None and span.to < span.from_:
        return _failure(
            "evaluation.html", InvalidInput("to must not be before from", field="to"), **context
        )
    try:
        with heavy_transaction("backtest") as conn:
            rows = db.get_rules(conn)
            results = db.backtest_rules(conn, None, span.from_, span.to)
    except PgfraudError as exc:
        return _failure("evaluation.html", exc, **context)
    # Each parameter's kind and range (the validator's, as the OpenAPI
    # document lists them): the sweep suggests only values it accepts.
    ranges = {
        rule: {
            name: {"kind": kind, "minimum": low, "maximum": high, "maximum_excluded": excluded}
            for name, (kind, low, high, excluded) in parameters.items()
        }
        for rule, parameters in RULE_PARAMETERS.items()
    }
    context.update(results=results, rules=rows, ranges=ranges)
    return _render("evaluation.html", **context)


@bp.get("/ui/overview")
@requires(READ)
def overview():
    """Transactions and alerts per hour over the last day stored, alerts by rule and
    the review backlog (SQL ``get_overview``)."""
    try:
        with transaction() as conn:
            data = db.get_overview(conn)
    except PgfraudError as exc:
        return _failure("overview.html", exc, data=None)
    return _render("overview.html", data=data)


@bp.get("/ui/cases")
@requires(READ)
def cases():
    """The queue worked by case (SQL ``get_cases``, ``get_case``): the cases that
    match the form (status, assignee, account; default the ones not closed,
    newest first), each with its alerts, to assign or close from the page
    (POST /cases/<id>/assign, /close, by static/cases.js)."""
    args = _form_args()
    status = args.get("status", "active")
    # Not "status": _render takes that as the HTTP status.
    context: dict[str, Any] = {"args": args, "cases": [], "older": None, "status_filter": status}
    try:
        # "any" (every case) is no filter; the page's default is the cases to work.
        filters = {k: v for k, v in args.items() if k != "status"}
        if status != "any":
            filters["status"] = status
        query = parse_model(CaseQuery, {**filters, "limit": str(CASES_PAGE + 1)})
        with transaction() as conn:
            rows = db.get_cases(
                conn,
                status=query.status,
                assignee=query.assignee,
                account_id=query.account_id,
                before=query.before,
                limit=query.limit,
            )
            shown = [db.get_case(conn, r["case_id"]) for r in rows[:CASES_PAGE]]
    except PgfraudError as exc:
        return _failure("cases.html", exc, **context)
    if len(rows) > CASES_PAGE:
        context["older"] = "?" + urlencode({**args, "before": rows[CASES_PAGE - 1]["case_id"]})
    return _render("cases.html", **{**context, "cases": shown})


AUDIT_PAGE = 50  # entries per page of the audit trail


def _changed(entry: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """The fields an audit entry changed: (field, before, after), the
    bookkeeping of an update left out when its values are the same."""
    before, after = entry["before"] or {}, entry["after"] or {}
    keys = list(dict.fromkeys([*before, *after]))
    return [(k, before.get(k), after.get(k)) for k in keys if before.get(k) != after.get(k)]


@bp.get("/ui/audit")
@requires(READ)
def audit():
    """The audit trail (SQL ``get_audit``, as GET /audit), newest first,
    filtered by actor, kind and time, with what each change changed."""
    args = _form_args()
    context: dict[str, Any] = {"args": args, "entries": [], "kinds": AUDIT_KINDS,
                               "following": None}  # fmt: skip
    try:
        query = parse_model(AuditQuery, {**args, "limit": str(AUDIT_PAGE)})
        with transaction() as conn:
            rows = db.get_audit(
                conn,
                actor=query.actor,
                object_kind=query.object_kind,
                object_key=query.object_key,
                start=query.from_,
                end=query.to,
                before=query.before,
                limit=AUDIT_PAGE + 1,
            )
    except PgfraudError as exc:
        return _failure("audit.html", exc, **context)
    if len(rows) > AUDIT_PAGE:
        rows = rows[:AUDIT_PAGE]
        following = {k: v for k, v in args.items() if k != "before"}
        context["following"] = url_for("pages.audit", **following, before=rows[-1]["audit_id"])
    context["entries"] = [{**r, "changes": _changed(r)} for r in rows]
    return _render("audit.html", **context)


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException):
    """A page's own HTTP errors (a method not allowed, say) as a page, not JSON.
    401 (a token is configured and the browser has no session yet): the
    sign-in page, which asks for the token once, exchanges it for the session
    cookie (POST /session) and loads the page again; JSON for other clients."""
    if exc.code == 401:
        best = request.accept_mimetypes.best_match(["application/json", "text/html"])
        challenge = {"WWW-Authenticate": 'Bearer realm="pgfraud"'}
        if best != "text/html":
            body = {"error": {"code": "unauthorized", "message": exc.description}}
            return jsonify(body), 401, challenge
        html, status = _render("signin.html", 401)
        return html, status, challenge
    error = PgfraudError(exc.description or exc.name)
    error.status = exc.code or 500
    return _render("error.html", error.status, error=error)


@bp.errorhandler(PgfraudError)
def _refused(exc: PgfraudError):
    """A refusal before a page's view ran (a query parameter the page does not
    take: routes.check_query_parameters) as a page with its message and
    status; JSON for a client that is not a browser on ``/``, as every API call."""
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    if best != "text/html" and request.endpoint == "pages.home":
        return jsonify(exc.to_dict()), exc.status
    html, status = _render("error.html", exc.status, error=exc)
    if exc.retry_after is not None:
        return html, status, {"Retry-After": str(exc.retry_after)}
    return html, status


@bp.errorhandler(DatabaseUnavailable)
def _database_down(exc: DatabaseUnavailable):
    """The database is down before a page's view ran (the guard could not read
    the named tokens): for a browser the banner page, which reloads itself
    when /health answers again, showing no data; JSON for other clients."""
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    retry = {"Retry-After": str(exc.retry_after)}
    if best != "text/html" and request.endpoint == "pages.home":
        return jsonify(exc.to_dict()), exc.status, retry  # the JSON error, as every API call
    html, status = _render("error.html", 503, database_down=True)
    return html, status, retry


@bp.errorhandler(Exception)
def _unexpected(exc: Exception):
    current_app.logger.exception("unexpected error on a page")
    return _render("error.html", 500, error=PgfraudError("internal error"))
