"""Screenshots of the analyst's page for the README (docs/page-*.png).

Run against a served pgfraud with the seeded data (`make run`), as:

    .venv/bin/python docs/screenshots.py [http://127.0.0.1:5000]

Drives Debian's Chromium (/usr/bin/chromium, `make browser`) at 1280x800, and
the queue once more at phone width (390x844). Changes nothing: the rules page
is shown after a backtest, not after switching on.
"""

from __future__ import annotations

import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

HERE = Path(__file__).resolve().parent


def main(base: str) -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium")
        page = browser.new_page(viewport={"width": 1280, "height": 800})

        page.goto(base + "/")
        page.screenshot(path=HERE / "page-queue.png")

        # An account with a large amount among its alerts.
        account = page.evaluate(
            "async () => (await (await fetch('/alerts?rule_id=large_amount&limit=1')).json())"
            ".alerts[0].account_id"
        )
        page.goto(f"{base}/ui/accounts/{account}")
        canvas = page.locator("#account-chart")
        box = canvas.bounding_box()
        point = page.evaluate(
            """() => {
                const chart = Chart.getChart(document.getElementById('account-chart'));
                const i = chart.data.datasets.findIndex((d) => d.label === 'large_amount');
                const el = chart.getDatasetMeta(i).data[0];
                return {x: el.x, y: el.y};
            }"""
        )
        page.mouse.move(box["x"] + point["x"], box["y"] + point["y"])
        page.screenshot(path=HERE / "page-account.png")

        page.goto(base + "/ui/rules")
        card = page.locator("#rule-velocity")
        card.get_by_label("max_transactions").fill("8")
        card.get_by_role("button", name="Backtest").click()
        card.locator("table.backtest-result").wait_for(timeout=60_000)
        card.scroll_into_view_if_needed()
        page.screenshot(path=HERE / "page-rules.png")

        page.goto(base + "/ui/evaluation")
        page.get_by_label("Rule", exact=True).select_option("amount_spike")
        page.get_by_label("Parameter", exact=True).select_option("multiplier")
        page.get_by_role("button", name="Draw").click()
        page.locator("#sweep-status", has_text="values backtested").wait_for(timeout=120_000)
        page.locator("#sweep-title").scroll_into_view_if_needed()
        page.screenshot(path=HERE / "page-evaluation.png")

        page.goto(base + "/ui/overview")
        page.screenshot(path=HERE / "page-overview.png")

        page.set_viewport_size({"width": 390, "height": 844})
        page.goto(base + "/")
        page.screenshot(path=HERE / "page-queue-phone.png")
        browser.close()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:5000")
