"""The endpoints. Each view: validate, one database call, serialise.

Amounts, observed values and thresholds are JSON strings of exact decimals
(currency units); timestamps are ISO 8601 UTC strings with milliseconds and Z.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from functools import wraps
from typing import Any

from flask import Blueprint, current_app, jsonify, request, url_for
from werkzeug.exceptions import MethodNotAllowed, Unauthorized, UnsupportedMediaType

from pgfraud import __version__, db
from pgfraud.errors import InvalidInput, MalformedJson, TooManyRows
from pgfraud.service.database import reading, transaction
from pgfraud.service.openapi import openapi_document
from pgfraud.wire import (
    format_timestamp,
    loads_json,
    parse_id,
    parse_transaction,
    parse_transactions,
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
    return {rename.get(k, k): _json_value(v) for k, v in row.items()}


def requires_token(view: Callable) -> Callable:
    """Refuse the request (401) unless it carries ``Authorization: Bearer <API_TOKEN>``,
    when an API token is configured."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any):
        token = current_app.config.get("API_TOKEN")
        if token:
            given = request.headers.get("Authorization", "")
            scheme, _, value = given.partition(" ")
            valid = scheme.lower() == "bearer" and hmac.compare_digest(
                value.strip().encode("utf-8", "surrogateescape"), token.encode("utf-8")
            )
            if not valid:
                raise Unauthorized("this endpoint needs the header Authorization: Bearer <token>")
        return view(*args, **kwargs)

    return wrapper


@bp.get("/")
def index():
    """Where to go: the endpoints of this service."""
    return jsonify(
        {
            "service": "pgfraud",
            "version": __version__,
            "endpoints": {
                "health": url_for("api.health"),
                "rules": url_for("api.rules"),
                "is_fraud": "/is_fraud/<account_id>",
                "account_transactions": "/accounts/<account_id>/transactions?limit=100",
                "store_data": "/store_data (POST JSON, or GET with query parameters)",
                "openapi": url_for("api.openapi"),
            },
        }
    )


@bp.get("/health")
def health():
    """200 ``{"status": "ok", "database": {...}}`` when the database answers; 503 otherwise."""
    with transaction() as conn:
        info = db.check_health(conn)
    return jsonify({"status": "ok", "database": info})


@bp.get("/openapi.json")
def openapi():
    """The OpenAPI 3.1 document of this API."""
    return jsonify(openapi_document())


@bp.get("/rules")
def rules():
    """The rule catalogue: ``{"rules": [{rule_id, enabled, parameters, description}]}``."""
    with transaction() as conn:
        rows = db.get_rules(conn)
    return jsonify({"rules": [_serialise(r) for r in rows]})


@bp.get("/is_fraud/<account_id>")
@bp.get("/is_fraud/<account_id>/")
def is_fraud(account_id: str):
    """The fraudulent events of one account (SQL ``is_fraud``).

    200 ``{"account_id", "count", "events": [{transaction_id, account_id,
    timestamp, amount, rule_id, observed, threshold, reason}]}``; 400 for an
    account id outside 0..2^63-1; 404 (account_not_found) for an account with
    no transactions. ``/is_fraud/42`` and ``/is_fraud/42/`` answer alike.
    """
    account = parse_id(account_id, "account_id")
    with reading() as conn:
        count, events = db.is_fraud_json(conn, account)
    # The events array is JSON made by PostgreSQL (db.is_fraud_json); only the
    # envelope is written here.
    body = f'{{"account_id":{account},"count":{count},"events":{events}}}\n'
    return current_app.response_class(body, mimetype="application/json")


@bp.get("/accounts/<account_id>/transactions")
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
    with transaction() as conn:
        rows = db.get_account_transactions(conn, account, int(limits[0]))
    return jsonify(
        {"account_id": account, "transactions": [_serialise(r, {"ts": "timestamp"}) for r in rows]}
    )


def _store(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    with transaction() as conn:
        return db.store_transactions(conn, records)


def _single_answer(result: dict[str, Any]):
    body = {"transaction_id": result["transaction_id"], "status": result["status"]}
    return jsonify(body), 201 if result["status"] == "stored" else 200


@bp.get("/store_data")
@requires_token
def store_data_query():
    """Store one transaction from query parameters (the seed's form):
    ``?account_id=…&transaction_id=…&timestamp=…&amount=…``.

    201 ``{"transaction_id", "status": "stored"}``; 200 with status
    ``duplicate`` when it was already stored unchanged; 400 naming the field;
    409 when the id is stored with other content.
    """
    if request.method == "HEAD":  # Flask adds HEAD to GET routes; HEAD must not write
        raise MethodNotAllowed(valid_methods=["GET", "POST"])
    if not request.args:
        raise InvalidInput(
            "give account_id, transaction_id, timestamp and amount as query parameters, "
            "or POST JSON"
        )
    duplicated = [k for k in request.args if len(request.args.getlist(k)) > 1]
    if duplicated:
        raise InvalidInput(f"{duplicated[0]} is given more than once", field=duplicated[0])
    transaction_in = parse_transaction(request.args.to_dict())
    return _single_answer(_store([to_record(transaction_in)])[0])


@bp.post("/store_data")
@requires_token
def store_data_json():
    """Store one JSON object, or an array of them all-or-nothing (at most MAX_BATCH_ROWS).

    One object: as GET. An array: 201 (200 when nothing new) ``{"stored",
    "duplicates", "results": [{row, transaction_id, status}]}``; any bad row
    refuses the whole array (400 listing every bad row and field, 409 for a
    conflicting id). 415 unless Content-Type is application/json; 400 for
    malformed JSON; 413 for a body over MAX_CONTENT_LENGTH or too many rows.
    """
    if not request.is_json:
        raise UnsupportedMediaType("Content-Type must be application/json")
    try:  # Flask answers 413 here for a body over MAX_CONTENT_LENGTH
        payload = loads_json(request.get_data(cache=False))
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedJson(f"the body is not valid JSON: {exc}") from None
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
