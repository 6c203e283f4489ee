"""Shared pieces of the `pgfraud` commands: bounded number types and one-line errors.

Every numeric option takes one of :class:`Int` or :class:`Float`: a stated
range (shown in ``--help``), NaN and infinities refused, and a message that
names the environment variable when the value came from one. Every command
runs under :func:`one_line_errors`, so a failure is one ``error: …`` line on
stderr and exit 1, never a traceback.
"""

from __future__ import annotations

import functools
import math
import os
import re
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click
import psycopg
from click.core import ParameterSource

from pgfraud.errors import DatabaseFailed, PgfraudError, redact

F = TypeVar("F", bound=Callable[..., Any])


def _from_env(param: click.Parameter | None, ctx: click.Context | None) -> str | None:
    """The environment variable that gave ``param`` its value, if one did."""
    if param is None or ctx is None or param.name is None:
        return None
    if ctx.get_parameter_source(param.name) is not ParameterSource.ENVIRONMENT:
        return None
    names = param.envvar if isinstance(param.envvar, list | tuple) else [param.envvar]
    return next((name for name in names if name and os.environ.get(name) is not None), None)


class _EnvNamed(click.ParamType):
    def fail(
        self, message: str, param: click.Parameter | None = None, ctx: click.Context | None = None
    ) -> Any:
        env = _from_env(param, ctx)
        if env:
            message = f"{message} (from the environment variable {env})"
        super().fail(message, param, ctx)


# ASCII digits only, as the HTTP API's integers: Python's int() and float()
# also take other scripts' digits ("١٢" is 12), which nothing else accepts.
_ASCII_INTEGER = re.compile(r"\s*[+-]?[0-9]+\s*")
# (Words such as nan and inf go on to click, and are refused there or below.)
_ASCII_NUMBER = re.compile(r"\s*[+-]?(([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?|[a-zA-Z]+)\s*")


class Int(_EnvNamed, click.IntRange):
    """An integer within ``[min, max]`` (both required: every number has a stated
    range), written in ASCII digits, without spaces around them."""

    def __init__(self, min: int, max: int) -> None:  # noqa: A002 (click's own names)
        super().__init__(min, max)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and value != value.strip():  # as ids in URL paths
            self.fail(f"{value!r} is not an integer (digits 0-9, without spaces)", param, ctx)
        if isinstance(value, str) and not _ASCII_INTEGER.fullmatch(value):
            self.fail(f"{value!r} is not an integer (digits 0-9)", param, ctx)
        return super().convert(value, param, ctx)


class Float(_EnvNamed, click.FloatRange):
    """A finite number within ``[min, max]`` (``min_open``: above ``min``), without
    spaces around it; NaN and infinities are refused."""

    def __init__(self, min: float, max: float, *, min_open: bool = False) -> None:  # noqa: A002
        super().__init__(min, max, min_open=min_open)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and value != value.strip():
            self.fail(f"{value!r} is not a number (digits 0-9, without spaces)", param, ctx)
        if isinstance(value, str) and not _ASCII_NUMBER.fullmatch(value):
            self.fail(f"{value!r} is not a number (digits 0-9)", param, ctx)
        number = click.FLOAT.convert(value, param, ctx) if isinstance(value, str) else value
        if isinstance(number, float) and not math.isfinite(number):
            self.fail(f"{value} is not a finite number", param, ctx)
        return super().convert(number, param, ctx)


class OneLineUsageError(click.UsageError):
    """A click usage error (a bad or missing option or argument) shown as one
    line, ``error: <message naming the option>``, exit 2: click's own shows
    the usage line, a hint and the message (four lines). ``--help`` still
    shows the usage."""

    def show(self, file: Any = None) -> None:
        # Some of click's messages list choices on lines of their own.
        message = re.sub(r"\s*\n\s*", " ", self.format_message().strip())
        click.echo(f"error: {message}", file=file, err=file is None)


