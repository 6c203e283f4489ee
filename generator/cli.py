"""``pgfraud generate``: the click command of the generator.

Every option can also come from an environment variable ``PGFRAUD_<OPTION>``
(dashes as underscores: ``PGFRAUD_NUM_TRANSACTIONS=1000000``); the command
line wins.
"""

from __future__ import annotations

import contextlib
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import click
from pydantic import TypeAdapter, ValidationError

from pgfraud import config
from pgfraud.clitools import Float, Int, one_line_errors
from pgfraud.errors import PgfraudError, TransactionConflict
from pgfraud.generator.mixes import MIXES, get_mix, parse_days, parse_weights, with_overrides
from pgfraud.generator.runner import generate_to, labels_reminder, summary_line
from pgfraud.generator.scenarios import SCENARIOS, parse_scenarios
from pgfraud.generator.sinks import SINKS
from pgfraud.generator.stream import Settings
from pgfraud.wire import MAX_ID, Timestamp

AUTO_PROGRESS_FROM = 100_000  # transactions; the bar is shown by default from here on a TTY
MAX_BATCH = 10_000  # the API takes at most 10,000 transactions per POST
MAX_RATE = 1_000_000.0  # transactions per second
_TIMESTAMP = TypeAdapter(Timestamp)


class TimestampType(click.ParamType):
    """An ISO 8601 time (Z or an offset; none means UTC) or epoch milliseconds, as on the wire."""

    name = "TIMESTAMP"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, datetime):
            return value
        try:
            return _TIMESTAMP.validate_python(value)
        except ValidationError as exc:
            self.fail(exc.errors()[0]["msg"], param, ctx)


