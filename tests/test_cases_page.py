"""The case queue in a real browser (issue 18, part 5), with tests/test_pages.py's
machinery: its hand-made history gives account 7 one case holding the two
alerts of transaction 704 (amount_spike and large_amount), and account 8 none.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pgfraud import db
from tests import test_pages

# The browser, server and page fixtures of the page tests.
browser = test_pages.browser
serve = test_pages.serve
site = test_pages.site


@pytest.fixture
def refusing_site(serve, app_conn, browser) -> Iterator[tuple[str, object]]:
    """``site``, where a refused case action (409, the case closed meanwhile) is part
    of the page's flow; any other error fails the test."""
    test_pages.store_history(app_conn)
    base, _ = serve()
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    problems = test_pages.watch(page, (*test_pages.REFUSED, "status of 409 (CONFLICT)"))
    page.set_default_timeout(10_000)
    yield base, page
    context.close()
    assert problems == []


def test_a_case_is_assigned_and_closed_from_the_page_and_counts_as_a_label(site, database):
    base, page = site
    page.goto(base + "/")
    page.get_by_role("link", name="Cases").click()
    assert page.title() == "Cases · pgfraud"
    sections = page.locator("section.case")
    assert sections.count() == 1
    case = sections.first
    case_id = case.get_attribute("data-case-id")
    assert case.locator("h2").inner_text() == f"Case {case_id} · account 7"
    assert case.locator("tbody tr td:nth-child(4)").all_inner_texts() == [
        "amount_spike",
        "large_amount",
    ]
    assert "open · 2 alert(s) on 1 transaction(s)" in case.locator(".case-state").inner_text()

    # Assign with Enter in the box, then close as fraud with a note.
    case.get_by_label("Assign to").fill("alice")
    case.get_by_label("Assign to").press("Enter")
    message = page.locator("#case-message")
    message.filter(has_text=f"Case {case_id} assigned to alice.").wait_for()
    assert case.locator(".case-assignee").inner_text() == "alice"
    case.get_by_label("Note").fill("customer denies it")
    case.get_by_role("button", name="Close as fraud").click()
    message.filter(
        has_text=f"Case {case_id} closed as fraud: 1 transaction(s) reviewed."
    ).wait_for()
    assert case.locator("td.status").all_inner_texts() == ["confirmed fraud"] * 2
    assert case.locator(".case-actions").count() == 0

    with db.connect(database.admin_url) as conn:
        reviews = db.get_account_reviews(conn, 7)
        evaluation = db.evaluate_rules(conn, None, None, None)
    assert [(r["transaction_id"], r["status"], r["note"]) for r in reviews] == [
        (704, "confirmed_fraud", "customer denies it")
    ]
    large = next(r for r in evaluation if r["rule_id"] == "large_amount" and r["scenario"] == "all")
    assert (large["labelled"], large["flagged"], large["true_positives"]) == (1, 1, 1)

    # The default view lists the cases still to work: none now; closed ones on asking.
    page.reload()
    assert page.locator("#no-cases").inner_text() == "No cases match."
    page.locator("#c-status").select_option("closed")
    page.get_by_role("button", name="Filter").click()
    assert "closed · alice · fraud by" in page.locator("section.case .case-state").inner_text()


def test_a_refused_close_says_why_on_the_page(refusing_site, database):
    base, page = refusing_site
    page.goto(base + "/ui/cases")
    case = page.locator("section.case").first
    case_id = case.get_attribute("data-case-id")
    # Closed meanwhile by someone else (psql): the page's close is refused with 409.
    with db.connect(database.app_url) as conn:
        db.close_case(conn, int(case_id), "not_fraud", actor="bob")
        conn.commit()
    case.get_by_role("button", name="Close as fraud").click()
    page.locator("#case-message").filter(
        has_text=f"Case {case_id}: case {case_id} is already closed (not_fraud) (case_id)"
    ).wait_for()
    assert case.locator(".case-actions").count() == 1
