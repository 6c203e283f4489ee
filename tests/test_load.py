"""`pgfraud load`: a CSV from elsewhere, by COPY, all-or-nothing, errors by line."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from click.testing import CliRunner

from pgfraud import db
from pgfraud.cli import main
from pgfraud.errors import InvalidInput, TransactionConflict
from pgfraud.load import load_csv

HEADER = "account_id,transaction_id,timestamp,amount,merchant\n"


def rows(n: int, bad: dict[int, str] | None = None) -> str:
    """n data rows; bad maps a 1-based data row to its amount text."""
    bad = bad or {}
    lines = []
    for i in range(1, n + 1):
        amount = bad.get(i, f"{i}.50")
        lines.append(f"{i % 3},{i},2024-01-01T00:00:{i:02d}.250Z,{amount},shop{i}\n")
    return "".join(lines)


def count(database) -> int:
    with db.connect(database.admin_url) as conn:
        return conn.execute("SELECT count(*) FROM transactions").fetchone()[0]


def test_nine_rows_with_two_bad_are_refused_by_line(tmp_path: Path, app_conn, database):
    path = tmp_path / "tx.csv"
    path.write_text(HEADER + rows(9, {4: "four", 6: ""}))
    with pytest.raises(InvalidInput) as info:
        load_csv(app_conn, path)
    # Data rows 4 and 6 are lines 5 and 7 (the header is line 1).
    assert [(e["line"], e["field"]) for e in info.value.errors] == [(5, "amount"), (7, "amount")]
    assert "line(s) 5, 7" in info.value.message
    app_conn.rollback()
    assert count(database) == 0


def test_good_file_loads_and_loading_again_stores_nothing_new(tmp_path, app_conn, database):
    path = tmp_path / "tx.csv"
    path.write_text(HEADER + rows(9))
    assert load_csv(app_conn, path) == {"rows": 9, "stored": 9, "duplicate": 0}
    app_conn.commit()
    assert load_csv(app_conn, path) == {"rows": 9, "stored": 0, "duplicate": 9}
    app_conn.commit()
    with db.connect(database.admin_url) as conn:
        first = conn.execute(
            "SELECT account_id, to_char(ts AT TIME ZONE 'UTC', 'HH24:MI:SS.MS'), amount::text"
            " FROM transactions WHERE transaction_id = 1"
        ).fetchone()
    assert first == (1, "00:00:01.250", "1.50")


def test_timestamp_ms_column(tmp_path, app_conn, database):
    path = tmp_path / "tx.csv"
    path.write_text("transaction_id,amount,account_id,timestamp_ms\n7,3.00,2,1700000000123\n")
    assert load_csv(app_conn, path)["stored"] == 1
    app_conn.commit()
    row = db.get_account_transactions(app_conn, 2, 1)[0]
    assert row["ts"].isoformat() == "2023-11-14T22:13:20.123000+00:00"


def test_missing_header_column_is_named(tmp_path, app_conn):
    path = tmp_path / "tx.csv"
    path.write_text("account_id,transaction_id,amount\n1,1,1.00\n")
    with pytest.raises(InvalidInput) as info:
        load_csv(app_conn, path)
    assert info.value.field == "timestamp"
    assert "line 1" in info.value.message


def test_conflict_with_stored_row_names_the_line(tmp_path, app_conn, database):
    path = tmp_path / "tx.csv"
    path.write_text(HEADER + rows(3))
    load_csv(app_conn, path)
    app_conn.commit()
    changed = tmp_path / "changed.csv"
    changed.write_text(HEADER + rows(3, {2: "99.99"}))
    with pytest.raises(TransactionConflict) as info:
        load_csv(app_conn, changed)
    assert info.value.row == 3  # data row 2 is line 3
    app_conn.rollback()
    assert count(database) == 3


def test_cli_load_reports_lines_and_exits_1(tmp_path, database, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", database.admin_url)
    monkeypatch.setenv("PGFRAUD_APP_DATABASE_URL", database.app_url)
    path = tmp_path / "tx.csv"
    path.write_text(HEADER + rows(9, {4: "four", 6: ""}))
    result = CliRunner().invoke(main, ["load", str(path)])
    assert result.exit_code == 1
    assert "line 5: amount 'four' is not a decimal number" in result.output
    assert "line 7: amount is empty" in result.output
    assert count(database) == 0
    path.write_text(HEADER + rows(9))
    result = CliRunner().invoke(main, ["load", str(path)])
    assert result.exit_code == 0, result.output
    assert "9 rows, 9 stored, 0 duplicates" in result.output


def test_cli_load_names_the_line_of_a_conflict(tmp_path, database, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", database.admin_url)
    monkeypatch.setenv("PGFRAUD_APP_DATABASE_URL", database.app_url)
    path = tmp_path / "tx.csv"
    path.write_text(HEADER + rows(3))
    assert CliRunner().invoke(main, ["load", str(path)]).exit_code == 0
    path.write_text(HEADER + rows(3, {2: "99.99"}))
    result = CliRunner().invoke(main, ["load", str(path)])
    assert result.exit_code == 1
    assert "error: line 3: transaction_id 2 is already stored with other content" in result.output
    twice = tmp_path / "twice.csv"
    twice.write_text(HEADER + "1,50,2024-01-01T00:00:00Z,1.00\n1,50,2024-01-01T00:00:00Z,2.00\n")
    result = CliRunner().invoke(main, ["load", str(twice)])
    assert "error: line 3: transaction_id 50 appears twice" in result.output
    assert count(database) == 3


def test_cli_header_error_names_line_1_once(tmp_path, database, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", database.admin_url)
    path = tmp_path / "tx.csv"
    path.write_text("account_id,transaction_id,amount\n1,1,1.00\n")
    result = CliRunner().invoke(main, ["load", str(path)])
    assert result.exit_code == 1
    assert result.output.strip() == ("error: line 1: the header lacks timestamp (or timestamp_ms)")


def test_more_bad_rows_than_listed_says_at_least(tmp_path, app_conn):
    # 150 bad rows (lines 2..151): 100 listed, the message says "at least 100".
    path = tmp_path / "tx.csv"
    path.write_text(HEADER + "".join(f"1,{i},2024-01-01T00:00:00Z,x\n" for i in range(150)))
    with pytest.raises(InvalidInput) as info:
        load_csv(app_conn, path)
    assert info.value.message.startswith(f"{path}: at least 100 bad row(s), at line(s) 2, 3, ")
    assert [e["line"] for e in info.value.errors] == list(range(2, 102))


LABELLED = "account_id,transaction_id,timestamp,amount,merchant_id,is_fraud,fraud_scenario\n"


@pytest.fixture
def owner_conn(database):
    """The owner's connection in a transaction (labels are the owner's data)."""
    with db.connect(database.admin_url) as conn:
        yield conn


def test_merchant_id_and_labels_from_the_same_file(tmp_path, owner_conn):
    admin_conn = owner_conn
    path = tmp_path / "labelled.csv"
    path.write_text(
        LABELLED
        + "1,1,2024-01-01T00:00:01Z,10.00,7,0,\n"
        + "1,2,2024-01-01T00:00:02Z,11.00,,1,2\n"  # numeric scenario code
        + "2,3,2024-01-01T00:00:03Z,12.00,8,true,card_testing\n"
        + "2,4,2024-01-01T00:00:04Z,13.00,8,yes,\n"  # fraud without a scenario
    )
    counts = load_csv(admin_conn, path, "is_fraud", "fraud_scenario")
    admin_conn.commit()
    assert counts == {"rows": 4, "stored": 4, "duplicate": 0, "labels": 3}
    assert admin_conn.execute(
        "SELECT transaction_id, merchant_id FROM transactions ORDER BY transaction_id"
    ).fetchall() == [(1, 7), (2, None), (3, 8), (4, 8)]
    assert admin_conn.execute(
        "SELECT transaction_id, scenario FROM fraud_labels ORDER BY transaction_id"
    ).fetchall() == [(2, "scenario_2"), (3, "card_testing"), (4, "labelled")]


def test_bad_labels_and_merchants_are_refused_by_line(tmp_path, owner_conn):
    admin_conn = owner_conn
    path = tmp_path / "labelled.csv"
    path.write_text(
        LABELLED
        + "1,1,2024-01-01T00:00:01Z,10.00,7,maybe,\n"
        + "1,2,2024-01-01T00:00:02Z,11.00,-3,0,\n"
        + "1,3,2024-01-01T00:00:03Z,11.00,4,1,Bad Name\n"
    )
    with pytest.raises(InvalidInput) as info:
        load_csv(admin_conn, path, "is_fraud", "fraud_scenario")
    assert [(e["line"], e["field"]) for e in info.value.errors] == [
        (2, "is_fraud"),
        (3, "merchant_id"),
        (4, "fraud_scenario"),
    ]
    admin_conn.rollback()
    assert admin_conn.execute("SELECT count(*) FROM fraud_labels").fetchone()[0] == 0


def test_a_missing_label_column_is_named(tmp_path, owner_conn):
    admin_conn = owner_conn
    path = tmp_path / "tx.csv"
    path.write_text(HEADER + rows(2))
    with pytest.raises(InvalidInput) as info:
        load_csv(admin_conn, path, "is_fraud")
    assert info.value.field == "is_fraud"


@pytest.fixture
def external(database, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", database.admin_url)
    monkeypatch.delenv("PGFRAUD_APP_DATABASE_URL", raising=False)
    return database


def test_cli_loads_a_generated_file_with_its_labels(tmp_path, external):
    from pgfraud.generator.cli import generate

    out, labels = tmp_path / "g.csv", tmp_path / "l.csv"
    result = CliRunner().invoke(
        generate,
        [
            "--to",
            "csv",
            "--output",
            str(out),
            "--labels",
            str(labels),
            "--label-columns",
            "--num-transactions",
            "300",
            "--accounts",
            "5",
            "--fraud-rate",
            "0.2",
        ],
    )
    assert result.exit_code == 0, result.output
    with out.open() as f:
        sidecar = sum(1 for row in csv.DictReader(f) if row["is_fraud"] == "1")
    result = CliRunner().invoke(
        main,
        ["load", str(out), "--label-column", "is_fraud", "--scenario-column", "fraud_scenario"],
    )
    assert result.exit_code == 0, result.output
    with db.connect(external.admin_url) as conn:
        stored = conn.execute("SELECT count(*) FROM fraud_labels").fetchone()[0]
        same = conn.execute(
            "SELECT count(*) FROM fraud_labels AS f JOIN transactions AS t USING (transaction_id)"
        ).fetchone()[0]
    assert stored == same == sidecar == len(labels.read_text().splitlines()) - 1 > 0
