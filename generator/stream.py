"""The transaction stream: every account's events merged in time order.

Each account is a lazy stream of events (its own random generator, see
:mod:`pgfraud.generator.profiles`). Accounts come into use one by one, in id
order: the first transactions of the ``accounts`` accounts are spread
uniformly at random over the first ``FIRST_USE_WINDOW_MS`` after the start
(drawn as sorted uniform order statistics, one at a time), and an account's
profile and stream are made only when its first transaction is reached. A
heap keyed by each active account's next timestamp merges the streams, so
memory grows with the accounts that have transacted so far (at most one
per transaction), never with ``accounts`` itself: one transaction from 10^8
accounts costs one profile.
Transaction ids are given out in output order, so they are sequential and in
time order (ties in time: lower account id first).
"""

from __future__ import annotations

import dataclasses
import heapq
import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import NamedTuple

from pgfraud.errors import InvalidInput
from pgfraud.generator.profiles import DAY_MS, Profile, account_rng, make_profile
from pgfraud.generator.scenarios import SCENARIOS
from pgfraud.wire import MAX_ID, MAX_MS, MAX_TIME, MIN_TIME, format_timestamp

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DEFAULT_START = datetime(2024, 1, 1, tzinfo=UTC)
FIRST_USE_WINDOW_MS = 3 * DAY_MS  # every account's first transaction falls in this window


class GeneratedTransaction(NamedTuple):
    """One generated transaction.

    ``timestamp``: aware UTC datetime, whole milliseconds; ``amount``: Decimal
    currency units with exactly 2 decimal places; ``scenario``: the fraud
    scenario's name, or None for a normal transaction (the ground-truth label,
    never stored with the transaction).
    """

    transaction_id: int
    account_id: int
    timestamp: datetime
    amount: Decimal
    scenario: str | None


@dataclasses.dataclass(frozen=True)
class Settings:
    """What to generate; checked on creation.

    ``num_transactions`` >= 1; ``accounts`` >= 1 (ids 1..accounts); ``seed``
    any int; ``start``: aware datetime in 2000..2100, every timestamp is after
    it; ``fraud_rate`` in [0, 1]: the chance that an account's next event
    starts a fraud scenario instead of a normal transaction; ``scenarios``:
    names from SCENARIOS (at least one); ``first_transaction_id`` >= 0.
    Errors: InvalidInput naming the field.
    """

    num_transactions: int = 10_000
    accounts: int = 100
    seed: int = 42
    start: datetime = DEFAULT_START
    fraud_rate: float = 0.01
    scenarios: tuple[str, ...] = tuple(SCENARIOS)
    first_transaction_id: int = 1

    def __post_init__(self) -> None:
        def bad(field: str, message: str) -> InvalidInput:
            return InvalidInput(f"{field} {message}", field=field)

        if self.num_transactions < 1:
            raise bad("num_transactions", "must be at least 1")
        if not 1 <= self.accounts <= MAX_ID:
            raise bad("accounts", "must be from 1 to 9223372036854775807")
        if self.start.tzinfo is None:
            raise bad("start", "must have a time zone (UTC)")
        if not MIN_TIME <= self.start < MAX_TIME:
            raise bad("start", "must be from 2000-01-01 to 2100-01-01 UTC")
        if not 0.0 <= self.fraud_rate <= 1.0:
            raise bad("fraud_rate", "must be from 0 to 1")
        if not self.scenarios:
            raise bad("scenarios", "must name at least one scenario")
        unknown = [s for s in self.scenarios if s not in SCENARIOS]
        if unknown:
            raise bad("scenarios", f"has an unknown scenario {unknown[0]!r}")
        if self.first_transaction_id < 0:
            raise bad("first_transaction_id", "must be >= 0")
        if self.first_transaction_id + self.num_transactions - 1 > MAX_ID:
            raise bad("first_transaction_id", "+ num_transactions passes 2^63-1")

    @property
    def start_ms(self) -> int:
        """``start`` in epoch milliseconds (sub-millisecond digits truncated)."""
        delta = self.start - EPOCH
        return delta // timedelta(milliseconds=1)


# One event of an account: (epoch ms, cents, scenario name or None).
Event = tuple[int, int, str | None]


