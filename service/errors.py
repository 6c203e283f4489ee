"""One place that turns every failure into a JSON answer.

pgfraud.errors exceptions keep their status and body; a failure of the
database server itself (DatabaseFailed) is logged with its SQLSTATE and the
server's message, which the answer never carries. HTTP errors from
Flask/Werkzeug (404, 405, 413, 415 …) become ``{"error": {"code", "message"}}``
with their status. Anything unexpected is logged and answered as a 500 with a
generic message: never a stack trace, never SQL text.
"""

from __future__ import annotations

import logging
import re
import traceback

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

from pgfraud.db import describe_cause
from pgfraud.errors import DatabaseFailed, PgfraudError, add_secret, redact


class RedactingFilter(logging.Filter):
    """Rewrites each record of a logger, traceback included, without secrets
    (pgfraud.errors.redact: the apps' tokens and database URLs are
    registered with add_secret): psycopg's messages, and psycopg_pool's
    "error connecting" log lines, can quote the connection string."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + "".join(traceback.format_exception(*record.exc_info)).rstrip()
            record.exc_info = None
            record.exc_text = None
        record.msg = redact(message)
        record.args = None
        return True


def _code(exc: HTTPException) -> str:
    return re.sub(r"[^a-z0-9]+", "_", (exc.name or "error").lower()).strip("_")


def init_app(app: Flask) -> None:
    """Register the JSON error handlers on ``app``, and redact its log and the pool's."""
    add_secret(app.config.get("API_TOKEN"))
    add_secret(app.config.get("DATABASE_URL"))
    for logger in (app.logger, logging.getLogger("psycopg.pool")):
        if not any(isinstance(f, RedactingFilter) for f in logger.filters):
            logger.addFilter(RedactingFilter())

    @app.errorhandler(PgfraudError)
    def handle_pgfraud_error(exc: PgfraudError):
        if isinstance(exc, DatabaseFailed):
            # Not expected: the server itself failed (a library it cannot load, say).
            # The cause goes to the log only (redacted); the answer carries no SQL text.
            app.logger.error("the database server failed: %s", redact(describe_cause(exc)))
        if exc.status in (429, 501, 503):
            # Expected while the database restarts, streams are full or heavy
            # work is at its bound, or asked of the Citus layout and not done
            # there (501): one line (no connection string: redacted).
            cause = redact(str(exc.__cause__)) if exc.__cause__ else "no cause"
            app.logger.warning("answered %s: %s (%s)", exc.status, exc, cause)
        elif exc.status >= 500:
            app.logger.error("request failed: %s", exc, exc_info=exc.__cause__ or exc)
        response = jsonify(exc.to_dict())
        response.status_code = exc.status
        if exc.retry_after is not None:
            response.headers["Retry-After"] = str(exc.retry_after)
        return response

    @app.errorhandler(HTTPException)
    def handle_http_error(exc: HTTPException):
        message = exc.description or exc.name
        response = jsonify({"error": {"code": _code(exc), "message": message}})
        response.status_code = exc.code or 500
        if exc.code == 401:
            for name, value in exc.get_headers():
                if name == "WWW-Authenticate":
                    response.headers[name] = value
        if exc.code == 405 and exc.valid_methods:
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        return response

    @app.errorhandler(Exception)
    def handle_unexpected(exc: Exception):
        app.logger.exception("unexpected error")
        body = {"error": {"code": "internal_error", "message": "internal error"}}
        return jsonify(body), 500
