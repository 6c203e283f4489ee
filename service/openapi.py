"""The OpenAPI 3.1 document of the HTTP API (served at /openapi.json)."""

from __future__ import annotations

from typing import Any

from pgfraud import __version__
from pgfraud.service.auth import PUBLIC, READ, Access
from pgfraud.wire import AUDIT_KINDS

_MAX_ID = 9223372036854775807
# What the server answers with: a JSON integer.
_ID = {"type": "integer", "minimum": 0, "maximum": _MAX_ID}
# What it accepts: a JSON integer, or a JSON number with no fractional part
# (13004713924.0 is 13004713924: numbers are parsed exactly, never as floats),
# or digit text of at most 2^63-1 (a pattern that bounds the value).


def _at_most(limit: int) -> str:
    """A regex of the digit strings of 1 .. len(str(limit)) digits (leading zeros
    counted) whose value is at most ``limit``: shorter strings, or a full-length
    one that is below ``limit`` from some digit on (or equal to it)."""
    text = str(limit)
    full = [
        f"{text[:i]}[0-{int(d) - 1}][0-9]{{{len(text) - i - 1}}}"
        for i, d in enumerate(text)
        if d != "0"
    ]
    return "|".join([f"[0-9]{{1,{len(text) - 1}}}", *full, text])


_ID_IN = {
    "oneOf": [
        {"type": "integer", "minimum": 0, "maximum": _MAX_ID},
        {"type": "string", "pattern": rf"^\s*({_at_most(_MAX_ID)})\s*$"},
    ],
    "description": "0 .. 2^63-1; an integer-valued JSON number (13.0) counts as the integer",
}
_DECIMAL = {"type": "string", "pattern": r"^[0-9]{1,13}(\.[0-9]{1,2})?$"}
_MERCHANT_IN = {
    "oneOf": [*_ID_IN["oneOf"], {"type": "null"}, {"type": "string", "pattern": r"^\s*$"}],
    "description": "optional: where the card was used, 0 .. 2^63-1; null or empty: unknown "
    "(read by the merchant rules)",
}
_AMOUNT_IN = {
    "oneOf": [
        {"type": "string", "pattern": r"^\s*\+?([0-9]{1,13}(\.[0-9]{0,2}0*)?|\.[0-9]{1,2}0*)\s*$"},
        {"type": "number", "minimum": 0, "exclusiveMaximum": 1e13, "multipleOf": 0.01},
    ],
    "description": (
        "currency units, 0 <= amount < 10^13, at most 2 decimal places (more are refused,"
        " not rounded); decimal text or a JSON number, read exactly"
    ),
}
_TIMESTAMP_IN = {
    "oneOf": [
        {
            # JSON Schema cannot bound a date-time's range, so the pattern spells out
            # 2000-01-01 .. 2099-12-28 in UTC (days 29-31 and other offsets are
            # accepted as well; see the description).
            "type": "string",
            "pattern": (
                r"^20[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])"
                r"T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?(Z|\+00:00)?$"
            ),
            "description": (
                "ISO 8601 date and time, 2000-01-01 .. 2100-01-01 UTC; without an offset it is"
                " UTC; an offset other than Z converts to UTC; finer than ms is truncated"
            ),
        },
        {
            "type": "integer",
            "description": "epoch milliseconds",
            "minimum": 946684800000,
            "maximum": 4102444799999,
        },
    ]
}
_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "field": {"type": "string"},
                "row": {"type": "integer"},
                "errors": {"type": "array", "items": {"type": "object"}},
            },
        }
    },
}


# A position in an account's events: <epoch ms>.<transaction_id>.<rule_id>.
_CURSOR = "^[0-9]{12,13}\\.[0-9]{1,18}\\.[a-z][a-z0-9_]{0,62}$"


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _json(schema_ref: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema_ref}"}}},
    }


def openapi_document(access: dict[tuple[str, str], Access] | None = None) -> dict[str, Any]:
    """The OpenAPI document as a dict.

    ``access``: what each operation needs, {(OpenAPI path, method): Access}
    (service.auth.operation_access of the app): each operation gets its
    ``security`` (none for PUBLIC; the bearer token, or the session cookie
    where it counts), ``x-pgfraud-access`` (the role level) and its 401/403
    answers. Without it, every operation is documented as open.
    """
    account_param = {
        "name": "account_id",
        "in": "path",
        "required": True,
        "schema": _ID,
    }
    document = _document(account_param)
    for path, operations in _page_paths(account_param).items():
        document["paths"].setdefault(path, {}).update(operations)
    document["components"]["schemas"].update(_DECISION_SCHEMAS)
    for path, operations in _decision_paths().items():
        document["paths"].setdefault(path, {}).update(operations)
    document["components"]["schemas"].update(_CASE_SCHEMAS)
    for path, operations in _case_paths().items():
        document["paths"].setdefault(path, {}).update(operations)
    for path, operations in _browser_paths(account_param).items():
        document["paths"].setdefault(path, {}).update(operations)
    for path, operations in _shadow_paths().items():
        document["paths"].setdefault(path, {}).update(operations)
    for path, operations in _actor_paths().items():
        document["paths"].setdefault(path, {}).update(operations)
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            # Every operation refuses a query parameter it does not list (and
            # spaces around an integer's digits): routes.check_query_parameters.
            refusal = _html if path.startswith("/ui/") else _error
            operation["responses"].setdefault("400", refusal("a query parameter it does not take"))
            operation.pop("security", None)
            needs = (access or {}).get((path, method))
            if needs is None or needs.level == PUBLIC:
                operation["security"] = []
                continue
            ways: list[dict[str, list[str]]] = [{"bearer": []}]
            if method in ("get", "head") and not needs.writes:
                ways.append({"session": []})
            operation["security"] = ways
            operation["x-pgfraud-access"] = needs.level
            operation["responses"]["401"] = _error("no valid token (when one is configured)")
            if needs.level != READ:
                operation["responses"]["403"] = _error(f"the token is not an {needs.level}'s")
    return document


def _html(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"text/html": {"schema": {"type": "string"}}}}


def _form(*names: str) -> list[dict[str, Any]]:
    """A page's query parameters: its form's fields, as typed (text; an empty one is no filter)."""
    return [{"name": n, "in": "query", "schema": {"type": "string"}} for n in names]