def account_events(settings: Settings, profile: Profile, first_ms: int) -> Iterator[Event]:
    """The endless event stream of one account, in strictly increasing time, from ``first_ms``.

    Its random stream depends on the seed, the account and the first
    transaction id (the profile on the seed and the account only).

    Each step decides whether a fraud scenario starts (probability
    ``fraud_rate``, drawn even when it is 0 so that the rate does not shift
    the normal stream's draws before the first scenario), then draws an
    exponential gap to the next step.
    """
    # Keyed by the first id too, so that a run appended after stored data
    # (same seed, later ids) continues each account instead of repeating it.
    rng = account_rng(settings.seed, profile.account_id, f"events/{settings.first_transaction_id}")
    scenarios = [SCENARIOS[name] for name in settings.scenarios]
    fraud_rate = settings.fraud_rate
    ms = first_ms
    while True:
        if rng.random() < fraud_rate:
            scenario = scenarios[rng.randrange(len(scenarios))]
            burst = scenario.draw(rng, profile)
            for offset, cents in burst:
                yield ms + offset, cents, scenario.name
            ms += burst[-1][0]
        else:
            yield ms, profile.normal_cents(rng), None
        ms += profile.next_gap_ms(rng)


def first_uses(settings: Settings) -> Iterator[int]:
    """Epoch ms of each account's first transaction, for accounts 1, 2, ... in order.

    The ``accounts`` times are the sorted values of as many independent
    uniform draws over ``(start, start + FIRST_USE_WINDOW_MS]`` (whole ms), produced one
    at a time by the Renyi representation: ``-log(1 - U_(k))`` is a sum of
    ``E_j / (n - j + 1)`` with ``E_j`` standard exponentials, so account
    ``k`` costs O(1) time and memory. Non-decreasing; same on every run.
    """
    rng = account_rng(settings.seed, 0, f"first-uses/{settings.first_transaction_id}")
    n = settings.accounts
    start_ms = settings.start_ms
    log_rest = 0.0  # log(1 - U_(k)), <= 0
    for k in range(1, n + 1):
        log_rest -= rng.expovariate(1.0) / (n - k + 1)
        yield start_ms + 1 + math.floor(-math.expm1(log_rest) * (FIRST_USE_WINDOW_MS - 1))


# One transaction before it becomes a GeneratedTransaction: (transaction_id,
# account_id, epoch ms, cents, scenario); the fields at 0 and 4 are the same
# as GeneratedTransaction's.
RawTransaction = tuple[int, int, int, int, str | None]


def generate_raw(settings: Settings) -> Iterator[RawTransaction]:
    """:func:`generate_transactions` as plain tuples (epoch ms, integer cents):
    the same transactions, without building a datetime and a Decimal for each
    (the COPY sink formats them as text directly)."""
    heap: list[tuple[int, int, int, str | None, Iterator[Event]]] = []
    first = first_uses(settings)
    next_account = 1
    next_first = next(first)  # there is at least one account

    transaction_id = settings.first_transaction_id
    replace = heapq.heapreplace
    for _ in range(settings.num_transactions):
        # The next account not yet used comes in when its first-use time is
        # before every active account's next event; its first transaction is
        # then the next one out, so at most one account comes in per
        # transaction (ties: the active account, which has the lower id).
        if next_first is not None and (not heap or next_first < heap[0][0]):
            events = account_events(settings, make_profile(settings.seed, next_account), next_first)
            ms, cents, scenario = next(events)
            heapq.heappush(heap, (ms, next_account, cents, scenario, events))
            next_account += 1
            next_first = next(first, None)
        # (ms, account_id) is unique: one account's times strictly increase.
        ms, account_id, cents, scenario, events = heap[0]
        if ms >= MAX_MS:
            raise InvalidInput(
                f"transaction {transaction_id} would be at or after "
                f"{format_timestamp(MAX_TIME)}, the latest pgfraud stores: use more accounts, "
                "fewer transactions or an earlier start",
                field="start",
            )
        yield transaction_id, account_id, ms, cents, scenario
        transaction_id += 1
        next_ms, next_cents, next_scenario = next(events)
        replace(heap, (next_ms, account_id, next_cents, next_scenario, events))


def to_transaction(raw: RawTransaction) -> GeneratedTransaction:
    """A RawTransaction as a GeneratedTransaction (aware datetime, Decimal amount)."""
    transaction_id, account_id, ms, cents, scenario = raw
    return GeneratedTransaction(
        transaction_id,
        account_id,
        EPOCH + timedelta(milliseconds=ms),
        Decimal(cents).scaleb(-2),
        scenario,
    )


def generate_transactions(settings: Settings) -> Iterator[GeneratedTransaction]:
    """Yield ``settings.num_transactions`` transactions in time order, lazily.

    Ids run from ``first_transaction_id`` up by one; timestamps never
    decrease (ties: lower account first). Same settings, same transactions,
    on every run. Memory: one heap entry per account used so far (at most
    one more than the transactions yielded). Errors: InvalidInput (field
    ``start``) when a timestamp would reach 2100-01-01, raised when that
    transaction is reached.
    """
    return map(to_transaction, generate_raw(settings))
