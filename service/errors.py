"""One place that turns every failure into a JSON answer.

pgfraud.errors exceptions keep their status and body; a failure of the
database server itself (DatabaseFailed) is logged with its SQLSTATE and the
server's message, which the answer never carries. HTTP errors from
Flask/Werkzeug (404, 405, 413, 415 …) become ``{"error": {"code", "message"}}``
with their status. Anything unexpected is logged and answered as a 500 with a
generic message: never a stack trace, never SQL text.
"""

from __future__ import annotations

import re

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

from pgfraud.db import describe_cause
from pgfraud.errors import DatabaseFailed, PgfraudError


def _code(exc: HTTPException) -> str:
    return re.sub(r"[^a-z0-9]+", "_", (exc.name or "error").lower()).strip("_")


def init_app(app: Flask) -> None:
    """Register the JSON error handlers on ``app``."""

    @app.errorhandler(PgfraudError)
    def handle_pgfraud_error(exc: PgfraudError):
        if isinstance(exc, DatabaseFailed):
            # Not expected: the server itself failed (a library it cannot load, say).
            # The cause goes to the log only; the answer carries no SQL text.
            app.logger.error("the database server failed: %s", describe_cause(exc))
        if exc.status == 503:
            # Expected while the database restarts or streams are full: one line.
            app.logger.warning("answered 503: %s (%s)", exc, exc.__cause__ or "no cause")
            response = jsonify(exc.to_dict())
            response.status_code = 503
            response.headers["Retry-After"] = "1"
            return response
        if exc.status >= 500:
            app.logger.error("request failed: %s", exc, exc_info=exc.__cause__ or exc)
        return jsonify(exc.to_dict()), exc.status

    @app.errorhandler(HTTPException)
    def handle_http_error(exc: HTTPException):
        message = exc.description or exc.name
        response = jsonify({"error": {"code": _code(exc), "message": message}})
        response.status_code = exc.code or 500
        if exc.code == 405 and exc.valid_methods:
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        return response

    @app.errorhandler(Exception)
    def handle_unexpected(exc: Exception):
        app.logger.exception("unexpected error")
        body = {"error": {"code": "internal_error", "message": "internal error"}}
        return jsonify(body), 500