def _scenarios(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...]:
    try:
        return parse_scenarios(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None


def _weights(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> tuple[tuple[str, float], ...] | None:
    if value is None:
        return None
    try:
        return parse_weights(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None


def _days(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    try:
        return parse_days(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None


def _generate_to(fresh_ids: bool, *args: Any, **kwargs: Any) -> Any:
    """generate_to; for --to copy/insert without --append, a conflict with what is
    stored says how to continue after it (ids 1, 2, ... are likely taken)."""
    try:
        return generate_to(*args, **kwargs)
    except TransactionConflict as exc:
        if not fresh_ids:
            raise
        raise TransactionConflict(
            f"{exc.message} (the database already holds transactions: add --append to "
            "continue after them, or give --first-transaction-id past them)",
            field=exc.field,
            row=exc.row,
        ) from exc


def _env(name: str) -> str:
    return f"PGFRAUD_{name.upper()}"


@click.command("generate")
@click.option(
    "--num-transactions",
    type=Int(1, MAX_ID),
    default=10_000,
    show_default=True,
    envvar=_env("num_transactions"),
    help="How many transactions to generate.",
)
@click.option(
    "--accounts",
    type=Int(1, MAX_ID),
    default=100,
    show_default=True,
    envvar=_env("accounts"),
    help="Number of accounts; account ids are 1..ACCOUNTS.",
)
@click.option(
    "--merchants",
    type=Int(1, MAX_ID),
    default=1000,
    show_default=True,
    envvar=_env("merchants"),
    help="Number of merchants; merchant ids are 1..MERCHANTS.",
)
@click.option(
    "--seed",
    type=Int(0, MAX_ID),
    default=42,
    show_default=True,
    envvar=_env("seed"),
    help="Random seed: the same seed and options give byte-identical data.",
)
@click.option(
    "--start",
    type=TimestampType(),
    default="2024-01-01T00:00:00Z",
    show_default=True,
    envvar=_env("start"),
    help="Every transaction is after this time (ISO 8601, UTC unless an offset is given).",
)
@click.option(
    "--mix",
    "mix_name",
    type=click.Choice(tuple(MIXES)),
    default="realistic",
    show_default=True,
    envvar=_env("mix"),
    help="Kind of data: realistic (fraud 0.1-0.5%, months of history, breached merchants, "
    "labels known days later), shifted (realistic, shaped differently: for checking rule "
    "settings on data they were not chosen on) or legacy (earlier versions' mix, byte for "
    "byte). The options below change one parameter of it (docs/data.md, Mixes).",
)
@click.option(
    "--fraud-rate",
    type=Float(0.0, 1.0),
    default=None,
    envvar=_env("fraud_rate"),
    help="Chance that an account's next event starts a fraud scenario (0..1) "
    f"[default: the mix's: {', '.join(f'{m.name} {m.fraud_rate}' for m in MIXES.values())}].",
)
@click.option(
    "--scenario-weights",
    default=None,
    callback=_weights,
    envvar=_env("scenario_weights"),
    help="Which scenario a drawn fraud is, in proportion: name=weight pairs, as "
    "'card_testing=1,bot_burst=0.5' (a scenario not named keeps the mix's weight; 0 turns "
    "it off) [default: the mix's].",
)
@click.option(
    "--favourite-share",
    type=Float(0.0, 1.0),
    default=None,
    envvar=_env("favourite_share"),
    help="Share of an account's normal purchases made at one of its favourite merchants "
    "(0..1; the rest at merchants drawn by popularity) [default: the mix's: "
    f"{', '.join(f'{m.name} {m.favourite_share}' for m in MIXES.values())}].",
)
@click.option(
    "--label-delay-days",
    default=None,
    callback=_days,
    envvar=_env("label_delay_days"),
    help="How long after a fraud incident its labels become known (the labels file's "
    "known_at): LOW-HIGH days, log-uniform, or DAYS [default: the mix's: realistic 2-28, "
    "shifted 1-14, legacy none: known at the transaction's time].",
)
@click.option(
    "--scenarios",
    default="all",
    show_default=True,
    callback=_scenarios,
    envvar=_env("scenarios"),
    help=f"Comma list of fraud scenarios to inject: {', '.join(SCENARIOS)}, or all.",
)
@click.option(
    "--to",
    "sink",
    type=click.Choice(SINKS),
    default="copy",
    show_default=True,
    envvar=_env("to"),
    help="Destination: COPY or INSERT into the database, POST to the API, or CSV.",
)
@click.option(
    "--post-url",
    default="http://127.0.0.1:5000/store_data",
    show_default=True,
    envvar=_env("post_url"),
    help="Where --to api POSTs JSON arrays of transactions.",
)
@click.option(
    "--api-token",
    default=None,
    envvar=_env("api_token"),
    help="Bearer token for --to api (the service's PGFRAUD_API_TOKEN).",
)
@click.option(
    "--batch-size",
    type=Int(1, MAX_BATCH),
    default=1000,
    show_default=True,
    envvar=_env("batch_size"),
    help="At most this many transactions per INSERT call (--to insert) or per POST (--to api).",
)
@click.option(
    "--rate",
    type=Float(0.0, MAX_RATE, min_open=True),
    default=None,
    envvar=_env("rate"),
    help="Live replay for --to api or insert: RATE transactions per second, spread evenly "
    "(a batch leaves when its last transaction is due; default: as fast as possible).",
)
@click.option(
    "--database-url",
    default=None,
    envvar=_env("database_url"),
    help="Database for --to copy/insert (default: the configured one; DATABASE_URL, "
    "or the project's local server, started for the run).",
)
@click.option(
    "--labels",
    "labels_path",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default="labels.csv",
    show_default=True,
    envvar=_env("labels"),
    help="Ground-truth sidecar CSV transaction_id,scenario,known_at (fraudulent transactions "
    "only; known_at: when the label became known, ISO 8601 UTC).",
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=str),
    default=None,
    envvar=_env("output"),
    help="File for --to csv ('-' for stdout, the default).",
)
@click.option(
    "--first-transaction-id",
    type=Int(0, MAX_ID),
    default=1,
    show_default=True,
    envvar=_env("first_transaction_id"),
    help="Id of the first transaction; the others follow one by one.",
)
@click.option(
    "--append",
    is_flag=True,
    default=False,
    envvar=_env("append"),
    help="--to copy/insert: continue after the stored data (ids from the largest + 1, "
    "times after the latest); overrides --first-transaction-id and --start.",
)
@click.option(
    "--progress/--no-progress",
    default=None,
    envvar=_env("progress"),
    help=f"Progress bar on stderr (default: on when stderr is a terminal and "
    f"NUM_TRANSACTIONS >= {AUTO_PROGRESS_FROM:,}).",
)
@click.option(
    "--label-columns",
    is_flag=True,
    default=False,
    envvar=_env("label_columns"),
    help="--to csv: also write the labels as columns is_fraud (1/0) and fraud_scenario "
    "(load them with `pgfraud load FILE --label-column is_fraud --scenario-column "
    "fraud_scenario`).",
)
@one_line_errors
def generate(
    num_transactions: int,
    accounts: int,
    merchants: int,
    seed: int,
    start: datetime,
    mix_name: str,
    fraud_rate: float | None,
    scenario_weights: tuple[tuple[str, float], ...] | None,
    favourite_share: float | None,
    label_delay_days: tuple[int, int] | None,
    scenarios: tuple[str, ...],
    sink: str,
    post_url: str,
    api_token: str | None,
    batch_size: int,
    rate: float | None,
    database_url: str | None,
    labels_path: Path,
    output: str | None,
    first_transaction_id: int,
    append: bool,
    progress: bool | None,
    label_columns: bool,
) -> None:
    """Generate realistic, labelled fake transactions.

    Each account has its own typical amount and pace; fraud scenarios are
    injected at --fraud-rate and listed (never stored with the data) in the
    --labels file, with when each label became known (known_at). --mix
    chooses the kind of data. Output is in time order, ids sequential. A database load
    is one transaction: all or nothing, and loading the same data again
    stores nothing new.
    """
    if output is not None and sink != "csv":
        raise click.UsageError("--output is for --to csv")
    if label_columns and sink != "csv":
        raise click.UsageError("--label-columns is for --to csv")
    if rate is not None and sink not in ("api", "insert"):
        raise click.UsageError("--rate is for --to api or --to insert")
    if append and sink not in ("copy", "insert"):
        raise click.UsageError("--append is for --to copy or --to insert")
    if sink == "api" and not (post_url or "").startswith(("http://", "https://")):
        raise click.UsageError("--to api needs --post-url, an http:// or https:// URL")
    if progress is None:
        progress = sys.stderr.isatty() and num_transactions >= AUTO_PROGRESS_FROM
    try:
        mix = with_overrides(
            get_mix(mix_name),
            scenario_weights=scenario_weights,
            favourite_share=favourite_share,
            label_delay_ms=label_delay_days,
        )
        settings = Settings(
            num_transactions=num_transactions,
            accounts=accounts,
            seed=seed,
            start=start,
            fraud_rate=fraud_rate,
            scenarios=scenarios,
            first_transaction_id=first_transaction_id,
            merchants=merchants,
            mix=mix,
        )
    except PgfraudError as exc:
        message = exc.message
        for field in ("first_transaction_id", "num_transactions", "accounts", "merchants", "start"):
            message = message.replace(field, "--" + field.replace("_", "-"))
        raise click.UsageError(message) from None

    labels_database_url = None
    with contextlib.ExitStack() as stack:
        if sink in ("copy", "insert") and not database_url:
            from pgfraud.cli import ready

            database = stack.enter_context(config.existing_database())
            ready(database)  # never migrates: `pgfraud migrate` does
            database_url = database.app_url
            labels_database_url = database.admin_url  # labels are the owner's data
        summary = _generate_to(
            sink in ("copy", "insert") and not append,
            settings,
            sink,
            labels_path=labels_path,
            database_url=database_url,
            post_url=post_url,
            api_token=api_token,
            batch_size=batch_size,
            rate=rate,
            output=output or "-",
            append=append,
            progress=progress,
            label_columns=label_columns,
            labels_database_url=labels_database_url,
        )
    click.echo(summary_line(summary), err=True)
    reminder = labels_reminder(summary)
    if reminder:
        click.echo(reminder, err=True)
