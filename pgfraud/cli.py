"""The `pgfraud` command: run the service, set up the database, generate and load data.

Where the database is: DATABASE_URL when set, otherwise the project's own
local PostgreSQL in ./.pgfraud (PGFRAUD_HOME), started when a command needs it
and stopped again by that command if it started it (`pgfraud run` keeps it up
until Ctrl-C).
"""

from __future__ import annotations

import getpass
import ipaddress
import os
import re
import secrets
import signal
import sys
import threading
from decimal import Decimal
from pathlib import Path

import click

from pgfraud import config, db
from pgfraud.clitools import Int, describe_error, one_line_errors, one_line_usage
from pgfraud.db.citus import score_pending
from pgfraud.db.migrate import Done, MigrationError, check_schema, one_migrator
from pgfraud.db.migrate import migrate as apply_migrations
from pgfraud.db.server import APP_USER, LocalServer
from pgfraud.errors import (
    ConfigurationError,
    InvalidInput,
    ListNotFound,
    PgfraudError,
    RuleNotFound,
    TransactionConflict,
    redact,
)
from pgfraud.generator.cli import TimestampType, generate
from pgfraud.wire import MAX_ID

SEED_TRANSACTIONS = 100_000
SEED_ACCOUNTS = 1_000


def _fail(exc: PgfraudError, unit: str = "row") -> None:
    """Print ``exc`` as one line (and its listed problems) and exit: 2 for
    refused input (InvalidInput, and TransactionConflict: a row of the input
    that conflicts with a stored one), else the error's exit_code (2 for an
    unknown name or id, the NotFound errors, and a schema that is behind; 1
    for any other failure: pgfraud.errors, "A `pgfraud` command exits ...")."""
    where = ""
    if exc.row is not None and not exc.errors and not exc.message.startswith(f"{unit} "):
        where = f"{unit} {exc.row}: "
    click.echo(f"error: {where}{describe_error(exc)}", err=True)
    for item in exc.errors:
        where = f"line {item['row']}: " if "row" in item else ""
        click.echo(f"  {where}{item['message']}", err=True)
    refused = isinstance(exc, InvalidInput | TransactionConflict)
    sys.exit(2 if refused else exc.exit_code)


def prepare(database: config.Database, done: Done | None = None) -> list[str]:
    """Apply migrations and functions as the owner, when any is pending; for the
    local server, also (re)create the service's login role with its stored
    password. One at a time (the migrators' session advisory lock,
    :func:`pgfraud.db.migrate.one_migrator`: a second waits, then finds
    nothing pending). Returns the migrations applied now. Only `migrate`,
    `run` and `db start` call this; with nothing pending it changes nothing and takes
    no lock that stores wait on (pgfraud.db.migrate.migrate)."""
    with db.connect(database.admin_url) as conn, one_migrator(conn):
        try:
            applied = apply_migrations(conn, done=done)
        except MigrationError as exc:
            raise ConfigurationError(f"migration failed: {exc}") from exc
        conn.commit()
        if database.server is not None:
            idle_ms = config.idle_transaction_timeout_ms()
            db.create_app_user(conn, APP_USER, database.server.app_password, False, idle_ms)
            db.set_database_idle_timeout(conn, idle_ms)
            conn.commit()
    return applied


def ready(database: config.Database) -> None:
    """Check, reading only, that the database's schema is what this pgfraud
    needs; every command but `migrate`, `run` and `db start` calls this
    instead of :func:`prepare`, so it never runs DDL or takes the rule-change
    lock (a command that only reads must not stall or deadlock stores).
    Errors: SchemaBehind ("... run `pgfraud migrate`", exit 2)."""
    with db.connect(database.admin_url, autocommit=True) as conn:
        check_schema(conn)


def _terminate(signum: int, frame: object) -> None:
    """SIGTERM ends a command as an exception does: files being written are
    removed (a generated CSV or labels file appears whole or not at all) and
    an open database transaction rolls back; exit 128 + 15 = 143."""
    raise SystemExit(128 + signum)


class _Group(click.Group):
    """A command group whose commands fail with one line, never a traceback,
    and stop cleanly on SIGTERM (`pgfraud run` sets its own handler). Usage
    errors too (a bad or missing option or argument, of the group or of any
    command under it): one line ``error: …`` naming the option, exit 2
    (OneLineUsageError), not click's usage, hint and message."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            raise one_line_usage(exc) from None

    def invoke(self, ctx: click.Context) -> object:
        try:
            return self._invoke(ctx)
        except click.UsageError as exc:  # a command's own arguments, parsed in here
            raise one_line_usage(exc) from None

    def _invoke(self, ctx: click.Context) -> object:
        # Only the main thread may set handlers (main() called from another
        # thread, as by a program embedding it, runs without); the caller's
        # default comes back after the command.
        ours = (
            threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
        )
        if ours:
            signal.signal(signal.SIGTERM, _terminate)
        try:
            return one_line_errors(super().invoke)(ctx)
        finally:
            db.set_session_actor(None)
            if ours:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _login_user() -> str | None:
    """The operating system's name of the user running the command (None when
    it has none, as in a container without a passwd entry)."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return None


def _encodable(text: str) -> bool:
    """Whether ``text`` is valid UTF-8 (no lone surrogates from undecodable bytes)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_actor(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None and not 1 <= len(value.strip()) <= 200:
        click.echo("error: --actor must be 1 to 200 characters", err=True)
        sys.exit(2)
    # Printable text only: a tab or newline would split the connection's
    # options (libpq escapes spaces alone), and text that is not UTF-8 cannot
    # be sent at all.
    if value is not None and (
        not value.strip().isprintable() or not value.isascii() and not _encodable(value)
    ):
        click.echo("error: --actor must be printable UTF-8 text", err=True)
        sys.exit(2)
    return value.strip() if value else _login_user()


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="pgfraud")
@click.option(
    "--actor",
    envvar="PGFRAUD_ACTOR",
    default=None,
    callback=_check_actor,
    help="Who the command's changes are made for, recorded in reviews and the audit trail"
    " (default: your login name).",
)
def main(actor: str | None) -> None:
    """pgfraud: fraud rules as SQL functions in PostgreSQL, with an HTTP API and a generator."""
    db.set_session_actor(actor)


@main.command()
def migrate() -> None:
    """Apply pending migrations (once each, in order) and the SQL function files, when
    any changed; with nothing pending, change nothing and take no lock stores wait on.

    The only command that changes the schema (`run` and `db start` call it too);
    every other command stops with exit 2 when the schema is behind.
    """
    done = Done()
    try:
        with config.database() as database:
            applied = prepare(database, done)
    except PgfraudError as exc:
        _fail(exc)
    click.echo(_migrated(applied, done) or "migrated: already up to date")


def _migrated(applied: list[str], done: Done) -> str | None:
    """What one migrate did, for people: ``migrated: <migrations>; N function
    files applied (a.sql, b.sql, c.sql, ...); stored transactions re-scored``
    (``no migration pending; ...`` without migrations), or None when it did
    nothing. `migrate`, `run` and `db start` print the same line, so the
    first one on an empty database names its function files as later ones do."""
    parts = [", ".join(applied)] if applied else []
    parts += done.describe()
    if parts and not applied:
        parts.insert(0, "no migration pending")
    return f"migrated: {'; '.join(parts)}" if parts else None


@main.group(name="db")
def db_group() -> None:
    """The database: its URL, the local server, login roles."""


@db_group.command()
@click.option("--admin", is_flag=True, help="The owner's URL instead of the service's login.")
def url(admin: bool) -> None:
    """Print the connection URL with its password (for psql "$(pgfraud db url)").

    The one command that prints a password: keep its output out of logs."""
    if not config.external_url() and not LocalServer(config.home()).initialized:
        click.echo("error: no local database yet: run `make run` (or `pgfraud db start`)", err=True)
        sys.exit(1)
    described = config.describe()
    server = described.server
    if server is not None and not server.is_running():
        click.echo("note: the local PostgreSQL is not running (start it with `make run`)", err=True)
    click.echo(described.admin_url if admin else described.app_url)


@db_group.command()
def start() -> None:
    """Start the local PostgreSQL, migrated (saying what it applied, as `pgfraud
    migrate` does); it runs until `pgfraud db stop`.

    Prints the service's URL without its password; `pgfraud db url` prints it whole."""
    if config.external_url():
        click.echo("DATABASE_URL is set: there is no local server to start", err=True)
        sys.exit(1)
    database = config.describe()
    done = Done()
    try:
        LocalServer(config.home()).start()
        migrated = _migrated(prepare(database, done), done)
    except PgfraudError as exc:
        _fail(exc)
    if migrated:
        click.echo(migrated)
    # Without its password (scripts get the whole URL from `pgfraud db url`).
    click.echo(f"PostgreSQL running: {redact(database.app_url)}")
    click.echo('  connect: psql "$(pgfraud db url)"   (prints the URL with its password)')


@db_group.command()
def stop() -> None:
    """Stop the local PostgreSQL."""
    if config.external_url():
        click.echo("DATABASE_URL is set: there is no local server to stop", err=True)
        sys.exit(1)
    server = LocalServer(config.home())
    if not server.initialized:
        click.echo(f"no local database in {config.home()}: nothing to stop")
        return
    if server.stop():
        click.echo(f"stopped the local PostgreSQL in {server.datadir}")
    else:
        click.echo(f"the local PostgreSQL in {server.datadir} was not running")


