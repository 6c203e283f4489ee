"""Flask's JSON provider backed by orjson: the responses' serialiser.

Answers are built of str/int/bool/None/list/dict (views turn Decimals and
datetimes into strings themselves, pgfraud.wire); orjson writes those several
times faster than the standard library. Keys keep their order; a Decimal or
datetime that reaches it anyway is written as its exact text / ISO form.
Request bodies are still parsed by pgfraud.wire.loads_json (exact Decimals).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson
from flask import Response
from flask.json.provider import JSONProvider

from pgfraud.wire import format_timestamp


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return format_timestamp(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


class OrjsonProvider(JSONProvider):
    """``app.json``: dumps/loads/response with orjson (UTF-8, keys in insertion order)."""

    sort_keys = False  # read by nothing here; kept for code that sets it on Flask's default

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        return orjson.dumps(obj, default=_default).decode()

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return orjson.loads(s)

    def response(self, *args: Any, **kwargs: Any) -> Response:
        obj = self._prepare_response_obj(args, kwargs)
        body = orjson.dumps(obj, default=_default, option=orjson.OPT_APPEND_NEWLINE)
        return self._app.response_class(body, mimetype="application/json")
