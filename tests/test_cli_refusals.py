"""Command-line input the break-it tester found accepted or misreported:
integers with spaces around them (refused like ids in URL paths), a bad
login name and a conflicting row in a load (bad input: exit 2, one line
naming the argument or row). Through click's CliRunner on the per-test
database (conftest.py), never a mock."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner, Result

from pgfraud.cli import main
from pgfraud.config import Database

HEADER = "account_id,transaction_id,timestamp,amount\n"


def invoke(args: list[str]) -> Result:
    return CliRunner().invoke(main, args)


def one_line_error(result: Result, exit_code: int) -> str:
    """The one stderr line of a refused command (no traceback), with its exit code."""
    assert result.exit_code == exit_code, (result.output, result.stderr)
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    (line,) = result.stderr.splitlines()
    return line


@pytest.fixture
def external(database: Database, monkeypatch: pytest.MonkeyPatch) -> Database:
    monkeypatch.setenv("DATABASE_URL", database.admin_url)
    monkeypatch.delenv("PGFRAUD_APP_DATABASE_URL", raising=False)
    return database


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["review", " 5", "--status", "confirmed_fraud"],
            "error: Invalid value for 'TRANSACTION_ID': ' 5' is not an integer "
            "(digits 0-9, without spaces)",
        ),
        (
            ["alerts", "--limit", " 5"],
            "error: Invalid value for '--limit': ' 5' is not an integer"
            " (digits 0-9, without spaces)",
        ),
        (
            ["alerts", "--limit", "5 "],
            "error: Invalid value for '--limit': '5 ' is not an integer"
            " (digits 0-9, without spaces)",
        ),
        (
            ["list", "add", "bt_block", " 12", "--reason", "seen"],
            "error: value must be digits, without spaces",
        ),
        (
            ["rule", "score", "velocity", " 5"],
            "error: rule_scores.velocity must be an integer, not ' 5'",
        ),
        (
            ["rule", "set", "velocity", "max_transactions= 3"],
            "error: parameter max_transactions of rule velocity must be a number without spaces;"
            " got ' 3'",
        ),
    ],
)
def test_integers_with_spaces_around_them_are_refused(external, args, expected) -> None:
    assert one_line_error(invoke(args), 2) == expected


def test_the_same_commands_take_the_bare_integers(external) -> None:
    assert invoke(["alerts", "--limit", "5"]).exit_code == 0
    made = invoke(["list", "create", "bt_block", "--subject", "account", "--kind", "block"])
    assert made.exit_code == 0, made.stderr
    added = invoke(["list", "add", "bt_block", "12", "--reason", "seen"])
    assert added.exit_code == 0, added.stderr
    changed = invoke(["rule", "set", "velocity", "max_transactions=3"])
    assert changed.exit_code == 0, changed.stderr


@pytest.mark.parametrize("name", ["bad name;drop", "UPPER", ""])
def test_create_user_refuses_a_bad_name_as_bad_input(external, name) -> None:
    line = one_line_error(invoke(["db", "create-user", name, "--password", "x" * 16]), 2)
    assert line == "error: user name must be 1-63 lower-case letters, digits or _"


def test_a_load_row_that_conflicts_with_a_stored_one_is_bad_input(external, tmp_path: Path) -> None:
    first = tmp_path / "first.csv"
    first.write_text(HEADER + "7,1,2024-06-01T12:00:00Z,10.00\n")
    assert invoke(["load", str(first)]).exit_code == 0
    # Same transaction id, another amount: refused, nothing of the file stored.
    second = tmp_path / "second.csv"
    second.write_text(
        HEADER + "7,2,2024-06-01T12:01:00Z,11.00\n" + "7,1,2024-06-01T12:00:00Z,99.00\n"
    )
    line = one_line_error(invoke(["load", str(second)]), 2)
    assert line == "error: line 3: transaction_id 1 is already stored with other content"
    with psycopg.connect(external.admin_url) as conn:
        rows = conn.execute("SELECT transaction_id, amount FROM transactions").fetchall()
    assert rows == [(1, Decimal("10.00"))]