@db_group.command()
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def destroy(yes: bool) -> None:
    """Stop the local PostgreSQL and delete its data and secrets, wherever they live.

    The data folder is ./.pgfraud/data, or /var/tmp/pgfraud-<hash> when the
    server's user cannot enter this folder (as root); both go. `make
    distclean` runs this. An external DATABASE_URL server is never touched.
    """
    if config.external_url():
        click.echo("DATABASE_URL is set: pgfraud never deletes an external server", err=True)
        sys.exit(1)
    server = LocalServer(config.home())
    places = [str(server.home)]
    if server.datadir.parent != server.home:
        places.append(str(server.datadir))
    if not server.home.exists() and not server.datadir.exists():
        click.echo(f"no local database in {config.home()}: nothing to delete")
        return
    if not yes:
        click.confirm(f"delete the local database ({' and '.join(places)})?", abort=True)
    server.destroy()
    click.echo(f"deleted {' and '.join(places)}")


@db_group.command()
def status() -> None:
    """Say whether the local PostgreSQL runs (exit 1 when it does not), where its
    data and secrets are, and its port; and, when the database answers, whether
    a session holds the live feeds back (a transaction id open 10 s or more:
    `alert feed: held by pid N for S s (state)`, else `alert feed: live`)."""
    if config.external_url():
        click.echo("DATABASE_URL is set: external server")
        _feed_status()
        return
    server = LocalServer(config.home())
    if not server.initialized:
        click.echo(f"no local database in {config.home()} yet (`make run` makes one)")
        sys.exit(1)
    running = server.is_running()
    click.echo(f"local PostgreSQL: {'running' if running else 'stopped'}")
    click.echo(f"  data:    {server.datadir}")
    click.echo(f"  secrets: {server.home}")
    if (server.home / "port").exists():  # chosen on first start; never chosen here
        click.echo(f"  port:    {server.port} (127.0.0.1)")
    if running:
        _feed_status()
    sys.exit(0 if running else 1)


FEED_HELD_AFTER_MS = 10_000  # as GET /health: a transaction id open this long holds the feeds


def _feed_status() -> None:
    """One line: who holds the live feeds back (SQL get_feed_holder), or that
    nothing does; `alert feed: unknown (...)` when the database cannot say."""
    try:
        with config.existing_database() as database:
            with db.connect(database.admin_url, autocommit=True) as conn:
                holder = db.get_feed_holder(conn, FEED_HELD_AFTER_MS)
    except PgfraudError as exc:
        click.echo(f"alert feed: unknown ({describe_error(exc)})")
        return
    if holder is None:
        click.echo("alert feed: live")
    else:
        click.echo(
            f"alert feed: held by pid {holder['pid']} for {holder['held_ms'] // 1000} s"
            f" ({holder['state']}); end it with SELECT pg_terminate_backend({holder['pid']})"
        )


@db_group.command()
def distribute() -> None:
    """Turn the migrated database on a Citus coordinator into the distributed layout.

    Per-account tables are distributed on account_id and colocated; rules,
    policy, lists and tokens become reference tables (docs/scaling.md). Then
    migrates, so the function files are in again. A second run changes
    nothing. Errors: one line, exit 1, when the database has no citus
    extension or is not migrated yet."""
    from pgfraud.db.citus import distribute as make_distributed

    database = config.describe()
    try:
        with db.connect(database.admin_url, autocommit=True) as conn:
            changed = make_distributed(conn)
        prepare(database)
    except PgfraudError as exc:
        _fail(exc)
    click.echo(f"distributed: {', '.join(changed) if changed else 'already distributed'}")


@db_group.command(name="score-pending")
@click.option(
    "--connections",
    type=click.IntRange(1, 32),
    default=4,
    show_default=True,
    help="Accounts scored at once, each call on its own connection.",
)
def score_pending_command(connections: int) -> None:
    """Score, per account, the transactions stored but not scored yet (Citus).

    On the Citus layout (`pgfraud db distribute`) an INSERT or COPY through
    the coordinator stores rows raw; this scores every account with a
    transaction that has no decision, one account per call
    (score_account, run on the account's worker). `pgfraud load` and
    `generate --to copy/insert` do it themselves. Safe to run again. On one
    node there is nothing to do (every row is scored as it is stored)."""
    try:
        with config.existing_database() as database:
            ready(database)
            with db.connect(database.admin_url, autocommit=True) as conn:
                citus = db.on_citus(conn)
            scored = score_pending(database.admin_url, connections) if citus else None
    except PgfraudError as exc:
        _fail(exc)
    if scored is None:
        click.echo("not the Citus layout: every row is scored as it is stored")
    else:
        click.echo(describe_scored(scored))


@db_group.command(name="create-user")
@click.argument("name")
@click.option(
    "--password",
    envvar="PGFRAUD_USER_PASSWORD",
    help="At least 12 characters; generated and printed when omitted.",
)
@click.option("--read-only", is_flag=True, help="An analyst's login (SELECT only).")
def create_user(name: str, password: str | None, read_only: bool) -> None:
    """Create (or update) a login role for the service, or a read-only analyst."""
    generated = password is None
    password = password or secrets.token_urlsafe(18)
    try:
        with config.database() as database:
            ready(database)
            with db.connect(database.admin_url, autocommit=True) as conn:
                idle_ms = config.idle_transaction_timeout_ms()
                db.create_app_user(conn, name, password, read_only, idle_ms)
    except PgfraudError as exc:
        _fail(exc)  # a bad name or password: exit 2
    role = "pgfraud_readonly" if read_only else "pgfraud_app"
    click.echo(f"user {name} is a member of {role}")
    if generated:
        click.echo(f"password: {password}")


@main.command()
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--label-column",
    default=None,
    help="Column of fraud labels (1/0, true/false, yes/no): fraud rows are stored as labels "
    "with the transactions, for `pgfraud evaluate` and compromised_merchant.",
)
@click.option(
    "--scenario-column",
    default=None,
    help="With --label-column: column of scenario codes (a name, or a number n kept as "
    "scenario_<n>).",
)
@click.option(
    "--known-at-column",
    default=None,
    help="With --label-column: column of when each label became known (ISO 8601 or epoch "
    "milliseconds, not before the row's timestamp; empty: when loaded). Rules that read labels "
    "count a label only for transactions after it.",
)
def load(
    path: Path, label_column: str | None, scenario_column: str | None, known_at_column: str | None
) -> None:
    """Load a CSV of transactions by COPY, all-or-nothing.

    Header: account_id, transaction_id, amount, and timestamp (ISO 8601) or
    timestamp_ms (epoch milliseconds); merchant_id if present (empty: unknown);
    other columns are ignored. Every bad line is reported and nothing is
    stored; rows already stored unchanged are counted as duplicates.
    """
    from pgfraud.load import load_csv

    if scenario_column and not label_column:
        raise click.BadParameter("needs --label-column", param_hint="--scenario-column")
    if known_at_column and not label_column:
        raise click.BadParameter("needs --label-column", param_hint="--known-at-column")
    try:
        with config.existing_database() as database:
            ready(database)
            # Labels are the owner's data: with them, load as the owner.
            url = database.admin_url if label_column else database.app_url
            with db.connect(url) as conn:
                counts = load_csv(
                    conn, path, sys.stderr.isatty(), label_column, scenario_column, known_at_column
                )
                conn.commit()
                citus = db.on_citus(conn)
            # On Citus the rows went in raw: score the touched accounts now.
            scored = score_pending(url) if citus else None
    except PgfraudError as exc:
        _fail(exc, unit="line")
    labels = f", {counts['labels']} labelled fraud" if "labels" in counts else ""
    click.echo(
        f"loaded {path}: {counts['rows']} row{'s' if counts['rows'] != 1 else ''}, "
        f"{counts['stored']} stored, "
        f"{counts['duplicate']} duplicates{labels}"
    )
    if scored is not None:
        click.echo(describe_scored(scored))


def describe_scored(scored: dict[str, int]) -> str:
    """One line about a per-account scoring pass (pgfraud.db.citus.score_pending)."""
    accounts, alerts = scored["accounts"], scored["alerts"]
    return (
        f"scored per account: {accounts} account{'' if accounts == 1 else 's'}, "
        f"{alerts} new alert{'' if alerts == 1 else 's'}"
    )