# The alert queue's form (GET /ui/alerts, and GET / for a browser).
QUEUE_FORM = ("rule_id", "review_status", "outcome", "account_id", "from", "to", "order", "before")


def _browser_paths(account_param: dict[str, Any]) -> dict[str, Any]:
    """The analyst's pages (HTML) and the session cookie they read with."""
    page = {"200": _html("the page"), "429": _html("every heavy slot is taken (evaluation)")}
    return {
        "/openapi.json": {
            "get": {
                "summary": "This document (public: no token)",
                "responses": {"200": {"description": "the OpenAPI 3.1 document"}},
            }
        },
        "/session": {
            "post": {
                "summary": "Trade the bearer token for the browser's session cookie "
                "(HttpOnly, SameSite=Strict; it lets page loads and the live feed read)",
                "responses": {"204": {"description": "Set-Cookie: pgfraud_session=..."}},
            }
        },
        "/ui/alerts": {
            "get": {
                "summary": "Page: the alert queue",
                "parameters": _form(*QUEUE_FORM),
                "responses": dict(page),
            }
        },
        "/ui/accounts": {
            "get": {
                "summary": "Page: one account (?account_id=), or the form to choose one",
                "parameters": _form("account_id", "before"),
                "responses": dict(page),
            }
        },
        "/ui/accounts/{account_id}": {
            "get": {
                "summary": "Page: one account's chart, transactions and reviews",
                "parameters": [{**account_param, "schema": {"type": "string"}}, *_form("before")],
                "responses": {**page, "400": _html("bad id"), "404": _html("unknown account")},
            }
        },
        "/ui/rules": {"get": {"summary": "Page: the rules", "responses": dict(page)}},
        "/ui/evaluation": {
            "get": {
                "summary": "Page: precision and recall of the live rules (a backtest)",
                "parameters": _form("from", "to"),
                "responses": {**page, "400": _html("bad from or to")},
            }
        },
        "/ui/overview": {"get": {"summary": "Page: the last day stored", "responses": dict(page)}},
        "/ui/cases": {
            "get": {
                "summary": "Page: the cases to work, assigned and closed from the page",
                "parameters": _form("status", "assignee", "account_id", "before"),
                "responses": dict(page),
            }
        },
        "/ui/audit": {
            "get": {
                "summary": "Page: the audit trail",
                "parameters": _form("actor", "object_kind", "object_key", "from", "to", "before"),
                "responses": dict(page),
            }
        },
    }


# Every rule's parameters as SQL rule_parameter_ranges() lists them (kind,
# minimum, maximum, maximum excluded); tests/test_page_api.py checks this copy
# against the database, so the document cannot drift from the validator.
RULE_PARAMETERS: dict[str, dict[str, tuple[str, int, int, bool]]] = {
    "amount_spike": {
        "multiplier": ("number", 0, 1000, False),
        "min_history": ("integer", 1, 1000000, False),
        "window_days": ("number", 0, 3660, False),
    },
    "below_average": {
        "factor": ("number", 0, 1000, False),
        "min_history": ("integer", 1, 1000000, False),
        "window_days": ("number", 0, 3660, False),
    },
    "compromised_merchant": {
        "window_days": ("number", 0, 3660, False),
        "delay_days": ("number", 0, 3660, False),
        "min_known_fraud": ("integer", 1, 1000000, False),
        "min_fraud_share": ("number", 0, 1, False),
    },
    "large_amount": {"threshold": ("number", 0, 10000000000000, True)},
    "new_merchant_large": {
        "multiplier": ("number", 0, 1000, False),
        "min_history": ("integer", 1, 1000000, False),
        "unused_days": ("number", 0, 3660, False),
    },
    "new_merchant_run": {
        "multiplier": ("number", 0, 1000, False),
        "max_run": ("integer", 2, 1000, False),
        "unused_days": ("number", 0, 3660, False),
        "min_history": ("integer", 1, 1000000, False),
    },
    "rapid_succession": {"min_gap_seconds": ("number", 0, 86400, False)},
    "same_timestamp": {"max_transactions": ("integer", 1, 1000000, False)},
    "velocity": {
        "window_seconds": ("integer", 1, 31622400, False),
        "max_transactions": ("integer", 1, 1000000, False),
    },
}
# Parameters with a default (SQL rule_parameter_defaults()): never required.
OPTIONAL_PARAMETERS = {
    ("amount_spike", "window_days"),
    ("below_average", "window_days"),
    ("new_merchant_large", "unused_days"),
}


def _parameters_schema(rule_id: str, complete: bool, empty: bool = False) -> dict[str, Any]:
    """The JSON Schema of one rule's parameters: all of them (complete) or some
    (at least one, or none too when ``empty``: a backtest of the rule as it is)."""
    properties = {}
    for name, (kind, low, high, excluded) in RULE_PARAMETERS[rule_id].items():
        bound = "exclusiveMaximum" if excluded else "maximum"
        properties[name] = {"type": kind, "minimum": low, bound: high}
    schema: dict[str, Any] = {
        "type": "object",
        "additionalProperties": False,
        "minProperties": 0 if empty else 1,
        "properties": properties,
    }
    if complete:
        schema["required"] = [n for n in properties if (rule_id, n) not in OPTIONAL_PARAMETERS]
    return schema


