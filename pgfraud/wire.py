"""The wire format of a transaction, and its validation.

One transaction on the wire (JSON object, query string or CSV row)::

    account_id      integer 0 .. 2^63-1 (JSON integer, integer-valued JSON number
                    such as 13004713924.0, or decimal digits)
    transaction_id  integer 0 .. 2^63-1
    timestamp       ISO 8601 text ("Z" or an offset; none means UTC), or an
                    integer of epoch *milliseconds*; 2000-01-01 .. 2100-01-01
    amount          currency units: decimal text or JSON number, >= 0, < 10^13,
                    at most 2 decimal places (more is refused, never rounded)
    merchant_id     optional: integer 0 .. 2^63-1, or null / empty (unknown)

Sub-millisecond digits of an ISO timestamp are truncated to the millisecond.
Integers that look like epoch seconds or microseconds are refused with a
message naming the unit. JSON must be parsed with :func:`loads_json` so that
numbers stay exact Decimals (never floats).

Errors: :class:`pgfraud.errors.InvalidInput` whose ``errors`` list holds one
``{"row", "field", "message"}`` per problem (``row`` is the 0-based index in a
batch, or whatever row numbers the caller passes, such as CSV lines).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from pgfraud.errors import InvalidInput

MAX_ID = 2**63 - 1
MAX_AMOUNT = Decimal(10) ** 13
CENT = Decimal("0.01")
MIN_TIME = datetime(2000, 1, 1, tzinfo=UTC)
MAX_TIME = datetime(2100, 1, 1, tzinfo=UTC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def to_epoch_ms(value: datetime) -> int:
    """Epoch milliseconds of an aware datetime, exactly: integer arithmetic on the
    timedelta (sub-millisecond digits truncated toward the past), never
    ``total_seconds() * 1000``, whose float is 1 ms low for about a quarter of
    the millisecond timestamps of some years (2004, 2038)."""
    return (value - EPOCH) // _MS


def from_epoch_ms(ms: int) -> datetime:
    """The aware UTC datetime of epoch milliseconds ``ms``, exactly (integer arithmetic)."""
    return EPOCH + ms * _MS


MIN_MS = to_epoch_ms(MIN_TIME)  # 946684800000
MAX_MS = to_epoch_ms(MAX_TIME)  # 4102444800000
FIELDS = ("account_id", "transaction_id", "timestamp", "amount", "merchant_id")

_DIGITS = re.compile(r"[0-9]{1,30}")
_DECIMAL = re.compile(r"[+-]?([0-9]{1,40}(\.[0-9]{0,40})?|\.[0-9]{1,40})")
_SCENARIO = re.compile(r"[a-z][a-z0-9_]{0,62}")
_SHOWN = 40  # characters of a bad value quoted back in a message


def _cut(text: str) -> str:
    return text if len(text) <= _SHOWN else text[: _SHOWN - 1] + "…"


def _show(value: Any) -> str:
    """A bad value as quoted in an error message: repr, cut to 40 characters."""
    return _cut(repr(value))


# A named token's name (SQL add_api_token checks the same).
TOKEN_NAME = re.compile(r"[a-z][a-z0-9_.-]{0,62}")


def show(value: Any) -> str:
    """A bad value as quoted in an error message (repr, cut to 40 characters)."""
    return _show(value)


def _error(message: str) -> PydanticCustomError:
    return PydanticCustomError("pgfraud", message)


def not_before_from(to: datetime | None, info: ValidationInfo) -> datetime | None:
    """``to`` of a [from, to) time range, refused (naming ``to``) when before ``from``:
    a reversed range is a mistake, not an empty answer."""
    start = info.data.get("from_")
    if to is not None and start is not None and to < start:
        raise _error("must not be before from")
    return to


def _integral(value: Decimal) -> int | None:
    """A JSON number with no fractional part (13004713924.0, 1.3e10) as an int, exactly;
    None for any other Decimal (NaN, Infinity, 2.5)."""
    if value.is_finite() and value == value.to_integral_value():
        if value.adjusted() > 30:  # no field takes it; int() of 1e999999 would be huge
            return MAX_ID + 1 if value > 0 else -1
        return int(value)
    return None


def _parse_id(value: Any) -> int:
    """An account or transaction id: int 0 .. 2^63-1, from a JSON integer, an
    integer-valued JSON number (13004713924.0) or digit text."""
    if isinstance(value, Decimal):
        value = _integral(value)
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise _error("must be an integer from 0 to 9223372036854775807")
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("-") and _DIGITS.fullmatch(text[1:]):
            raise _error("must be >= 0")
        if not _DIGITS.fullmatch(text):
            raise _error("must be an integer from 0 to 9223372036854775807")
        value = int(text)
    if value < 0:
        raise _error("must be >= 0")
    if value > MAX_ID:
        raise _error("must be at most 9223372036854775807 (a signed 64-bit integer)")
    return value


def _parse_optional_id(value: Any) -> int | None:
    """An optional id (merchant_id): None, "" or blank text mean unknown; else as _parse_id."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return _parse_id(value)