@main.command(name="load-labels")
@click.argument(
    "paths", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
def load_labels(paths: tuple[Path, ...]) -> None:
    """Store ground-truth fraud labels (CSV: transaction_id,scenario[,known_at]).

    Labels go to the fraud_labels table, never into transactions; a label
    already stored for a transaction is replaced. known_at (ISO 8601 or epoch
    milliseconds; absent or empty: now) is when the label became known: rules
    that read labels count it only for transactions after it, and it may not
    be before its stored transaction's time. All files or none.
    """
    from pgfraud.evaluate import read_labels_and_errors
    from pgfraud.load import refused_file

    try:
        labels, errors = [], {}
        for path in paths:
            good, bad = read_labels_and_errors(path)
            labels += good
            if bad:
                errors[path] = bad
        with config.existing_database() as database:
            ready(database)
            if errors:
                # Every bad line at once: the good lines' known_at are checked
                # against the stored transactions too (in a transaction rolled
                # back), and both kinds are listed in one report per file.
                _label_times_refused(database.admin_url, labels, errors, paths)
                path = next(iter(errors))
                raise refused_file(path, sorted(errors[path], key=lambda e: e["row"]))

            def attempt():
                with db.connect(database.admin_url) as conn:
                    counts = db.store_labels(conn, labels)
                    conn.commit()
                    return counts

            try:
                counts = db.retry_conflicts(attempt)
            except InvalidInput as exc:
                if exc.field != "known_at":
                    raise
                path, items = next(iter(_known_at_errors(exc, paths).items()))
                raise refused_file(path, items) from None
    except PgfraudError as exc:
        _fail(exc, unit="line")
    for line in describe_labels(counts):
        click.echo(line)


def _label_times_refused(
    url: str, labels: list, errors: dict[Path, list], paths: tuple[Path, ...]
) -> None:
    """Add to ``errors`` (per file) the labels whose known_at is before their stored
    transaction's time (db.store_labels's check, run and rolled back)."""
    with db.connect(url) as conn:
        try:
            db.store_labels(conn, labels)
        except InvalidInput as exc:
            if exc.field != "known_at":
                raise
            for path, items in _known_at_errors(exc, paths).items():
                errors.setdefault(path, []).extend(items)
        finally:
            conn.rollback()


def _known_at_errors(exc: InvalidInput, paths: tuple[Path, ...]) -> dict[Path, list]:
    """db.store_labels's known_at refusal as ``{file: [{"row", "field", "message"}]}``,
    in the form of a file's other bad lines (refused_file)."""
    out: dict[Path, list] = {}
    for item in exc.errors or [{"row": exc.row, "field": "known_at", "message": exc.message}]:
        message = item["message"].removesuffix("; nothing was stored")
        message = message.removeprefix(f"line {item['row']}: ")
        path = next((p for p in paths if message.startswith(f"{p}: ")), paths[0])
        out.setdefault(path, []).append(
            {"row": item["row"], "field": "known_at", "message": message.removeprefix(f"{path}: ")}
        )
    return out


def describe_labels(counts: dict[str, int]) -> list[str]:
    """Lines for people about a label load (db.store_labels's counts)."""

    def n(count: int, what: str) -> str:
        return f"{count:,} {what}{'' if count == 1 else 's'}"

    changed = f", {counts['changed']:,} with another scenario" if counts["changed"] else ""
    lines = [
        f"stored {n(counts['labels'], 'label')}: {counts['new']:,} new, "
        f"{counts['replaced']:,} replaced{changed}",
        f"{counts['matched']:,} match stored transactions, {counts['unmatched']:,} do not",
    ]
    if counts["given"] != counts["labels"]:
        lines[0] += f" ({counts['given'] - counts['labels']:,} repeated in the input: last wins)"
    if counts["unmatched"]:
        lines.append(
            "  labels without a stored transaction are kept but `pgfraud evaluate` ignores them "
            "until those transactions are loaded"
        )
    return lines


@main.command()
@click.option(
    "--rules",
    "rules_json",
    default=None,
    help="Candidate rules as JSON {rule_id: parameters} (default: the enabled rules); "
    "parameters left out keep their live values, {} runs a rule as it is, e.g. "
    '\'{"below_average": {"factor": 0.5}, "velocity": {}}\'.',
)
@click.option(
    "--policy",
    "policy_json",
    default=None,
    help="A candidate decision policy as JSON, merged over the policy in force, e.g. "
    '\'{"review_threshold": 60, "rule_scores": {"large_amount": 100}}\' '
    "(default: the policy in force).",
)
@click.option(
    "--from", "start", type=TimestampType(), default=None, help="Start, inclusive (ISO 8601)."
)
@click.option("--to", "end", type=TimestampType(), default=None, help="End, exclusive (ISO 8601).")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="One JSON object: parameters that ran, transactions evaluated, the rows, "
    "and the decisions (policy and outcomes).",
)
def evaluate(rules_json: str | None, policy_json: str | None, start, end, as_json: bool) -> None:
    """Precision, recall, F1 and alerts per 1,000 transactions of each rule against
    the stored fraud labels (a backtest), per scenario and overall; then the
    decisions those rules and the policy give: approve, review and decline
    counts and per 1,000, and precision and recall of decline and of review or
    decline.

    Each rule is judged alone; "any" is a transaction flagged by at least one
    rule. --rules is the whole set to run (rules not named do not run), each
    with the parameters it changes (merged over the live ones, as `pgfraud
    rule set` and PATCH /rules merge them), so candidate parameters are
    measured without changing the live rules. --policy is a candidate policy
    (thresholds and rule scores, merged over the one in force, checked as
    `pgfraud policy set` checks it); the lists apply as they were at each
    transaction's time. Load
    labels first with `pgfraud load-labels FILE` or `pgfraud load FILE
    --label-column COLUMN`.
    """
    import json

    from pgfraud.evaluate import evaluation, format_decisions, format_report
    from pgfraud.wire import loads_json, parse_backtest_policy

    if start is not None and end is not None and end < start:
        raise click.BadParameter("must not be before --from", param_hint="--to")
    policy = None
    if policy_json is not None:
        try:
            policy = parse_backtest_policy(loads_json(policy_json))
        except ValueError as exc:
            raise click.BadParameter(f"not JSON: {exc}", param_hint="--policy") from None
        except InvalidInput as exc:
            raise click.BadParameter(exc.message, param_hint="--policy") from None
    rules = None
    if rules_json is not None:
        try:  # exact numbers; the rules themselves are checked by SQL validate_rules
            rules = loads_json(rules_json)
        except ValueError as exc:
            raise click.BadParameter(f"not JSON: {exc}", param_hint="--rules") from None
        for rule_id, parameters in rules.items() if isinstance(rules, dict) else ():
            for name, value in parameters.items() if isinstance(parameters, dict) else ():
                if isinstance(value, Decimal) and not value.is_finite():  # no JSON for SQL
                    raise click.BadParameter(
                        f"parameter {name} of rule {rule_id} must be a finite number "
                        f"(NaN and Infinity are refused); got {value}",
                        param_hint="--rules",
                    )
    try:
        with config.existing_database() as database:
            ready(database)
            with db.connect(database.admin_url) as conn:
                result = evaluation(conn, rules, start, end, policy)
    except (InvalidInput, RuleNotFound) as exc:  # from SQL: names the rule and parameter,
        # or policy.<field> for the policy's check
        hint = "--policy" if (exc.field or "").startswith("policy") else "--rules"
        raise click.BadParameter(exc.message, param_hint=hint) from None
    except PgfraudError as exc:
        _fail(exc)
    rows = result["rows"]
    if not rows or rows[0]["labelled"] == 0:
        if start is not None or end is not None:
            click.echo("no labelled transaction in [--from, --to)", err=True)
        else:
            click.echo("no labels stored: load some with `pgfraud load-labels FILE`", err=True)
    if as_json:
        # Parameters as exact JSON numbers (as GET /rules gives them); the
        # rows' ratios as decimal strings (as POST /evaluate gives them).
        rows = json.loads(json.dumps(result["rows"], default=str))
        decisions = json.loads(json.dumps(result["decisions"], default=str))
        click.echo(db.dumps_json({**result, "rows": rows, "decisions": decisions}, indent=1))
        return
    click.echo(
        f"{result['transactions']:,} transactions; rules that ran: "
        f"{db.dumps_json(result['parameters'], sort_keys=True)}"
    )
    for line in format_report(rows):
        click.echo(line)
    click.echo("")
    for line in format_decisions(result["decisions"]):
        click.echo(line)


TUNE_OPTIONS = {
    "train_from": "--train-from",
    "train_to": "--train-to",
    "valid_from": "--valid-from",
    "valid_to": "--valid-to",
    "max_alerts_per_1000": "--max-alerts-per-1000",
    "min_precision": "--min-precision",
    "min_marginal_precision": "--min-marginal-precision",
    "candidates": "--candidates",
}


class DecimalType(click.ParamType):
    """A finite decimal number, kept exactly."""

    name = "number"

    def convert(self, value, param, ctx):
        if isinstance(value, Decimal):
            return value
        try:
            number = Decimal(str(value).strip())
        except ArithmeticError:
            self.fail(f"must be a number; got {value!r}", param, ctx)
        if not number.is_finite():
            self.fail(f"must be a finite number; got {value!r}", param, ctx)
        return number


