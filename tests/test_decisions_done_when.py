"""Issue 17's "Done when", walked as a new user would, in one test: over
HTTP (the Flask app on a fresh database) with the lists managed from the
CLI. Outcomes by hand from the documented default policy (docs/decisions.md:
review from 50, decline from 100; large_amount scores 50)."""

from __future__ import annotations

from click.testing import CliRunner

from pgfraud.cli import main


def test_the_issues_done_when_list(client, database, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", database.admin_url)
    monkeypatch.delenv("PGFRAUD_APP_DATABASE_URL", raising=False)

    def post(tid, account, ts, amount, merchant=None):
        body = {"account_id": account, "transaction_id": tid, "timestamp": ts, "amount": amount}
        if merchant is not None:
            body["merchant_id"] = merchant
        response = client.post("/store_data", json=body)
        assert response.status_code == 201, response.get_json()
        return response.get_json()

    def cli(*args):
        result = CliRunner().invoke(main, list(args))
        assert result.exit_code == 0, result.output
        return result.output

    # An ordinary payment: approve.
    first = post(900000001, 5000, "2024-06-01T12:00:00Z", "100.00", merchant=777)
    assert (first["alerts"], first["decision"]["outcome"]) == ([], "approve")
    # A large amount: large_amount alone, 50: review.
    large = post(900000002, 5000, "2024-06-01T12:05:00Z", "12500.00", merchant=777)
    assert [a["rule_id"] for a in large["alerts"]] == ["large_amount"]
    assert (large["decision"]["outcome"], large["decision"]["score"]) == ("review", 50)
    # Its merchant on a block list from the CLI: the next payment there is
    # declined naming the entry; the earlier decisions stay as answered.
    cli("list", "create", "risky_merchants", "--subject", "merchant", "--kind", "block")
    cli("list", "add", "risky_merchants", "777", "--reason", "breach reported by the acquirer")
    blocked = post(900000003, 5002, "2024-06-01T13:00:00Z", "20.00", merchant=777)["decision"]
    assert (blocked["outcome"], blocked["score_outcome"], blocked["overruled"]) == (
        "decline",
        "approve",
        True,
    )
    assert [(e["list_name"], e["value"], e["reason"]) for e in blocked["lists"]] == [
        ("risky_merchants", 777, "breach reported by the acquirer")
    ]
    for tid, answered in ((900000001, first), (900000002, large)):
        kept = client.get(f"/transactions/{tid}/decision").get_json()
        assert kept == answered["decision"]
    # An allow-listed account's large payment: approve, its alert kept and
    # shown overruled.
    cli("list", "create", "trusted_accounts", "--subject", "account", "--kind", "allow")
    cli("list", "add", "trusted_accounts", "5003", "--reason", "treasury")
    allowed = post(900000004, 5003, "2024-06-01T14:00:00Z", "25000.00")
    assert [a["rule_id"] for a in allowed["alerts"]] == ["large_amount"]
    decision = allowed["decision"]
    assert (decision["outcome"], decision["score_outcome"], decision["overruled"]) == (
        "approve",
        "review",
        True,
    )
    queue = client.get("/alerts?account_id=5003").get_json()["alerts"]
    assert [(a["rule_id"], a["outcome"], a["overruled"]) for a in queue] == [
        ("large_amount", "approve", True)
    ]
    # The review cases.
    reviews = client.get("/decisions?outcome=review").get_json()
    assert [(d["transaction_id"], d["outcome"]) for d in reviews["decisions"]] == [
        (900000002, "review")
    ]
    assert client.get("/alerts?outcome=review").get_json()["total"] == 1
    # The same review queue in a terminal.
    assert cli("alerts", "--outcome", "review") == (
        "2024-06-01T12:05:00.000Z  account 5000  transaction 900000002  amount 12500.00"
        "  large_amount (rule version 1): amount 12500.00 is at or above the limit 10000\n"
    )
