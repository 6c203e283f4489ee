"""Injected fraud scenarios: short bursts of fraudulent transactions in one account.

A scenario starts where the account's next normal transaction would have
been, and replaces it. It returns its transactions as ``(offset_ms, cents)``
pairs: milliseconds after the scenario's start (the first is 0, then strictly
increasing) and the amount in cents. Every one of them is labelled with the
scenario's name.

- ``card_testing``: a thief checks a stolen card with 6 to 12 tiny payments
  (0.00 .. 2.00 currency units), 1 to 9 seconds apart. Made to trip the
  ``rapid_succession`` (under 10 s since the previous transaction) and
  ``velocity`` (more than 5 in an hour) rules.
- ``account_takeover``: 1 to 3 payments of 10 to 50 times the account's
  typical amount, 2 to 30 minutes apart. Made to trip ``amount_spike``
  (above 5 times the prior average) and, for big spenders, ``large_amount``.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from pgfraud.generator.profiles import MAX_CENTS, MINUTE_MS, Profile

Burst = list[tuple[int, int]]


@dataclass(frozen=True)
class Scenario:
    """A named fraud pattern; ``draw(rng, profile)`` returns its ``(offset_ms, cents)`` pairs."""

    name: str
    description: str
    draw: Callable[[random.Random, Profile], Burst]


def _card_testing(rng: random.Random, profile: Profile) -> Burst:
    burst: Burst = []
    offset = 0
    for i in range(rng.randint(6, 12)):
        if i:
            offset += rng.randint(1_000, 9_000)
        burst.append((offset, rng.randint(0, 200)))
    return burst


def _account_takeover(rng: random.Random, profile: Profile) -> Burst:
    burst: Burst = []
    offset = 0
    for i in range(rng.randint(1, 3)):
        if i:
            offset += rng.randint(2 * MINUTE_MS, 30 * MINUTE_MS)
        cents = round(profile.typical_cents * rng.uniform(10.0, 50.0))
        burst.append((offset, min(cents, MAX_CENTS)))
    return burst


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "card_testing",
            "6-12 payments of 0.00-2.00, 1-9 seconds apart",
            _card_testing,
        ),
        Scenario(
            "account_takeover",
            "1-3 payments of 10-50x the account's typical amount, 2-30 minutes apart",
            _account_takeover,
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
