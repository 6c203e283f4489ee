"""Who may call what: every route declares what it needs, one guard checks it.

With no token configured (no ``API_TOKEN``, ``PGFRAUD_API_TOKEN``, and no
named token ever made in the database) everything is open: the local development case
(`pgfraud run` refuses to listen off loopback, or behind a trusted proxy,
without PGFRAUD_API_TOKEN). Once either exists, every request is checked
before its view runs (:func:`init_app`'s ``before_request``):

- ``PUBLIC``: no token (``/health``, ``/openapi.json``, static files);
- ``READ``: any valid token (every read);
- ``ANALYST``: an analyst's or owner's token (backtests, reviews, storing,
  and cases);
- ``OWNER``: an owner's token (rules, policy, lists, tokens).

Each view says which with :func:`requires`; a view without it is refused when
the app is built (:func:`check_routes`), and a request that matches no route
(404, 405) needs a valid token too, so nothing is open by omission.

Tokens (issue 18): named tokens (`pgfraud token add alice --role analyst`,
table ``api_tokens``) are random secrets stored as their SHA-256 digest; a
bearer is hashed and compared, in constant time, with every live token's
digest (read from the database at most every TOKEN_CACHE_S seconds, default
1, so a revoked token stops working within that). The single ``API_TOKEN``
is an owner token named ``default``. The caller's identity (name, role) is
``g.identity`` (:func:`current_identity`); the service records its name as
the actor of every write (service/database.py sets ``pgfraud.actor``).

Credentials: the header ``Authorization: Bearer <token>`` on any request; or,
for browsers, the session cookie ``pgfraud_session`` that ``POST /session``
sets in exchange for a bearer token. The cookie is HttpOnly (page scripts
cannot read it), SameSite=Strict (never sent from another site), Secure when
the request came over HTTPS, signed with a key derived from the token (so
every worker process accepts it, and changing the token ends every session),
and valid SESSION_MAX_AGE_S seconds (default 8 hours). It is accepted only
on GET/HEAD requests to views that change nothing (the pages, the reads and
the live feed, which EventSource opens without headers); every write,
backtest and rule change needs the bearer header, so a forged cross-site
request cannot change anything even where SameSite is not honoured. A
refused request is answered 401 (no or a wrong credential) or 403 (a valid
one with too little role), and logged with the client's address.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from flask import Flask, Response, current_app, g, request
from itsdangerous import BadData, URLSafeTimedSerializer
from werkzeug.datastructures import WWWAuthenticate
from werkzeug.exceptions import Forbidden, Unauthorized

from pgfraud import db
from pgfraud.errors import DatabaseUnavailable, PgfraudError

PUBLIC = "public"
READ = "read"
ANALYST = "analyst"
OWNER = "owner"
# What each level lets in: a token's role must be one of these.
ALLOWED_ROLES: dict[str, frozenset[str]] = {
    READ: frozenset({"analyst", "owner"}),
    ANALYST: frozenset({"analyst", "owner"}),
    OWNER: frozenset({"owner"}),
}
COOKIE = "pgfraud_session"
SAFE_METHODS = frozenset({"GET", "HEAD"})
_TOKENS = "pgfraud_tokens"
# Static files are Flask's own view: public.
BUILTIN_PUBLIC = frozenset({"static"})

V = TypeVar("V", bound=Callable[..., Any])


@dataclass(frozen=True)
class Access:
    """What a view needs: ``level`` (PUBLIC, READ, ANALYST, OWNER) and whether it
    changes anything (``writes``: then the session cookie never counts)."""

    level: str
    writes: bool = False


@dataclass(frozen=True)
class Identity:
    """Who is calling: the token's name and role ("analyst" or "owner")."""

    name: str
    role: str


def requires(level: str, *, writes: bool = False) -> Callable[[V], V]:
    """Mark a view with what it needs (see the module's docstring). Put it
    under the route decorators; the guard reads it before the view runs."""
    if level not in (PUBLIC, *ALLOWED_ROLES):
        raise ValueError(f"unknown access level {level!r}")

    def mark(view: V) -> V:
        view.access = Access(level, writes)  # type: ignore[attr-defined]
        return view

    return mark


def access_of(app: Flask, endpoint: str | None) -> Access:
    """What ``endpoint`` needs; READ for a request that matched no route (fail closed)."""
    if endpoint in BUILTIN_PUBLIC:
        return Access(PUBLIC)
    view = app.view_functions.get(endpoint or "")
    return getattr(view, "access", None) or Access(READ)


def operation_access(app: Flask) -> dict[tuple[str, str], Access]:
    """What each operation of ``app`` needs, keyed as the OpenAPI document names
    it: (path with ``{name}`` parameters and no trailing slash, lower-case method)."""
    table: dict[tuple[str, str], Access] = {}
    for rule in app.url_map.iter_rules():
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        path = path.rstrip("/") or "/"
        for method in rule.methods or ():
            if method not in ("HEAD", "OPTIONS"):
                table[(path, method.lower())] = access_of(app, rule.endpoint)
    return table


