"""Cases (issue 18, part 5): the endpoints that work an account's alerts as one case.

Each view: validate, one database call, serialise (as in routes). A case is
``{case_id, account_id, status (open, assigned, closed), assignee,
assigned_by, assigned_at, resolution (fraud, not_fraud, withdrawn, or null), note,
opened_at, closed_at, closed_by, alert_count, alerts_raised, transaction_count}``; times
ISO 8601 UTC with milliseconds and Z. Cases are opened by the database, in
the transaction that writes the alerts (SQL ``open_cases``); who assigns or
closes one is ``current_actor()`` (the ``pgfraud.actor`` the request runs
as, else the service's login).
"""

from __future__ import annotations

from urllib.parse import urlencode

from flask import Blueprint, jsonify, request

from pgfraud import db
from pgfraud.service.auth import ANALYST, READ, requires
from pgfraud.service.database import read, write
from pgfraud.service.routes import _json_object, _single_value_args
from pgfraud.wire import CaseAssign, CaseClose, CaseQuery, parse_id, parse_model

bp = Blueprint("cases", __name__)


@bp.get("/cases")
@requires(READ)
def cases():
    """Cases, newest first (SQL ``get_cases``).

    Filters (query parameters, each optional): ``status`` (open, assigned,
    closed, or active: open or assigned), ``assignee`` (exact name),
    ``account_id``; paging: ``limit`` 1..1000 (default 100) and ``before``
    (the cursor in ``next``: a case_id). 200 ``{"count", "cases": [case],
    "next"}`` (``next`` null on the last page); 400 naming the bad parameter.
    """
    query = parse_model(CaseQuery, _single_value_args())
    rows = read(
        lambda conn: db.get_cases(
            conn,
            status=query.status,
            assignee=query.assignee,
            account_id=query.account_id,
            before=query.before,
            limit=query.limit + 1,
        )
    )
    following = None
    if len(rows) > query.limit:
        rows = rows[: query.limit]
        args = {k: v for k, v in request.args.items() if k != "before"}
        following = f"{request.path}?{urlencode({**args, 'before': rows[-1]['case_id']})}"
    return jsonify({"count": len(rows), "cases": rows, "next": following})


@bp.get("/cases/<case_id>")
@requires(READ)
def case(case_id: str):
    """One case with its alerts (SQL ``get_case``): 200 the case with ``alerts``:
    [{transaction_id, rule_id, timestamp, amount, alert_id, observed,
    threshold, reason, raised (false once re-scoring removed it),
    review_status}] in transaction time order; 400 for a bad id; 404
    (case_not_found)."""
    case_ref = parse_id(case_id, "case_id")
    return jsonify(read(lambda conn: db.get_case(conn, case_ref)))


@bp.post("/cases/<case_id>/assign")
@requires(ANALYST, writes=True)
def assign(case_id: str):
    """Give a case that is not closed to someone (SQL ``assign_case``).

    Body (JSON): ``{"assignee": text, 1..200 characters}``. 200 the case
    (status assigned, assigned_by who asked); 400 naming the bad field; 401
    without a token (when one is configured); 403 for a read-only token; 404
    (case_not_found); 409 (case_conflict) when it is closed; 415 unless JSON.
    """
    case_ref = parse_id(case_id, "case_id")
    change = parse_model(CaseAssign, _json_object())
    return jsonify(write(lambda conn: db.assign_case(conn, case_ref, change.assignee)))


@bp.post("/cases/<case_id>/close")
@requires(ANALYST, writes=True)
def close(case_id: str):
    """Close a case with a resolution (SQL ``close_case``), reviewing its transactions.

    Body (JSON): ``{"resolution": "fraud" | "not_fraud" | "withdrawn", "note":
    text (optional, <= 2000 characters)}``. For fraud and not_fraud every
    transaction with an alert in the case gets a review (confirmed_fraud for
    fraud, false_positive for not_fraud, with the note), in the same database
    transaction, so ``pgfraud evaluate`` counts them as labels. withdrawn is
    for a case none of whose alerts is raised any more (a rule change
    re-scored them away): nothing is reviewed. 200 the closed case with
    ``reviewed`` (transactions reviewed); 400 naming the bad field (also
    ``resolution`` for withdrawn while an alert is still raised); 401/403
    as for assign; 404 (case_not_found); 409 (case_conflict) when it is
    already closed (of two analysts closing one case at once, the second
    gets 409); 415 unless JSON.
    """
    case_ref = parse_id(case_id, "case_id")
    change = parse_model(CaseClose, _json_object())
    return jsonify(
        write(lambda conn: db.close_case(conn, case_ref, change.resolution, change.note))
    )
