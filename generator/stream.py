"""The transaction stream: every account's events merged in time order.

Accounts come into use one by one, in id order: the first transactions of
the ``accounts`` accounts are spread uniformly at random over the first
``FIRST_USE_WINDOW_MS`` after the start (drawn as sorted uniform order
statistics, one at a time), and an account's profile and favourite
merchants (drawn from its own random streams, see
:mod:`pgfraud.generator.profiles`) are made only when its first transaction
is reached. A heap keyed by each active account's next timestamp merges the
accounts, so memory grows with the accounts that have transacted so far (at
most one per transaction), never with ``accounts`` itself: one transaction
from 10^8 accounts costs one profile. An account in use is a few numbers in
flat arrays (about 160 bytes), not an object with a random generator of its
own: its events are drawn from one random stream for the whole run, in
output order (see :func:`generate_raw`).

Each account steps along its own time line, from its first use: each step
decides whether a fraud scenario starts (probability ``fraud_rate``) and
then, if none did, makes a normal purchase (a favourite merchant 85% of the
time, else one by popularity; a lognormal amount), and the next step comes
an exponential gap later (after a burst: after its last payment). A normal
purchase at a merchant that is compromised at that moment (with
``compromised_merchant`` among the scenarios) schedules the card's drain 1
to 5 days later, once per card at a time; its payments go out before the
first step at or after them. Times that would collide move 1 ms later.

Transaction ids are given out in output order, so they are sequential and in
time order (ties in time: lower account id first).
"""

from __future__ import annotations

import bisect
import dataclasses
import heapq
import math
import random
from array import array
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, NamedTuple

from pgfraud.errors import InvalidInput
from pgfraud.generator.mixes import Mix, breached_merchants, get_mix, label_delay
from pgfraud.generator.profiles import (
    DAY_MS,
    MAX_CENTS,
    Profile,
    account_rng,
    favourite_merchants,
    gap_ms,
    make_profile,
    merchant_compromised,
    normal_cents,
    pick_merchant,
)
from pgfraud.generator.scenarios import SCENARIOS, breach_burst
from pgfraud.wire import MAX_ID, MAX_MS, MAX_TIME, MIN_TIME, format_timestamp

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DEFAULT_START = datetime(2024, 1, 1, tzinfo=UTC)
FIRST_USE_WINDOW_MS = 3 * DAY_MS  # every account's first transaction falls in this window


class GeneratedTransaction(NamedTuple):
    """One generated transaction.

    ``timestamp``: aware UTC datetime, whole milliseconds; ``amount``: Decimal
    currency units with exactly 2 decimal places; ``scenario``: the fraud
    scenario's name, or None for a normal transaction (the ground-truth label,
    never stored with the transaction); ``merchant_id``: where (1..merchants);
    ``known_at``: for a fraudulent one, when its label became known (aware UTC,
    whole ms, at or after ``timestamp``; the mix's labelling delay), else None.
    """

    transaction_id: int
    account_id: int
    timestamp: datetime
    amount: Decimal
    scenario: str | None
    merchant_id: int | None = None
    known_at: datetime | None = None


@dataclasses.dataclass(frozen=True)
class Settings:
    """What to generate; checked on creation.

    ``num_transactions`` >= 1; ``accounts`` >= 1 (ids 1..accounts); ``seed``
    any int; ``start``: aware datetime in 2000..2100, every timestamp is after
    it; ``fraud_rate`` in [0, 1]: the chance that an account's next event
    starts a fraud scenario instead of a normal transaction (None, the
    default: the mix's); ``scenarios``: names from SCENARIOS (at least one);
    ``first_transaction_id`` >= 0; ``merchants`` >= 1 (ids 1..merchants);
    ``mix``: a name from ``mixes.MIXES`` or a ``mixes.Mix`` (held as the Mix
    after creation). The default mix here is ``"legacy"``, so that code
    written before mixes makes the same data; ``pgfraud generate``,
    ``seed_database`` and ``make seed`` default to ``"realistic"``.
    Errors: InvalidInput naming the field.
    """

    num_transactions: int = 10_000
    accounts: int = 100
    seed: int = 42
    start: datetime = DEFAULT_START
    fraud_rate: float | None = None
    scenarios: tuple[str, ...] = tuple(SCENARIOS)
    first_transaction_id: int = 1
    merchants: int = 1000
    mix: str | Mix = "legacy"

    def __post_init__(self) -> None:
        def bad(field: str, message: str) -> InvalidInput:
            return InvalidInput(f"{field} {message}", field=field)

        mix = get_mix(self.mix)
        object.__setattr__(self, "mix", mix)
        if self.fraud_rate is None:
            object.__setattr__(self, "fraud_rate", mix.fraud_rate)

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
        if not 1 <= self.merchants <= MAX_ID:
            raise bad("merchants", "must be from 1 to 9223372036854775807")
        if self.first_transaction_id < 0:
            raise bad("first_transaction_id", "must be >= 0")
        if self.first_transaction_id + self.num_transactions - 1 > MAX_ID:
            raise bad("first_transaction_id", "+ num_transactions passes 2^63-1")

    @property
    def start_ms(self) -> int:
        """``start`` in epoch milliseconds (sub-millisecond digits truncated)."""
        delta = self.start - EPOCH
        return delta // timedelta(milliseconds=1)


