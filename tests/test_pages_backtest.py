"""The Rules page's backtest while a user's rule is on (issue 15, fault 8).

The page backtests the live set (every enabled rule with its parameters) and
the candidate; a user's rule is live with parameters {}, which POST /evaluate
refused, so once any user rule was on, no backtest on the page worked and no
rule could be switched on from it. Same history and machinery as
tests/test_pages.py: account 7's 20000.00 (transaction 704, labelled fraud)
fires amount_spike and large_amount, and the user's rule big_one (amount >
15000), switched on here, fires on it too.
"""

from __future__ import annotations

import requests

from pgfraud import db
from tests.test_pages import browser, serve, site  # noqa: F401, F811 (fixtures)


def test_a_backtest_on_the_rules_page_works_while_a_users_rule_is_on(site, database):  # noqa: F811
    base, page = site
    with db.connect(database.admin_url) as conn:
        db.store_labels(conn, [(704, "account_takeover")])
        db.add_rule(conn, "big_one", "amount > 15000", None, True)
        conn.commit()
    live = requests.get(base + "/rules", timeout=10).json()["rules"]
    assert next(r for r in live if r["rule_id"] == "big_one")["enabled"] is True
    page.goto(base + "/ui/rules")
    card = page.locator("#rule-large_amount")
    card.get_by_label("threshold").fill("30000")
    card.get_by_role("button", name="Backtest").click()
    page.wait_for_function(
        """() => {
            const card = document.querySelector('#rule-large_amount');
            return card.querySelector('table.backtest-result, .outcome.failed');
        }"""
    )
    assert card.locator(".outcome.failed").count() == 0, card.locator(".outcome").inner_text()
    result = card.locator("table.backtest-result")
    rows = [r.locator("th, td").all_inner_texts() for r in result.locator("tbody tr").all()]
    # live: 704 flagged (1 of 5 transactions = 200 per 1,000); at 30000: none.
    assert rows[0] == ["large_amount", "alerts / 1,000", "200.00", "0.00", "-200.00"]
    # Any rule: amount_spike and big_one still flag 704.
    assert rows[3] == ["any rule", "alerts / 1,000", "200.00", "200.00", "+0.00"]
    # And the candidate can be switched on from the page.
    card.get_by_role("button", name="Switch on").click()
    card.locator(".applied").wait_for()
    rules = requests.get(base + "/rules", timeout=10).json()["rules"]
    assert next(r for r in rules if r["rule_id"] == "large_amount")["parameters"] == {
        "threshold": 30000
    }
