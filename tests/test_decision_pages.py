"""Decisions on the analyst's page (issue 17), in headless Chromium (the
machinery of tests/test_pages.py): the queue's outcome column and its
`review` filter, live rows included; the account page's declined payments
and allow-listed ones with their alerts overruled; the Rules page's
Decisions section changing scores, thresholds and lists through PUT /policy
and the /lists endpoints, with the token.

Outcomes by hand from the default policy (review from 50, decline from 100;
amount_spike 25, large_amount 50): transaction 704 of the hand-made history
(20000.00 after three 10.00) fires both, 75: review.
"""

from __future__ import annotations

import requests

from tests.test_pages import (  # noqa: F401 - fixtures
    browser,
    serve,
    site,
    store_history,
    watch,
)


def store(base: str, account: int, tid: int, ts: str, amount: str, merchant=None, **headers):
    body = {"account_id": account, "transaction_id": tid, "timestamp": ts, "amount": amount}
    if merchant is not None:
        body["merchant_id"] = merchant
    answer = requests.post(base + "/store_data", json=body, timeout=10, headers=headers)
    assert answer.status_code == 201, answer.text
    return answer.json()["decision"]


def test_the_queue_shows_outcomes_and_filters_to_review(site, admin_conn):  # noqa: F811
    base, page = site
    page.goto(base + "/")
    rows = page.locator("#alerts tbody tr")
    assert rows.count() == 2
    assert rows.locator("td.outcome-cell").all_inner_texts() == ["review", "review"]

    # A merchant on a block list: its payment is declined, with an alert.
    admin_conn.execute("SELECT create_list('risky_merchants', 'merchant', 'block')")
    admin_conn.execute("SELECT add_list_entry('risky_merchants', 42, 'breach')")

    page.goto(base + "/ui/alerts?outcome=review")
    assert page.locator("#f-outcome").input_value() == "review"
    assert rows.count() == 2
    assert page.locator("#alert-total").inner_text() == "2"
    page.locator('#alerts[data-streaming="true"]').wait_for(state="attached")
    # Live: a declined payment (large_amount, blocked merchant) then a review
    # one (account 8: 20000.00 after 5.00, large_amount).
    declined = store(base, 9, 901, "2024-03-02T00:00:00Z", "25000.00", merchant=42)
    assert (declined["outcome"], declined["score_outcome"]) == ("decline", "review")
    assert store(base, 8, 802, "2024-03-01T03:00:00Z", "20000.00")["outcome"] == "review"
    page.locator('#alerts tbody tr[data-transaction-id="802"]').first.wait_for()
    # The live rows are added in order: the declined one came first and was
    # left out by the filter.
    assert page.locator('#alerts tbody tr[data-transaction-id="901"]').count() == 0
    live = page.locator('#alerts tbody tr[data-transaction-id="802"] td.outcome-cell')
    assert live.first.inner_text() == "review"

    # Filtered to decline (the form): only the blocked merchant's alert.
    page.locator("#f-outcome").select_option("decline")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**outcome=decline**")
    assert rows.count() == 1
    assert rows.first.get_attribute("data-transaction-id") == "901"
    cell = rows.first.locator("td.outcome-cell")
    assert cell.locator(".verdict").inner_text() == "decline"
    assert cell.locator(".by-list").inner_text() == "by a block list"
    # The page agrees with the API.
    api = requests.get(base + "/alerts?outcome=decline", timeout=10).json()
    assert [(a["transaction_id"], a["outcome"], a["overruled"]) for a in api["alerts"]] == [
        (901, "decline", True)
    ]
    bad = requests.get(base + "/alerts?outcome=maybe", timeout=10)
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "outcome"


def test_the_account_page_marks_declined_and_overruled_payments(site, admin_conn):  # noqa: F811
    base, page = site
    admin_conn.execute("SELECT create_list('risky_merchants', 'merchant', 'block')")
    admin_conn.execute("SELECT add_list_entry('risky_merchants', 42, 'breach')")
    admin_conn.execute("SELECT create_list('trusted_accounts', 'account', 'allow')")
    admin_conn.execute("SELECT add_list_entry('trusted_accounts', 8, 'treasury')")
    # Account 7 pays 10.00 at a blocked merchant: no alert, declined.
    assert store(base, 7, 705, "2024-03-01T07:00:00Z", "10.00", merchant=42)["outcome"] == "decline"
    # Account 8 (allow-listed) pays 20000.00: large_amount (one prior
    # payment is too little history for amount_spike), 50: review by its
    # score, approved by the list.
    allowed = store(base, 8, 802, "2024-03-01T03:00:00Z", "20000.00")
    assert (allowed["outcome"], allowed["score"], allowed["overruled"]) == ("approve", 50, True)

    page.goto(base + "/ui/accounts/7")
    declined = page.locator('#history tbody tr[data-transaction-id="705"]')
    assert "declined" in declined.get_attribute("class")
    assert declined.locator("td.decision .verdict").inner_text() == "decline"
    assert declined.locator("td.decision .by-list").inner_text() == "by risky_merchants"
    reviewed = page.locator('#history tbody tr[data-transaction-id="704"]')
    assert reviewed.locator("td.decision").inner_text() == "review"
    assert "declined" not in reviewed.get_attribute("class")
    assert page.locator("#history tbody tr.declined").count() == 1

    page.goto(base + "/ui/accounts/8")
    row = page.locator('#history tbody tr[data-transaction-id="802"]')
    assert "list-overruled" in row.get_attribute("class")
    assert row.locator("td.decision .verdict").inner_text() == "approve"
    assert row.locator("td.decision .overruled").inner_text() == (
        "alerts overruled by trusted_accounts"
    )
    # Its alerts are still shown (struck through, as overruled).
    assert row.locator(".rule").all_inner_texts() == ["large_amount"]
    assert row.locator(".rule").first.evaluate("e => getComputedStyle(e).textDecorationLine") == (
        "line-through"
    )
    # The API says the same.
    history = requests.get(base + "/accounts/8/history", timeout=10).json()["transactions"]
    assert history[0]["decision"] == {
        "outcome": "approve",
        "score": 50,
        "score_outcome": "review",
        "overruled": True,
        "lists": [{"list_name": "trusted_accounts", "kind": "allow"}],
    }


