"""The generator: realistic, labelled fake transactions, streamed to a destination.

Each account has a profile (typical amount, spread, pace; see
:mod:`~pgfraud.generator.profiles`); fraud scenarios are injected at a rate
(:mod:`~pgfraud.generator.scenarios`); the accounts' streams are merged in
time order with O(accounts) memory (:mod:`~pgfraud.generator.stream`) and go
to COPY, INSERT, the HTTP API or CSV (:mod:`~pgfraud.generator.sinks`). The
same seed and options give the same data, byte for byte. Ground-truth labels
go to a sidecar CSV ``transaction_id,scenario``, never into ``transactions``.

Public API::

    Settings(num_transactions=10_000, accounts=100, seed=42, start=DEFAULT_START,
             fraud_rate=0.01, scenarios=("card_testing", "account_takeover"),
             first_transaction_id=1)
    generate_transactions(settings) -> Iterator[GeneratedTransaction]
    generate_to(settings, sink, *, labels_path, database_url, post_url, api_token,
                batch_size, rate, output, append, progress) -> dict
    seed_database(database_url, num_transactions=10_000, accounts=100, seed=42,
                  labels_path=Path("labels.csv"), progress=False) -> dict
    generate   # the click command ``pgfraud generate``
"""

from pgfraud.generator.cli import generate
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
    "GeneratedTransaction",
    "SinkError",
    "Settings",
    "generate",
    "generate_to",
    "generate_transactions",
    "parse_scenarios",
    "seed_database",
    "summary_line",
]