def _page_paths(account_param: dict[str, Any]) -> dict[str, Any]:
    """The index and the endpoints the analyst's page reads and writes through."""
    limit = {
        "name": "limit",
        "in": "query",
        "schema": {"type": "integer", "minimum": 1, "maximum": 10000},
    }
    return {
        "/": {
            "get": {
                "summary": "The analyst's page (HTML) for browsers; the JSON index otherwise",
                # The alert queue's form, as on /ui/alerts (the JSON index reads none).
                "parameters": _form(*QUEUE_FORM),
                "responses": {"200": {"description": "HTML when Accept prefers text/html"}},
            }
        },
        "/api": {
            "get": {
                "summary": "The JSON index: where the endpoints are",
                "responses": {"200": {"description": "service, version, endpoints"}},
            }
        },
        "/overview": {
            "get": {
                "summary": "Transactions and alerts per hour (last day stored), alerts by rule, "
                "review backlog",
                "responses": {"200": {"description": "until, hours, by_rule, backlog"}},
            }
        },
        "/accounts/{account_id}/history": {
            "get": {
                "summary": "An account's transactions, newest first, with alerts and review",
                "parameters": [
                    account_param,
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
                    },
                    {
                        "name": "before",
                        "in": "query",
                        "schema": {"type": "string", "pattern": r"^[0-9]{1,13}\.[0-9]{1,18}$"},
                    },
                ],
                "responses": {
                    "200": {"description": "transactions and next (a URL or null)"},
                    "400": _error("bad id, limit or cursor"),
                    "404": _error("account has no transactions"),
                },
            }
        },
        "/accounts/{account_id}/reviews": {
            "get": {
                "summary": "An account's review history, newest first",
                "parameters": [account_param, limit],
                "responses": {
                    "200": {"description": "reviews"},
                    "400": _error("bad id or limit"),
                },
            }
        },
        "/evaluate": {
            "post": {
                "summary": "Precision and recall per rule and scenario (live rules or a backtest)",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "additionalProperties": False,
                                "properties": {
                                    "rules": {
                                        "anyOf": [
                                            {
                                                "type": "object",
                                                # Users' rules (GET /rules) are rows, not
                                                # listed here; each takes {}.
                                                "additionalProperties": False,
                                                "minProperties": 1,
                                                "properties": {
                                                    r: _parameters_schema(r, False, empty=True)
                                                    for r in RULE_PARAMETERS
                                                },
                                            },
                                            {"type": "null"},
                                        ],
                                        "description": "the whole set of rules to run, each"
                                        " with the parameters it changes, merged over its live"
                                        " ones ({}: as it is; a user's rule, from GET /rules, takes"
                                        " {}); absent or null: the live ones",
                                    },
                                    "from": {"anyOf": [_TIMESTAMP_IN, {"type": "null"}]},
                                    "to": {"anyOf": [_TIMESTAMP_IN, {"type": "null"}]},
                                    "policy": {
                                        "anyOf": [
                                            {"$ref": "#/components/schemas/PolicyIn"},
                                            {"type": "null"},
                                        ],
                                        "description": "a candidate decision policy, merged over"
                                        " the policy in force; absent or null: the policy in force",
                                    },
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "200": {"description": "results (per rule) and decisions (outcome mix)"},
                    "400": _error("invalid field"),
                    "404": _error("a policy score for an unknown rule"),
                    "415": _error("Content-Type is not application/json"),
                },
            }
        },
        "/tune": {
            "post": {
                "summary": "Choose rules and parameters from the labels under an alert budget or a"
                " precision floor; report them beside the live rules (changes nothing)",
                "security": [{"bearer": []}, {}],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "additionalProperties": False,
                                "required": ["train_from", "train_to", "valid_from", "valid_to"],
                                "properties": {
                                    "train_from": _TIMESTAMP_IN,
                                    "train_to": _TIMESTAMP_IN,
                                    "valid_from": _TIMESTAMP_IN,
                                    "valid_to": _TIMESTAMP_IN,
                                    "max_alerts_per_1000": {
                                        "anyOf": [
                                            {"type": "number", "exclusiveMinimum": 0},
                                            {"type": "null"},
                                        ],
                                        "description": "alert budget: flagged per 1,000"
                                        " transactions on the training period",
                                    },
                                    "min_precision": {
                                        "anyOf": [
                                            {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
                                            {"type": "null"},
                                        ],
                                        "description": "precision floor on the training period",
                                    },
                                    "min_marginal_precision": {
                                        "anyOf": [
                                            {"type": "number", "minimum": 0, "maximum": 1},
                                            {"type": "null"},
                                        ],
                                        "description": "add a rule only if at least this share"
                                        " of the alerts it adds on the training period is fraud"
                                        " (default 0.5; 0: no such floor)",
                                    },
                                    "candidates": {
                                        "anyOf": [
                                            {"type": "array", "items": {"type": "string"}},
                                            {"type": "null"},
                                        ],
                                        "description": "rule ids to choose from (default: every"
                                        " rule)",
                                    },
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "200": {"description": "chosen, live, search, figures, switch"},
                    "400": _error("invalid field"),
                    "401": _error("token required"),
                    "415": _error("Content-Type is not application/json"),
                },
            }
        },
        "/rules": {
            "patch": {
                "summary": "Turn rules on/off and/or change their parameters, all-or-nothing"
                " (re-scores history)",
                "security": [{"bearer": []}, {}],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "additionalProperties": False,
                                "minProperties": 1,
                                "properties": {
                                    r: {
                                        "type": "object",
                                        "additionalProperties": False,
                                        "minProperties": 1,
                                        "properties": {
                                            "enabled": {"type": "boolean"},
                                            "parameters": _parameters_schema(r, False),
                                        },
                                    }
                                    for r in RULE_PARAMETERS
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "200": {"description": "the changed rules, in rule_id order"},
                    "400": _error("invalid field or parameter (the validator's message)"),
                    "401": _error("token required"),
                    "404": _error("no such rule"),
                    "415": _error("Content-Type is not application/json"),
                    "503": _error(
                        "rule_change_timeout: the re-scoring outlasted"
                        " PGFRAUD_RULE_CHANGE_TIMEOUT_MS (default 10 minutes; nothing changed),"
                        " or the database is down"
                    ),
                },
            }
        },
    }


