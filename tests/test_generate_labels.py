"""`generate --to copy/insert` stores its labels in the database too; `--to api`
says loudly that it did not (issue 15, smaller): before, the labels went to
the sidecar CSV only, so after generating, `pgfraud evaluate` counted every
generated fraud as a false positive."""

from __future__ import annotations

import shlex
import threading
from pathlib import Path

import psycopg
import pytest
import waitress
from click.testing import CliRunner

from pgfraud.cli import main
from pgfraud.config import Database
from pgfraud.generator import Settings, generate_to

ARGS = ["--num-transactions", "300", "--accounts", "5", "--fraud-rate", "0.2", "--no-progress"]


def file_labels(path: Path) -> list[tuple[int, str]]:
    lines = path.read_text().splitlines()
    assert lines[0].startswith("transaction_id,scenario")
    return sorted((int(t), s) for t, s, *_ in (line.split(",") for line in lines[1:]))


def stored_labels(database: Database) -> list[tuple[int, str]]:
    with psycopg.connect(database.admin_url) as conn:
        return conn.execute(
            "SELECT transaction_id, scenario FROM fraud_labels ORDER BY 1"
        ).fetchall()


@pytest.mark.parametrize("sink", ["copy", "insert"])
def test_generate_into_the_configured_database_stores_the_labels(
    database, tmp_path, monkeypatch, sink
):
    # The configured database: transactions with the service's login, labels
    # with the owner's (they are not the service's data).
    monkeypatch.setenv("DATABASE_URL", database.admin_url)
    monkeypatch.setenv("PGFRAUD_APP_DATABASE_URL", database.app_url)
    labels = tmp_path / "labels.csv"
    result = CliRunner().invoke(main, ["generate", "--to", sink, "--labels", str(labels), *ARGS])
    assert result.exit_code == 0, result.output
    expected = file_labels(labels)
    assert len(expected) > 20  # 300 transactions at fraud rate 0.2
    assert stored_labels(database) == expected
    assert f"labelled in {labels} and stored in the database" in result.stderr
    assert "WARNING" not in result.stderr


def test_an_owner_url_stores_them_in_the_same_database_transaction(database, tmp_path):
    summary = generate_to(
        Settings(num_transactions=100, fraud_rate=0.3),
        "copy",
        labels_path=tmp_path / "l.csv",
        database_url=database.admin_url,
    )
    assert summary["labels_stored"]["labels"] == summary["fraud"] > 0
    assert summary["labels_not_stored"] is None
    assert stored_labels(database) == file_labels(tmp_path / "l.csv")


def test_a_login_that_may_not_write_labels_says_so_with_the_command(
    database, tmp_path, monkeypatch
):
    labels = tmp_path / "my labels.csv"
    runner = CliRunner()
    result = runner.invoke(
        main,
        ["generate", "--database-url", database.app_url, "--labels", str(labels), *ARGS],
    )
    assert result.exit_code == 0, result.output
    assert stored_labels(database) == []
    fraud = len(file_labels(labels))
    warning = result.stderr.splitlines()[-2:]
    assert warning[0].startswith(f"WARNING: the {fraud} fraud labels were NOT stored")
    assert warning[1] == f"  pgfraud load-labels {shlex.quote(str(labels))}"
    # The command, as printed, stores them.
    monkeypatch.setenv("DATABASE_URL", database.admin_url)
    command = shlex.split(warning[1])
    assert runner.invoke(main, command[1:]).exit_code == 0
    assert stored_labels(database) == file_labels(labels)


def test_generate_to_the_api_says_loudly_that_labels_were_not_stored(database, tmp_path):
    from pgfraud.service import create_app
    from pgfraud.service.database import close_pool

    app = create_app({"DATABASE_URL": database.app_url})
    server = waitress.create_server(app, host="127.0.0.1", port=0, threads=2)
    threading.Thread(target=server.run, daemon=True).start()
    try:
        labels = tmp_path / "labels.csv"
        url = f"http://127.0.0.1:{server.effective_port}/store_data"
        result = CliRunner().invoke(
            main,
            ["generate", "--to", "api", "--post-url", url, "--labels", str(labels), *ARGS],
        )
    finally:
        server.close()
        close_pool(app)
    assert result.exit_code == 0, result.output
    assert stored_labels(database) == []
    fraud = len(file_labels(labels))
    assert (
        f"WARNING: the {fraud} fraud labels were NOT stored in the database "
        f"(the HTTP API takes no labels); they are only in {labels}"
    ) in result.stderr
    assert result.stderr.endswith(f"  pgfraud load-labels {labels}\n")


def test_generating_into_a_database_that_holds_ids_1_on_says_to_append(
    database, tmp_path, monkeypatch
):
    # After `make run`'s seed, ids 1 ... 100,000 are taken: a plain `generate`
    # (ids from 1) was refused with "transaction_id 1 is already stored with
    # other content" and no hint (fresh-user trial). Now the error says how to
    # continue; with --append the same command stores.
    monkeypatch.setenv("DATABASE_URL", database.admin_url)
    monkeypatch.setenv("PGFRAUD_APP_DATABASE_URL", database.app_url)
    with psycopg.connect(database.app_url) as conn:
        conn.execute(
            'SELECT * FROM store_transactions(\'[{"account_id": 999, "transaction_id": 1,'
            ' "timestamp": "2023-01-01T00:00:00Z", "amount": "1.00"}]\')'
        )
    labels = tmp_path / "labels.csv"
    args = ["generate", "--to", "copy", "--labels", str(labels), *ARGS]
    refused = CliRunner().invoke(main, args)
    assert refused.exit_code == 2, refused.output  # refused input, as `load`
    assert "transaction_id 1 is already stored with other content" in refused.stderr
    assert "add --append to continue after them" in refused.stderr
    stored = CliRunner().invoke(main, [*args, "--append"])
    assert stored.exit_code == 0, stored.output
    with psycopg.connect(database.admin_url) as conn:
        assert conn.execute("SELECT count(*) FROM transactions").fetchone()[0] == 301


def test_no_warning_when_the_run_made_no_fraud(database, tmp_path):
    # The docs' replay of 2,000 realistic transactions through the API
    # made no fraud and was told "the 0 fraud labels were NOT stored" (docs walk).
    labels = tmp_path / "labels.csv"
    args = ["--num-transactions", "50", "--accounts", "5", "--fraud-rate", "0", "--no-progress"]
    result = CliRunner().invoke(
        main, ["generate", "--database-url", database.app_url, "--labels", str(labels), *args]
    )
    assert result.exit_code == 0, result.output
    assert file_labels(labels) == []
    assert "0 fraudulent" in result.stderr
    assert "WARNING" not in result.stderr and "load-labels" not in result.stderr
