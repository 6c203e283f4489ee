"""The OpenAPI 3.1 document of the HTTP API (served at /openapi.json)."""

from __future__ import annotations

from typing import Any

from pgfraud import __version__

_ID = {"type": "integer", "minimum": 0, "maximum": 9223372036854775807}
_DECIMAL = {"type": "string", "pattern": r"^[0-9]+(\.[0-9]{1,2})?$"}
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


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document as a dict."""
    account_param = {
        "name": "account_id",
        "in": "path",
        "required": True,
        "schema": _ID,
    }
    document = _document(account_param)
    document["paths"].update(_page_paths(account_param))
    return document


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
                    limit,
                    {"name": "before", "in": "query", "schema": {"type": "string"}},
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
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "additionalProperties": False,
                                "properties": {
                                    "rules": {
                                        "type": "object",
                                        "additionalProperties": {
                                            "type": "object",
                                            "additionalProperties": {"type": "number"},
                                        },
                                    },
                                    "from": {"type": "string", "format": "date-time"},
                                    "to": {"type": "string", "format": "date-time"},
                                },
                            }
                        }
                    }
                },
                "responses": {
                    "200": {"description": "results"},
                    "400": _error("invalid field"),
                    "415": _error("Content-Type is not application/json"),
                },
            }
        },
        "/rules/{rule_id}": {
            "patch": {
                "summary": "Turn a rule on/off and/or change its parameters (re-scores history)",
                "security": [{"bearer": []}, {}],
                "parameters": [
                    {
                        "name": "rule_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    }
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "additionalProperties": False,
                                "properties": {
                                    "enabled": {"type": "boolean"},
                                    "parameters": {
                                        "type": "object",
                                        "additionalProperties": {"type": "number"},
                                    },
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "200": {"description": "the rule"},
                    "400": _error("invalid field or parameter (the validator's message)"),
                    "401": _error("token required"),
                    "404": _error("no such rule"),
                    "415": _error("Content-Type is not application/json"),
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
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": _ERROR,
                "TransactionIn": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["account_id", "transaction_id", "timestamp", "amount"],
                    "properties": {
                        "account_id": _ID,
                        "transaction_id": _ID,
                        "timestamp": {
                            "oneOf": [
                                {"type": "string", "format": "date-time"},
                                {
                                    "type": "integer",
                                    "description": "epoch milliseconds",
                                    "minimum": 946684800000,
                                    "maximum": 4102444799999,
                                },
                            ]
                        },
                        "amount": {
                            "oneOf": [
                                _DECIMAL,
                                {"type": "number", "minimum": 0, "exclusiveMaximum": 1e13},
                            ],
                            "description": "currency units, at most 2 decimal places",
                        },
                    },
                },
                "StoreResult": {
                    "type": "object",
                    "properties": {
                        "transaction_id": _ID,
                        "status": {"enum": ["stored", "duplicate"]},
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
                }
            },
            "/is_fraud/{account_id}": {
                "get": {
                    "summary": "Fraud events of one account (also with a trailing slash)",
                    "parameters": [account_param],
                    "responses": {
                        "200": {"description": "events (FraudEvent items under 'events')"},
                        "400": _error("bad account id"),
                        "404": _error("account has no transactions"),
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
                        {"name": n, "in": "query", "required": True, "schema": {"type": "string"}}
                        for n in ("account_id", "transaction_id", "timestamp", "amount")
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