def _document(account_param: dict[str, Any]) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "pgfraud",
            "version": __version__,
            "description": "PostgreSQL-native fraud detection: store transactions, read events.",
        },
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "PGFRAUD_API_TOKEN, when the server has one",
                },
                "session": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": "pgfraud_session",
                    "description": "set by POST /session; counts on GET/HEAD of reads only",
                },
            },
            "schemas": {
                "Error": _ERROR,
                "TransactionIn": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["account_id", "transaction_id", "timestamp", "amount"],
                    "properties": {
                        "account_id": _ID_IN,
                        "transaction_id": _ID_IN,
                        "timestamp": _TIMESTAMP_IN,
                        "amount": _AMOUNT_IN,
                        "merchant_id": _MERCHANT_IN,
                    },
                },
                "StoreResult": {
                    "type": "object",
                    "properties": {
                        "transaction_id": _ID,
                        "status": {"enum": ["stored", "duplicate"]},
                        "alerts": {
                            "type": "array",
                            "description": "the verdict: alerts raised by this transaction",
                            "items": {"$ref": "#/components/schemas/Verdict"},
                        },
                        "decision": {
                            "oneOf": [{"$ref": "#/components/schemas/Decision"}, {"type": "null"}],
                            "description": "the decision made when it was stored (null: stored "
                            "before decisions existed)",
                        },
                    },
                },
                "Verdict": {
                    "type": "object",
                    "required": [
                        "alert_id",
                        "rule_id",
                        "rule_version",
                        "observed",
                        "threshold",
                        "reason",
                    ],
                    "properties": {
                        "alert_id": {"type": "integer"},
                        "rule_id": {"type": "string"},
                        "rule_version": {
                            "type": "integer",
                            "description": "the version of the rule (GET /rules/{rule_id}/"
                            "versions) that made the alert, as GET /alerts names it",
                        },
                        "observed": {"type": "string"},
                        "threshold": {"type": "string"},
                        "reason": {"type": "string"},
                    },
                },
                "Alert": {
                    "type": "object",
                    "properties": {
                        "alert_id": {"type": "integer"},
                        "transaction_id": _ID,
                        "account_id": _ID,
                        "timestamp": {"type": "string", "format": "date-time"},
                        "amount": _DECIMAL,
                        "rule_id": {"type": "string"},
                        "observed": {"type": "string"},
                        "threshold": {"type": "string"},
                        "reason": {"type": "string"},
                        "parameters": {"type": "object"},
                        "raised_at": {"type": "string", "format": "date-time"},
                        "review_status": {
                            "enum": ["unreviewed", "confirmed_fraud", "false_positive"]
                        },
                        "review_note": {"type": ["string", "null"]},
                        "reviewer": {"type": ["string", "null"]},
                        "reviewed_at": {"type": ["string", "null"], "format": "date-time"},
                        "rule_version": {
                            "type": "integer",
                            "description": "the version of the rule (GET /rules/{rule_id}/"
                            "versions) whose parameters produced the alert as it is now",
                        },
                        "raised_rule_version": {
                            "type": "integer",
                            "description": "the version in force when the alert was first raised",
                        },
                        "raised_parameters": {
                            "type": ["object", "null"],
                            "description": "the parameters of raised_rule_version",
                        },
                        "outcome": {
                            "enum": ["approve", "review", "decline", None],
                            "description": "the outcome of the transaction's decision",
                        },
                        "overruled": {
                            "type": ["boolean", "null"],
                            "description": "a list forced the decision's outcome",
                        },
                    },
                },
                "RuleIn": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["rule_id", "expression"],
                    "properties": {
                        "rule_id": {"type": "string", "pattern": "^[a-z][a-z0-9_]{0,62}$"},
                        "expression": {
                            "type": "string",
                            "maxLength": 1000,
                            "pattern": "^[^\\x00]*$",
                            "description": "boolean SQL over the features amount, prior_count, "
                            "prior_average, seconds_since_previous, count_1h, sum_1h, count_24h, "
                            "sum_24h, merchant_id, first_at_merchant (see docs/rules.md)",
                        },
                        "description": {
                            "type": "string",
                            "minLength": 1,
                            "maxLength": 500,
                            "pattern": "^[^\\x00]*$",
                        },
                        "enabled": {"type": "boolean"},
                    },
                },
                "ReviewIn": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["status"],
                    "properties": {
                        "status": {"enum": ["confirmed_fraud", "false_positive"]},
                        "note": {"type": "string", "maxLength": 2000, "pattern": "^[^\\x00]*$"},
                        "reviewer": {
                            "type": "string",
                            "minLength": 1,
                            "maxLength": 200,
                            "pattern": "^[^\\x00]*$",
                        },
                    },
                },
                "BatchResult": {
                    "type": "object",
                    "properties": {
                        "stored": {"type": "integer"},
                        "duplicates": {"type": "integer"},
                        "results": {"type": "array", "items": {"type": "object"}},
                    },
                },
                "FraudEvent": {
                    "type": "object",
                    "properties": {
                        "transaction_id": _ID,
                        "account_id": _ID,
                        "timestamp": {"type": "string", "format": "date-time"},
                        "amount": _DECIMAL,
                        "rule_id": {"type": "string"},
                        "observed": {"type": "string"},
                        "threshold": {"type": "string"},
                        "reason": {"type": "string"},
                    },
                },
            },
        },
        "paths": {
            "/health": {
                "get": {
                    "summary": "Database reachable?",
                    "responses": {"200": {"description": "ok"}, "503": _error("database down")},
                }
            },
            "/rules": {
                "get": {
                    "summary": "The rule catalogue",
                    "responses": {"200": {"description": "rules"}},
                },
                "post": {
                    "summary": "Add or replace a user's rule (a boolean expression over features)",
                    "security": [{"bearer": []}, {}],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/RuleIn"}}
                        },
                    },
                    "responses": {
                        "201": {"description": "the rule"},
                        "400": _error("invalid field or malformed JSON"),
                        "401": _error("token required"),
                        "415": _error("not JSON"),
                    },
                },
            },
            "/is_fraud/{account_id}": {
                "get": {
                    "summary": "A page of one account's fraud events (also with a trailing slash)",
                    "parameters": [
                        account_param,
                        {
                            "name": "limit",
                            "in": "query",
                            "description": "events per page (default 1000)",
                            "schema": {"type": "integer", "minimum": 1, "maximum": 10000},
                        },
                        {
                            "name": "after",
                            "in": "query",
                            "description": "the cursor in the previous page's next link",
                            "schema": {"type": "string", "pattern": _CURSOR},
                        },
                    ],
                    "responses": {
                        "200": {
                            "description": "events (FraudEvent items under 'events'); 'next' is"
                            " the URL of the next page or null"
                        },
                        "400": _error("bad account id, limit or cursor"),
                        "404": _error("account has no transactions"),
                    },
                }
            },
            "/alerts": {
                "get": {
                    "summary": (
                        "The alert queue, newest raised first or (order=time) newest "
                        "transaction first, with the total that matches"
                    ),
                    "parameters": [
                        {"name": "account_id", "in": "query", "schema": _ID},
                        {
                            "name": "rule_id",
                            "in": "query",
                            # A rule id that is not a rule is a 400 naming it. Users'
                            # rules are rows (GET /rules), not listed here.
                            "schema": {"enum": sorted(RULE_PARAMETERS)},
                            "description": "a built-in rule's id, or a user's rule's"
                            " (GET /rules); any other id is a 400 naming rule_id",
                        },
                        {
                            "name": "review_status",
                            "in": "query",
                            "schema": {"enum": ["unreviewed", "confirmed_fraud", "false_positive"]},
                        },
                        {"name": "from", "in": "query", "schema": _TIMESTAMP_IN},
                        {"name": "to", "in": "query", "schema": _TIMESTAMP_IN},
                        {"name": "order", "in": "query", "schema": {"enum": ["raised", "time"]}},
                        {
                            "name": "outcome",
                            "in": "query",
                            "schema": {"enum": ["approve", "review", "decline"]},
                            "description": "only alerts whose transaction's decision had it",
                        },
                        {
                            "name": "before",
                            "in": "query",
                            "description": (
                                "the cursor in next: an alert_id in raised order, "
                                "<epoch ms>.<alert_id> in time order (an alert_id alone: "
                                "that alert's time)"
                            ),
                            "schema": {
                                "type": "string",
                                "pattern": "^([0-9]{1,13}\\.)?[0-9]{1,18}$",
                            },
                        },
                        {
                            "name": "limit",
                            "in": "query",
                            "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
                        },
                    ],
                    "responses": {
                        "200": {
                            "description": (
                                "{count (this page), total (all pages), alerts: [Alert], next}"
                            ),
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "properties": {
                                            "count": {"type": "integer"},
                                            "total": {"type": "integer"},
                                            "alerts": {
                                                "type": "array",
                                                "items": {"$ref": "#/components/schemas/Alert"},
                                            },
                                            "next": {"type": ["string", "null"]},
                                        },
                                    }
                                }
                            },
                        },
                        "400": _error("a bad parameter"),
                        "404": _error(
                            "order=time with a before that is a bare alert_id no alert has"
                            " (never existed, or removed by a re-score): alert_not_found"
                        ),
                    },
                }
            },
            "/alerts/stream": {
                "get": {
                    "summary": "Server-sent events: one 'alert' event per new alert, as raised",
                    "parameters": [
                        {
                            "name": "Last-Event-ID",
                            "in": "header",
                            "schema": {"type": "string", "pattern": "^[0-9]{1,19}-[0-9]{1,18}$"},
                        },
                        {
                            "name": "last_event_id",
                            "in": "query",
                            "schema": {"type": "string", "pattern": "^[0-9]{1,19}-[0-9]{1,18}$"},
                        },
                    ],
                    "responses": {
                        "200": {
                            "description": (
                                "an endless text/event-stream: an 'alert' event per alert, and "
                                "a 'position' event (id: the stream's position) when it opens "
                                "and with each heartbeat"
                            ),
                            "content": {"text/event-stream": {"schema": {"type": "string"}}},
                        },
                        "400": _error("a malformed Last-Event-ID"),
                        "503": _error("every stream slot is taken, or the database is down"),
                    },
                }
            },
            "/transactions/{transaction_id}/review": {
                "post": {
                    "summary": "Record an analyst's decision on a stored transaction",
                    "security": [{"bearer": []}, {}],
                    "parameters": [
                        {"name": "transaction_id", "in": "path", "required": True, "schema": _ID}
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/ReviewIn"}
                            }
                        },
                    },
                    "responses": {
                        "201": {"description": "the review"},
                        "400": _error("invalid field or malformed JSON"),
                        "401": _error("token required"),
                        "404": _error("transaction not stored"),
                        "413": _error("body too large"),
                        "415": _error("Content-Type is not application/json"),
                    },
                }
            },
            "/accounts/{account_id}/transactions": {
                "get": {
                    "summary": "An account's latest transactions, newest first",
                    "parameters": [
                        account_param,
                        {
                            "name": "limit",
                            "in": "query",
                            "schema": {"type": "integer", "minimum": 1, "maximum": 10000},
                        },
                    ],
                    "responses": {
                        "200": {"description": "transactions"},
                        "400": _error("bad id or limit"),
                        "404": _error("account has no transactions"),
                    },
                }
            },
            "/store_data": {
                "get": {
                    "summary": "Store one transaction from query parameters",
                    "security": [{"bearer": []}, {}],
                    "parameters": [
                        {"name": "account_id", "in": "query", "required": True, "schema": _ID},
                        {"name": "transaction_id", "in": "query", "required": True, "schema": _ID},
                        {
                            "name": "timestamp",
                            "in": "query",
                            "required": True,
                            "schema": _TIMESTAMP_IN,
                        },
                        {"name": "amount", "in": "query", "required": True, "schema": _DECIMAL},
                        {"name": "merchant_id", "in": "query", "required": False, "schema": _ID},
                    ],
                    "responses": {
                        "201": _json("StoreResult", "stored"),
                        "200": _json("StoreResult", "duplicate, already stored unchanged"),
                        "400": _error("invalid field"),
                        "401": _error("token required"),
                        "409": _error("transaction_id stored with other content"),
                    },
                },
                "post": {
                    "summary": "Store one transaction or an array (all-or-nothing, at most 10,000)",
                    "security": [{"bearer": []}, {}],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "oneOf": [
                                        {"$ref": "#/components/schemas/TransactionIn"},
                                        {
                                            "type": "array",
                                            "minItems": 1,
                                            "maxItems": 10000,
                                            "items": {"$ref": "#/components/schemas/TransactionIn"},
                                        },
                                    ]
                                }
                            }
                        },
                    },
                    "responses": {
                        "201": {"description": "stored (StoreResult or BatchResult)"},
                        "200": {"description": "nothing new: duplicates only"},
                        "400": _error("invalid field or malformed JSON"),
                        "401": _error("token required"),
                        "409": _error("conflicting transaction_id"),
                        "413": _error("body or batch too large"),
                        "415": _error("Content-Type is not application/json"),
                    },
                },
            },
        },
    }


