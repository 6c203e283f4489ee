"""The HTTP face of pgfraud: a thin Flask app over the SQL functions.

Each view validates its input (pgfraud.wire), makes one call into the
database (pgfraud.db) in one database transaction, and serialises the answer.
Errors are JSON ``{"error": {"code", "message", "field"?, "row"?, "errors"?}}``,
mapped in one place (service/errors.py); never a stack trace or SQL text.

Configuration (``create_app(test_config)`` keys, or the environment):
``DATABASE_URL`` (the service's login; required), ``API_TOKEN``
(``PGFRAUD_API_TOKEN``: when set, every request but /health, /openapi.json
and static files needs it or a named token; see service/auth.py),
``TOKEN_CACHE_S`` (``PGFRAUD_TOKEN_CACHE_S``: seconds the live named tokens
are kept in each process before they are read again, so a token added or
revoked counts within that time; default 1), ``SESSION_MAX_AGE_S``
(``PGFRAUD_SESSION_MAX_AGE_S``: seconds a browser's session cookie lasts,
default 28,800), ``MAX_HEAVY`` (``PGFRAUD_MAX_HEAVY``: backtests (evaluate,
tune, the page's evaluation) running at once over every worker and server on
the database, default the cores this process may use, at least 2; one more is
answered 429), ``MAX_RULE_CHANGES`` (``PGFRAUD_MAX_RULE_CHANGES``: owners'
changes that take the exclusive rule-change lock (rules, shadows, policy,
list entries) running or queued at once, a budget apart from the backtests',
default 2; one more is answered 429),
``HEAVY_TIMEOUT_MS`` (``PGFRAUD_HEAVY_TIMEOUT_MS``: a backtest's statement time
limit, default 300,000; rule changes have RULE_CHANGE_TIMEOUT_MS),
``TRUSTED_PROXIES`` (``PGFRAUD_TRUSTED_PROXIES``: reverse proxies in front
whose X-Forwarded-For/-Proto/-Host/-Port are believed, default 0: none, the
headers are ignored),
``MAX_CONTENT_LENGTH`` (bytes, default 2 MiB), ``MAX_BATCH_ROWS`` (default
10,000 transactions per POST), ``STATEMENT_TIMEOUT_MS`` (default 10,000),
``RULE_CHANGE_TIMEOUT_MS`` (``PGFRAUD_RULE_CHANGE_TIMEOUT_MS``: the statement
timeout of one rule change, which re-scores the stored history; default
600,000, 0 for none), ``POOL_MAX_SIZE`` (default 8), ``POOL_READ_RESERVE`` (of those, the
connections only reads may take, default 2: writes hold at most the rest, so
stores queued behind a rule change never starve the reads), ``WRITE_QUEUE_MAX``
(``PGFRAUD_WRITE_QUEUE_MAX``: writes that may wait for one of the writes'
connections at once in a process, default 8, 0 to 1,000; one more is answered 503
database_unavailable at once, so waiting stores cannot hold every server
thread), ``POOL_TIMEOUT_S``
(seconds to wait for a connection before answering 503, default 5), ``FEED_HEARTBEAT_S`` (seconds
between heartbeats on /alerts/stream and /decisions/stream, default 15),
``FEED_DECISION_POLL_S`` (seconds between a decision stream's reads when
no alert notification wakes it, default 0.5), ``FEED_MAX_STREAMS``
(open streams per server process, default 16; each holds a thread; under
``pgfraud run`` the workers share workers x this, see feed.share_stream_slots),
``PAGE_HEALTH_INTERVAL_S`` (seconds between the analyst's page's checks of
/health, default 10; every 2 s while the database is down),
``CONFLICT_RETRIES`` (times a request's database transaction is run again
after a deadlock or serialization failure, default 3; 0: never) and
``CONFLICT_BACKOFF_S`` (the jittered pause before retry n is drawn from
0 .. 2^n x this, default 0.05).
"""

from __future__ import annotations

import os
from decimal import Decimal
from typing import Any

import simplejson
from flask import Flask, Response
from flask.json.provider import DefaultJSONProvider
from flask_talisman import Talisman
from werkzeug.middleware.proxy_fix import ProxyFix