@main.command()
@click.option(
    "--train-from",
    "train_from",
    type=TimestampType(),
    required=True,
    help="Training period start, inclusive (ISO 8601).",
)
@click.option(
    "--train-to",
    "train_to",
    type=TimestampType(),
    required=True,
    help="Training period end, exclusive.",
)
@click.option(
    "--valid-from",
    "valid_from",
    type=TimestampType(),
    required=True,
    help="Validation period start, inclusive: at or after --train-to.",
)
@click.option(
    "--valid-to",
    "valid_to",
    type=TimestampType(),
    required=True,
    help="Validation period end, exclusive.",
)
@click.option(
    "--max-alerts-per-1000",
    "max_alerts",
    type=DecimalType(),
    default=None,
    help="Alert budget: flagged transactions per 1,000 on the training period, above 0.",
)
@click.option(
    "--min-precision",
    type=DecimalType(),
    default=None,
    help="Precision floor on the training period, above 0 and at most 1.",
)
@click.option(
    "--min-marginal-precision",
    type=DecimalType(),
    default=None,
    help="Add a rule only if at least this share of the alerts it adds on the training"
    " period is fraud, 0 to 1 (0: no such floor).  [default: 0.5]",
)
@click.option(
    "--candidates",
    default=None,
    help="Rules to choose from, comma-separated (default: every rule, users' too).",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="One JSON object: chosen, live, search, figures and the PATCH /rules body.",
)
@click.option(
    "--apply",
    "apply_it",
    is_flag=True,
    help="Switch the chosen set on (and every other rule off), re-scoring the alerts.",
)
def tune(
    train_from,
    train_to,
    valid_from,
    valid_to,
    max_alerts,
    min_precision,
    min_marginal_precision,
    candidates,
    as_json: bool,
    apply_it: bool,
) -> None:
    """Choose which rules run, and their parameters, from the stored labels.

    On the training period it maximises recall (known fraud flagged) under an
    alert budget (--max-alerts-per-1000) and/or a precision floor
    (--min-precision), adding a rule only when at least half of the alerts
    it adds are fraud (--min-marginal-precision), then shows the chosen set and the live set on the
    training and the validation period (per rule, per scenario and overall:
    the figures of `pgfraud evaluate`), and the parameters that ran. Nothing
    changes unless --apply is given (or the PATCH /rules body it prints is
    sent): then the chosen rules go on with their parameters, every other
    rule off, through the same check as any rule change, and the stored
    alerts are re-scored.
    """
    from pgfraud.tune import apply, format_tuning, tuning

    periods = (train_from, train_to, valid_from, valid_to)
    names = None
    if candidates is not None:
        names = [name.strip() for name in candidates.split(",") if name.strip()]
    try:
        with config.existing_database() as database:
            ready(database)

            def attempt():
                with db.connect(database.admin_url) as conn:
                    db.lift_statement_timeout(conn)
                    result = tuning(
                        conn, periods, max_alerts, min_precision, names, min_marginal_precision
                    )
                    if apply_it and result["chosen"]:
                        apply(conn, result["switch"])
                    conn.commit()
                    return result

            result = db.retry_conflicts(attempt)
    except InvalidInput as exc:  # from SQL tune_rules: names the field
        raise click.BadParameter(
            exc.message, param_hint=TUNE_OPTIONS.get(exc.field or "", "--candidates")
        ) from None
    except PgfraudError as exc:
        _fail(exc)
    if as_json:
        import json

        # Parameters as exact JSON numbers; the figures' ratios as decimal
        # strings, as `pgfraud evaluate --json` writes them.
        figures = json.loads(json.dumps(result["figures"], default=str))
        decisions = json.loads(json.dumps(result["decisions"], default=str))
        click.echo(db.dumps_json({**result, "figures": figures, "decisions": decisions}, indent=1))
    else:
        for line in format_tuning(result, periods):
            click.echo(line)
        click.echo("")
        if not result["chosen"]:
            click.echo("nothing to switch on")
        elif apply_it:
            click.echo(f"switched on: {db.dumps_json(result['chosen'], sort_keys=True)}")
        else:
            click.echo("switch it on: run this command again with --apply, or send")
            click.echo(f"  PATCH /rules {db.dumps_json(result['switch'], sort_keys=True)}")
    if apply_it and not result["chosen"]:
        click.echo("error: no rule set keeps the constraint; nothing was changed", err=True)
        sys.exit(1)


def _alert_line(alert: dict, as_json: bool) -> str:
    from pgfraud.wire import format_timestamp

    values = {
        k: (
            format_timestamp(v)
            if hasattr(v, "astimezone")
            else v
            if v is None or isinstance(v, bool)
            else str(v)
        )
        for k, v in alert.items()
        if k not in ("event_id", "parameters")
    }
    # The rule versions (issue 18) as numbers, the raised version's parameters as JSON.
    for key in ("alert_id", "transaction_id", "account_id", "rule_version", "raised_rule_version"):
        if key in alert:
            values[key] = alert[key]
    if "raised_parameters" in alert:
        values["raised_parameters"] = alert["raised_parameters"]
    if as_json:
        import json

        return json.dumps({"timestamp": values.pop("ts"), **values}, default=str)
    version = f" (rule version {alert['rule_version']})" if "rule_version" in alert else ""
    return (
        f"{values['ts']}  account {alert['account_id']}  transaction {alert['transaction_id']}"
        f"  amount {values['amount']}  {alert['rule_id']}{version}: {alert['reason']}"
    )