# -- decisions, policy and lists (issue 17) ------------------------------------------

_LIST_NAME = {"type": "string", "pattern": "^[a-z][a-z0-9_]{0,62}$"}
_SCORE_IN = {"type": "integer", "minimum": 0, "maximum": 1000}
_THRESHOLD_IN = {"type": "integer", "minimum": 1, "maximum": 1000}
_WRITE = [{"bearer": []}, {}]
_OUTCOME = {"enum": ["approve", "review", "decline"]}
_LIST_ENTRY = {
    "type": "object",
    "properties": {
        "entry_id": {"type": "integer"},
        "list_name": {"type": "string"},
        "subject": {"enum": ["account", "merchant"]},
        "kind": {"enum": ["allow", "block"]},
        "value": _ID,
        "reason": {"type": "string"},
        "added_by": {"type": "string"},
        "added_at": {"type": "string", "format": "date-time"},
        "expires_at": {"type": ["string", "null"], "format": "date-time"},
    },
}
_DECISION_SCHEMAS: dict[str, Any] = {
    "Decision": {
        "type": "object",
        "description": "made when the transaction was stored, in the same database transaction "
        "as its alerts, and never rewritten",
        "properties": {
            "transaction_id": _ID,
            "account_id": _ID,
            "timestamp": {"type": "string", "format": "date-time"},
            "amount": _DECIMAL,
            "merchant_id": {"type": ["integer", "null"]},
            "outcome": _OUTCOME,
            "score": {"type": "integer", "description": "sum of the fired rules' scores"},
            "score_outcome": {**_OUTCOME, "description": "what the score alone gave"},
            "overruled": {
                "type": "boolean",
                "description": "a list forced another outcome than the score's",
            },
            "rules": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "rule_id": {"type": "string"},
                        "rule_version": {
                            "type": "integer",
                            "description": "the version of the rule that fired",
                        },
                        "score": {"type": "integer"},
                        "observed": {"type": ["string", "null"]},
                        "threshold": {"type": ["string", "null"]},
                        "reason": {"type": "string"},
                    },
                },
            },
            "lists": {"type": "array", "items": _LIST_ENTRY},
            "policy": {
                "type": "object",
                "properties": {
                    "policy_id": {"type": "integer"},
                    "review_threshold": {"type": "integer"},
                    "decline_threshold": {"type": "integer"},
                },
            },
            "rule_set_id": {"type": "string"},
            "decided_at": {"type": "string", "format": "date-time"},
        },
    },
    "Policy": {
        "type": "object",
        "properties": {
            "policy_id": {"type": "integer"},
            "review_threshold": {"type": "integer"},
            "decline_threshold": {"type": "integer"},
            "default_score": {"type": "integer"},
            "rule_scores": {"type": "object", "additionalProperties": {"type": "integer"}},
            "effective_from": {"type": ["string", "null"], "format": "date-time"},
            "set_by": {"type": "string"},
        },
    },
    "PolicyIn": {
        "type": "object",
        "additionalProperties": False,
        "minProperties": 1,
        "description": "merged over the policy in force; decline_threshold >= review_threshold",
        "properties": {
            "review_threshold": _THRESHOLD_IN,
            "decline_threshold": _THRESHOLD_IN,
            "default_score": _SCORE_IN,
            "rule_scores": {
                "type": "object",
                "propertyNames": {"pattern": "^[a-z][a-z0-9_]{0,62}$"},
                "additionalProperties": _SCORE_IN,
            },
        },
    },
    "ListIn": {
        "type": "object",
        "additionalProperties": False,
        "required": ["list_name", "subject", "kind"],
        "properties": {
            "list_name": _LIST_NAME,
            "subject": {"enum": ["account", "merchant"]},
            "kind": {"enum": ["allow", "block"]},
            "description": {"type": "string", "maxLength": 2000, "pattern": "^[^\\x00]*$"},
        },
    },
    "ListEntryIn": {
        "type": "object",
        "additionalProperties": False,
        "required": ["value", "reason"],
        "properties": {
            "value": _ID_IN,
            "reason": {
                "type": "string",
                "minLength": 1,
                "maxLength": 2000,
                "pattern": "^[^\\x00]*\\S[^\\x00]*$",
            },
            "expires_at": {**_TIMESTAMP_IN, "description": "in the future"},
        },
    },
    "List": {
        "type": "object",
        "properties": {
            "list_name": {"type": "string"},
            "subject": {"enum": ["account", "merchant"]},
            "kind": {"enum": ["allow", "block"]},
            "description": {"type": "string"},
            "created_by": {"type": "string"},
            "created_at": {"type": "string", "format": "date-time"},
            "entries": {"type": "array", "items": _LIST_ENTRY},
        },
    },
}


