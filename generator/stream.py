"""The transaction stream: every account's events merged in time order.

Each account is a lazy stream of events (its own random generator, see
:mod:`pgfraud.generator.profiles`); a heap keyed by each account's next
timestamp merges them, so memory is O(accounts) however many transactions
are generated. Transaction ids are given out in output order, so they are
sequential and in time order (ties in time: lower account id first).
"""

from __future__ import annotations

import dataclasses
import heapq
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import NamedTuple

from pgfraud.errors import InvalidInput
from pgfraud.generator.profiles import Profile, account_rng, make_profile
from pgfraud.generator.scenarios import SCENARIOS
from pgfraud.wire import MAX_ID, MAX_MS, MAX_TIME, MIN_TIME, format_timestamp

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DEFAULT_START = datetime(2024, 1, 1, tzinfo=UTC)


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


def account_events(settings: Settings, profile: Profile) -> Iterator[Event]:
    """The endless event stream of one account, in strictly increasing time.

    Its random stream depends on the seed, the account and the first
    transaction id (the profile on the seed and the account only).

    Each step draws an exponential gap, then whether a fraud scenario starts
    (probability ``fraud_rate``, drawn even when it is 0 so that the rate
    does not shift the normal stream's draws before the first scenario).
    """
    # Keyed by the first id too, so that a run appended after stored data
    # (same seed, later ids) continues each account instead of repeating it.
    rng = account_rng(settings.seed, profile.account_id, f"events/{settings.first_transaction_id}")
    scenarios = [SCENARIOS[name] for name in settings.scenarios]
    fraud_rate = settings.fraud_rate
    ms = settings.start_ms
    while True:
        ms += profile.next_gap_ms(rng)
        if rng.random() < fraud_rate:
            scenario = scenarios[rng.randrange(len(scenarios))]
            burst = scenario.draw(rng, profile)
            for offset, cents in burst:
                yield ms + offset, cents, scenario.name
            ms += burst[-1][0]
        else:
            yield ms, profile.normal_cents(rng), None


# One transaction before it becomes a GeneratedTransaction: (transaction_id,
# account_id, epoch ms, cents, scenario); the fields at 0 and 4 are the same
# as GeneratedTransaction's.
RawTransaction = tuple[int, int, int, int, str | None]


def generate_raw(settings: Settings) -> Iterator[RawTransaction]:
    """:func:`generate_transactions` as plain tuples (epoch ms, integer cents):
    the same transactions, without building a datetime and a Decimal for each
    (the COPY sink formats them as text directly)."""
    heap: list[tuple[int, int, int, str | None, Iterator[Event]]] = []
    for account_id in range(1, settings.accounts + 1):
        events = account_events(settings, make_profile(settings.seed, account_id))
        ms, cents, scenario = next(events)
        heap.append((ms, account_id, cents, scenario, events))
    heapq.heapify(heap)

    transaction_id = settings.first_transaction_id
    replace = heapq.heapreplace
    for _ in range(settings.num_transactions):
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
    on every run. Errors: InvalidInput (field ``start``) when a timestamp
    would reach 2100-01-01, raised when that transaction is reached.
    """
    return map(to_transaction, generate_raw(settings))