def check_routes(app: Flask) -> None:
    """RuntimeError naming every view that does not say what it needs."""
    missing = sorted(
        endpoint
        for endpoint, view in app.view_functions.items()
        if endpoint not in BUILTIN_PUBLIC and not isinstance(getattr(view, "access", None), Access)
    )
    if missing:
        raise RuntimeError(f"views without @requires(...): {', '.join(missing)}")


def _serializer(secret: str | bytes) -> URLSafeTimedSerializer:
    # The cookie's key is derived from the token (PGFRAUD_API_TOKEN) or from
    # a named token's stored digest: the same in every worker, and a new or
    # revoked token invalidates every cookie made with the old one.
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    key = hmac.new(key, b"pgfraud session cookie", hashlib.sha256).digest()
    return URLSafeTimedSerializer(key, salt="pgfraud-session")


DEFAULT_NAME = "default"  # the single PGFRAUD_API_TOKEN's name, an owner's


@dataclass
class _TokenCache:
    """The live named tokens (name, role, SHA-256 digest of the secret) of one
    process, read again when older than TOKEN_CACHE_S seconds."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    loaded_at: float = float("-inf")
    failed_at: float = float("-inf")  # the last read that failed
    tokens: tuple[tuple[str, str, bytes], ...] = ()
    in_use: bool = False  # a named token was ever made (revoked ones count)


def _token_cache() -> _TokenCache:
    """The process's named tokens: read from the database (SQL
    ``get_api_token_digests``) at most once per TOKEN_CACHE_S seconds
    (default 1), so a token added or revoked counts within that time. None
    are read without a DATABASE_URL. Errors: DatabaseUnavailable when they
    cannot be read (a request is then refused, never let in).

    One request reads them; the others wait for it. When that read fails,
    the requests that waited for it fail with it instead of each trying in
    turn: with the database down, each try waits for a connection (0.5 s),
    and 16 requests in line made the last one wait 8 s (break-it round 11's
    stream silence and slow stores under load)."""
    cache: _TokenCache = current_app.extensions[_TOKENS]
    ttl = float(current_app.config["TOKEN_CACHE_S"])
    arrived = time.monotonic()
    if arrived - cache.loaded_at < ttl:
        return cache
    with cache.lock:
        if time.monotonic() - cache.loaded_at >= ttl:
            if cache.failed_at >= arrived:  # failed while this request waited
                raise DatabaseUnavailable()
            if current_app.config.get("DATABASE_URL"):
                from pgfraud.service.database import read

                try:
                    rows = read(db.get_api_token_digests)
                except PgfraudError:
                    cache.failed_at = time.monotonic()
                    raise
                cache.tokens = tuple((n, r, d) for n, r, d in rows if d is not None)
                cache.in_use = bool(rows)
            cache.loaded_at = time.monotonic()
        return cache


def named_tokens() -> tuple[tuple[str, str, bytes], ...]:
    """The live named tokens as (name, role, SHA-256 digest of the secret)."""
    return _token_cache().tokens


def forget_tokens() -> None:
    """Read the named tokens again at the next request of this process (after
    this process added or revoked one)."""
    current_app.extensions[_TOKENS].loaded_at = float("-inf")


def digest(secret: str) -> bytes:
    """The SHA-256 digest of a token's secret, as api_tokens stores it."""
    return hashlib.sha256(secret.encode("utf-8", "surrogateescape")).digest()


def new_secret() -> str:
    """A new token secret: ``pgf_`` and 43 URL-safe characters (256 random bits)."""
    return "pgf_" + secrets.token_urlsafe(32)


def _match(given: str, token: str | None, named: tuple[tuple[str, str, bytes], ...]):
    """The identity whose secret is ``given``, or None. Each comparison is
    constant-time (hmac.compare_digest), and every named token is compared."""
    found = None
    if token and hmac.compare_digest(
        given.encode("utf-8", "surrogateescape"), token.encode("utf-8")
    ):
        found = Identity(DEFAULT_NAME, "owner")
    given_digest = digest(given)
    for name, role, stored in named:
        if hmac.compare_digest(given_digest, stored) and found is None:
            found = Identity(name, role)
    return found


def _bearer_identity(token: str | None, named) -> Identity | None:
    """The identity of the request's bearer token; None when there is no header.
    Unauthorized for a header that is not a bearer token or an unknown or
    revoked token."""
    given = request.headers.get("Authorization")
    if given is None:
        return None
    scheme, _, value = given.partition(" ")
    identity = _match(value.strip(), token, named) if scheme.lower() == "bearer" else None
    if identity is None:
        raise _refused("the token is not valid (unknown, or revoked)")
    return identity