def _body(schema: str) -> dict[str, Any]:
    return {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }


def _decision_paths() -> dict[str, Any]:
    """Decisions, the policy and the lists (issue 17); writes take the token."""
    list_param = {"name": "list_name", "in": "path", "required": True, "schema": _LIST_NAME}
    return {
        "/transactions/{transaction_id}/decision": {
            "get": {
                "summary": "The decision made when the transaction was stored, as answered",
                "parameters": [
                    {"name": "transaction_id", "in": "path", "required": True, "schema": _ID}
                ],
                "responses": {
                    "200": _json("Decision", "the decision"),
                    "400": _error("bad id"),
                    "404": _error("no decision for that transaction"),
                },
            }
        },
        "/decisions": {
            "get": {
                "summary": "Decisions, newest transaction time first",
                "parameters": [
                    {"name": "outcome", "in": "query", "schema": _OUTCOME},
                    {"name": "account_id", "in": "query", "schema": _ID},
                    {"name": "from", "in": "query", "schema": _TIMESTAMP_IN},
                    {"name": "to", "in": "query", "schema": _TIMESTAMP_IN},
                    {
                        "name": "before",
                        "in": "query",
                        "schema": {"type": "string", "pattern": r"^[0-9]{1,13}\.[0-9]{1,18}$"},
                        "description": "the cursor in next: <epoch ms>.<transaction_id>",
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
                    },
                ],
                "responses": {
                    "200": {"description": "{count, decisions: [Decision], next}"},
                    "400": _error("bad parameter"),
                },
            }
        },
        "/decisions/stream": {
            "get": {
                "summary": "Server-sent events: one 'decision' event per decision, as made",
                "parameters": [
                    {
                        "name": "Last-Event-ID",
                        "in": "header",
                        "schema": {"type": "string", "pattern": "^[0-9]{1,19}-[0-9]{1,18}$"},
                    },
                    {
                        "name": "last_event_id",
                        "in": "query",
                        "schema": {"type": "string", "pattern": "^[0-9]{1,19}-[0-9]{1,18}$"},
                    },
                ],
                "responses": {
                    "200": {
                        "description": (
                            "an endless text/event-stream: a 'decision' event per decision "
                            "(id: <xact>-<transaction_id>), and a 'position' event when it "
                            "opens and with each heartbeat"
                        ),
                        "content": {"text/event-stream": {"schema": {"type": "string"}}},
                    },
                    "400": _error("a malformed Last-Event-ID"),
                    "503": _error("every stream slot is taken, or the database is down"),
                },
            }
        },
        "/policy": {
            "get": {
                "summary": "The decision policy in force: thresholds and rule scores",
                "responses": {"200": _json("Policy", "the policy in force")},
            },
            "put": {
                "summary": "Put a new version of the policy in force from now",
                "security": _WRITE,
                "requestBody": _body("PolicyIn"),
                "responses": {
                    "200": _json("Policy", "the policy now in force"),
                    "400": _error("invalid field"),
                    "401": _error("token required"),
                    "404": _error("a score for an unknown rule"),
                    "415": _error("Content-Type is not application/json"),
                },
            },
        },
        "/lists": {
            "get": {
                "summary": "Every allow/block list, with the number of entries in force",
                "responses": {"200": {"description": "{lists: [...]}"}},
            },
            "post": {
                "summary": "Create a list of accounts or merchants (block or allow)",
                "security": _WRITE,
                "requestBody": _body("ListIn"),
                "responses": {
                    "201": _json("List", "the list"),
                    "400": _error("invalid field"),
                    "401": _error("token required"),
                    "415": _error("Content-Type is not application/json"),
                },
            },
        },
        "/lists/{list_name}": {
            "get": {
                "summary": "A list and its entries in force now",
                "parameters": [list_param],
                "responses": {
                    "200": _json("List", "the list"),
                    "400": _error("list_name not lower_snake_case"),
                    "404": _error("no such list"),
                },
            }
        },
        "/lists/{list_name}/entries": {
            "post": {
                "summary": "Put an account or merchant id on a list from now",
                "security": _WRITE,
                "parameters": [list_param],
                "requestBody": _body("ListEntryIn"),
                "responses": {
                    "201": {"description": "the entry"},
                    "400": _error("invalid field: unknown list, expiry not in the future"),
                    "401": _error("token required"),
                    "415": _error("Content-Type is not application/json"),
                },
            }
        },
        "/lists/{list_name}/entries/{value}": {
            "delete": {
                "summary": "Take an id off a list from now (the entry is kept, ended)",
                "security": _WRITE,
                "parameters": [
                    list_param,
                    {"name": "value", "in": "path", "required": True, "schema": _ID},
                ],
                "responses": {
                    "200": {"description": "the entry, with removed_at"},
                    "400": _error("bad id"),
                    "401": _error("token required"),
                    "404": _error("no such list, or the id is not on it"),
                },
            }
        },
    }


