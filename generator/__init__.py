"""The generator: realistic, labelled fake transactions, streamed to a destination.

Each account has a profile (typical amount, spread, pace; see
:mod:`~pgfraud.generator.profiles`); fraud scenarios are injected at a rate
(:mod:`~pgfraud.generator.scenarios`); the accounts' streams are merged in
time order with O(accounts) memory (:mod:`~pgfraud.generator.stream`) and go
to COPY, INSERT, the HTTP API or CSV (:mod:`~pgfraud.generator.sinks`). A
mix (:mod:`~pgfraud.generator.mixes`) sets the parameters of all of these.
The same seed and options give the same data, byte for byte. Ground-truth
labels go to a sidecar CSV ``transaction_id,scenario,known_at``, never into
``transactions``.

Public API::

    Settings(num_transactions=10_000, accounts=100, seed=42, start=DEFAULT_START,
             fraud_rate=None, scenarios=tuple(SCENARIOS), first_transaction_id=1,
             merchants=1000, mix="legacy")      # mix: a name of MIXES or a Mix
    MIXES, Mix                                  # the named mixes: realistic, shifted, legacy
    generate_transactions(settings) -> Iterator[GeneratedTransaction]
    generate_to(settings, sink, *, labels_path, database_url, post_url, api_token,
                batch_size, rate, output, append, progress) -> dict
    seed_database(database_url, num_transactions=10_000, accounts=100, seed=42,
                  labels_path=Path("labels.csv"), progress=False, mix="realistic") -> dict
    generate   # the click command ``pgfraud generate``
"""

from pgfraud.generator.cli import generate
from pgfraud.generator.mixes import MIXES, Mix
from pgfraud.generator.runner import generate_to, seed_database, summary_line
from pgfraud.generator.scenarios import SCENARIOS, parse_scenarios
from pgfraud.generator.sinks import SINKS, SinkError
from pgfraud.generator.stream import (
    DEFAULT_START,
    GeneratedTransaction,
    Settings,
    generate_transactions,
)

__all__ = [
    "DEFAULT_START",
    "SCENARIOS",
    "SINKS",
    "MIXES",
    "GeneratedTransaction",
    "Mix",
    "SinkError",
    "Settings",
    "generate",
    "generate_to",
    "generate_transactions",
    "parse_scenarios",
    "seed_database",
    "summary_line",
]
