"""Injected fraud scenarios, each imitating a real-world pattern.

A scenario drawn by the fraud rate starts where the account's next normal
transaction would have been, and replaces it. It returns its transactions as
``(offset_ms, cents, merchant_id)`` triples: milliseconds after the
scenario's start (the first is 0, then strictly increasing), the amount in
cents and where. Every one of them is labelled with the scenario's name.
``pick`` draws a merchant (popular ones more often: see
:func:`pgfraud.generator.profiles.pick_merchant`); ``anywhere`` draws one
uniformly (a shop the account has most likely never used).

- ``card_testing``: a thief checks a stolen card with 6 to 12 tiny payments
  (0.00 .. 2.00) at one merchant, 1 to 9 seconds apart. Real pattern: bots
  validating stolen card numbers on a weak checkout. Caught by
  ``rapid_succession``, ``velocity`` and, for the first tiny payment,
  ``below_average``.
- ``account_takeover``: 1 to 3 payments of 10 to 50 times the account's
  typical amount, 2 to 30 minutes apart, at shops new to the account. Real
  pattern: a fraudster with the login buys resellable goods. Caught by
  ``amount_spike``, ``new_merchant_large``, ``large_amount``.
- ``compromised_merchant``: not drawn by the fraud rate but by the
  merchants' compromise schedule (see :mod:`pgfraud.generator.profiles`):
  every card used at a merchant while it is compromised is drained 1 to 5
  days later by 2 to 4 payments of 5 to 20 times its typical amount, 1 to 20
  minutes apart, at shops new to it. Real pattern: a skimmer or a breached
  checkout, the stolen cards cashed out days later. Caught by
  ``new_merchant_large`` and ``amount_spike``.
  In a mix with breaches (``realistic``, ``shifted``; see
  :mod:`pgfraud.generator.mixes`) the scenario is drawn like the others
  instead, and its payments go through a merchant breached at that moment
  (:func:`breach_burst`): 1 to 3 payments of 1 to 3 times a normal amount, 1
  to 60 minutes apart. Real pattern: card numbers stolen elsewhere cashed out
  through a breached or colluding merchant's checkout, for weeks, each card
  once or twice, in amounts that do not stand out. Caught by
  ``compromised_merchant`` (once labels of the merchant's earlier fraud are
  known), rarely by amount rules.
- ``slow_compromise``: 4 to 12 payments of 2 to 5 times the account's
  normal amounts, twice as often as it usually pays (mean gap half its own,
  at least 30 minutes: hours to days in all), at shops new to it. Real pattern:
  a fraudster who stays under the limits to last longer. Caught by
  ``new_merchant_run`` (several payments in a row at shops unused for 30
  days, above the usual together) and ``new_merchant_large`` (the hardest
  pattern here: see docs/data.md).
- ``bot_burst``: 10 to 30 payments of the account's normal amounts at one
  merchant, 5 to 60 seconds apart. Real pattern: scripted purchases
  (ticket or sneaker bots) with a stolen card. Caught by ``velocity``.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from pgfraud.generator.profiles import MAX_CENTS, MINUTE_MS, Profile

Burst = list[tuple[int, int, int]]
Pick = Callable[[random.Random], int]


@dataclass(frozen=True)
class Scenario:
    """A named fraud pattern; ``draw(rng, profile, pick, anywhere)`` returns its triples.

    ``scheduled``: drawn by the merchants' compromise schedule, not by the
    fraud rate (its draw is then the drain of one card).
    """

    name: str
    description: str
    draw: Callable[[random.Random, Profile, Pick, Pick], Burst]
    scheduled: bool = False


def _card_testing(rng: random.Random, profile: Profile, pick: Pick, anywhere: Pick) -> Burst:
    merchant = anywhere(rng)
    burst: Burst = []
    offset = 0
    for i in range(rng.randint(6, 12)):
        if i:
            offset += rng.randint(1_000, 9_000)
        burst.append((offset, rng.randint(0, 200), merchant))
    return burst


def _account_takeover(rng: random.Random, profile: Profile, pick: Pick, anywhere: Pick) -> Burst:
    burst: Burst = []
    offset = 0
    for i in range(rng.randint(1, 3)):
        if i:
            offset += rng.randint(2 * MINUTE_MS, 30 * MINUTE_MS)
        cents = round(profile.typical_cents * rng.uniform(10.0, 50.0))
        burst.append((offset, min(cents, MAX_CENTS), anywhere(rng)))
    return burst


def _drain(rng: random.Random, profile: Profile, pick: Pick, anywhere: Pick) -> Burst:
    burst: Burst = []
    offset = 0
    for i in range(rng.randint(2, 4)):
        if i:
            offset += rng.randint(MINUTE_MS, 20 * MINUTE_MS)
        cents = round(profile.typical_cents * rng.uniform(5.0, 20.0))
        burst.append((offset, min(cents, MAX_CENTS), anywhere(rng)))
    return burst


def breach_burst(rng: random.Random, profile: Profile, merchant: int) -> Burst:
    """The ``compromised_merchant`` payments of one card through breached ``merchant``:
    1 to 3 payments of 1 to 3 times a normal amount, 1 to 60 minutes apart."""
    burst: Burst = []
    offset = 0
    for i in range(rng.randint(1, 3)):
        if i:
            offset += rng.randint(MINUTE_MS, 60 * MINUTE_MS)
        cents = round(profile.normal_cents(rng) * rng.uniform(1.0, 3.0))
        burst.append((offset, min(max(cents, 1), MAX_CENTS), merchant))
    return burst


def _slow_compromise(rng: random.Random, profile: Profile, pick: Pick, anywhere: Pick) -> Burst:
    factor = rng.uniform(2.0, 5.0)
    mean_gap = max(30 * MINUTE_MS, profile.mean_gap_ms // 2)
    burst: Burst = []
    offset = 0
    for i in range(rng.randint(4, 12)):
        if i:
            offset += max(1, round(rng.expovariate(1.0 / mean_gap)))
        cents = round(profile.normal_cents(rng) * factor)
        burst.append((offset, min(max(cents, 1), MAX_CENTS), anywhere(rng)))
    return burst


def _bot_burst(rng: random.Random, profile: Profile, pick: Pick, anywhere: Pick) -> Burst:
    merchant = pick(rng)
    burst: Burst = []
    offset = 0
    for i in range(rng.randint(10, 30)):
        if i:
            offset += rng.randint(5_000, 60_000)
        burst.append((offset, profile.normal_cents(rng), merchant))
    return burst


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "card_testing",
            "6-12 payments of 0.00-2.00 at one merchant, 1-9 seconds apart",
            _card_testing,
        ),
        Scenario(
            "account_takeover",
            "1-3 payments of 10-50x the account's typical amount, 2-30 minutes apart, new shops",
            _account_takeover,
        ),
        Scenario(
            "compromised_merchant",
            "cards used at a compromised merchant drained 1-5 days later: 2-4 payments of "
            "5-20x typical, 1-20 minutes apart, new shops",
            _drain,
            scheduled=True,
        ),
        Scenario(
            "slow_compromise",
            "4-12 payments of 2-5x the normal amounts, twice as often, new shops",
            _slow_compromise,
        ),
        Scenario(
            "bot_burst",
            "10-30 payments of normal amounts at one merchant, 5-60 seconds apart",
            _bot_burst,
        ),
    )
}
"""Every scenario by name, in the canonical order used to pick among them."""


def parse_scenarios(text: str) -> tuple[str, ...]:
    """Scenario names from a comma list (``"all"`` means every one), in canonical order.

    Canonical order means ``"a,b"`` and ``"b,a"`` generate the same data.
    Errors: ValueError naming the unknown scenario, or for an empty list.
    """
    names = {part.strip() for part in text.split(",") if part.strip()}
    if not names:
        raise ValueError(f"give at least one scenario: {', '.join(SCENARIOS)} or all")
    if "all" in names:
        return tuple(SCENARIOS)
    unknown = sorted(names - SCENARIOS.keys())
    if unknown:
        raise ValueError(
            f"unknown scenario {unknown[0]!r}; choose from {', '.join(SCENARIOS)} or all"
        )
    return tuple(name for name in SCENARIOS if name in names)