from pgfraud.config import rule_change_timeout_ms
from pgfraud.errors import ConfigurationError
from pgfraud.service import auth, cases, database, errors, pages, routes


def _env_int(name: str, default: int, low: int, high: int) -> int:
    """The integer in environment variable ``name`` (``default`` when unset or
    empty); ConfigurationError naming it when it is not one from low to high."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if not (raw.isascii() and raw.isdigit()) or not low <= int(raw) <= high:
        raise ConfigurationError(f"{name} must be an integer from {low} to {high}, not {raw!r}")
    return int(raw)


def default_max_heavy() -> int:
    """The default bound on heavy work: the cores this process may run on, at
    least 2 (the Rules page backtests the live and the candidate rules at once)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(2, cores)


class ExactJSONProvider(DefaultJSONProvider):
    """Flask's JSON, except that a Decimal is written as an exact JSON number
    (rule parameters: 0.123456789012345678, never through float). Amounts and
    other money values are turned into strings by the views before this."""

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        kwargs.setdefault("default", self._default)
        kwargs.setdefault("ensure_ascii", self.ensure_ascii)
        kwargs.setdefault("sort_keys", self.sort_keys)
        return simplejson.dumps(obj, use_decimal=True, **kwargs)

    @staticmethod
    def _default(value: Any) -> Any:
        if isinstance(value, Decimal):  # not reached with use_decimal; kept exact anyway
            return simplejson.RawJSON(str(value))
        return DefaultJSONProvider.default(value)


class WholeResponse(Response):
    """Flask's response, handed to the WSGI server as a list when its body is
    already whole in memory (every JSON answer) and nothing is to run when it
    closes: granian then writes it in one piece, where an iterator (werkzeug's
    ClosingIterator, what Flask returns otherwise) makes it stream the body,
    taking the GIL again from its own thread for each piece. Streams (the
    live feeds, which release a slot on close) and files are iterated as
    before."""

    def get_app_iter(self, environ: dict[str, Any]) -> Any:
        iterable = super().get_app_iter(environ)
        if self.is_sequence and not self.direct_passthrough and not getattr(self, "_on_close", 1):
            return list(iterable)
        return iterable


# Browser protections on every response (flask-talisman): scripts, styles,
# images, fonts and connections (fetch, the event stream) from this origin
# only, no inline script or style (the pages' scripts and styles are static
# files), never framed, no Referer sent, no MIME sniffing.
CONTENT_SECURITY_POLICY = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self'",
    "font-src": "'self'",
    "connect-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'none'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}