# The scenario of a transaction as a small code (arrays hold codes, not names):
# 0 is a normal transaction, k is the k-th scenario of SCENARIOS.
SCENARIO_NAMES: tuple[str | None, ...] = (None, *SCENARIOS)
_SCENARIO_CODE = {name: code for code, name in enumerate(SCENARIO_NAMES)}
_DRAIN_CODE = _SCENARIO_CODE["compromised_merchant"]
_KEY_SHIFT = 64  # a heap key is (epoch ms << 64) | account index: time, then lower id first
_KEY_MASK = (1 << _KEY_SHIFT) - 1


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
# account_id, epoch ms, cents, scenario, merchant_id, known_at epoch ms or
# None); the fields at 0, 1, 4 and 5 are the same as GeneratedTransaction's.
RawTransaction = tuple[int, int, int, int, str | None, int | None, int | None]


def generate_raw(settings: Settings) -> Iterator[RawTransaction]:
    """:func:`generate_transactions` as plain tuples (epoch ms, integer cents):
    the same transactions, without building a datetime and a Decimal for each
    (the COPY sink formats them as text directly).

    Every account in use is a few numbers at its index (account_id - 1) in
    flat arrays: its profile, its favourite merchants and its next event (the
    heap holds one int per account: that event's time and the index). Only
    an account in the middle of a fraud burst, or with a drain scheduled,
    has more (an entry in ``resume`` or ``pending``). About 160 bytes per
    account in use, so 10^5 accounts cost about 16 MB.

    Each account steps as the module docstring says. The run's random
    stream is ``account_rng(seed, 0, "events/<first transaction id>")``. An
    account's first event is drawn from it when the account comes into use
    (a step at its first-use time); after each of its events goes out, its
    next one, in this order:

    - in a fraud burst: its next payment (no draw);
    - else the step time: the one before a drain payment went out, or else
      ``last + gap`` (an exponential gap, ``Profile.next_gap_ms``);
    - at the step time: the first drain payment due by then if any (no
      draw), else whether a fraud scenario starts (``random() <
      fraud_rate``, drawn even when the rate is 0); if it does, which one
      (``randrange``, or with the mix's scenario weights ``random()``) and
      its burst (``Scenario.draw``; for ``compromised_merchant`` in a mix
      with breaches, ``choice`` of a merchant breached then, then
      ``breach_burst``; when none is breached then, the step goes on as if
      no fraud had started); if not, with the mix's ``big_purchase_share`` above
      0 whether it is a big purchase (``random()``; if so a merchant by
      popularity, the amount, then ``uniform`` of its factor), else a
      favourite merchant (``random() < favourite_share``, then
      ``randrange`` over the favourites) or one by popularity, and the
      amount (``Profile.normal_cents``); then, if the merchant is
      compromised then (``legacy`` drains) and no drain is pending, the
      drain (``randint`` of its delay, then its draw). Times that would
      collide move 1 ms later.

    Labelling delays come from a stream of their own,
    ``account_rng(seed, 0, "label-delays/<first transaction id>")``, one
    draw per fraud incident (a burst, a drain) in the order the incidents
    are drawn, so they never change the transactions. Every payment of an
    incident becomes known at once: its last payment's time plus the delay
    (never before the payment itself). A mix without delays (``legacy``)
    gives each fraudulent transaction its own time.
    """
    seed = settings.seed
    merchants = settings.merchants
    fraud_rate = settings.fraud_rate
    mix = settings.mix
    assert isinstance(mix, Mix) and fraud_rate is not None  # resolved by Settings
    breaches = mix.merchant_fraud == "breach"
    drawn = [
        (SCENARIOS[name], _SCENARIO_CODE[name])
        for name in settings.scenarios
        if not (SCENARIOS[name].scheduled and not breaches) and mix.weight(name) > 0
    ]
    weighted = mix.scenario_weights is not None
    bounds: list[float] = []  # cumulative weights of `drawn`
    for _, code in drawn:
        bounds.append((bounds[-1] if bounds else 0.0) + mix.weight(SCENARIO_NAMES[code] or ""))
    total_weight = bounds[-1] if bounds else 0.0
    drain = (
        SCENARIOS["compromised_merchant"]
        if "compromised_merchant" in settings.scenarios and not breaches
        else None
    )
    favourite_share = mix.favourite_share
    big_share = mix.big_purchase_share
    big_low, big_high = mix.big_purchase_factor
    delays = mix.label_delay_ms
    # Keyed by the first id too, so that a run appended after stored data
    # (same seed, later ids) goes on differently instead of repeating it.
    rng = account_rng(seed, 0, f"events/{settings.first_transaction_id}")
    delay_rng = account_rng(seed, 0, f"label-delays/{settings.first_transaction_id}")
    random_ = rng.random
    randrange = rng.randrange
    most = mix.favourites_range[1]

    # Per account in use, at index account_id - 1.
    typical = array("q")  # Profile.typical_cents
    spread = array("d")  # Profile.spread
    mean_gap = array("q")  # Profile.mean_gap_ms
    favourites = array("q")  # `most` slots per account, the first favourite_count used
    favourite_count = array("B")
    next_cents = array("q")  # the account's next event (its time is in the heap key)
    next_merchant = array("q")
    next_scenario = array("B")  # a code of SCENARIO_NAMES
    # Rare: an account in a burst -> [burst, next position, code, burst start ms];
    # an account whose drain payment is next -> the step time it goes before.
    resume: dict[int, list[Any] | int] = {}
    pending: dict[int, list[tuple[int, int, int]]] = {}  # drains scheduled, in time order
    # With labelling delays: when the labels of the account's latest fraud
    # incident become known (drains: of the one pending).
    known: dict[int, int] = {}
    drain_known: dict[int, int] = {}

    def pick(r: random.Random) -> int:
        return pick_merchant(r, merchants)

    def anywhere(r: random.Random) -> int:
        return r.randint(1, merchants)

    def profile(i: int) -> Profile:
        return Profile(i + 1, typical[i], spread[i], mean_gap[i])

    def report(start: int, burst: list[tuple[int, int, int]]) -> int:
        assert delays is not None
        return start + burst[-1][0] + label_delay(delay_rng, delays)

    def step(i: int, ms: int, last: int) -> int:
        """Draw account index i's next event at step time ``ms`` (its latest event
        at ``last``) into the next_* arrays; return its epoch ms."""
        queue = pending.get(i)
        if queue is not None and queue[0][0] <= ms:
            due, cents, merchant = queue.pop(0)
            if not queue:
                del pending[i]
            if delays is not None:
                known[i] = drain_known[i]
                if not queue:
                    del drain_known[i]
            resume[i] = ms
            next_cents[i] = cents
            next_merchant[i] = merchant
            next_scenario[i] = _DRAIN_CODE
            return max(due, last + 1)
        burst = None
        if random_() < fraud_rate and drawn:
            if weighted:
                scenario, code = drawn[
                    min(bisect.bisect(bounds, random_() * total_weight), len(drawn) - 1)
                ]
            else:
                scenario, code = drawn[randrange(len(drawn))]
            if code != _DRAIN_CODE:
                burst = scenario.draw(rng, profile(i), pick, anywhere)
            else:  # a mix with breaches: through a merchant breached now, if any
                breached = breached_merchants(seed, merchants, mix, ms)
                if breached:
                    burst = breach_burst(rng, profile(i), rng.choice(breached))
        if burst is not None:
            if delays is not None:
                known[i] = report(ms, burst)
            offset, cents, merchant = burst[0]
            if len(burst) > 1:
                resume[i] = [burst, 1, code, ms]
            next_cents[i] = cents
            next_merchant[i] = merchant
            next_scenario[i] = code
            return max(ms + offset, last + 1)
        if big_share and random_() < big_share:
            merchant = pick_merchant(rng, merchants)
            cents = normal_cents(rng, typical[i], spread[i]) * rng.uniform(big_low, big_high)
            next_cents[i] = min(max(round(cents), 1), MAX_CENTS)
        else:
            if random_() < favourite_share:
                merchant = favourites[i * most + randrange(favourite_count[i])]
            else:
                merchant = pick_merchant(rng, merchants)
            next_cents[i] = normal_cents(rng, typical[i], spread[i])
        next_merchant[i] = merchant
        next_scenario[i] = 0
        at = max(ms, last + 1)
        if (
            drain is not None
            and i not in pending
            and merchant_compromised(seed, merchant, at, fraud_rate)
        ):
            start = at + rng.randint(DAY_MS, 5 * DAY_MS)
            burst = drain.draw(rng, profile(i), pick, anywhere)
            pending[i] = [(start + offset, c, m) for offset, c, m in burst]
            if delays is not None:
                drain_known[i] = report(start, burst)
        return at

    heap: list[int] = []
    first = first_uses(settings)
    next_index = 0  # the next account not yet in use, as an index
    next_first: int | None = next(first)  # there is at least one account

    transaction_id = settings.first_transaction_id
    replace = heapq.heapreplace
    for _ in range(settings.num_transactions):
        # The next account not yet used comes in when its first-use time is
        # before every active account's next event; its first transaction is
        # then the next one out, so at most one account comes in per
        # transaction (ties: the active account, which has the lower id).
        if next_first is not None and (not heap or next_first < heap[0] >> _KEY_SHIFT):
            i = next_index
            account = make_profile(seed, i + 1, mix.mean_gap_range_ms)
            typical.append(account.typical_cents)
            spread.append(account.spread)
            mean_gap.append(account.mean_gap_ms)
            liked = favourite_merchants(seed, i + 1, merchants, mix.favourites_range)
            favourite_count.append(len(liked))
            favourites.extend(liked + (0,) * (most - len(liked)))
            next_cents.append(0)
            next_merchant.append(0)
            next_scenario.append(0)
            heapq.heappush(heap, step(i, next_first, next_first - 1) << _KEY_SHIFT | i)
            next_index += 1
            next_first = next(first, None)
        # (ms, account) is unique: one account's times strictly increase.
        key = heap[0]
        ms = key >> _KEY_SHIFT
        i = key & _KEY_MASK
        if ms >= MAX_MS:
            raise InvalidInput(
                f"transaction {transaction_id} would be at or after "
                f"{format_timestamp(MAX_TIME)}, the latest pgfraud stores: use more accounts, "
                "fewer transactions or an earlier start",
                field="start",
            )
        code = next_scenario[i]
        yield (
            transaction_id,
            i + 1,
            ms,
            next_cents[i],
            SCENARIO_NAMES[code],
            next_merchant[i],
            (ms if delays is None else max(ms, known[i])) if code else None,
        )
        transaction_id += 1
        then = resume.pop(i, None)
        if then is None:
            at = step(i, ms + gap_ms(rng, mean_gap[i]), ms)
        elif type(then) is int:
            at = step(i, then, ms)
        else:
            burst, position, code, start = then
            offset, next_cents[i], next_merchant[i] = burst[position]
            next_scenario[i] = code
            if position + 1 < len(burst):
                then[1] = position + 1
                resume[i] = then
            at = max(start + offset, ms + 1)
        replace(heap, at << _KEY_SHIFT | i)


def to_transaction(raw: RawTransaction) -> GeneratedTransaction:
    """A RawTransaction as a GeneratedTransaction (aware datetime, Decimal amount)."""
    transaction_id, account_id, ms, cents, scenario, merchant, known_ms = raw
    return GeneratedTransaction(
        transaction_id,
        account_id,
        EPOCH + timedelta(milliseconds=ms),
        Decimal(cents).scaleb(-2),
        scenario,
        merchant,
        None if known_ms is None else EPOCH + timedelta(milliseconds=known_ms),
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
