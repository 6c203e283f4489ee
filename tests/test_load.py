"""`pgfraud load`: a CSV from elsewhere, by COPY, all-or-nothing, errors by line."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from decimal import Decimal
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


def test_a_row_with_more_fields_than_the_header_is_refused_by_line(tmp_path, app_conn, database):
    # Break-it tester (round 10): a row with a field more than the header
    # (a shifted row, an unquoted comma) was stored from its first fields.
    path = tmp_path / "tx.csv"
    lines = HEADER + rows(3)
    first, second, third = lines.splitlines(keepends=True)[1:]
    path.write_text(HEADER + first + second.rstrip("\n") + ",9\n" + third)
    with pytest.raises(InvalidInput) as info:
        load_csv(app_conn, path)
    width = len(HEADER.strip().split(","))
    assert [(e["line"], e["message"]) for e in info.value.errors] == [
        (3, f"has {width + 1} fields where the header names {width}")
    ]
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


def test_cli_load_reports_lines_and_exits_2(tmp_path, database, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", database.admin_url)
    monkeypatch.setenv("PGFRAUD_APP_DATABASE_URL", database.app_url)
    path = tmp_path / "tx.csv"
    path.write_text(HEADER + rows(9, {4: "four", 6: ""}))
    result = CliRunner().invoke(main, ["load", str(path)])
    assert result.exit_code == 2
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
    assert result.exit_code == 2  # the file's row is refused: bad input, as a bad row
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
    assert result.exit_code == 2
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
    counts = load_csv(admin_conn, path, label_column="is_fraud", scenario_column="fraud_scenario")
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
        load_csv(admin_conn, path, label_column="is_fraud", scenario_column="fraud_scenario")
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
        load_csv(admin_conn, path, label_column="is_fraud")
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


def stored(database, *ids: int) -> list[tuple]:
    with db.connect(database.admin_url) as conn:
        return conn.execute(
            "SELECT transaction_id, account_id,"
            " to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.MS'), amount::text"
            " FROM transactions WHERE transaction_id = ANY(%s) ORDER BY transaction_id",
            (list(ids),),
        ).fetchall()


def test_plain_and_other_forms_store_the_same_exact_values(tmp_path, app_conn, database):
    # Rows 1-3 take the plain (fast) path, rows 4-7 the full rules: the same
    # rules, so amounts get 2 decimals and times are UTC milliseconds either way.
    path = tmp_path / "tx.csv"
    path.write_text(
        "account_id,transaction_id,timestamp,amount\n"
        "5,1,2024-01-01T00:00:00Z,13\n"
        "5,2,2024-01-01T00:00:00.120Z,13.5\n"
        "5,3,2024-02-29T23:59:59.999Z,0.07\n"
        "5,4, 2024-01-01T02:00:00+02:00 ,13\n"
        "5,5,1704067200250,  7.1 \n"
        "5,6,2024-01-01T00:00:00.123999Z,1.000\n"
        "5,9223372036854775807,2024-01-01T00:00:00Z,2\n"
    )
    assert load_csv(app_conn, path) == {"rows": 7, "stored": 7, "duplicate": 0}
    app_conn.commit()
    assert stored(database, 1, 2, 3, 4, 5, 6, 9223372036854775807) == [
        (1, 5, "2024-01-01 00:00:00.000", "13.00"),
        (2, 5, "2024-01-01 00:00:00.120", "13.50"),
        (3, 5, "2024-02-29 23:59:59.999", "0.07"),
        (4, 5, "2024-01-01 00:00:00.000", "13.00"),
        (5, 5, "2024-01-01 00:00:00.250", "7.10"),
        (6, 5, "2024-01-01 00:00:00.123", "1.00"),
        (9223372036854775807, 5, "2024-01-01 00:00:00.000", "2.00"),
    ]


def test_a_plain_looking_impossible_date_is_refused_by_line(tmp_path, app_conn):
    path = tmp_path / "tx.csv"
    path.write_text(
        "account_id,transaction_id,timestamp,amount\n"
        "5,1,2024-01-01T00:00:00Z,1.00\n"
        "5,2,2023-02-29T00:00:00Z,1.00\n"
    )
    with pytest.raises(InvalidInput) as info:
        load_csv(app_conn, path)
    assert [(e["line"], e["field"]) for e in info.value.errors] == [(3, "timestamp")]


def test_an_id_stored_past_the_first_ids_falls_back_to_counting_duplicates(
    tmp_path, app_conn, database
):
    # The first 10,000 ids are new, so the load starts as one COPY straight
    # into the table; id 10,003 is stored already (same content), so that
    # attempt is undone and the file goes through staging: one duplicate.
    with db.connect(database.app_url) as conn:
        db.store_transactions(
            conn,
            [
                {
                    "account_id": 1,
                    "transaction_id": 10_003,
                    "timestamp": datetime(2024, 1, 1, tzinfo=UTC),
                    "amount": Decimal("3.00"),
                }
            ],
        )
        conn.commit()
    path = tmp_path / "tx.csv"
    lines = [f"1,{i},2024-01-01T00:00:00Z,3.00\n" for i in range(1, 10_006)]
    path.write_text("account_id,transaction_id,timestamp,amount\n" + "".join(lines))
    assert load_csv(app_conn, path) == {"rows": 10_005, "stored": 10_004, "duplicate": 1}
    app_conn.commit()
    assert count(database) == 10_005


def test_an_id_twice_with_other_content_is_a_conflict_on_the_direct_path(tmp_path, app_conn):
    path = tmp_path / "tx.csv"
    path.write_text(
        "account_id,transaction_id,timestamp,amount\n"
        "1,7,2024-01-01T00:00:00Z,3.00\n"
        "1,8,2024-01-01T00:00:00Z,3.00\n"
        "1,7,2024-01-01T00:00:00Z,4.00\n"
    )
    with pytest.raises(TransactionConflict) as info:
        load_csv(app_conn, path)
    assert info.value.row == 4


def test_a_load_is_not_cut_by_the_logins_statement_timeout(tmp_path, database):
    # Service logins have statement_timeout 30 s; a big load (COPY plus its
    # scoring) may take longer, so the load lifts it for its own transaction.
    # Shown with a 1 ms timeout on the session instead of a slow load.
    path = tmp_path / "tx.csv"
    lines = [
        f"{i % 50},{i},2024-01-01T00:{i // 60 % 60:02d}:{i % 60:02d}Z,3.00\n"
        for i in range(1, 20_001)
    ]
    path.write_text("account_id,transaction_id,timestamp,amount\n" + "".join(lines))
    with db.connect(database.app_url) as conn:
        conn.execute("SET statement_timeout = 1")
        assert load_csv(conn, path) == {"rows": 20_000, "stored": 20_000, "duplicate": 0}
        conn.commit()
        assert conn.execute("SHOW statement_timeout").fetchone()[0] == "1ms"
    assert count(database) == 20_000
