"""Labels and reviews carry known_at: loading it, refusing it, and rules that honour it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from click.testing import CliRunner

from pgfraud import db
from pgfraud.cli import main


@pytest.fixture
def cli_env(database, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", database.admin_url)
    monkeypatch.delenv("PGFRAUD_APP_DATABASE_URL", raising=False)
    return database


LABELLED = "account_id,transaction_id,timestamp,amount,merchant_id,is_fraud,known\n"


def _labels(conn):
    return conn.execute(
        "SELECT transaction_id, scenario, known_at FROM fraud_labels ORDER BY 1"
    ).fetchall()


def test_load_takes_known_at_from_its_column(cli_env, tmp_path, admin_conn):
    path = tmp_path / "tx.csv"
    path.write_text(
        LABELLED
        + "1,1,2024-01-01T00:00:00Z,10.00,7,1,2024-01-03T00:00:00.250Z\n"
        + "1,2,2024-01-01T00:00:01Z,11.00,7,1,1704326400000\n"  # epoch ms: 2024-01-04
        + "1,3,2024-01-01T00:00:02Z,12.00,7,0,\n"
        + "1,4,2024-01-01T00:00:03Z,12.00,7,1,\n"  # empty: when stored
    )
    before = admin_conn.execute("SELECT now()").fetchone()[0]
    admin_conn.commit()
    result = CliRunner().invoke(
        main, ["load", str(path), "--label-column", "is_fraud", "--known-at-column", "known"]
    )
    assert result.exit_code == 0, result.output
    rows = _labels(admin_conn)
    assert [r[:2] for r in rows] == [(1, "labelled"), (2, "labelled"), (4, "labelled")]
    assert rows[0][2] == datetime(2024, 1, 3, 0, 0, 0, 250000, tzinfo=UTC)
    assert rows[1][2] == datetime(2024, 1, 4, tzinfo=UTC)
    assert rows[2][2] >= before


@pytest.mark.parametrize(
    ("cell", "says"),
    [
        ("2023-12-31T23:59:59.999Z", "is before the transaction's time 2024-01-01T00:00:00.000Z"),
        ("yesterday", "is not an ISO 8601 timestamp"),
        ("1704067200", "looks like epoch seconds"),
    ],
)
def test_load_refuses_a_bad_known_at_by_line(cli_env, tmp_path, admin_conn, cell, says):
    path = tmp_path / "tx.csv"
    path.write_text(
        LABELLED
        + "1,1,2024-01-01T00:00:00Z,10.00,7,0,\n"
        + f"1,2,2024-01-01T00:00:00Z,10.00,7,1,{cell}\n"
    )
    result = CliRunner().invoke(
        main, ["load", str(path), "--label-column", "is_fraud", "--known-at-column", "known"]
    )
    assert result.exit_code == 2, result.output
    assert "line 3" in result.output and says in result.output, result.output
    assert admin_conn.execute("SELECT count(*) FROM transactions").fetchone()[0] == 0
    assert admin_conn.execute("SELECT count(*) FROM fraud_labels").fetchone()[0] == 0


def test_known_at_column_needs_the_label_column(cli_env, tmp_path):
    path = tmp_path / "tx.csv"
    path.write_text(LABELLED)
    result = CliRunner().invoke(main, ["load", str(path), "--known-at-column", "known"])
    assert result.exit_code == 2
    assert "--known-at-column" in result.output


def _store(conn, rows):
    db.store_transactions(
        conn,
        [
            {
                "account_id": a,
                "transaction_id": t,
                "timestamp": ts,
                "amount": "10.00",
                "merchant_id": m,
            }
            for a, t, ts, m in rows
        ],
    )
    conn.commit()


def test_load_labels_takes_known_at_and_refuses_one_before_its_transaction(
    cli_env, tmp_path, app_conn, admin_conn
):
    _store(app_conn, [(1, 1, "2024-01-01T00:00:00Z", 7), (1, 2, "2024-01-02T00:00:00Z", 7)])
    good = tmp_path / "good.csv"
    good.write_text(
        "transaction_id,scenario,known_at\n1,skimming,2024-01-05T00:00:00.000Z\n2,skimming,\n"
    )
    result = CliRunner().invoke(main, ["load-labels", str(good)])
    assert result.exit_code == 0, result.output
    rows = _labels(admin_conn)
    assert rows[0][2] == datetime(2024, 1, 5, tzinfo=UTC)
    stored_at = rows[1][2]
    admin_conn.commit()
    # Loaded again without known_at: a label keeps the time it was first known.
    again = tmp_path / "again.csv"
    again.write_text("transaction_id,scenario\n1,skimming\n2,skimming\n")
    assert CliRunner().invoke(main, ["load-labels", str(again)]).exit_code == 0
    assert [r[2] for r in _labels(admin_conn)] == [datetime(2024, 1, 5, tzinfo=UTC), stored_at]
    admin_conn.commit()

    early = tmp_path / "early.csv"
    early.write_text(
        "transaction_id,scenario,known_at\n"
        "1,skimming,2024-01-06T00:00:00Z\n"
        "2,skimming,2024-01-01T12:00:00Z\n"  # transaction 2 is at 2024-01-02
    )
    result = CliRunner().invoke(main, ["load-labels", str(early)])
    assert result.exit_code == 2, result.output
    assert "line 3" in result.output
    assert "known_at 2024-01-01T12:00:00.000Z is before the time 2024-01-02T00:00:00.000Z" in (
        result.output
    )
    # Nothing stored: label 1 keeps its known_at.
    assert _labels(admin_conn)[0][2] == datetime(2024, 1, 5, tzinfo=UTC)

    bad = tmp_path / "bad.csv"
    bad.write_text("transaction_id,scenario,known_at\n1,skimming,soon\n")
    result = CliRunner().invoke(main, ["load-labels", str(bad)])
    assert result.exit_code == 2, result.output
    assert "line 2" in result.output and "known_at" in result.output
