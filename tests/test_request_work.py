"""Per-request work done once per process (issue 17, Speed): the browser
protections flask-talisman decides are built when the app is, not on every
request. Talisman on the app rebuilt the same headers (the policy string
included) and a nonce nobody used on every response, about 0.1 ms of a GET
/is_fraud under load (cProfile; docs/performance.md). The headers stay
exactly Talisman's."""

from __future__ import annotations

import pytest
from flask import Flask
from flask_talisman import Talisman

from pgfraud.service import CONTENT_SECURITY_POLICY, create_app
from pgfraud.service.database import close_pool


def talismans_own_headers() -> dict[str, str]:
    app = Flask("reference")
    Talisman(
        app,
        force_https=False,
        strict_transport_security=False,
        session_cookie_secure=False,
        frame_options="DENY",
        content_security_policy=CONTENT_SECURITY_POLICY,
        referrer_policy="no-referrer",
        x_content_type_options=True,
    )
    app.add_url_rule("/", "home", lambda: "")
    headers = dict(app.test_client().get("/").headers)
    return {k: v for k, v in headers.items() if k not in ("Content-Type", "Content-Length")}


@pytest.mark.parametrize("path", ["/is_fraud/7", "/nowhere", "/static/app.js", "/is_fraud/x"])
def test_responses_carry_talismans_headers_without_talisman_per_request(
    database, monkeypatch, path
):
    expected = talismans_own_headers()
    assert set(expected) >= {"Content-Security-Policy", "X-Frame-Options", "Referrer-Policy"}
    calls = []
    for name in ("_set_response_headers", "_force_https", "_make_nonce"):
        original = getattr(Talisman, name)

        def counted(self, *args, _original=original, _name=name, **kwargs):
            calls.append(_name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(Talisman, name, counted)
    app = create_app({"TESTING": True, "DATABASE_URL": database.app_url})
    calls.clear()  # building the app may ask Talisman once
    client = app.test_client()
    try:
        for _ in range(3):
            response = client.get(path)
            assert response.status_code in (200, 400, 404)
            for header, value in expected.items():
                assert response.headers[header] == value, header
    finally:
        close_pool(app)
    assert calls == []


def test_is_fraud_without_parameters_checks_no_parameters_per_request(
    client, app_conn, monkeypatch
):
    # The seed's GET /is_fraud/<account> has no query parameters: its page
    # (limit 1000, no cursor) is checked once per process, not per request.
    # With parameters they are checked as always.
    from decimal import Decimal

    from pgfraud import db
    from pgfraud.service import routes

    db.store_transactions(
        app_conn,
        [
            {
                "transaction_id": 1,
                "account_id": 7,
                "timestamp": "2024-05-01T00:00:00Z",
                "amount": Decimal("12000.00"),
            }
        ],
    )
    app_conn.commit()
    checked = []
    original = routes.parse_model
    monkeypatch.setattr(routes, "parse_model", lambda *a: checked.append(a) or original(*a))
    response = client.get("/is_fraud/7")
    assert response.status_code == 200
    body = response.get_json()
    assert (body["count"], body["events"][0]["rule_id"], body["next"]) == (1, "large_amount", None)
    assert checked == []
    assert client.get("/is_fraud/7?limit=0").status_code == 400
    assert client.get("/is_fraud/7?limit=1").get_json()["count"] == 1
    assert len(checked) == 2


def test_whole_answers_reach_the_wsgi_server_as_a_list_and_streams_as_iterators(app, app_conn):
    # granian writes a list in one piece (response_bytes); any other iterable
    # it streams, taking the GIL again from its own thread for every piece
    # (granian/wsgi.py). A JSON answer is whole in memory: a list. A HEAD
    # answer is an empty list; the live feed stays an iterator (it releases
    # its stream slot when closed).
    import io
    import sys

    def call(method: str, path: str, query: str = ""):
        seen = {}

        def start_response(status, headers, exc_info=None):
            seen["status"] = status

        environ = {
            "REQUEST_METHOD": method,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "5000",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(b""),
            "wsgi.errors": sys.stderr,
        }
        return app(environ, start_response), seen["status"]

    body, status = call("GET", "/is_fraud/7")
    assert status.startswith("404")  # no such account yet: an error answer, whole too
    assert isinstance(body, list)
    assert b"".join(body).startswith(b'{"error":')
    body, status = call("GET", "/rules")
    assert status.startswith("200")
    assert isinstance(body, list)
    assert len(body) == 1
    body, status = call("HEAD", "/rules")
    assert status.startswith("200")
    assert body == []
    stream, status = call("GET", "/alerts/stream")
    assert status.startswith("200")
    assert not isinstance(stream, list)
    stream.close()


@pytest.mark.parametrize(
    ("path", "cache_control"),
    [
        ("/is_fraud/7", "no-store"),  # an account's payments
        ("/alerts", "no-store"),
        ("/nowhere", "no-store"),  # an error answer too
        ("/ui/", "no-store"),  # the page
        ("/static/app.js", None),  # a static file: Flask's own caching headers only
    ],
)
def test_answers_with_data_are_never_cached(client, path, cache_control):
    # Break-it (hardening round): authenticated answers carrying payments had
    # no Cache-Control, so a browser or a shared proxy could keep a copy.
    response = client.get(path)
    if cache_control is None:
        assert "no-store" not in response.headers.get("Cache-Control", "")
    else:
        assert response.headers["Cache-Control"] == cache_control