def test_an_owner_changes_scores_thresholds_and_lists_on_the_rules_page(
    serve,  # noqa: F811
    app_conn,
    browser,  # noqa: F811
    admin_conn,
):
    token = "a-token-for-the-decisions-test"
    store_history(app_conn)
    base, _ = serve(API_TOKEN=token)
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    problems = watch(page)
    page.set_default_timeout(10_000)
    page.goto(base + "/ui/rules")
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Token").fill(token)
    dialog.get_by_role("button", name="Use token").click()
    page.locator("#decisions").wait_for()
    assert page.locator("#policy-review_threshold").input_value() == "50"
    assert page.locator("#score-large_amount").input_value() == "50"
    assert page.locator(".rule-card").count() == 9  # the rules' cards as before

    # A decline threshold below the review threshold: refused, naming the
    # field, nothing changed.
    page.locator("#policy-decline_threshold").fill("40")
    page.locator("#policy-save").click()
    message = page.locator("#policy-message.failed")
    message.wait_for()
    assert "decline_threshold" in message.inner_text()
    assert admin_conn.execute("SELECT count(*) FROM decision_policies").fetchone() == (1,)
    # A score that is not an integer: refused naming the rule's score.
    page.locator("#policy-decline_threshold").fill("100")
    page.locator("#score-large_amount").fill("1e400")
    page.locator("#policy-save").click()
    page.locator("#policy-message.failed", has_text="rule_scores.large_amount").wait_for()
    assert admin_conn.execute("SELECT count(*) FROM decision_policies").fetchone() == (1,)

    # large_amount scores 100 and review starts at 40: saved, read back.
    page.locator("#score-large_amount").fill("100")
    page.locator("#policy-review_threshold").fill("40")
    page.locator("#policy-save").click()
    page.locator("#policy-message.done", has_text="review from 40, decline from 100").wait_for()
    assert page.locator("#score-large_amount").input_value() == "100"
    policy = requests.get(base + "/policy", headers={"Authorization": f"Bearer {token}"}).json()
    assert (policy["review_threshold"], policy["rule_scores"]["large_amount"]) == (40, 100)
    # A large payment now declines (large_amount alone: 100).
    auth = {"Authorization": f"Bearer {token}"}
    assert store(base, 9, 901, "2024-03-02T00:00:00Z", "25000.00", **auth)["outcome"] == "decline"

    # A list: a bad name is refused naming list_name, then one is created.
    page.locator("#new-list-name").fill("Risky-Merchants")
    page.get_by_role("button", name="Create the list").click()
    page.locator("#lists-message.failed", has_text="list_name").wait_for()
    page.locator("#new-list-name").fill("risky_merchants")
    page.locator("#new-list-description").fill("breaches")
    page.get_by_role("button", name="Create the list").click()
    page.locator("#lists-message.done", has_text="List risky_merchants created.").wait_for()
    card = page.locator("#list-risky_merchants")
    assert card.locator("h4").inner_text() == "risky_merchants: block list of merchants"
    # An expiry in the past is refused naming expires_at; nothing is added.
    card.get_by_label("Merchant id").fill("42")
    card.get_by_label("Reason").fill("breach reported by the acquirer")
    card.get_by_label("Expires (UTC, optional)").fill("2020-01-01T00:00:00Z")
    card.get_by_role("button", name="Add").click()
    page.locator("#lists-message.failed", has_text="expires_at").wait_for()
    assert admin_conn.execute("SELECT count(*) FROM list_entries").fetchone() == (0,)
    card.get_by_label("Expires (UTC, optional)").fill("2099-01-01T00:00:00Z")
    card.get_by_role("button", name="Add").click()
    page.locator("#lists-message.done", has_text="42 added to risky_merchants").wait_for()
    entry = page.locator('#list-risky_merchants tr[data-value="42"]')
    assert entry.locator("td").all_inner_texts()[:3] == [
        "42",
        "breach reported by the acquirer",
        "pgfraud_service",
    ]
    assert entry.locator("td").nth(4).inner_text() == "2099-01-01T00:00:00.000Z"
    # A payment there declines, naming the entry.
    blocked = store(base, 10, 1001, "2024-03-02T00:00:00Z", "5.00", merchant=42, **auth)
    assert (blocked["outcome"], blocked["lists"][0]["list_name"]) == ("decline", "risky_merchants")
    # Removed: the entry is ended, the next payment there is approved.
    entry.get_by_role("button", name="Remove 42 from risky_merchants").click()
    page.locator("#lists-message.done", has_text="42 removed from risky_merchants.").wait_for()
    assert page.locator("#list-risky_merchants .no-entries").inner_text() == "No entries in force."
    later = store(base, 10, 1002, "2024-03-02T01:00:00Z", "5.00", merchant=42, **auth)
    assert later["outcome"] == "approve"
    context.close()
    assert problems == []