# -- cases (issue 18, part 5) ----------------------------------------------------------

_CASE_STATUS = {"enum": ["open", "assigned", "closed"]}
_CASE_TIME = {"type": ["string", "null"], "format": "date-time"}
_CASE_PROPERTIES: dict[str, Any] = {
    "case_id": _ID,
    "account_id": _ID,
    "status": _CASE_STATUS,
    "assignee": {"type": ["string", "null"]},
    "assigned_by": {"type": ["string", "null"]},
    "assigned_at": _CASE_TIME,
    "resolution": {"enum": ["fraud", "not_fraud", "withdrawn", None]},
    "note": {
        "type": ["string", "null"],
        "description": "null until closed (as resolution); empty for a case closed without one",
    },
    "opened_at": {"type": "string", "format": "date-time"},
    "closed_at": _CASE_TIME,
    "closed_by": {"type": ["string", "null"]},
    "alert_count": {"type": "integer"},
    "alerts_raised": {"type": "integer"},
    "transaction_count": {"type": "integer"},
}
_CASE_SCHEMAS: dict[str, Any] = {
    "Case": {
        "type": "object",
        "description": "an account's open alerts as one case; closing it reviews its transactions",
        "properties": _CASE_PROPERTIES,
    },
    "CaseAssignIn": {
        "type": "object",
        "additionalProperties": False,
        "required": ["assignee"],
        "properties": {
            "assignee": {
                "type": "string",
                "minLength": 1,
                "maxLength": 200,
                "pattern": "^[^\\x00]*\\S[^\\x00]*$",
            }
        },
    },
    "CaseCloseIn": {
        "type": "object",
        "additionalProperties": False,
        "required": ["resolution"],
        "properties": {
            "resolution": {
                "enum": ["fraud", "not_fraud", "withdrawn"],
                "description": "fraud, not_fraud: its transactions are reviewed "
                "(confirmed_fraud, false_positive); withdrawn: only when none of its "
                "alerts is raised any more, nothing reviewed",
            },
            "note": {"type": "string", "maxLength": 2000, "pattern": "^[^\\x00]*$"},
        },
    },
}