def _cookie_identity(token: str | None, named) -> Identity | None:
    """The identity in the session cookie, if present, signed with its token's
    key, fresh, and its token still live."""
    value = request.cookies.get(COOKIE)
    if not value:
        return None
    max_age = int(current_app.config["SESSION_MAX_AGE_S"])
    try:
        name = URLSafeTimedSerializer(b"").loads_unsafe(value)[1]
        name = name.get("name") if isinstance(name, dict) else None
        if name == DEFAULT_NAME and token:
            _serializer(token).loads(value, max_age=max_age)
            return Identity(DEFAULT_NAME, "owner")
        for named_name, role, stored in named:
            if named_name == name:
                _serializer(stored).loads(value, max_age=max_age)
                return Identity(named_name, role)
    except BadData:  # a bad signature, an expired or malformed cookie
        return None
    return None


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _loggable(text: str) -> str:
    """``text`` with control characters (newlines among them) escaped as
    ``\\xNN``/``\\uNNNN``, so a path a client chose stays on its log line."""
    return _CONTROL.sub(
        lambda m: f"\\x{ord(m[0]):02x}" if ord(m[0]) < 0x100 else f"\\u{ord(m[0]):04x}", text
    )


def _refused(message: str) -> Unauthorized:
    current_app.logger.warning(
        "refused %s %s from %s: %s",
        request.method,
        _loggable(request.path),
        request.remote_addr,
        message,
    )
    return Unauthorized(message, www_authenticate=WWWAuthenticate("bearer", {"realm": "pgfraud"}))


def tokens_required() -> bool:
    """Whether this service asks for a token: PGFRAUD_API_TOKEN is set, or a
    named token was ever made (`pgfraud token add`; revoking every one does
    not open the service again). Errors: as :func:`named_tokens`."""
    return bool(current_app.config.get("API_TOKEN")) or _token_cache().in_use


def identify(access: Access) -> Identity | None:
    """The caller's identity for a view needing ``access``: the bearer token, or
    the session cookie where it counts. None when no token is configured and
    no named token exists (everything is open), and for PUBLIC views.
    Unauthorized when no valid credential is given; Forbidden when the
    identity's role is not enough."""
    if access.level == PUBLIC:
        return None
    token = current_app.config.get("API_TOKEN")
    cache = _token_cache()
    named = cache.tokens
    if not token and not cache.in_use:
        return None
    identity = _bearer_identity(token, named)
    if identity is None and request.method in SAFE_METHODS and not access.writes:
        identity = _cookie_identity(token, named)
    if identity is None:
        raise _refused(
            "this needs the header Authorization: Bearer <token> (a token of "
            "`pgfraud token add`, or PGFRAUD_API_TOKEN)"
        )
    if identity.role not in ALLOWED_ROLES[access.level]:
        current_app.logger.warning(
            "refused %s %s from %s: %s token %s", request.method, _loggable(request.path),
            request.remote_addr, identity.role, identity.name,
        )  # fmt: skip
        raise Forbidden(
            f"this needs an {access.level} token; {identity.name}'s token is an {identity.role}'s"
        )
    return identity


def still_identified() -> bool:
    """Whether the current request's credential still holds: a long-lived
    request (an event stream) asks before each read, so a revoked token (or
    one whose role no longer suffices) stops reading within TOKEN_CACHE_S.
    True when the database cannot say (an outage does not end streams)."""
    try:
        identify(access_of(current_app, request.endpoint))
    except (Unauthorized, Forbidden):
        return False
    except PgfraudError:
        return True
    return True


def current_identity() -> Identity | None:
    """Who is calling this request (its token's name and role), or None when
    everything is open (no token configured). For views: ``g.identity``."""
    return g.get("identity")


def start_session(identity: Identity | None) -> Response:
    """204 with the session cookie for ``identity`` (no cookie when no token is
    configured). The cookie is signed with a key derived from the identity's
    token, so revoking the token ends the session."""
    response = current_app.response_class(status=204)
    if identity is None:
        return response
    if identity.name == DEFAULT_NAME:
        secret: str | bytes | None = current_app.config["API_TOKEN"]
    else:  # None when revoked since this request's check (the cache was read again)
        secret = next((d for name, _, d in named_tokens() if name == identity.name), None)
    if not secret:
        raise _refused("the token is not valid (unknown, or revoked)")
    value = _serializer(secret).dumps({"name": identity.name})
    response.set_cookie(
        COOKIE,
        value,
        max_age=int(current_app.config["SESSION_MAX_AGE_S"]),
        path="/",
        secure=request.is_secure,
        httponly=True,
        samesite="Strict",
    )
    return response


def init_app(app: Flask) -> None:
    """Check every request against what its view needs (see the module docstring)."""
    app.extensions[_TOKENS] = _TokenCache()

    @app.before_request
    def guard() -> None:
        access = access_of(app, request.endpoint)
        g.identity = identify(access)