def one_line_usage(error: click.UsageError) -> OneLineUsageError:
    """``error`` as a :class:`OneLineUsageError` (same message, context and exit code)."""
    if isinstance(error, OneLineUsageError):
        return error
    converted = OneLineUsageError(error.message, error.ctx)
    converted.exit_code = error.exit_code
    if isinstance(error, click.BadParameter):
        # BadParameter's message names its parameter only in format_message().
        converted.message = error.format_message()
    return converted


def describe_error(exc: PgfraudError) -> str:
    """The one-line message of ``exc`` for the command line: its message, and for a
    failure of the database server (DatabaseFailed) the server's own SQLSTATE
    and message, which the HTTP API only logs."""
    message = exc.message.replace("\n", " ").strip()
    if isinstance(exc, DatabaseFailed):
        from pgfraud.db import describe_cause

        message = f"{message} ({describe_cause(exc)})"
    return message


def describe_os_error(exc: OSError) -> str:
    """``<file>: <reason>`` for a failed file operation."""
    reason = exc.strerror or str(exc)
    return f"{exc.filename}: {reason}" if exc.filename else reason


def describe_lost_connection(exc: psycopg.OperationalError) -> str:
    """One line for a database error no pgfraud call translated (a command's
    own connection, as `migrate`'s): the server ended the session (SQLSTATE
    57P01-57P03, `pg_terminate_backend`, `pgfraud db stop`) or the
    connection broke (no SQLSTATE), a cancelled statement (57014), or
    another refusal. Only the server's first line, without secrets; what
    the command had not committed was rolled back by the server."""
    reason = redact(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
    sqlstate = exc.sqlstate or ""
    if sqlstate == "57014":
        what = "the database cancelled the command"
    elif not sqlstate or sqlstate.startswith(("57P", "08")):
        what = "the connection to the database was lost"
    else:
        what = "the database refused the command"
    return f"{what} ({reason}); what it had not committed was rolled back: try again"


def _quiet_broken_pipe() -> None:
    """End quietly when the reader of stdout went away (``pgfraud … | head``):
    no message, exit 141 as a program killed by SIGPIPE would (128 + 13).
    stdout is pointed at /dev/null first, so the interpreter's last flush
    at exit cannot fail again (Python's documented recipe, "Note on SIGPIPE"
    in the signal module's documentation)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    sys.exit(128 + 13)


def one_line_errors(command: F) -> F:
    """Run ``command`` so that a PgfraudError, an OSError or a database error
    no call translated (:func:`describe_lost_connection`, exit 1) ends it with one
    ``error: …`` line on stderr and the error's ``exit_code`` (1; 2 for SchemaBehind and an
    unknown name or id, the NotFound errors; click's own usage errors pass through; they exit
    2); a closed stdout pipe ends it quietly (exit 141).
    Anything else is a bug: still one line, naming the exception, with
    PGFRAUD_DEBUG=1 to see the traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        code = 1
        try:
            return command(*args, **kwargs)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except PgfraudError as exc:
            message = redact(describe_error(exc))
            code = exc.exit_code
        except BrokenPipeError:
            _quiet_broken_pipe()
        except OSError as exc:
            message = describe_os_error(exc)
        except psycopg.OperationalError as exc:
            message = describe_lost_connection(exc)
        except UnicodeEncodeError:
            # An argument that is not UTF-8 (undecodable bytes on the command
            # line reach Python as lone surrogates): refused input, not a fault.
            message = "an argument is not valid UTF-8 text"
            code = 2
        except Exception as exc:  # noqa: BLE001 (the last line of defence: no tracebacks)
            if os.environ.get("PGFRAUD_DEBUG"):
                raise
            message = redact(  # psycopg's messages can quote the connection string
                f"internal error ({type(exc).__name__}: {exc}); PGFRAUD_DEBUG=1 shows the traceback"
            )
        click.echo(f"error: {message}", err=True)
        sys.exit(code)

    return wrapper  # type: ignore[return-value]
