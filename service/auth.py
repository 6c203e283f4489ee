"""Who may call what: every route declares what it needs, one guard checks it.

With no API token configured (``API_TOKEN``, ``PGFRAUD_API_TOKEN``) everything
is open: the local development case (`pgfraud run` refuses to listen off
loopback, or behind a trusted proxy, without a token). With a token, every
request is checked before its view runs (:func:`init_app`'s ``before_request``):

- ``PUBLIC``: no token (``/health``, ``/openapi.json``, static files);
- ``READ``: any valid token (every read);
- ``ANALYST``: an analyst's or owner's token (backtests, reviews, storing);
- ``OWNER``: an owner's token (rule changes).

Each view says which with :func:`requires`; a view without it is refused when
the app is built (:func:`check_routes`), and a request that matches no route
(404, 405) needs a valid token too, so nothing is open by omission. Until
named tokens land (issue 18) the one ``API_TOKEN`` is an owner token named
``default``, so it serves for everything.

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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import Flask, Response, current_app, g, request
from itsdangerous import BadSignature, URLSafeTimedSerializer
from werkzeug.datastructures import WWWAuthenticate
from werkzeug.exceptions import Forbidden, Unauthorized

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


def _serializer(token: str) -> URLSafeTimedSerializer:
    # The cookie's key is derived from the token: the same in every worker,
    # and a new token invalidates every cookie made with the old one.
    key = hmac.new(token.encode("utf-8"), b"pgfraud session cookie", hashlib.sha256).digest()
    return URLSafeTimedSerializer(key, salt="pgfraud-session")


def _bearer_identity(token: str) -> Identity | None:
    """The identity of the request's bearer token; None when there is no header.
    Unauthorized for a header that is not a bearer token or a wrong token."""
    given = request.headers.get("Authorization")
    if given is None:
        return None
    scheme, _, value = given.partition(" ")
    valid = scheme.lower() == "bearer" and hmac.compare_digest(
        value.strip().encode("utf-8", "surrogateescape"), token.encode("utf-8")
    )
    if not valid:
        raise _refused("the token is not valid")
    return Identity("default", "owner")


def _cookie_identity(token: str) -> Identity | None:
    """The identity in the session cookie, if present, signed and fresh."""
    value = request.cookies.get(COOKIE)
    if not value:
        return None
    try:
        data = _serializer(token).loads(value, max_age=int(current_app.config["SESSION_MAX_AGE_S"]))
    except BadSignature:  # also SignatureExpired
        return None
    if not isinstance(data, dict) or data.get("name") != "default":
        return None
    return Identity("default", "owner")


def _refused(message: str) -> Unauthorized:
    current_app.logger.warning(
        "refused %s %s from %s: %s", request.method, request.path, request.remote_addr, message
    )
    return Unauthorized(message, www_authenticate=WWWAuthenticate("bearer", {"realm": "pgfraud"}))


def identify(access: Access) -> Identity | None:
    """The caller's identity for a view needing ``access``: the bearer token, or
    the session cookie where it counts. None when nothing is configured.
    Unauthorized when no valid credential is given; Forbidden when the
    identity's role is not enough."""
    token = current_app.config.get("API_TOKEN")
    if not token or access.level == PUBLIC:
        return None
    identity = _bearer_identity(token)
    if identity is None and request.method in SAFE_METHODS and not access.writes:
        identity = _cookie_identity(token)
    if identity is None:
        raise _refused("this needs the header Authorization: Bearer <token> (PGFRAUD_API_TOKEN)")
    if identity.role not in ALLOWED_ROLES[access.level]:
        current_app.logger.warning(
            "refused %s %s from %s: %s token %s", request.method, request.path,
            request.remote_addr, identity.role, identity.name,
        )  # fmt: skip
        raise Forbidden(f"this needs an {access.level} token; {identity.name} is {identity.role}")
    return identity


def start_session(identity: Identity | None) -> Response:
    """204 with the session cookie for ``identity`` (no cookie when no token is configured)."""
    response = current_app.response_class(status=204)
    token = current_app.config.get("API_TOKEN")
    if token and identity is not None:
        value = _serializer(token).dumps({"name": identity.name})
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

    @app.before_request
    def guard() -> None:
        access = access_of(app, request.endpoint)
        g.identity = identify(access)