def _protect(app: Flask) -> None:
    """Content-Security-Policy (CONTENT_SECURITY_POLICY), X-Frame-Options: DENY,
    X-Content-Type-Options: nosniff and Referrer-Policy: no-referrer on every
    response, and Cache-Control: no-store on every one but static files.
    pgfraud serves plain HTTP (TLS is a reverse proxy's job): no redirect to
    https and no Strict-Transport-Security from here; the app sets no cookies.

    flask-talisman decides the headers and the session-cookie settings, once
    per process: it is set up on a probe app answering one request, whose
    added headers every response of ``app`` then gets. Talisman on ``app``
    itself would rebuild the same headers (the policy string included) and a
    nonce nobody uses on every request: about 0.1 ms of a GET /is_fraud
    (cProfile of the view under load; they are identical for every response
    here, as no view has options of its own). They are added to every
    response's headers as it starts, by a WSGI wrapper around the app."""
    bare, probe = Flask("pgfraud-bare-probe"), Flask("pgfraud-protection-probe")
    for each in (bare, probe):
        each.add_url_rule("/", "probe", lambda: "")
    plain = set(bare.test_client().get("/").headers.keys())
    Talisman(
        probe,
        force_https=False,
        strict_transport_security=False,
        session_cookie_secure=False,
        frame_options="DENY",
        content_security_policy=CONTENT_SECURITY_POLICY,
        referrer_policy="no-referrer",
        x_content_type_options=True,
    )
    answer = probe.test_client().get("/")
    headers = [(k, v) for k, v in answer.headers.items() if k not in plain]
    for key, value in probe.config.items():
        if key.startswith("SESSION_COOKIE_"):
            app.config[key] = value

    names = frozenset(name.lower() for name, _ in headers)
    served = app.wsgi_app

    def protected(environ, start_response):
        # At the WSGI level, after Flask: every response gets them (an error
        # page too), appended to the header list werkzeug hands over, rather
        # than set one by one on each response object (7 Headers.set calls
        # per request). One a response carries already is replaced. Answers
        # other than static files (payments, alerts, the page) also get
        # Cache-Control: no-store, unless they say otherwise: no browser or
        # proxy keeps a copy of what a token let through.
        dynamic = not environ.get("PATH_INFO", "").startswith("/static/")

        def start(status, response_headers, exc_info=None):
            if any(name.lower() in names for name, _ in response_headers):
                response_headers[:] = [h for h in response_headers if h[0].lower() not in names]
            response_headers.extend(headers)
            if dynamic and not any(n.lower() == "cache-control" for n, _ in response_headers):
                response_headers.append(("Cache-Control", "no-store"))
            return start_response(status, response_headers, exc_info)

        return served(environ, start)

    app.wsgi_app = protected  # type: ignore[method-assign]


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the Flask app. The connection pool is opened on the first request
    that needs it, in the process that serves it (never at import time)."""
    app = Flask(__name__)
    app.response_class = WholeResponse
    app.config.from_mapping(
        DATABASE_URL=os.environ.get("PGFRAUD_APP_DATABASE_URL") or os.environ.get("DATABASE_URL"),
        API_TOKEN=os.environ.get("PGFRAUD_API_TOKEN") or None,
        MAX_CONTENT_LENGTH=2 * 1024 * 1024,
        MAX_BATCH_ROWS=10_000,
        STATEMENT_TIMEOUT_MS=10_000,
        RULE_CHANGE_TIMEOUT_MS=rule_change_timeout_ms(),
        POOL_MAX_SIZE=8,
        POOL_TIMEOUT_S=5,
        POOL_READ_RESERVE=2,
        WRITE_QUEUE_MAX=_env_int("PGFRAUD_WRITE_QUEUE_MAX", 8, 0, 1000),
        FEED_HEARTBEAT_S=15,
        FEED_DECISION_POLL_S=0.5,
        FEED_MAX_STREAMS=16,
        FEED_HELD_AFTER_MS=10_000,
        PAGE_HEALTH_INTERVAL_S=10,
        CONFLICT_RETRIES=3,
        CONFLICT_BACKOFF_S=0.05,
        TOKEN_CACHE_S=_env_int("PGFRAUD_TOKEN_CACHE_S", 1, 0, 3600),
        SESSION_MAX_AGE_S=_env_int("PGFRAUD_SESSION_MAX_AGE_S", 8 * 3600, 60, 30 * 86400),
        MAX_HEAVY=_env_int("PGFRAUD_MAX_HEAVY", default_max_heavy(), 1, 1000),
        MAX_RULE_CHANGES=_env_int("PGFRAUD_MAX_RULE_CHANGES", 2, 1, 1000),
        HEAVY_TIMEOUT_MS=_env_int("PGFRAUD_HEAVY_TIMEOUT_MS", 300_000, 1, 86_400_000),
        TRUSTED_PROXIES=_env_int("PGFRAUD_TRUSTED_PROXIES", 0, 0, 10),
    )
    if test_config:
        app.config.update(test_config)
    app.json = ExactJSONProvider(app)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    # Answer, never redirect: no 308 for "//" in a path or a missing trailing slash.
    app.url_map.merge_slashes = False
    app.url_map.strict_slashes = False
    database.init_app(app)
    errors.init_app(app)
    _protect(app)
    auth.init_app(app)
    app.register_blueprint(routes.bp)
    app.register_blueprint(pages.bp)
    app.register_blueprint(cases.bp)
    auth.check_routes(app)  # a view that does not say who may call it is refused here
    routes.check_query_parameters(app)  # only the query parameters the API document lists
    hops = int(app.config["TRUSTED_PROXIES"])
    if hops:  # believe this many proxies' X-Forwarded-* headers, and no more
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops)  # type: ignore[method-assign]
    return app