def _case_paths() -> dict[str, Any]:
    """Cases: list, one, assign, close (an analyst's token for the writes)."""
    case_param = {"name": "case_id", "in": "path", "required": True, "schema": _ID}
    write_answers = {
        "400": _error("invalid field"),
        "404": _error("no such case"),
        "409": _error("the case is closed"),
        "415": _error("Content-Type is not application/json"),
    }
    return {
        "/cases": {
            "get": {
                "summary": "Cases, newest first",
                "parameters": [
                    {
                        "name": "status",
                        "in": "query",
                        "schema": {"enum": ["open", "assigned", "closed", "active"]},
                        "description": "active: open or assigned",
                    },
                    {
                        "name": "assignee",
                        "in": "query",
                        "schema": {"type": "string", "minLength": 1, "maxLength": 200},
                    },
                    {"name": "account_id", "in": "query", "schema": _ID},
                    {
                        "name": "before",
                        "in": "query",
                        "schema": _ID,
                        "description": "the cursor in next: a case_id",
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
                    },
                ],
                "responses": {
                    "200": {"description": "{count, cases: [Case], next}"},
                    "400": _error("bad parameter"),
                },
            }
        },
        "/cases/{case_id}": {
            "get": {
                "summary": "One case with its alerts",
                "parameters": [case_param],
                "responses": {
                    "200": {
                        "description": "the Case with alerts: [{transaction_id, rule_id, ...}]"
                    },
                    "400": _error("bad id"),
                    "404": _error("no such case"),
                },
            }
        },
        "/cases/{case_id}/assign": {
            "post": {
                "summary": "Assign a case that is not closed to someone",
                "parameters": [case_param],
                "requestBody": _body("CaseAssignIn"),
                "responses": {"200": _json("Case", "the case"), **write_answers},
            }
        },
        "/cases/{case_id}/close": {
            "post": {
                "summary": "Close a case as fraud, not_fraud (both review it) or withdrawn",
                "parameters": [case_param],
                "requestBody": _body("CaseCloseIn"),
                "responses": {
                    "200": _json("Case", "the closed case, with reviewed"),
                    **write_answers,
                },
            }
        },
    }


def _shadow_paths() -> dict[str, Any]:
    """Rule versions and shadow rules (issue 18); shadow writes take an owner's token."""
    rule_param = {
        "name": "rule_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": "^[a-z][a-z0-9_]{0,62}$"},
    }
    return {
        "/rules/{rule_id}/versions": {
            "get": {
                "summary": "Every version of a rule (parameters, expression, when, by whom),"
                " newest first",
                "parameters": [rule_param],
                "responses": {
                    "200": {"description": "{rule_id, versions: [...]}"},
                    "400": _error("not a rule id"),
                    "404": _error("no such rule"),
                },
            }
        },
        "/rules/shadows": {
            "get": {
                "summary": "Each shadow rule against its live rule since the shadow started:"
                " alerts per 1,000, precision and recall on the labels known so far",
                "responses": {"200": {"description": "{shadows: [...]}"}},
            }
        },
        "/rules/{rule_id}/shadow": {
            "put": {
                "summary": "Put a rule in shadow with candidate parameters (scored on arrival,"
                " never deciding)",
                "security": _WRITE,
                "parameters": [rule_param],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "additionalProperties": False,
                                "properties": {
                                    # The parameters of one of the rules (the
                                    # path's rule decides which are valid).
                                    "parameters": {
                                        "anyOf": [
                                            _parameters_schema(r, False, empty=True)
                                            for r in sorted(RULE_PARAMETERS)
                                        ]
                                    }
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "200": {"description": "the shadow"},
                    "400": _error("invalid field or parameter"),
                    "404": _error("no such rule"),
                    "415": _error("Content-Type is not application/json"),
                },
            },
            "delete": {
                "summary": "End a rule's shadow (its shadow alerts go)",
                "security": _WRITE,
                "parameters": [rule_param],
                "responses": {
                    "200": {"description": "the removed shadow"},
                    "400": _error("not a rule id"),
                    "404": _error("the rule has no shadow"),
                },
            },
        },
        "/rules/{rule_id}/shadow/promote": {
            "post": {
                "summary": "Make a rule's shadow live (re-scores history) and remove it",
                "security": _WRITE,
                "parameters": [rule_param],
                "responses": {
                    "200": {"description": "the rule"},
                    "400": _error("not a rule id"),
                    "404": _error("the rule has no shadow"),
                    "503": _error("the re-scoring outlasted the rule-change timeout"),
                },
            }
        },
    }


_TOKEN_NAME = {"type": "string", "pattern": "^[a-z][a-z0-9_.-]{0,62}$"}


def _actor_paths() -> dict[str, Any]:
    """Named tokens and the audit trail (issue 18)."""
    text = {"type": "string", "minLength": 1, "maxLength": 200, "pattern": "^[^\\x00]*$"}
    return {
        "/audit": {
            "get": {
                "summary": "The audit trail, newest first: who changed what, before and after",
                "parameters": [
                    {"name": "actor", "in": "query", "schema": text},
                    {
                        "name": "object_kind",
                        "in": "query",
                        "schema": {"enum": list(AUDIT_KINDS)},
                    },
                    {"name": "object_key", "in": "query", "schema": text},
                    {"name": "from", "in": "query", "schema": _TIMESTAMP_IN},
                    {"name": "to", "in": "query", "schema": _TIMESTAMP_IN},
                    {
                        "name": "before",
                        "in": "query",
                        "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"},
                        "description": "the cursor in next: an audit_id",
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
                    },
                ],
                "responses": {
                    "200": {
                        "description": "{count, entries: [{audit_id, at, actor, action, "
                        "object_kind, object_key, before, after, alerts_added, "
                        "alerts_removed}], next}"
                    },
                    "400": _error("bad parameter"),
                },
            }
        },
        "/tokens": {
            "get": {
                "summary": "The named tokens, without their secrets",
                "parameters": [
                    {"name": "revoked", "in": "query", "schema": {"enum": ["true", "false"]}}
                ],
                "responses": {
                    "200": {
                        "description": "{tokens: [{token_name, role, created_by, "
                        "created_at, revoked_by, revoked_at}]}"
                    },
                    "400": _error("bad parameter"),
                },
            },
            "post": {
                "summary": "Make a named token; its secret is in this answer only",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["token_name", "role"],
                                "additionalProperties": False,
                                "properties": {
                                    "token_name": _TOKEN_NAME,
                                    "role": {"enum": ["analyst", "owner"]},
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "201": {"description": "the token and its secret, shown once"},
                    "400": _error("invalid field: token_name taken, 'default', or role"),
                    "415": _error("Content-Type is not application/json"),
                },
            },
        },
        "/tokens/{token_name}": {
            "delete": {
                "summary": "Revoke a named token",
                "parameters": [
                    {"name": "token_name", "in": "path", "required": True, "schema": _TOKEN_NAME}
                ],
                "responses": {
                    "200": {"description": "the token, with revoked_at and revoked_by"},
                    "400": _error("no live token of that name"),
                },
            }
        },
    }