@main.command()
@click.option("--account", "account_id", type=Int(0, MAX_ID), help="Only this account.")
@click.option("--rule", "rule_id", help="Only this rule, like large_amount.")
@click.option(
    "--review-status",
    type=click.Choice(["unreviewed", "confirmed_fraud", "false_positive"]),
    help="Only alerts whose transaction has this review status.",
)
@click.option(
    "--outcome",
    type=click.Choice(["approve", "review", "decline"]),
    help="Only alerts whose transaction's decision had this outcome (review: the review queue).",
)
@click.option(
    "--limit",
    type=Int(1, 1000),
    default=20,
    show_default=True,
    help="How many of the newest alerts to list.",
)
@click.option(
    "--order",
    type=click.Choice(["raised", "time"]),
    default="raised",
    show_default=True,
    help="raised: the last raised (by alert id); time: the latest transactions.",
)
@click.option(
    "--follow", is_flag=True, help="Then print new alerts as they are raised (Ctrl-C stops)."
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def alerts(
    account_id,
    rule_id,
    review_status,
    outcome,
    limit: int,
    order: str,
    follow: bool,
    as_json: bool,
) -> None:
    """List the newest alerts, oldest of them first; with --follow, then print new
    ones as they are raised (the live feed: LISTEN/NOTIFY, resumable, in raise order).

    The order: with --order raised (the default), the LIMIT last raised, in
    raise order (by alert id, unique, so the same each time; the alerts one
    store raises are numbered in transaction time order, and an alert that
    re-scoring keeps keeps its place); with --order time, the LIMIT latest
    transactions' alerts, in transaction time order (ties by alert id).
    Each line: transaction time, account, transaction, amount, rule and reason.
    --follow prints every new alert, whatever the filters.
    """
    from pgfraud.service.feed import CHANNEL
    from pgfraud.wire import parse_feed_position

    try:
        with config.database() as database:
            ready(database)
            with db.connect(database.app_url, autocommit=True) as conn:
                if follow:
                    conn.execute(f"LISTEN {CHANNEL}")
                position = parse_feed_position(db.get_alert_feed_start(conn))
                rows = db.get_alerts(
                    conn,
                    account_id=account_id,
                    rule_id=rule_id,
                    review_status=review_status,
                    outcome=outcome,
                    limit=limit,
                    order=order,
                )
                for row in reversed(rows):
                    click.echo(_alert_line(row, as_json))
                if not follow:
                    return
                if not as_json:
                    click.echo("-- following new alerts (Ctrl-C stops)", err=True)
                while True:
                    for row in db.get_alert_feed(conn, position):
                        position = parse_feed_position(row["event_id"])
                        click.echo(_alert_line(row, as_json))
                    # A notification, or a second: then read again (an alert may
                    # wait for older database transactions to finish).
                    for _ in conn.notifies(timeout=1.0, stop_after=1):
                        pass
    except KeyboardInterrupt:
        return
    except InvalidInput as exc:  # get_alerts: a rule id that is not a rule, say
        hint = {"rule_id": "--rule", "account_id": "--account"}.get(exc.field or "")
        if hint is None:
            _fail(exc)
        raise click.BadParameter(exc.message, param_hint=hint) from None
    except PgfraudError as exc:
        _fail(exc)


@main.command()
@click.argument("transaction_id", type=Int(0, MAX_ID))
@click.option(
    "--status",
    required=True,
    type=click.Choice(["confirmed_fraud", "false_positive"]),
    help="The decision.",
)
@click.option("--note", default="", help="Why (at most 2,000 characters).")
@click.option("--reviewer", default=None, help="Who decided (default: --actor, your login name).")
def review(transaction_id: int, status: str, note: str, reviewer: str | None) -> None:
    """Record an analyst's decision on a stored transaction; `pgfraud evaluate`
    then counts it as a label (confirmed_fraud) or as not fraud (false_positive)."""
    try:
        with config.database() as database:
            ready(database)

            def attempt():
                with db.connect(database.app_url) as conn:
                    row = db.review_transaction(conn, transaction_id, status, note, reviewer)
                    conn.commit()
                    return row

            row = db.retry_conflicts(attempt)
    except PgfraudError as exc:
        _fail(exc)
    click.echo(
        f"transaction {row['transaction_id']} (account {row['account_id']}): {row['status']}"
        f" by {row['reviewer']}"
    )


@main.group(name="rule")
def rule_group() -> None:
    """Rules: add a user's rule, change a rule's parameters, switch a rule on or off."""


@rule_group.command(name="add")
@click.argument("rule_id")
@click.argument("expression")
@click.option("--description", default=None, help="What it catches (default: the expression).")
@click.option("--enable", is_flag=True, help="Switch it on now (default: off, to backtest first).")
def rule_add(rule_id: str, expression: str, description: str | None, enable: bool) -> None:
    """Add (or replace) RULE_ID: a boolean SQL EXPRESSION over the features
    amount, prior_count, prior_average, seconds_since_previous, count_1h,
    sum_1h, count_24h, sum_24h, merchant_id and first_at_merchant, like
    'amount > 5 * prior_average AND count_24h >= 3'.

    Backtest it with `pgfraud evaluate --rules '{"RULE_ID": {}}'`, then
    `pgfraud rule enable RULE_ID`.
    """
    try:
        with config.existing_database() as database:
            ready(database)
            limit = config.rule_change_timeout_ms()

            def attempt():
                with db.connect(database.admin_url) as conn, db.rule_change_time(conn, limit):
                    row = db.add_rule(conn, rule_id, expression, description, enable)
                    conn.commit()
                    return row

            row = db.retry_conflicts(attempt)
    except PgfraudError as exc:
        _fail(exc)  # a refused expression (or id) is bad input: exit 2, as `rule set`
    state = "on" if row["enabled"] else "off"
    click.echo(f"rule {row['rule_id']} added ({state}): {row['expression']}")


def _switch_rule(rule_id: str, enabled: bool) -> None:
    try:
        with config.existing_database() as database:
            ready(database)
            limit = config.rule_change_timeout_ms()

            def attempt():
                with db.connect(database.admin_url) as conn, db.rule_change_time(conn, limit):
                    with db.wrap_errors():
                        conn.execute("SELECT set_rule(%s, %s)", (rule_id, enabled))
                    conn.commit()

            db.retry_conflicts(attempt)
    except PgfraudError as exc:
        _fail(exc)
    click.echo(f"rule {rule_id} {'on' if enabled else 'off'}; stored transactions re-scored")


def _assignments(rule_id: str, assignments: tuple[str, ...]) -> dict[str, int | Decimal]:
    """``name=value`` arguments as {name: exact number}; exits 2 with one line naming
    the first one that is not an assignment of a JSON number."""
    from pgfraud.wire import loads_json

    parameters: dict[str, int | Decimal] = {}
    for assignment in assignments:
        name, equals, text = assignment.partition("=")
        name = name.strip()
        problem = None
        if not equals or not name:
            problem = f"{assignment!r} is not name=value (like max_transactions=3)"
        elif name in parameters:
            problem = f"parameter {name} of rule {rule_id} is given twice"
        elif text != text.strip():
            problem = (
                f"parameter {name} of rule {rule_id} must be a number without spaces; got {text!r}"
            )
        else:
            try:
                value = loads_json(text)
            except ValueError:
                value = None
            if isinstance(value, bool) or not isinstance(value, int | Decimal):
                problem = f"parameter {name} of rule {rule_id} must be a number; got {text!r}"
            elif isinstance(value, Decimal) and not value.is_finite():
                problem = f"parameter {name} of rule {rule_id} must be a finite number"
            else:
                parameters[name] = value
        if problem:
            click.echo(f"error: {problem}", err=True)
            sys.exit(2)
    return parameters


@rule_group.command(name="set")
@click.argument("rule_id")
@click.argument("assignments", nargs=-1, required=True, metavar="NAME=VALUE...")
def rule_set(rule_id: str, assignments: tuple[str, ...]) -> None:
    """Change parameters of RULE_ID (built-in or a user's), like
    `pgfraud rule set velocity max_transactions=3`: the values are merged over
    the current ones and checked by the same SQL as PATCH /rules and the page
    (change_rule); the stored transactions are re-scored. A bad name or value
    changes nothing: one line naming the parameter, exit 2.
    """
    parameters = _assignments(rule_id, assignments)
    try:
        with config.existing_database() as database:
            ready(database)
            limit = config.rule_change_timeout_ms()

            def attempt():
                with db.connect(database.admin_url) as conn, db.rule_change_time(conn, limit):
                    before = {r["rule_id"]: r["parameters"] for r in db.get_rules(conn)}
                    row = db.change_rule(conn, rule_id, None, parameters)
                    conn.commit()
                    return row, before.get(rule_id)

            row, before = db.retry_conflicts(attempt)
    except (InvalidInput, RuleNotFound) as exc:  # names the rule and parameter
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(2)
    except PgfraudError as exc:
        _fail(exc)
    state = "on" if row["enabled"] else "off"
    # The values in force already: set_rule writes no version and re-scores nothing.
    done = (
        "already these values: nothing changed"
        if before == row["parameters"]
        else "stored transactions re-scored"
    )
    click.echo(
        f"rule {row['rule_id']} ({state}): {db.dumps_json(row['parameters'], sort_keys=True)};"
        f" {done}"
    )


@rule_group.command(name="enable")
@click.argument("rule_id")
def rule_enable(rule_id: str) -> None:
    """Switch RULE_ID on (built-in or a user's); the stored transactions are re-scored."""
    _switch_rule(rule_id, True)


@rule_group.command(name="disable")
@click.argument("rule_id")
def rule_disable(rule_id: str) -> None:
    """Switch RULE_ID off; its alerts go."""
    _switch_rule(rule_id, False)


# -- rule versions and shadow rules (issue 18) ---------------------------------------


def _ratio(value) -> str:
    return "-" if value is None else str(value)


def _shadow_lines(row: dict) -> list[str]:
    from pgfraud.wire import format_timestamp

    live_state = "on" if row["live_enabled"] else "off"
    return [
        f"{row['rule_id']}: shadow {db.dumps_json(row['shadow_parameters'], sort_keys=True)}"
        f" since {format_timestamp(row['started_at'])} by {row['started_by']};"
        f" live ({live_state}, version {row['live_version']})"
        f" {db.dumps_json(row['live_parameters'], sort_keys=True)}",
        f"  {row['transactions']} transactions since, {row['labelled']} known fraud",
        f"  live:   {row['live_alerts']} alerts ({_ratio(row['live_per_1000'])} per 1,000),"
        f" precision {_ratio(row['live_precision'])}, recall {_ratio(row['live_recall'])}",
        f"  shadow: {row['shadow_alerts']} alerts ({_ratio(row['shadow_per_1000'])} per 1,000),"
        f" precision {_ratio(row['shadow_precision'])}, recall {_ratio(row['shadow_recall'])}",
    ]


@rule_group.command(name="shadow")
@click.argument("rule_id")
@click.argument("assignments", nargs=-1, metavar="[NAME=VALUE]...")
def rule_shadow(rule_id: str, assignments: tuple[str, ...]) -> None:
    """Run RULE_ID in shadow with candidate parameters, like
    `pgfraud rule shadow large_amount threshold=15000` (merged over the live
    ones; none: the rule as it is, e.g. one that is off): from now on each
    stored transaction is also scored with them, into shadow alerts that
    neither is_fraud, the decisions nor the queue show. Compare with
    `pgfraud rule shadows`; then `pgfraud rule promote RULE_ID` or
    `pgfraud rule drop-shadow RULE_ID`. A bad name or value changes nothing:
    one line naming the parameter, exit 2.
    """
    parameters = _assignments(rule_id, assignments)
    try:
        with config.existing_database() as database:
            ready(database)

            def attempt():
                with db.connect(database.admin_url) as conn:
                    row = db.shadow_rule(conn, rule_id, parameters)
                    conn.commit()
                    return row

            row = db.retry_conflicts(attempt)
    except (InvalidInput, RuleNotFound) as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(2)
    except PgfraudError as exc:
        _fail(exc)
    click.echo(
        f"rule {row['rule_id']} in shadow: {db.dumps_json(row['parameters'], sort_keys=True)}"
        f" (live version {row['live_version']}); new transactions are scored by it"
    )


@rule_group.command(name="shadows")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def rule_shadows(as_json: bool) -> None:
    """Compare each shadow rule with its live rule over the transactions stored
    since the shadow started: alerts (and per 1,000), precision and recall on the
    labels known so far ('-': nothing to divide by)."""
    try:
        with config.existing_database() as database:
            ready(database)
            with db.connect(database.app_url, autocommit=True) as conn:
                rows = db.compare_shadow_rules(conn)
    except PgfraudError as exc:
        _fail(exc)
    if not rows and not as_json:
        click.echo("no rule is in shadow")
    for row in rows:
        if as_json:
            from pgfraud.wire import format_timestamp

            click.echo(db.dumps_json({**row, "started_at": format_timestamp(row["started_at"])}))
        else:
            click.echo("\n".join(_shadow_lines(row)))


@rule_group.command(name="promote")
@click.argument("rule_id")
def rule_promote(rule_id: str) -> None:
    """Make RULE_ID's shadow live: the rule is switched on with the shadow's
    parameters (a new rule version), the stored transactions are re-scored as by
    `pgfraud rule set`, and the shadow goes."""
    try:
        with config.existing_database() as database:
            ready(database)
            limit = config.rule_change_timeout_ms()

            def attempt():
                with db.connect(database.admin_url) as conn, db.rule_change_time(conn, limit):
                    row = db.promote_shadow_rule(conn, rule_id)
                    conn.commit()
                    return row

            row = db.retry_conflicts(attempt)
    except RuleNotFound as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(2)
    except PgfraudError as exc:
        _fail(exc)
    click.echo(
        f"rule {row['rule_id']} (on): {db.dumps_json(row['parameters'], sort_keys=True)};"
        " shadow promoted, stored transactions re-scored"
    )


@rule_group.command(name="drop-shadow")
@click.argument("rule_id")
def rule_drop_shadow(rule_id: str) -> None:
    """End RULE_ID's shadow; its shadow alerts go, the live rule is untouched."""
    try:
        with config.existing_database() as database:
            ready(database)

            def attempt():
                with db.connect(database.admin_url) as conn:
                    db.drop_shadow_rule(conn, rule_id)
                    conn.commit()

            db.retry_conflicts(attempt)
    except RuleNotFound as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(2)
    except PgfraudError as exc:
        _fail(exc)
    click.echo(f"shadow of rule {rule_id} dropped")


@rule_group.command(name="versions")
@click.argument("rule_id")
def rule_versions(rule_id: str) -> None:
    """List RULE_ID's versions, newest first: what an alert's rule_version or a
    decision's rule entry refers to (enabled, parameters, when, by whom)."""
    try:
        with config.existing_database() as database:
            ready(database)
            with db.connect(database.app_url, autocommit=True) as conn:
                rows = db.get_rule_versions(conn, rule_id)
    except RuleNotFound as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(2)
    except PgfraudError as exc:
        _fail(exc)
    from pgfraud.wire import format_timestamp

    for row in rows:
        state = "on" if row["enabled"] else "off"
        what = row["expression"] or db.dumps_json(row["parameters"], sort_keys=True)
        click.echo(
            f"{rule_id} version {row['version']} ({state}): {what}"
            f"  from {format_timestamp(row['valid_from'])} by {row['actor']}"
        )


# -- decisions, policy and lists (issue 17) ------------------------------------------

_POLICY_KEYS = {
    "review": "review_threshold",
    "decline": "decline_threshold",
    "default": "default_score",
    "review_threshold": "review_threshold",
    "decline_threshold": "decline_threshold",
    "default_score": "default_score",
}


def _bad_input(exc: PgfraudError) -> None:
    """One line naming the field, exit 2 (bad input, as click's usage errors)."""
    field = f"{exc.field}: " if exc.field and not exc.message.startswith(exc.field) else ""
    click.echo(f"error: {field}{exc.message}", err=True)
    sys.exit(2)


def _as_owner(work, create: bool = False):
    """work(conn) as the database owner in one transaction, committed; bad input
    (InvalidInput) or an unknown name (NotFound) is one line and exit 2, any
    other failure one line and exit 1."""
    try:
        with config.database() if create else config.existing_database() as database:
            ready(database)

            def attempt():
                with db.connect(database.admin_url) as conn:
                    result = work(conn)
                    conn.commit()
                    return result

            result = db.retry_conflicts(attempt)
    except InvalidInput as exc:
        _bad_input(exc)
    except PgfraudError as exc:
        _fail(exc)
    return result


def _decision_line(decision: dict, as_json: bool) -> str:
    if as_json:
        return db.dumps_json(decision)
    rules = " ".join(f"{r['rule_id']}({r['score']})" for r in decision["rules"])
    lists = " ".join(f"[{e['kind']} {e['list_name']}]" for e in decision["lists"])
    overruled = f" (score said {decision['score_outcome']})" if decision["overruled"] else ""
    return (
        f"{decision['timestamp']}  account {decision['account_id']}"
        f"  transaction {decision['transaction_id']}  amount {decision['amount']}"
        f"  {decision['outcome']}{overruled}  score {decision['score']}"
        + (f"  {rules}" if rules else "")
        + (f"  {lists}" if lists else "")
    )


@main.command()
@click.option(
    "--outcome", type=click.Choice(["approve", "review", "decline"]), help="Only this outcome."
)
@click.option("--account", "account_id", type=Int(0, MAX_ID), help="Only this account.")
@click.option(
    "--limit",
    type=Int(1, 1000),
    default=20,
    show_default=True,
    help="How many of the newest decisions (by transaction time) to list.",
)
@click.option(
    "--follow",
    is_flag=True,
    help="Then print new decisions as they are made, with the same filters (Ctrl-C stops).",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def decisions(
    outcome: str | None, account_id: int | None, limit: int, follow: bool, as_json: bool
) -> None:
    """List the newest decisions, oldest of them first: each transaction's outcome
    (approve, review, decline) as answered when it was stored, its score, the rules
    that fired with their scores, and the list entries that applied. With
    --follow, then print new ones as they are made (the live feed of decisions,
    in the order their database transactions were made, resumable like the
    alerts'); --outcome and --account filter them too."""
    from pgfraud.service.feed import CHANNEL
    from pgfraud.wire import parse_feed_position

    def wanted(decision: dict) -> bool:
        return (outcome is None or decision["outcome"] == outcome) and (
            account_id is None or decision["account_id"] == account_id
        )

    try:
        with config.database() as database:
            ready(database)
            with db.connect(database.app_url, autocommit=True) as conn:
                if follow:
                    conn.execute(f"LISTEN {CHANNEL}")
                position = parse_feed_position(db.get_alert_feed_start(conn))
                rows = db.get_decisions(conn, outcome=outcome, account_id=account_id, limit=limit)
                for row in reversed(rows):
                    click.echo(_decision_line(row, as_json))
                if not follow:
                    return
                if not as_json:
                    click.echo("-- following new decisions (Ctrl-C stops)", err=True)
                while True:
                    for event_id, decision in db.get_decision_feed(conn, position):
                        position = parse_feed_position(event_id)
                        if wanted(decision):
                            click.echo(_decision_line(decision, as_json))
                    # A notification (a store that raised alerts) or half a
                    # second: then read again. Not every store notifies (only
                    # new alerts do), and a decision may wait for older
                    # database transactions to finish.
                    for _ in conn.notifies(timeout=0.5, stop_after=1):
                        pass
    except KeyboardInterrupt:
        return
    except PgfraudError as exc:
        _fail(exc)


def _policy_lines(policy: dict) -> list[str]:
    lines = [
        f"approve below {policy['review_threshold']}, review from {policy['review_threshold']},"
        f" decline from {policy['decline_threshold']}"
        f" (policy {policy['policy_id']}, set by {policy['set_by']}"
        + (f" at {policy['effective_from']})" if policy["effective_from"] else ")"),
    ]
    lines += [f"  {rule_id}: {score}" for rule_id, score in policy["rule_scores"].items()]
    lines.append(f"  (a rule not named: {policy['default_score']})")
    return lines


@main.group(name="policy")
def policy_group() -> None:
    """The decision policy: review and decline thresholds over the sum of rule scores."""


@policy_group.command(name="show")
@click.option("--json", "as_json", is_flag=True, help="As JSON.")
def policy_show(as_json: bool) -> None:
    """Show the policy in force: thresholds and every rule's score."""
    policy = _as_owner(db.get_decision_policy)
    click.echo(db.dumps_json(policy, indent=2) if as_json else "\n".join(_policy_lines(policy)))


def _policy_change(pairs: tuple[str, ...]) -> dict:
    from pgfraud.wire import parse_policy_change

    changes: dict = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        field = _POLICY_KEYS.get(key.strip())
        if not sep or field is None:
            raise InvalidInput(
                f"{pair!r} is not KEY=VALUE with KEY review, decline or default", field=key
            )
        text = text.strip()
        if not _SCORE.fullmatch(text):
            raise InvalidInput(f"{field} must be an integer, not {text!r}", field=field)
        changes[field] = int(text)
    return parse_policy_change(changes)


@policy_group.command(name="set")
@click.argument("settings", nargs=-1, required=True, metavar="KEY=VALUE...")
@click.option(
    "--by", "actor", default=None, help="Who changes it (default: --actor, your login name)."
)
def policy_set(settings: tuple[str, ...], actor: str | None) -> None:
    """Put a new policy in force from now: review=N (1..1000), decline=N (1..1000, at
    least review), default=N (0..1000, the score of a rule not named), like
    `pgfraud policy set review=50 decline=100`. Earlier decisions keep theirs.
    The same values as the policy in force change nothing (no new version, no
    audit row), and it says so."""
    try:
        changes = _policy_change(settings)
    except InvalidInput as exc:
        _bad_input(exc)
    before, policy = _as_owner(lambda conn: _set_policy(conn, changes, actor))
    if policy["policy_id"] == before["policy_id"]:
        click.echo(f"policy {policy['policy_id']} already has these values: nothing changed")
        return
    click.echo("\n".join(_policy_lines(policy)))


def _set_policy(conn, changes: dict, actor: str | None) -> tuple[dict, dict]:
    """(the policy in force before, the one after) set_decision_policy: the same
    policy_id when the change left every value as it was (nothing written)."""
    return db.get_decision_policy(conn), db.set_decision_policy(conn, changes, actor)


# A score or threshold as the command line gives it: ASCII digits (int() also
# takes other scripts' digits), at most 10 of them; a sign is refused by the
# database's range (scores and thresholds are 0..1000) with its message.
_SCORE = re.compile(r"-?[0-9]{1,10}")


# SCORE may look like an option (-1): it is then the argument, refused by range.
@rule_group.command(name="score", context_settings={"ignore_unknown_options": True})
@click.argument("rule_id")
@click.argument("score")
@click.option(
    "--by", "actor", default=None, help="Who changes it (default: --actor, your login name)."
)
def rule_score(rule_id: str, score: str, actor: str | None) -> None:
    """Set RULE_ID's SCORE (0..1000): what it adds to a transaction's score when it
    fires. A new policy version from now; earlier decisions keep theirs."""
    from pgfraud.wire import parse_policy_change

    field = f"rule_scores.{rule_id}"
    if not _SCORE.fullmatch(score):
        _bad_input(InvalidInput(f"{field} must be an integer, not {score!r}", field=field))
    try:
        changes = parse_policy_change({"rule_scores": {rule_id: int(score)}})
    except InvalidInput as exc:
        _bad_input(exc)
    before, policy = _as_owner(lambda conn: _set_policy(conn, changes, actor))
    unchanged = " already: nothing changed" if policy["policy_id"] == before["policy_id"] else ""
    click.echo(
        f"rule {rule_id} scores {policy['rule_scores'][rule_id]}"
        f" (policy {policy['policy_id']}){unchanged}"
    )


@main.group(name="list")
def list_group() -> None:
    """Allow and block lists of accounts or merchants: block forces decline, allow approve."""


def _entry(list_name: str, value: str, reason: str = "-", expires: str | None = None):
    from pgfraud.wire import ListEntry, parse_model

    if value != value.strip():  # a JSON body's id may have them; an argument, as a path id, not
        _bad_input(InvalidInput("value must be digits, without spaces", field="value"))
    data = {"value": value, "reason": reason}
    if expires is not None:
        data["expires_at"] = expires
    try:
        return parse_model(ListEntry, data)
    except InvalidInput as exc:
        _bad_input(exc)


@list_group.command(name="create")
@click.argument("list_name")
@click.option("--subject", required=True, type=click.Choice(["account", "merchant"]))
@click.option("--kind", required=True, type=click.Choice(["block", "allow"]))
@click.option("--description", default="", help="What the list is for.")
@click.option(
    "--by", "actor", default=None, help="Who creates it (default: --actor, your login name)."
)
def list_create(list_name: str, subject: str, kind: str, description: str, actor: str | None):
    """Create LIST_NAME (lower_snake_case), a list of accounts or merchants."""
    row = _as_owner(lambda conn: db.create_list(conn, list_name, subject, kind, description, actor))
    click.echo(f"list {row['list_name']}: {row['kind']} {row['subject']}s")


@list_group.command(name="add")
@click.argument("list_name")
@click.argument("value")
@click.option("--reason", required=True, help="Why (1..2,000 characters).")
@click.option("--expires", default=None, help="When it ends (ISO 8601 or epoch ms, in the future).")
@click.option(
    "--by", "actor", default=None, help="Who adds it (default: --actor, your login name)."
)
def list_add(list_name: str, value: str, reason: str, expires: str | None, actor: str | None):
    """Put VALUE (an account or merchant id) on LIST_NAME from now."""
    entry = _entry(list_name, value, reason, expires)

    def add(conn):
        try:
            return db.add_list_entry(
                conn, list_name, entry.value, entry.reason, entry.expires_at, actor
            )
        except ListNotFound as exc:  # a 404 over HTTP; here named as LIST_NAME (exit 2 either way)
            raise InvalidInput(exc.message, field=exc.field) from None

    row = _as_owner(add)
    until = f" until {row['expires_at']}" if row["expires_at"] else ""
    click.echo(
        f"{row['subject']} {row['value']} on {row['kind']} list {row['list_name']}{until}"
        f" (entry {row['entry_id']})"
    )


@list_group.command(name="remove")
@click.argument("list_name")
@click.argument("value")
@click.option(
    "--by", "actor", default=None, help="Who removes it (default: --actor, your login name)."
)
def list_remove(list_name: str, value: str, actor: str | None):
    """Take VALUE off LIST_NAME from now (the entry is kept, ended)."""
    entry = _entry(list_name, value)
    row = _as_owner(lambda conn: db.remove_list_entry(conn, list_name, entry.value, actor))
    click.echo(f"{row['value']} off list {row['list_name']} (entry {row['entry_id']})")


@list_group.command(name="show")
@click.argument("list_name", required=False)
@click.option("--json", "as_json", is_flag=True, help="As JSON.")
def list_show(list_name: str | None, as_json: bool):
    """Show every list, or LIST_NAME's entries in force now."""
    if list_name is None:
        rows = _as_owner(db.get_lists)
        if as_json:
            click.echo(db.dumps_json(rows, indent=2))
        for row in [] if as_json else rows:
            click.echo(
                f"{row['list_name']}: {row['kind']} {row['subject']}s, {row['entries']} entries"
            )
        return
    row = _as_owner(lambda conn: db.get_list(conn, list_name))
    if as_json:
        click.echo(db.dumps_json(row, indent=2))
        return
    click.echo(f"{row['list_name']}: {row['kind']} {row['subject']}s")
    for entry in row["entries"]:
        until = f" until {entry['expires_at']}" if entry["expires_at"] else ""
        click.echo(
            f"  {entry['value']}: {entry['reason']} (by {entry['added_by']}"
            f" at {entry['added_at']}{until})"
        )


# -- cases (issue 18, part 5) -------------------------------------------------------


def _raised_note(case: dict) -> str:
    """`` (N still raised)`` when re-scoring took some of a case's alerts away."""
    raised = case.get("alerts_raised", case["alert_count"])
    return "" if raised == case["alert_count"] else f" ({raised} still raised)"


def _case_line(case: dict) -> str:
    who = f"  assigned to {case['assignee']}" if case["assignee"] else ""
    end = (
        f"  {case['resolution']} by {case['closed_by']} at {case['closed_at']}"
        if case["status"] == "closed"
        else ""
    )
    return (
        f"case {case['case_id']}  account {case['account_id']}  {case['status']}"
        f"  {case['alert_count']} alert(s) on {case['transaction_count']} transaction(s)"
        f"{_raised_note(case)}"
        f"  opened {case['opened_at']}{who}{end}"
    )


def _on_cases(work, actor: str | None = None):
    """work(conn) as the service's role in one transaction, committed, made for
    ``actor`` (None: the command's --actor, your login name); refused input
    or no such case one line and exit 2, another failure (a closed case) one
    line and exit 1."""
    try:
        with config.database() as database:
            ready(database)

            def attempt():
                with db.connect(database.app_url) as conn:
                    if actor and actor.strip():  # empty: the command's --actor
                        db.set_actor(conn, actor.strip())
                    result = work(conn)
                    conn.commit()
                    return result

            result = db.retry_conflicts(attempt)
    except InvalidInput as exc:
        _bad_input(exc)
    except PgfraudError as exc:
        _fail(exc)
    return result


# -- named tokens and the audit trail (issue 18) ----------------------------------


def _owner_call(work):
    """work(conn) as the database owner in one transaction, committed, after
    checking (reading only) that the schema is current (:func:`ready`: a
    schema that is behind is exit 2, never migrated here); bad input
    (InvalidInput) is one line naming the field and exit 2, as an unknown
    name (NotFound); any other failure one line and exit 1."""
    try:
        with config.existing_database() as database:
            ready(database)

            def attempt():
                with db.connect(database.admin_url) as conn:
                    result = work(conn)
                    conn.commit()
                    return result

            result = db.retry_conflicts(attempt)
    except InvalidInput as exc:
        _bad_input(exc)
    except PgfraudError as exc:
        _fail(exc)
    return result


_ACTOR = click.option(
    "--by", "actor", default=None, help="Who does it (default: --actor, your login name)."
)


@main.group(name="case")
def case_group() -> None:
    """Cases: an account's open alerts as one case, assigned and closed with a resolution."""


@case_group.command(name="list")
@click.option(
    "--status",
    type=click.Choice(["open", "assigned", "closed", "active"]),
    help="Only these (active: open or assigned).",
)
@click.option("--assignee", default=None, help="Only the cases assigned to this name.")
@click.option("--account", "account_id", type=Int(0, MAX_ID), help="Only this account.")
@click.option("--limit", type=Int(1, 1000), default=20, show_default=True, help="How many.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def case_list(status, assignee, account_id, limit: int, as_json: bool) -> None:
    """List cases, newest first."""
    rows = _on_cases(
        lambda conn: db.get_cases(
            conn, status=status, assignee=assignee, account_id=account_id, limit=limit
        )
    )
    for row in rows:
        click.echo(db.dumps_json(row) if as_json else _case_line(row))


@case_group.command(name="show")
@click.argument("case_id", type=Int(0, MAX_ID))
@click.option("--json", "as_json", is_flag=True, help="As JSON.")
def case_show(case_id: int, as_json: bool) -> None:
    """Show a case and its alerts, oldest transaction first."""
    case = _on_cases(lambda conn: db.get_case(conn, case_id))
    if as_json:
        click.echo(db.dumps_json(case, indent=2))
        return
    click.echo(_case_line(case))
    if case["note"]:
        click.echo(f"  note: {case['note']}")
    for a in case["alerts"]:
        gone = "" if a["raised"] else "  (no longer raised)"
        click.echo(
            f"  {a['timestamp']}  transaction {a['transaction_id']}  amount {a['amount']}"
            f"  {a['rule_id']}  {a['review_status']}{gone}"
        )


@case_group.command(name="assign")
@click.argument("case_id", type=Int(0, MAX_ID))
@click.argument("assignee")
@_ACTOR
def case_assign(case_id: int, assignee: str, actor: str | None) -> None:
    """Assign a case that is not closed to ASSIGNEE."""
    case = _on_cases(lambda conn: db.assign_case(conn, case_id, assignee), actor)
    click.echo(_case_line(case) + f" by {case['assigned_by']}")


@case_group.command(name="close")
@click.argument("case_id", type=Int(0, MAX_ID))
@click.option(
    "--resolution",
    required=True,
    type=click.Choice(["fraud", "not_fraud", "withdrawn"]),
    help="The outcome (withdrawn: none of its alerts is raised any more; nothing reviewed).",
)
@click.option("--note", default="", help="Why (at most 2,000 characters).")
@_ACTOR
def case_close(case_id: int, resolution: str, note: str, actor: str | None) -> None:
    """Close a case: its transactions are reviewed (fraud: confirmed_fraud; not_fraud:
    false_positive), so `pgfraud evaluate` counts them as labels. withdrawn (a case
    none of whose alerts is raised any more) reviews nothing; refused, exit 2, while
    one is raised."""
    case = _on_cases(lambda conn: db.close_case(conn, case_id, resolution, note), actor)
    click.echo(_case_line(case) + f"; {case['reviewed']} transaction(s) reviewed")


@main.group(name="token")
def token_group() -> None:
    """Named API tokens: one per analyst or service, with a role (analyst or owner)."""


@token_group.command(name="add")
@click.argument("name")
@click.option("--role", default=None, help="analyst (read, review, backtest, cases) or owner (also"
              " rules, policy, lists and tokens).")  # fmt: skip
def token_add(name: str, role: str | None) -> None:
    """Make a token for NAME with --role analyst or owner. Prints its secret on
    stdout, this once: only its SHA-256 digest is stored. Give it to NAME;
    the service records NAME as the actor of every write made with it."""
    from pgfraud.service.auth import digest, new_secret

    if role not in ("analyst", "owner"):
        given = "none" if role is None else repr(role)
        click.echo(f"error: role: --role must be analyst or owner (given: {given})", err=True)
        sys.exit(2)
    secret = new_secret()
    row = _owner_call(lambda conn: db.add_api_token(conn, name, role, digest(secret)))
    click.echo(secret)
    click.echo(
        f"token {row['token_name']} ({row['role']}) made by {row['created_by']}; the secret"
        " above is not shown again",
        err=True,
    )


@token_group.command(name="list")
@click.option("--revoked", is_flag=True, help="Also the revoked tokens.")
@click.option("--json", "as_json", is_flag=True, help="As JSON.")
def token_list(revoked: bool, as_json: bool) -> None:
    """List the named tokens (never their secrets): name, role, who made it and when."""
    rows = _owner_call(lambda conn: db.get_api_tokens(conn, revoked))
    if as_json:
        click.echo(db.dumps_json(rows, indent=2))
        return
    for row in rows:
        ended = (
            f", revoked by {row['revoked_by']} at {row['revoked_at']}" if row["revoked_at"] else ""
        )
        click.echo(
            f"{row['token_name']}  {row['role']}  made by {row['created_by']}"
            f" at {row['created_at']}{ended}"
        )


@token_group.command(name="revoke")
@click.argument("name")
def token_revoke(name: str) -> None:
    """Revoke NAME's token: the service refuses it within PGFRAUD_TOKEN_CACHE_S
    seconds (default 1) and its page sessions end. The name may then get a new token."""
    row = _owner_call(lambda conn: db.revoke_api_token(conn, name))
    click.echo(f"token {row['token_name']} revoked by {row['revoked_by']}")


def _audit_line(entry: dict) -> str:
    from pgfraud.wire import format_timestamp

    before, after = entry["before"] or {}, entry["after"] or {}
    changed = [
        f"{key}: {db.dumps_json(before.get(key))} -> {db.dumps_json(after.get(key))}"
        for key in dict.fromkeys([*before, *after])
        if before.get(key) != after.get(key)
    ]
    alerts = ""
    if entry["alerts_added"] is not None:
        alerts = f"  alerts +{entry['alerts_added']} -{entry['alerts_removed']}"
    what = "; ".join(changed) if entry["action"] == "update" else ""
    return (
        f"{format_timestamp(entry['at'])}  {entry['actor']}  {entry['action']} "
        f"{entry['object_kind']} {entry['object_key']}{alerts}" + (f"  {what}" if what else "")
    )


@main.command()
@click.option("--actor", "who", default=None, help="Only changes made by this actor.")
@click.option(
    "--kind",
    "object_kind",
    default=None,
    help="Only this kind of object: rule, shadow_rule, policy, list, list_entry, review, token,"
    " case, case_alert.",
)
@click.option("--key", "object_key", default=None, help="Only this object, like large_amount.")
@click.option("--from", "start", default=None, help="Changes at or after (ISO 8601 or epoch ms).")
@click.option("--to", "end", default=None, help="Changes before (ISO 8601 or epoch ms).")
@click.option(
    "--limit", type=Int(1, 1000), default=20, show_default=True,
    help="How many of the newest changes.",
)  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def audit(who, object_kind, object_key, start, end, limit: int, as_json: bool) -> None:
    """The audit trail: who changed which rule, policy, list, review or token, when,
    from what to what, and the alerts a rule change added and removed; the newest
    --limit, oldest of them first. Changes made in psql are there too."""
    from pgfraud.wire import AuditQuery, format_timestamp, parse_model

    args = {"actor": who, "object_kind": object_kind, "object_key": object_key,
            "from": start, "to": end}  # fmt: skip
    try:
        query = parse_model(AuditQuery, {k: v for k, v in args.items() if v is not None})
    except InvalidInput as exc:
        flag = {"actor": "--actor", "object_kind": "--kind", "object_key": "--key"}
        exc.field = flag.get(exc.field or "", f"--{exc.field}")
        _bad_input(exc)
    rows = _owner_call(
        lambda conn: db.get_audit(
            conn,
            actor=query.actor,
            object_kind=query.object_kind,
            object_key=query.object_key,
            start=query.from_,
            end=query.to,
            limit=limit,
        )
    )
    for row in reversed(rows):
        if as_json:
            click.echo(db.dumps_json({**row, "at": format_timestamp(row["at"])}))
        else:
            click.echo(_audit_line(row))


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@main.command()
@click.option("--host", envvar="HOST", default="127.0.0.1", show_default=True)
@click.option("--port", envvar="PORT", default=5000, show_default=True, type=Int(1, 65535))
@click.option(
    "--workers",
    envvar="PGFRAUD_WORKERS",
    default=None,
    type=Int(1, 64),
    help="Worker processes (default: one per core).",
)
@click.option(
    "--threads",
    envvar="PGFRAUD_THREADS",
    default=32,
    show_default=True,
    type=Int(1, 256),
    help="Threads per worker (long-lived streams each hold one).",
)
@click.option(
    "--seed-transactions",
    envvar="PGFRAUD_SEED_TRANSACTIONS",
    default=SEED_TRANSACTIONS,
    show_default=True,
    type=Int(0, MAX_ID),
    help="Transactions generated into an empty database on first run (0: none).",
)
@click.option("--seed-accounts", default=SEED_ACCOUNTS, show_default=True, type=Int(1, MAX_ID))
def run(
    host: str,
    port: int,
    workers: int | None,
    threads: int,
    seed_transactions: int,
    seed_accounts: int,
) -> None:
    """Get a database, migrate it, seed it once, and serve the API until Ctrl-C.

    The server is granian (Rust HTTP, WSGI): one worker process per core
    (--workers), each with --threads Python threads and its own connection
    pool. The port is bound first: a port in use is a one-line error before
    anything starts.
    """
    from pgfraud import serve
    from pgfraud.service import create_app
    from pgfraud.service.feed import share_stream_slots, stop_listener

    token = os.environ.get("PGFRAUD_API_TOKEN")
    proxies = os.environ.get("PGFRAUD_TRUSTED_PROXIES", "").strip()
    exposed = not _is_loopback(host) or proxies not in ("", "0")

    def refuse_when_open(named: bool) -> None:
        # Exposed (off loopback, or behind a proxy) only with a token: the
        # single PGFRAUD_API_TOKEN, or named tokens (pgfraud token add).
        if not exposed or token or named:
            return
        if not _is_loopback(host):
            click.echo(
                f"error: refusing to listen on {host} without PGFRAUD_API_TOKEN or a named token"
                " (`pgfraud token add`): every transaction would be open to the network",
                err=True,
            )
        else:
            click.echo(
                "error: refusing to serve behind a proxy (PGFRAUD_TRUSTED_PROXIES) without "
                "PGFRAUD_API_TOKEN or a named token (`pgfraud token add`): the proxy would open"
                " every transaction to the network",
                err=True,
            )
        sys.exit(2)

    try:  # a busy port is refused now, before PostgreSQL starts or seeding runs
        serve.bind(host, port).close()
    except PgfraudError as exc:
        _fail(exc)

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    # Also when started in the background by a shell that ignores SIGINT.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with config.database() as database:
            done = Done()
            migrated = _migrated(prepare(database, done), done)
            if migrated:
                click.echo(migrated)
            if database.server is None and database.app_url == database.admin_url:
                click.echo(
                    "note: the service connects with DATABASE_URL, the schema owner; for least "
                    "privilege make a login with `pgfraud db create-user NAME` and set "
                    "PGFRAUD_APP_DATABASE_URL to it",
                    err=True,
                )
            with db.connect(database.app_url) as conn:
                empty = db.count_transactions(conn) == 0
                refuse_when_open(any(d is not None for _, _, d in db.get_api_token_digests(conn)))
            if empty and seed_transactions:
                from pgfraud.generator import seed_database

                labels = config.home() / "labels.csv"
                click.echo(
                    f"seeding {seed_transactions:,} generated transactions over "
                    f"{seed_accounts:,} accounts (labels: {labels})"
                )
                labels.parent.mkdir(parents=True, exist_ok=True)
                # Which transactions are fraud: readable by the owner only, as
                # the passwords beside it (the generator keeps the mode).
                labels.touch(mode=0o600, exist_ok=True)
                labels.chmod(0o600)
                seed_database(
                    database.app_url,
                    num_transactions=seed_transactions,
                    accounts=seed_accounts,
                    seed=42,
                    labels_path=labels,
                    progress=sys.stderr.isatty(),
                )
                from pgfraud.evaluate import read_labels

                def attempt():
                    with db.connect(database.admin_url) as conn:
                        db.store_labels(conn, read_labels(labels))
                        conn.commit()

                db.retry_conflicts(attempt)
            app = create_app({"DATABASE_URL": database.app_url, "API_TOKEN": token or None})
            base = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
            workers = workers or serve.default_workers()
            # Before the fork: the workers count their event streams together.
            share_stream_slots(app, workers, threads)
            # With a token every call but /health needs it (never printed itself).
            auth = ' -H "Authorization: Bearer $PGFRAUD_API_TOKEN"' if token else ""
            banner = "\n".join(
                [
                    f"pgfraud is serving on {base}  (Ctrl-C stops it)"
                    + (
                        f"; listening on every interface ({host}), port {port}"
                        if host in ("0.0.0.0", "::")
                        else ""
                    ),
                    f"  curl {base}/health",
                    f"  curl{auth} {base}/is_fraud/1",
                    f"  curl{auth} {base}/rules",
                    f"  curl{auth} '{base}/store_data?account_id=1&transaction_id=800000001"
                    "&timestamp=2024-06-01T12:00:00Z&amount=19.99'",
                    '  psql "$(.venv/bin/pgfraud db url)" -c "SELECT * FROM is_fraud(1)"',
                    f"  ({workers} worker process{'es' if workers != 1 else ''} x {threads} "
                    "threads)",
                ]
            )
            # Bound for good only now, so that nobody connects while seeding runs.
            sock = serve.bind(host, port)
            try:
                serve.serve(
                    app,
                    sock,
                    workers=workers,
                    threads=threads,
                    on_ready=lambda: click.echo(banner),
                    on_stop=lambda: stop_listener(app),  # in a worker: end its event streams
                )
            except KeyboardInterrupt:
                pass
            finally:
                click.echo("\nstopping")
    except KeyboardInterrupt:
        pass
    except PgfraudError as exc:
        _fail(exc)


main.add_command(generate)
