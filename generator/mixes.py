"""Mixes: named sets of the generator's parameters, each imitating a kind of data.

A :class:`Mix` says how accounts spend (pace, favourite merchants, the odd
legitimate big purchase), which fraud is injected and how often, how
compromised merchants behave, and when each fraud label becomes known. Three
are named (``pgfraud generate --mix``):

- ``realistic`` (the default of ``pgfraud generate``, ``make run`` and
  ``make seed``): fraud about 0.1-0.5% of transactions, cards that pay at
  many merchants besides a few favourites, months of history, merchants
  breached for weeks whose fraud is spread over many cards, labels known days
  to weeks after the fraud. ``Settings`` in Python keeps ``legacy`` as its
  default, so code written against it makes the same data as before.
- ``shifted``: a differently shaped realistic mix, for checking that rule
  settings chosen on one mix hold on another: other scenario weights, fewer
  favourites used less, a faster pace, more and shorter breaches, labels
  sooner.
- ``legacy``: the mix of earlier versions, byte for byte (fraud about 9% of
  transactions, 85% of purchases at 2-8 favourites, years of history over
  100 accounts, cards skimmed at a merchant drained elsewhere days later,
  labels known at the transaction's own time).

Every parameter, with the real pattern it imitates, is in docs/data.md
("Mixes"). Times are epoch milliseconds, amounts integer cents.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import random
from dataclasses import dataclass

from pgfraud.errors import InvalidInput
from pgfraud.generator.profiles import (
    DAY_MS,
    FAVOURITE_SHARE,
    FAVOURITES_RANGE,
    HOUR_MS,
    MEAN_GAP_RANGE_MS,
    account_rng,
)
from pgfraud.generator.scenarios import SCENARIOS


@dataclass(frozen=True)
class Mix:
    """The generator's parameters for one kind of data (see docs/data.md, "Mixes").

    - ``fraud_rate``: chance that an account's step starts a fraud scenario.
    - ``scenario_weights``: ``(name, weight)`` pairs, weights >= 0: which
      scenario a drawn fraud is, in proportion; None: uniformly among the
      scenarios asked for (``legacy``).
    - ``mean_gap_range_ms``: accounts' mean time between payments, log-uniform
      over this range.
    - ``favourites_range``: how many favourite merchants an account has;
      ``favourite_share``: the share of its normal purchases made at one.
    - ``big_purchase_share``: share of normal purchases that are a legitimate
      big-ticket purchase at a merchant drawn by popularity, of
      ``big_purchase_factor`` (low, high; uniform) times a normal amount.
    - ``merchant_fraud``: ``"drain"`` (``legacy``: a card used at a merchant
      while it is compromised is drained elsewhere days later; the merchants'
      schedule is in :mod:`~pgfraud.generator.profiles`) or ``"breach"`` (the
      ``compromised_merchant`` scenario is drawn like the others, and its
      payments go through a merchant breached at that moment).
    - ``breach_every_ms``: one merchant is breached per slot of this length
      (its id uniform over the least popular ``breach_among`` share of the
      merchants, the highest ids: small shops), from a uniform time in its
      slot, for ``breach_length_ms`` (low, high; uniform); 0: no breaches.
    - ``label_delay_ms``: (low, high), log-uniform: how long after an
      incident's last payment its labels become known (``known_at``); None:
      known at each transaction's own time (``legacy``).
    """

    name: str
    fraud_rate: float
    scenario_weights: tuple[tuple[str, float], ...] | None
    mean_gap_range_ms: tuple[int, int]
    favourites_range: tuple[int, int]
    favourite_share: float
    big_purchase_share: float = 0.0
    big_purchase_factor: tuple[float, float] = (1.0, 1.0)
    merchant_fraud: str = "drain"
    breach_every_ms: int = 0
    breach_length_ms: tuple[int, int] = (0, 0)
    breach_among: float = 1.0
    label_delay_ms: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        def bad(field: str, message: str) -> InvalidInput:
            return InvalidInput(f"{field} {message}", field=field)

        if not 0.0 <= self.fraud_rate <= 1.0:
            raise bad("fraud_rate", "must be from 0 to 1")
        if self.scenario_weights is not None:
            for name, weight in self.scenario_weights:
                if name not in SCENARIOS:
                    raise bad("scenario_weights", f"has an unknown scenario {name!r}")
                if not (math.isfinite(weight) and weight >= 0):
                    raise bad("scenario_weights", f"of {name} must be a number >= 0")
        low, high = self.favourites_range
        if not 1 <= low <= high <= 64:
            raise bad("favourites_range", "must be 1 <= low <= high <= 64")
        if not 0.0 <= self.favourite_share <= 1.0:
            raise bad("favourite_share", "must be from 0 to 1")
        if not 0.0 <= self.big_purchase_share <= 1.0:
            raise bad("big_purchase_share", "must be from 0 to 1")
        if self.merchant_fraud not in ("drain", "breach"):
            raise bad("merchant_fraud", "must be drain or breach")
        short, long = self.breach_length_ms
        if self.merchant_fraud == "breach" and (self.breach_every_ms < 1 or not 1 <= short <= long):
            raise bad("breach_every_ms", "must be >= 1, with a breach length of at least 1 ms")
        if not 0.0 < self.breach_among <= 1.0:
            raise bad("breach_among", "must be above 0, at most 1")
        delays = self.label_delay_ms
        if delays is not None and not 1 <= delays[0] <= delays[1]:
            raise bad("label_delay_ms", "must be 1 <= low <= high")

    def weight(self, name: str) -> float:
        """The weight of scenario ``name`` (1 when the mix draws uniformly, 0 when unnamed)."""
        if self.scenario_weights is None:
            return 1.0
        return dict(self.scenario_weights).get(name, 0.0)


LEGACY = Mix(
    name="legacy",
    fraud_rate=0.01,
    scenario_weights=None,
    mean_gap_range_ms=MEAN_GAP_RANGE_MS,
    favourites_range=FAVOURITES_RANGE,
    favourite_share=FAVOURITE_SHARE,
)

REALISTIC = Mix(
    name="realistic",
    fraud_rate=0.0008,
    scenario_weights=(
        ("card_testing", 0.1),
        ("account_takeover", 0.25),
        ("compromised_merchant", 0.5),
        ("slow_compromise", 0.1),
        ("bot_burst", 0.05),
    ),
    mean_gap_range_ms=(8 * HOUR_MS, 5 * DAY_MS),
    favourites_range=(2, 5),
    favourite_share=0.6,
    big_purchase_share=0.005,
    big_purchase_factor=(3.0, 8.0),
    merchant_fraud="breach",
    breach_every_ms=21 * DAY_MS,
    breach_length_ms=(14 * DAY_MS, 42 * DAY_MS),
    breach_among=0.5,
    label_delay_ms=(2 * DAY_MS, 28 * DAY_MS),
)

SHIFTED = Mix(
    name="shifted",
    fraud_rate=0.0005,
    scenario_weights=(
        ("card_testing", 0.2),
        ("account_takeover", 0.2),
        ("compromised_merchant", 0.3),
        ("slow_compromise", 0.2),
        ("bot_burst", 0.1),
    ),
    mean_gap_range_ms=(4 * HOUR_MS, 3 * DAY_MS),
    favourites_range=(1, 3),
    favourite_share=0.4,
    big_purchase_share=0.01,
    big_purchase_factor=(2.0, 6.0),
    merchant_fraud="breach",
    breach_every_ms=5 * DAY_MS,
    breach_length_ms=(7 * DAY_MS, 28 * DAY_MS),
    label_delay_ms=(1 * DAY_MS, 14 * DAY_MS),
)

MIXES: dict[str, Mix] = {m.name: m for m in (REALISTIC, SHIFTED, LEGACY)}
"""The named mixes; the first is the default of ``pgfraud generate``."""


def get_mix(mix: str | Mix) -> Mix:
    """The Mix named ``mix`` (or ``mix`` itself). Errors: InvalidInput (field ``mix``)."""
    if isinstance(mix, Mix):
        return mix
    try:
        return MIXES[mix]
    except KeyError:
        raise InvalidInput(
            f"mix must be one of {', '.join(MIXES)}, not {mix!r}", field="mix"
        ) from None


def with_overrides(mix: Mix, **changes: object) -> Mix:
    """``mix`` with the given fields changed (None leaves a field as it is).

    ``scenario_weights`` given as pairs are merged into the mix's: a scenario
    not named keeps its weight (1 for a mix that draws uniformly).
    Errors: InvalidInput naming the field.
    """
    changes = {k: v for k, v in changes.items() if v is not None}
    weights = changes.get("scenario_weights")
    if weights is not None:
        merged = {name: mix.weight(name) for name in SCENARIOS}
        merged.update(dict(weights))  # type: ignore[arg-type]
        changes["scenario_weights"] = tuple(merged.items())
    return dataclasses.replace(mix, **changes) if changes else mix  # type: ignore[arg-type]


def parse_weights(text: str) -> tuple[tuple[str, float], ...]:
    """``"card_testing=1,bot_burst=0.5"`` as ``(name, weight)`` pairs.

    Errors: ValueError naming the unknown scenario or the bad weight.
    """
    pairs = []
    for part in text.split(","):
        if not part.strip():
            continue
        name, sep, value = part.partition("=")
        name = name.strip()
        if name not in SCENARIOS:
            raise ValueError(f"unknown scenario {name!r}; choose from {', '.join(SCENARIOS)}")
        try:
            weight = float(value) if sep else math.nan
        except ValueError:
            weight = math.nan
        if not (math.isfinite(weight) and weight >= 0):
            raise ValueError(f"the weight of {name} must be a number >= 0, as {name}=2")
        pairs.append((name, weight))
    if not pairs:
        raise ValueError("give weights as name=weight pairs, as card_testing=1,bot_burst=0.5")
    return tuple(pairs)


def parse_days(text: str) -> tuple[int, int]:
    """``"2-28"`` (days, fractions allowed) or ``"7"`` (low = high) as ms (low, high).

    Errors: ValueError unless 0 < low <= high <= 3660 days.
    """
    low_text, _, high_text = text.partition("-")
    try:
        low = float(low_text)
        high = float(high_text) if high_text.strip() else low
    except ValueError:
        raise ValueError(f"give days as LOW-HIGH or DAYS (as 2-28), not {text!r}") from None
    if not (math.isfinite(low) and math.isfinite(high) and 0 < low <= high <= 3660):
        raise ValueError(f"days must satisfy 0 < LOW <= HIGH <= 3660, not {text!r}")
    return max(1, round(low * DAY_MS)), max(1, round(high * DAY_MS))


def label_delay(rng: random.Random, delay_ms: tuple[int, int]) -> int:
    """A labelling delay in ms: log-uniform over ``delay_ms`` (low, high)."""
    low, high = delay_ms
    return round(math.exp(rng.uniform(math.log(low), math.log(high))))


@functools.lru_cache(maxsize=4096)
def _breach(
    seed: int, merchants: int, slot: int, every_ms: int, length_ms: tuple[int, int], among: float
) -> tuple[int, int, int]:
    rng = account_rng(seed, 0, f"breaches/{every_ms}/{slot}")
    merchant = merchants - rng.randrange(max(1, math.ceil(among * merchants)))
    start = slot * every_ms + rng.randrange(every_ms)
    return merchant, start, start + rng.randint(*length_ms)


def breached_merchants(seed: int, merchants: int, mix: Mix, ms: int) -> list[int]:
    """Merchants breached at epoch ms ``ms``, oldest breach first (may repeat a merchant).

    The breach of slot ``k`` (``[k, k + 1) x mix.breach_every_ms`` from the
    Unix epoch) is drawn from ``account_rng(seed, 0,
    "breaches/<breach_every_ms>/<k>")``: a merchant uniform over the
    ``ceil(breach_among x merchants)`` highest ids, a start uniform in the
    slot, a length uniform over ``breach_length_ms``. Empty for a mix without breaches, and possibly
    at a moment between breaches.
    """
    every = mix.breach_every_ms
    if mix.merchant_fraud != "breach":
        return []
    slot = ms // every
    back = -(-mix.breach_length_ms[1] // every)  # slots a breach can reach forward
    found = []
    for k in range(slot - back, slot + 1):
        merchant, start, end = _breach(
            seed, merchants, k, every, mix.breach_length_ms, mix.breach_among
        )
        if start <= ms < end:
            found.append(merchant)
    return found