def _parse_scenario(value: Any) -> str:
    if not isinstance(value, str) or not _SCENARIO.fullmatch(value.strip()):
        raise _error("must be a lower_snake_case name, like card_testing")
    return value.strip()


def _from_epoch_ms(ms: int) -> datetime:
    if ms < MIN_MS or ms >= MAX_MS:
        if MIN_MS // 1000 <= ms < MAX_MS // 1000:
            raise _error(
                f"{ms} looks like epoch seconds; timestamp takes epoch milliseconds "
                f"(for example {ms * 1000})"
            )
        if MIN_MS * 1000 <= ms < MAX_MS * 1000:
            raise _error(
                f"{ms} looks like epoch microseconds; timestamp takes epoch milliseconds "
                f"(for example {ms // 1000})"
            )
        raise _error("epoch milliseconds out of range (2000-01-01 to 2100-01-01 UTC)")
    return from_epoch_ms(ms)


def _parse_timestamp(value: Any) -> datetime:
    """An aware UTC datetime at millisecond resolution (see the module docstring)."""
    if isinstance(value, bool):
        raise _error("must be an ISO 8601 string or an integer of epoch milliseconds")
    if isinstance(value, Decimal) and _integral(value) is not None:
        value = _integral(value)  # 1704067200000.0 is the integer it equals
    if isinstance(value, int):
        return _from_epoch_ms(value)
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        text = value.strip()
        if _DIGITS.fullmatch(text):
            return _from_epoch_ms(int(text))
        hint = ""
        if " " in text and not text.isdigit():
            hint = " (in a URL, write + as %2B)"
        try:
            # fromisoformat ignores what follows a NUL: only printable ASCII is read.
            if not (text.isascii() and text.isprintable()) or len(text) > 64:
                raise ValueError
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise _error(
                f"{_show(value)} is not an ISO 8601 timestamp (like 2024-03-10T12:00:00.123Z) "
                f"nor an integer of epoch milliseconds{hint}"
            ) from None
    else:
        raise _error("must be an ISO 8601 string or an integer of epoch milliseconds")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        parsed = parsed.astimezone(UTC)
    except OverflowError:
        raise _error("out of range (2000-01-01 to 2100-01-01 UTC)") from None
    parsed = parsed.replace(microsecond=parsed.microsecond // 1000 * 1000)
    if not MIN_TIME <= parsed < MAX_TIME:
        raise _error("out of range (2000-01-01 to 2100-01-01 UTC)")
    return parsed


def parse_timestamp(value: Any) -> datetime:
    """A wire timestamp (ISO 8601 string, no offset meaning UTC, or integer epoch
    milliseconds) as an aware UTC datetime truncated to the millisecond.

    Errors: ValueError with the wire's message (names the unit for epoch seconds
    or microseconds, the range 2000-01-01 to 2100-01-01 UTC).
    """
    try:
        return _parse_timestamp(value)
    except PydanticCustomError as exc:
        raise ValueError(exc.message()) from None


def _parse_amount(value: Any) -> Decimal:
    """Exact currency units: Decimal >= 0, < 10^13, at most 2 decimal places."""
    if isinstance(value, bool):
        raise _error("must be a decimal number, like 19.99")
    if isinstance(value, int):
        value = Decimal(value)
    elif isinstance(value, float):
        value = Decimal(repr(value))
    elif isinstance(value, str):
        text = value.strip()
        if not text:
            raise _error("is empty; it must be a decimal number, like 19.99")
        if not _DECIMAL.fullmatch(text):
            if text.lower().lstrip("+-") in ("nan", "inf", "infinity", "snan"):
                raise _error(f"{_show(value)} is not a finite number")
            raise _error(f"{_show(value)} is not a decimal number, like 19.99")
        try:
            value = Decimal(text)
        except InvalidOperation:
            raise _error(f"{_show(value)} is not a decimal number, like 19.99") from None
    elif not isinstance(value, Decimal):
        raise _error("must be a decimal number, like 19.99")
    if not value.is_finite():
        raise _error("must be a finite number (NaN and Infinity are refused)")
    if value < 0:
        raise _error("must be >= 0")
    if value >= MAX_AMOUNT:
        raise _error("must be below 10000000000000 (10^13)")
    if value.as_tuple().exponent < -2 and value != value.quantize(CENT):  # type: ignore[operator]
        raise _error(
            f"{_cut(str(value))} has more than 2 decimal places; amounts are refused, not rounded"
        )
    # Exact: every amount is kept with 2 decimal places (13 -> 13.00, 12.340 -> 12.34).
    return abs(value.quantize(CENT))


# The fast path of bulk loads: values already in the plain form pgfraud
# writes itself pass these patterns and go to COPY as text; anything else
# (spaces, offsets, epoch milliseconds, 19-digit ids, odd amounts) goes
# through the full rules above. Every value accepted here is accepted by the
# full rules with the same meaning: ids below 10^18 (< 2^63), years 2000..2099
# with a real calendar date (checked by fromisoformat), whole milliseconds,
# amounts below 10^13 with at most 2 decimals.
_PLAIN_ID = re.compile(r"[0-9]{1,18}")
_PLAIN_TIME = re.compile(r"20[0-9]{2}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{3})?Z")
_PLAIN_AMOUNT = re.compile(r"[0-9]{1,13}(\.[0-9]{1,2})?")


def plain_copy_line(
    account_id: str, transaction_id: str, timestamp: str, amount: str
) -> str | None:
    """A CSV row's values as one COPY text line ``transaction_id, account_id, ts,
    amount`` (tab-separated, no newline), when every value is in plain form and
    valid; None when the row needs the full rules (:func:`parse_transactions`),
    which accept or refuse it with a message."""
    if not (
        _PLAIN_ID.fullmatch(account_id)
        and _PLAIN_ID.fullmatch(transaction_id)
        and _PLAIN_TIME.fullmatch(timestamp)
        and _PLAIN_AMOUNT.fullmatch(amount)
    ):
        return None
    try:
        datetime.fromisoformat(timestamp)
    except ValueError:  # 2024-02-30, hour 25: the full rules say what is wrong
        return None
    dot = amount.find(".")
    if dot < 0:
        amount += ".00"
    elif dot == len(amount) - 2:
        amount += "0"
    return f"{transaction_id}\t{account_id}\t{timestamp}\t{amount}"


def copy_line(transaction: Transaction) -> str:
    """A validated transaction as one COPY text line (as :func:`plain_copy_line`)."""
    t = transaction
    merchant = "\\N" if t.merchant_id is None else t.merchant_id
    return (
        f"{t.transaction_id}\t{t.account_id}\t{format_timestamp(t.timestamp)}\t{t.amount}"
        f"\t{merchant}"
    )


Id = Annotated[int, BeforeValidator(_parse_id)]
OptionalId = Annotated[int | None, BeforeValidator(_parse_optional_id)]
Timestamp = Annotated[datetime, BeforeValidator(_parse_timestamp)]
Amount = Annotated[Decimal, BeforeValidator(_parse_amount)]


class Transaction(BaseModel):
    """One validated transaction (see the module docstring for the wire rules)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    account_id: Id
    transaction_id: Id
    timestamp: Timestamp
    amount: Amount
    merchant_id: OptionalId = None


def _parse_optional_timestamp(value: Any) -> datetime | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return _parse_timestamp(value)


class Label(BaseModel):
    """A ground-truth fraud label: transaction_id, a lower_snake_case scenario name and,
    optionally, ``known_at``: when it became known (ISO 8601 or epoch milliseconds, as
    every timestamp; empty or absent: when it is stored)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    transaction_id: Id
    scenario: Annotated[str, BeforeValidator(_parse_scenario)]
    known_at: Annotated[datetime | None, BeforeValidator(_parse_optional_timestamp)] = None


REVIEW_STATUSES = ("confirmed_fraud", "false_positive")
_RULE_ID = re.compile(r"[a-z][a-z0-9_]{0,62}")
# A position in an account's events: <epoch ms>.<transaction_id>.<rule_id>.
_EVENT_CURSOR = re.compile(r"([0-9]{1,15})\.([0-9]{1,19})\.([a-z][a-z0-9_]{0,62})")
# A position in the live feed (an SSE event id): <xact>-<alert_id>.
_FEED_POSITION = re.compile(r"([0-9]{1,19})-([0-9]{1,19})")


def _parse_rule_id(value: Any) -> str:
    if not isinstance(value, str) or not _RULE_ID.fullmatch(value):
        raise _error("must be a rule id, like large_amount")
    return value


def _parse_limit(maximum: int) -> Any:
    def parse(value: Any) -> int:
        text = (
            str(value).strip()
            if isinstance(value, str | int) and not isinstance(value, bool)
            else ""
        )
        if not _DIGITS.fullmatch(text) or not 1 <= int(text) <= maximum:
            raise _error(f"must be an integer from 1 to {maximum}")
        return int(text)

    return parse


def _parse_review_status(value: Any) -> str:
    if value not in ("unreviewed", *REVIEW_STATUSES):
        raise _error("must be unreviewed, confirmed_fraud or false_positive")
    return value


def _parse_outcome(value: Any) -> str:
    if value not in ("approve", "review", "decline"):
        raise _error("must be approve, review or decline")
    return value


def _parse_alert_order(value: Any) -> str:
    if value not in ("raised", "time"):
        raise _error("must be raised (newest raised first) or time (newest transaction first)")
    return value


def _parse_decision(value: Any) -> str:
    if value not in REVIEW_STATUSES:
        raise _error("must be confirmed_fraud or false_positive")
    return value


def _parse_text(maximum: int, minimum: int = 0) -> Any:
    def parse(value: Any) -> str:
        if not isinstance(value, str) or not minimum <= len(value) <= maximum:
            raise _error(f"must be text of {minimum} to {maximum} characters")
        if "\x00" in value:
            raise _error("must not contain NUL characters")
        return value

    return parse


class AlertQuery(BaseModel):
    """Filters and paging of the alert queue (GET /alerts query parameters)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    account_id: Id | None = None
    rule_id: Annotated[str, BeforeValidator(_parse_rule_id)] | None = None
    review_status: Annotated[str, BeforeValidator(_parse_review_status)] | None = None
    from_: Annotated[Timestamp | None, Field(alias="from")] = None
    to: Timestamp | None = None

    _to_not_before_from = field_validator("to")(not_before_from)
    # ``raised``: newest raised first, ``before`` an alert_id; ``time``: newest
    # transaction first, ``before`` a cursor ``<epoch ms>.<alert_id>``.
    order: Annotated[str, BeforeValidator(_parse_alert_order)] = "raised"
    # The outcome of the alert's transaction's decision (issue 17).
    outcome: Annotated[str, BeforeValidator(_parse_outcome)] | None = None
    before: str | None = None
    limit: Annotated[int, BeforeValidator(_parse_limit(1000))] = 100

    def cursor(self) -> tuple[datetime | None, int | None]:
        """(before_ts, before_alert_id) of ``before``: ``<alert_id>`` or
        ``<epoch ms>.<alert_id>`` (the time counts in time order only: raise
        order reads the alert id of a well-formed one, as the API document's
        one pattern allows; an alert id alone in time order means that
        alert's time); (None, None) without it. InvalidInput naming ``before``
        for anything else (``abc.3``, ``-5.3``: both parts are checked)."""
        if self.before is None:
            return None, None
        if "." not in self.before:
            return None, parse_id(self.before, "before")
        try:
            ts, alert_id = parse_history_cursor(self.before)
        except InvalidInput:
            raise InvalidInput(
                "before must be a cursor from a previous page's next link "
                "(<alert_id>, or <epoch ms>.<alert_id> in time order)",
                field="before",
            ) from None
        return (ts if self.order == "time" else None), alert_id


def format_alert_cursor(row: dict[str, Any], order: str) -> str:
    """The ``before`` of the page after ``row`` (the last alert shown) in ``order``."""
    if order == "raised":
        return str(row["alert_id"])
    return format_history_cursor(row["ts"], row["alert_id"])


class EventPage(BaseModel):
    """Paging of an account's events (GET /is_fraud/<account> query parameters)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    limit: Annotated[int, BeforeValidator(_parse_limit(10_000))] = 1000
    after: str | None = None


class Review(BaseModel):
    """An analyst's decision on a transaction (POST /transactions/<id>/review body)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    status: Annotated[str, BeforeValidator(_parse_decision)]
    note: Annotated[str, BeforeValidator(_parse_text(2000))] = ""
    reviewer: Annotated[str, BeforeValidator(_parse_text(200, 1))] | None = None


_BATCH = TypeAdapter(list[Transaction])
_LABELS = TypeAdapter(list[Label])


def parse_model(model: type[BaseModel], data: Any) -> Any:
    """Validate query parameters or a body against ``model`` (AlertQuery,
    EventPage, Review); InvalidInput naming each bad field by its wire name."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        error = _invalid(exc, None, batch=False)
    names = ", ".join(f.alias or name for name, f in model.model_fields.items())
    for item in error.errors:
        if item["message"].endswith(
            "is not a field of a transaction (fields: " + ", ".join(FIELDS) + ")"
        ):
            item["message"] = f"{item['field']} is not a parameter here (parameters: {names})"
    first = error.errors[0]
    more = f" (and {len(error.errors) - 1} more)" if len(error.errors) > 1 else ""
    raise InvalidInput(f"{first['message']}{more}", field=first.get("field"), errors=error.errors)


def format_event_cursor(ts: datetime, transaction_id: int, rule_id: str) -> str:
    """The position after one event of an account, ``<epoch ms>.<transaction_id>.<rule_id>``."""
    return f"{to_epoch_ms(ts)}.{transaction_id}.{rule_id}"


def parse_event_cursor(text: str) -> tuple[datetime, int, str]:
    """(ts, transaction_id, rule_id) of a cursor made by format_event_cursor;
    InvalidInput naming ``after`` otherwise."""
    match = _EVENT_CURSOR.fullmatch(text)
    if not match or int(match[2]) > MAX_ID:
        raise InvalidInput(
            "after must be a cursor from a previous page's next link "
            "(<epoch ms>.<transaction_id>.<rule_id>)",
            field="after",
        )
    try:
        ts = from_epoch_ms(int(match[1]))
    except OverflowError:
        raise InvalidInput("after is out of range", field="after") from None
    return ts, int(match[2]), match[3]


def parse_feed_position(text: str, field: str = "Last-Event-ID") -> tuple[int, int]:
    """(xact, alert_id) of a live-feed event id ``<xact>-<alert_id>``; InvalidInput
    naming ``field`` otherwise."""
    match = _FEED_POSITION.fullmatch(text.strip())
    if not match or int(match[1]) > 2**64 - 1 or int(match[2]) > MAX_ID:
        raise InvalidInput(f"{field} must be an event id of this feed, like 1234-56", field=field)
    return int(match[1]), int(match[2])


def parse_id(value: Any, field: str) -> int:
    """One id outside a transaction (a URL path, say); InvalidInput naming ``field``.
    Digits only there: spaces around them (``/accounts/8%20``) are refused, as the
    API document's integer path parameters say (a body's id text may have them)."""
    if isinstance(value, str) and value != value.strip():
        raise InvalidInput(f"{field} must be digits, without spaces", field=field)
    try:
        return _parse_id(value)
    except PydanticCustomError as exc:
        raise InvalidInput(f"{field} {exc}", field=field) from None


def _message(err: dict[str, Any]) -> str:
    if err["type"] == "missing":
        return "is required"
    if err["type"] == "extra_forbidden":
        return f"is not a field of a transaction (fields: {', '.join(FIELDS)})"
    if err["type"] in ("model_type", "model_attributes_type"):
        return "must be a JSON object with " + ", ".join(FIELDS)
    return str(err["msg"])


def _invalid(exc: ValidationError, rows: list[int] | None, batch: bool) -> InvalidInput:
    errors = []
    for err in exc.errors():
        loc = list(err["loc"])
        row = loc.pop(0) if batch and loc and isinstance(loc[0], int) else None
        if row is not None and rows is not None:
            row = rows[row]
        field = str(loc[0]) if loc else None
        item: dict[str, Any] = {}
        if row is not None:
            item["row"] = row
        if field is not None:
            item["field"] = field
        item["message"] = f"{field} {_message(err)}" if field else _message(err)
        errors.append(item)
    first = errors[0]
    where = f"row {first['row']}: " if "row" in first else ""
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return InvalidInput(
        f"{where}{first['message']}{more}",
        field=first.get("field"),
        row=first.get("row"),
        errors=errors,
    )


def parse_transaction(data: Any) -> Transaction:
    """Validate one transaction (a mapping); InvalidInput naming each bad field."""
    try:
        return Transaction.model_validate(data)
    except ValidationError as exc:
        raise _invalid(exc, None, batch=False) from None


def parse_transactions(data: Iterable[Any], rows: list[int] | None = None) -> list[Transaction]:
    """Validate a batch; InvalidInput listing every bad row and field.

    ``rows`` renames the rows in errors (for example CSV line numbers); by
    default a row is its 0-based index.
    """
    try:
        return _BATCH.validate_python(list(data))
    except ValidationError as exc:
        raise _invalid(exc, rows, batch=True) from None


def parse_labels(data: Iterable[Any], rows: list[int] | None = None) -> list[Label]:
    """Validate a batch of labels ({transaction_id, scenario}), as parse_transactions."""
    try:
        return _LABELS.validate_python(list(data))
    except ValidationError as exc:
        raise _invalid(exc, rows, batch=True) from None


def to_record(transaction: Transaction) -> dict[str, Any]:
    """The transaction as a dict of exact values (the input of pgfraud.db.store_transactions)."""
    return transaction.model_dump()


def format_timestamp(value: datetime) -> str:
    """UTC ISO 8601 with milliseconds and Z, as pgfraud writes every timestamp."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _reject_constant(name: str) -> Decimal:
    # NaN / Infinity / -Infinity in JSON: kept as a Decimal so the field's
    # validator refuses it with the field's name.
    return Decimal(name)


def _parse_float(text: str) -> Decimal:
    try:
        return Decimal(text)
    except InvalidOperation:  # an exponent past Decimal's range, like 1e99999999999999999999
        raise ValueError(f"the number {text[:_SHOWN]} is out of range") from None


def _parse_int(text: str) -> int | Decimal:
    # Past 30 digits no field can take it; a Decimal avoids int()'s 4300-digit limit.
    return int(text) if len(text) <= 30 else Decimal(text)


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise ValueError(f"the key {_show(key)} appears twice in one object")
        obj[key] = value
    return obj


class NotText(ValueError):
    """A JSON string (value or key) that is not Unicode text: it holds a lone
    surrogate such as ``"\\ud800"``, an escape JSON allows but no character
    has (UTF-8 cannot encode it, so PostgreSQL could never store it).

    ``path``: where it is, as keys and array indexes from the top (``["note"]``,
    ``[3, "amount"]``); ``key``: the string is an object key at that path, not
    its value. ``field``: the path joined with dots, without a leading array index.
    """

    def __init__(self, path: list[str | int], key: bool) -> None:
        self.path = path
        self.key = key
        names = [str(p) for p in (path[1:] if path and isinstance(path[0], int) else path)]
        self.field = ".".join(names) or None
        where = f"a key in {self.field}" if key and self.field else "a key" if key else self.field
        super().__init__(
            f"{where or 'the body'} is not valid text: it holds a lone surrogate "
            "(like \\ud800), which is no Unicode character"
        )

    @property
    def row(self) -> int | None:
        """The array index the path starts with (a batch's row), or None."""
        return self.path[0] if self.path and isinstance(self.path[0], int) else None


def _is_text(value: str) -> bool:
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_text(value: Any) -> None:
    """Raise :class:`NotText` for the first string in parsed JSON ``value`` (keys
    included) that is not Unicode text; iterative, so any nesting json.loads
    accepts is walked."""
    stack: list[tuple[Any, list[str | int]]] = [(value, [])]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            if not _is_text(item):
                raise NotText(path, key=False)
        elif isinstance(item, dict):
            for key, child in item.items():
                if not _is_text(key):
                    raise NotText(path, key=True)
                stack.append((child, [*path, key]))
        elif isinstance(item, list):
            stack.extend((child, [*path, index]) for index, child in enumerate(item))


def loads_json(body: bytes | str) -> Any:
    """Parse JSON with exact numbers: decimals as Decimal, integers as int;
    every string (keys too) is Unicode text.

    Errors: :class:`NotText` (a ValueError naming the field) for a string
    with a lone surrogate (``"x\\ud800"``); ValueError for malformed JSON
    (json.JSONDecodeError), a number out of Decimal's range, a key given
    twice in one object, or nesting deeper than Python can parse.
    """
    try:
        value = json.loads(
            body,
            parse_float=_parse_float,
            parse_int=_parse_int,
            parse_constant=_reject_constant,
            object_pairs_hook=_no_duplicate_keys,
        )
    except RecursionError:
        raise ValueError("nested too deeply") from None
    check_text(value)
    return value


def _parse_parameters(value: Any, allow_empty: bool = False) -> dict[str, int | Decimal]:
    """Rule parameters: an object of names to JSON numbers (exact decimals); ``{}``
    only with ``allow_empty`` (a backtest of a rule as it is)."""
    if not isinstance(value, dict) or not (value or allow_empty):
        raise _error("must be an object of parameter names to numbers")
    for name, number in value.items():
        if not _RULE_ID.fullmatch(name):
            raise _error(f"has a parameter name that is not one: {_show(name)}")
        if isinstance(number, bool) or not isinstance(number, int | Decimal):
            raise _error(f"{name} must be a number, not {_show(number)}")
        if isinstance(number, Decimal) and not number.is_finite():
            raise _error(f"{name} must be a finite number")
    return value


def _parse_rule_set(value: Any) -> dict[str, dict[str, int | Decimal]]:
    if not isinstance(value, dict) or not value:
        raise _error("must be an object {rule_id: {parameter: number}}")
    for rule_id, parameters in value.items():
        _parse_rule_id(rule_id)
        try:
            _parse_parameters(parameters, allow_empty=True)
        except PydanticCustomError as exc:
            raise _error(f"{rule_id}: parameters {exc}") from None
    return value


def _parse_switch(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _error("must be true or false")
    return value


class Backtest(BaseModel):
    """A backtest (POST /evaluate body): the rules to run, each ``{parameter: number}``
    merged over its live parameters (``{}``: as it is; SQL resolve_backtest_rules),
    and the time range."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rules: Annotated[
        dict[str, Any] | None, BeforeValidator(lambda v: None if v is None else _parse_rule_set(v))
    ] = None
    from_: Annotated[Timestamp | None, Field(alias="from")] = None
    to: Timestamp | None = None
    # A candidate decision policy, checked by parse_backtest_policy (which
    # names the field inside it) and then by SQL resolve_backtest_policy.
    policy: Any = None

    _to_not_before_from = field_validator("to")(not_before_from)


class RuleChange(BaseModel):
    """A change to one rule (a value of the PATCH /rules body)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: Annotated[bool, BeforeValidator(_parse_switch)] | None = None
    # The validator wraps the whole optional type: pydantic 2.6 (the floor) let
    # {} through a validator placed inside `| None`.
    parameters: Annotated[dict[str, Any] | None, BeforeValidator(_parse_optional_parameters)] = None


def _parse_optional_parameters(value: Any) -> dict[str, int | Decimal] | None:
    """Rule parameters as :func:`_parse_parameters` (at least one), or None (null)."""
    return None if value is None else _parse_parameters(value)


def parse_rule_changes(data: Any) -> dict[str, RuleChange]:
    """The PATCH /rules body ``{rule_id: {enabled?, parameters?}}``, at least one rule,
    each with enabled, parameters or both; InvalidInput naming ``<rule_id>.<field>``."""
    if not isinstance(data, dict) or not data:
        raise InvalidInput(
            "the body must be a JSON object {rule_id: {enabled, parameters}} naming a rule",
            field="rules",
        )
    changes = {}
    for rule_id, change in data.items():
        if not _RULE_ID.fullmatch(rule_id):
            raise InvalidInput(f"{_show(rule_id)} is not a rule id", field=rule_id)
        if not isinstance(change, dict) or not change:
            raise InvalidInput(
                f"{rule_id} must be an object with enabled, parameters or both", field=rule_id
            )
        for key, value in change.items():
            if value is None:
                raise InvalidInput(f"{rule_id}: {key} must not be null", field=f"{rule_id}.{key}")
        try:
            changes[rule_id] = parse_model(RuleChange, change)
        except InvalidInput as exc:
            raise InvalidInput(
                f"{rule_id}: {exc.message}", field=f"{rule_id}.{exc.field or ''}".rstrip(".")
            ) from None
    return changes


class HistoryPage(BaseModel):
    """Paging of an account's history (GET /accounts/<id>/history query parameters)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    limit: Annotated[int, BeforeValidator(_parse_limit(1000))] = 100
    before: str | None = None


_HISTORY_CURSOR = re.compile(r"([0-9]{1,15})\.([0-9]{1,19})")


def format_history_cursor(ts: datetime, transaction_id: int) -> str:
    """The position before one transaction of an account, ``<epoch ms>.<transaction_id>``."""
    return f"{to_epoch_ms(ts)}.{transaction_id}"


def parse_history_cursor(text: str) -> tuple[datetime, int]:
    """(ts, transaction_id) of a cursor made by format_history_cursor; InvalidInput
    naming ``before`` otherwise."""
    match = _HISTORY_CURSOR.fullmatch(text)
    if not match or int(match[2]) > MAX_ID:
        raise InvalidInput(
            "before must be a cursor from a previous page's next link "
            "(<epoch ms>.<transaction_id>)",
            field="before",
        )
    try:
        ts = from_epoch_ms(int(match[1]))
    except OverflowError:
        raise InvalidInput("before is out of range", field="before") from None
    return ts, int(match[2])


# -- decisions, policy and lists (issue 17) ------------------------------------------

OUTCOMES = ("approve", "review", "decline")
POLICY_FIELDS = ("review_threshold", "decline_threshold", "default_score", "rule_scores")


class DecisionQuery(BaseModel):
    """Filters and paging of decisions (GET /decisions query parameters)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    outcome: Annotated[str, BeforeValidator(_parse_outcome)] | None = None
    account_id: Id | None = None
    from_: Annotated[Timestamp | None, Field(alias="from")] = None
    to: Timestamp | None = None

    _to_not_before_from = field_validator("to")(not_before_from)
    before: str | None = None
    limit: Annotated[int, BeforeValidator(_parse_limit(1000))] = 100


def parse_policy_change(data: Any) -> dict[str, Any]:
    """A policy change (PUT /policy body, ``pgfraud policy set``): ``{review_threshold,
    decline_threshold, default_score: int, rule_scores: {rule_id: int}}``, each
    optional, at least one. Integers only (no fractions, NaN or Infinity; an
    integral JSON number such as 50.0 is the integer it equals, as JSON Schema's
    integer and the database take it): the database checks the ranges.
    Returns the change with integers; InvalidInput naming the field otherwise."""
    if not isinstance(data, dict) or not data:
        raise InvalidInput("give at least one of " + ", ".join(POLICY_FIELDS))
    change: dict[str, Any] = {}
    for key, value in data.items():
        if key not in POLICY_FIELDS:
            raise InvalidInput(
                f"{key} is not a field of the policy ({', '.join(POLICY_FIELDS)})", field=key
            )
        if key == "rule_scores":
            if not isinstance(value, dict):
                raise InvalidInput("rule_scores must be an object {rule_id: score}", field=key)
            for rule_id in value:
                if not _RULE_ID.fullmatch(rule_id):
                    raise InvalidInput(
                        f"rule_scores: {_show(rule_id)} is not a rule id, like large_amount",
                        field=key,
                    )
            change[key] = {
                rule_id: _check_integer(score, f"rule_scores.{rule_id}")
                for rule_id, score in value.items()
            }
        else:
            change[key] = _check_integer(value, key)
    return change


def parse_backtest_policy(data: Any) -> dict[str, Any] | None:
    """A backtest's candidate policy (POST /evaluate's ``policy``, ``pgfraud evaluate
    --policy``): None, or what :func:`parse_policy_change` takes, merged by SQL
    resolve_backtest_policy over the policy in force. InvalidInput naming
    ``policy.<field>`` otherwise."""
    if data is None:
        return None
    try:
        return parse_policy_change(data)
    except InvalidInput as exc:
        field = f"policy.{exc.field}" if exc.field else "policy"
        raise InvalidInput(f"policy: {exc.message}", field=field) from None


def _check_integer(value: Any, field: str) -> int:
    if (
        isinstance(value, Decimal)
        and value.is_finite()
        and value == value.to_integral_value()
        and value.adjusted() < 10  # at most 10 digits: 1e400 is refused here
    ):
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{field} must be an integer, not {_cut(str(value))}", field=field)
    return value


class ListCreate(BaseModel):
    """A new list (POST /lists body)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    list_name: Annotated[str, BeforeValidator(_parse_text(63, 1))]
    subject: Annotated[str, BeforeValidator(_parse_text(20, 1))]
    kind: Annotated[str, BeforeValidator(_parse_text(20, 1))]
    description: Annotated[str, BeforeValidator(_parse_text(2000))] = ""


class ListEntry(BaseModel):
    """An entry to put on a list (POST /lists/<name>/entries body)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    value: Id
    reason: Annotated[str, BeforeValidator(_parse_text(2000, 1))]
    expires_at: Timestamp | None = None


def _parse_tune_number(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise _error(f"must be a number, not {_show(value)}")
    if isinstance(value, Decimal) and not value.is_finite():
        raise _error("must be a finite number")
    return Decimal(value)


def _parse_candidates(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _error("must be a list of rule ids")
    return value


class Tune(BaseModel):
    """A tuning (POST /tune body): training and validation periods [from, to), an
    alert budget and/or a precision floor, and optionally the candidate rules.
    Their ranges are checked by SQL tune_rules (InvalidInput naming the field)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    train_from: Timestamp
    train_to: Timestamp
    valid_from: Timestamp
    valid_to: Timestamp
    max_alerts_per_1000: Annotated[Decimal, BeforeValidator(_parse_tune_number)] | None = None
    min_precision: Annotated[Decimal, BeforeValidator(_parse_tune_number)] | None = None
    min_marginal_precision: Annotated[Decimal, BeforeValidator(_parse_tune_number)] | None = None
    candidates: Annotated[list[str], BeforeValidator(_parse_candidates)] | None = None


# -- cases (issue 18, part 5) -------------------------------------------------------

CASE_STATUSES = ("open", "assigned", "closed")
RESOLUTIONS = ("fraud", "not_fraud", "withdrawn")


def _parse_case_status(value: Any) -> str:
    if value not in (*CASE_STATUSES, "active"):
        raise _error("must be open, assigned, closed or active (open or assigned)")
    return value


def _parse_resolution(value: Any) -> str:
    if value not in RESOLUTIONS:
        raise _error("must be fraud, not_fraud or withdrawn")
    return value


class CaseQuery(BaseModel):
    """Filters and paging of cases (GET /cases query parameters, ``pgfraud case list``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    status: Annotated[str, BeforeValidator(_parse_case_status)] | None = None
    assignee: Annotated[str, BeforeValidator(_parse_text(200, 1))] | None = None
    account_id: Id | None = None
    before: Id | None = None
    limit: Annotated[int, BeforeValidator(_parse_limit(1000))] = 100


class CaseAssign(BaseModel):
    """Who works a case (POST /cases/<id>/assign body)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    assignee: Annotated[str, BeforeValidator(_parse_text(200, 1))]


class CaseClose(BaseModel):
    """How a case ends (POST /cases/<id>/close body)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    resolution: Annotated[str, BeforeValidator(_parse_resolution)]
    note: Annotated[str, BeforeValidator(_parse_text(2000))] = ""


class ShadowStart(BaseModel):
    """A shadow of a rule (PUT /rules/<rule_id>/shadow body): candidate parameters,
    each a number, merged over the live ones (``{}`` or absent: the rule as it is)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    parameters: Annotated[
        dict[str, Any] | None,
        BeforeValidator(lambda v: None if v is None else _parse_parameters(v, allow_empty=True)),
    ] = None


def parse_rule_id(value: str) -> str:
    """A rule id from a path (lower_snake_case, at most 63 characters); InvalidInput
    naming rule_id otherwise."""
    if not _RULE_ID.fullmatch(value):
        raise InvalidInput(f"{_show(value)} is not a rule id, like large_amount", field="rule_id")
    return value


# -- actors, tokens and the audit trail (issue 18) ----------------------------

# The kinds of object the audit trail records (db/functions/audit_change.sql).
AUDIT_KINDS = (
    "rule",
    "shadow_rule",
    "policy",
    "list",
    "list_entry",
    "review",
    "token",
    "case",
    "case_alert",
)


def _parse_object_kind(value: Any) -> str:
    if not isinstance(value, str) or value not in AUDIT_KINDS:
        raise _error("must be one of " + ", ".join(AUDIT_KINDS))
    return value


class AuditQuery(BaseModel):
    """Filters and paging of the audit trail (GET /audit query parameters,
    `pgfraud audit`): ``actor``, ``object_kind``, ``object_key`` (exact),
    ``from``/``to`` (time of the change, [from, to)), ``before`` (an audit_id,
    the cursor of the next page), ``limit`` 1..1000 (default 100)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    actor: Annotated[str, BeforeValidator(_parse_text(200, 1))] | None = None
    object_kind: Annotated[str, BeforeValidator(_parse_object_kind)] | None = None
    object_key: Annotated[str, BeforeValidator(_parse_text(200, 1))] | None = None
    from_: Annotated[Timestamp | None, Field(alias="from")] = None
    to: Timestamp | None = None
    _to_not_before_from = field_validator("to")(not_before_from)
    before: Id | None = None
    limit: Annotated[int, BeforeValidator(_parse_limit(1000))] = 100


TOKEN_ROLES = ("analyst", "owner")


def _parse_token_role(value: Any) -> str:
    if value not in TOKEN_ROLES:
        raise _error("must be analyst or owner")
    return value


class TokenCreate(BaseModel):
    """A new named token (POST /tokens body): ``token_name`` and ``role``
    (analyst or owner); the database checks the name."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    token_name: Annotated[str, BeforeValidator(_parse_text(63, 1))]
    role: Annotated[str, BeforeValidator(_parse_token_role)]
