"""Account profiles: how much and how often each account normally spends.

Every account gets a profile drawn from its own random stream, seeded by
``(seed, account_id)`` only, so an account's profile does not depend on how
many other accounts there are:

- ``typical_cents``: the median amount of a normal transaction, in cents.
  Lognormal across accounts, median 40.00 currency units (most accounts
  between about 12 and 130); one account in 20 spends ten times more.
- ``spread``: the standard deviation of the natural log of its amounts
  (0.25 .. 0.8), so an account's amounts are lognormal around its median.
- ``mean_gap_ms``: the mean elapsed time between its transactions, in
  milliseconds; log-uniform from 2 hours to 3 days across accounts (a card
  used a few times a day to twice a week). Gaps
  are exponential (a Poisson process per account).

Merchants (ids 1..merchants) have profiles too, drawn from ``(seed,
merchant_id)`` only:

- popularity: a random purchase lands on merchant ``floor((merchants+1)^u)``
  for uniform ``u`` (log-uniform: low ids are the big shops; merchant 1 takes
  about 10% of random purchases among 1,000);
- a compromise schedule: in each 30-day period (counted from the Unix
  epoch), a merchant is compromised with probability ``2 x fraud_rate``
  (capped at 1), for 2 to 5 days starting at a uniform time in the period.

Each account has 2 to 8 favourite merchants (drawn by popularity from its
own stream) and makes 85% of its normal purchases at one of them, the rest
at a merchant drawn by popularity.

These are the ``legacy`` mix's numbers; a mix (:mod:`~pgfraud.generator.mixes`)
may give other ranges for the pace, the favourites and their share, and
compromise merchants its own way (breaches).

Amounts are whole cents (ints) until they leave the generator as Decimal;
floats are used only to draw, never in output.
"""

from __future__ import annotations

import functools
import hashlib
import math
import random
from dataclasses import dataclass

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS

MEDIAN_TYPICAL_CENTS = 4_000  # 40.00 currency units
TYPICAL_LOG_SIGMA = 0.6
BIG_SPENDER_SHARE = 0.05
BIG_SPENDER_FACTOR = 10
SPREAD_RANGE = (0.25, 0.8)
MEAN_GAP_RANGE_MS = (2 * HOUR_MS, 3 * DAY_MS)
MAX_CENTS = 10**15 - 1  # amounts stay below 10^13 currency units

FAVOURITES_RANGE = (2, 8)
FAVOURITE_SHARE = 0.85
COMPROMISE_PERIOD_MS = 30 * DAY_MS
COMPROMISE_LENGTH_MS = (2 * DAY_MS, 5 * DAY_MS)
COMPROMISE_PER_FRAUD_RATE = 2.0  # chance per merchant and period = this x fraud_rate


def account_rng(seed: int, account_id: int, stream: str) -> random.Random:
    """A random stream for one account and purpose (``"profile"``, ``"merchants"``).

    Account 0 is the run's own: ``"first-uses/<first id>"``, ``"events/<first id>"``.

    Seeded from SHA-256 of ``pgfraud/<seed>/<account_id>/<stream>``, so it is
    the same on every run and platform, and independent of other accounts.
    """
    digest = hashlib.sha256(f"pgfraud/{seed}/{account_id}/{stream}".encode()).digest()
    return random.Random(int.from_bytes(digest[:16], "big"))


@dataclass(frozen=True, slots=True)
class Profile:
    """An account's normal behaviour.

    ``typical_cents``: median amount in cents (>= 100); ``spread``: sigma of
    log(amount); ``mean_gap_ms``: mean elapsed milliseconds between transactions.
    """

    account_id: int
    typical_cents: int
    spread: float
    mean_gap_ms: int

    def next_gap_ms(self, rng: random.Random) -> int:
        """Milliseconds to the next transaction: exponential with mean ``mean_gap_ms``, >= 1."""
        return gap_ms(rng, self.mean_gap_ms)

    def normal_cents(self, rng: random.Random) -> int:
        """A normal amount in cents: lognormal around ``typical_cents``, 1 .. MAX_CENTS."""
        return normal_cents(rng, self.typical_cents, self.spread)


def gap_ms(rng: random.Random, mean_gap_ms: int) -> int:
    """:meth:`Profile.next_gap_ms` from the profile's ``mean_gap_ms`` alone."""
    return max(1, round(rng.expovariate(1.0 / mean_gap_ms)))


def normal_cents(rng: random.Random, typical_cents: int, spread: float) -> int:
    """:meth:`Profile.normal_cents` from the profile's two numbers alone."""
    cents = round(typical_cents * math.exp(rng.gauss(0.0, spread)))
    return min(max(cents, 1), MAX_CENTS)


def make_profile(
    seed: int, account_id: int, mean_gap_range_ms: tuple[int, int] = MEAN_GAP_RANGE_MS
) -> Profile:
    """The profile of ``account_id`` for ``seed`` (see the module docstring).

    ``mean_gap_range_ms``: the range of ``mean_gap_ms`` across accounts
    (log-uniform; a mix's, see :mod:`~pgfraud.generator.mixes`).
    """
    rng = account_rng(seed, account_id, "profile")
    typical = MEDIAN_TYPICAL_CENTS * math.exp(rng.gauss(0.0, TYPICAL_LOG_SIGMA))
    if rng.random() < BIG_SPENDER_SHARE:
        typical *= BIG_SPENDER_FACTOR
    spread = rng.uniform(*SPREAD_RANGE)
    low, high = mean_gap_range_ms
    mean_gap = math.exp(rng.uniform(math.log(low), math.log(high)))
    return Profile(
        account_id=account_id,
        typical_cents=max(100, round(typical)),
        spread=spread,
        mean_gap_ms=round(mean_gap),
    )


def pick_merchant(rng: random.Random, merchants: int) -> int:
    """A merchant drawn by popularity: ``floor((merchants + 1) ** u)``, in 1..merchants."""
    return min(merchants, max(1, math.floor(math.exp(rng.random() * math.log(merchants + 1)))))


def favourite_merchants(
    seed: int, account_id: int, merchants: int, count_range: tuple[int, int] = FAVOURITES_RANGE
) -> tuple[int, ...]:
    """The account's 2..8 (``count_range``) favourite merchants (drawn by popularity,
    repeats dropped)."""
    rng = account_rng(seed, account_id, "merchants")
    count = rng.randint(*count_range)
    return tuple(dict.fromkeys(pick_merchant(rng, merchants) for _ in range(count)))


@functools.lru_cache(maxsize=200_000)
def _compromise(seed: int, merchant_id: int, period: int, chance: float) -> tuple[int, int] | None:
    rng = account_rng(seed, merchant_id, f"merchant-compromise/{period}")
    if rng.random() >= chance:
        return None
    start = period * COMPROMISE_PERIOD_MS + rng.randrange(COMPROMISE_PERIOD_MS)
    return start, start + rng.randint(*COMPROMISE_LENGTH_MS)


def merchant_compromised(seed: int, merchant_id: int, ms: int, fraud_rate: float) -> bool:
    """Whether the merchant is compromised at epoch ms ``ms`` (see the module docstring)."""
    chance = min(1.0, COMPROMISE_PER_FRAUD_RATE * fraud_rate)
    if chance <= 0.0:
        return False
    period = ms // COMPROMISE_PERIOD_MS
    for p in (period, period - 1):  # a compromise may run over into the next period
        window = _compromise(seed, merchant_id, p, chance)
        if window is not None and window[0] <= ms < window[1]:
            return True
    return False
