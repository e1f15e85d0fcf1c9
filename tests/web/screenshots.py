"""Regenerate the pages' pictures in docs/pages/: ``make screenshots``.

Seeds tests/web's shop on a temporary SQLite file, serves it with uvicorn and the worker
(tests/web/browser.py), and walks the customer's journey in Debian's Chromium (with the inbox
and a case's next deadline), then the merchant's (a return received and inspected as partial),
the agents' queue, a case at the desk, the dashboard and the feedback list, saving each page:
in Chinese at 375 px (a phone) and in English at 1280 px. docs/pages.md shows them.

    .venv/bin/python -m tests.web.screenshots [--out docs/pages]
"""

from __future__ import annotations

import argparse
import re
import tempfile
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

from refundry.services.cases.views import read_case
from refundry.store.migrate import upgrade
from tests.web.browser import CHROMIUM, CHROMIUM_ARGS, Live, new_page, serving
from tests.web.conftest import MUGS, PHONE, THRESHOLD, link_token, make_shop
from tests.web.test_accessibility import sign_in
from tests.web.test_desk import AGENT, DESK, add_agent, open_under_review
from tests.web.test_merchant import MERCHANT_NAME, add_merchants, returned_case

SHOTS = (
    "orders",
    "order",
    "request",
    "preview",
    "code",
    "case",
    "inbox",
    "case-deadline",
    "merchant-returns",
    "merchant-inspect",
    "merchant-inspected",
    "desk-queue",
    "desk-case",
    "dashboard",
    "feedback",
)
VIEWS = (("zh-CN", 375), ("en", 1280))


def _journey(page: Page, live: Live, save: dict[str, Path]) -> None:
    page.goto(f"{live.base}/signin?token={link_token('c-100')}")
    page.locator("form[action='/signin'] button").click()
    page.screenshot(path=save["orders"], full_page=True)
    page.goto(f"{live.base}/orders/{MUGS}")
    page.screenshot(path=save["order"], full_page=True)
    page.goto(f"{live.base}/orders/{THRESHOLD}/request?line=X")
    page.locator("input[value='quality_issue']").check()
    page.locator("input[value='refund_only']").check()
    page.locator("#description").fill("The left seam came apart on the first day.")
    page.screenshot(path=save["request"], full_page=True)
    page.locator("form[action$='/preview'] button").click()
    page.screenshot(path=save["preview"], full_page=True)
    page.locator("form[action$='/submit'] button").click()
    page.screenshot(path=save["code"], full_page=True)
    sent = live.shop.sms.last_to(PHONE)
    code = re.search(r"(\d{6})", sent.text if sent else "")
    assert code is not None, "no code was texted"
    page.locator("#code").fill(code.group(1))
    page.locator("form[action$='/submit'] button").click()
    for _ in range(40):  # the worker pays the refund: show the case when it is done
        state = page.locator("#case-state").inner_text()
        if state not in ("Refunding", "退款中"):
            break
        page.wait_for_timeout(250)
        page.reload()
    page.screenshot(path=save["case"], full_page=True)
    if page.locator("#feedback").count():  # completed: rate it, for the desk's feedback list
        page.locator("#rating-5").check()
        page.locator("#feedback").fill("Quick and friendly, thank you.")
        page.locator("form[action$='/rating'] button").click()
    page.goto(f"{live.base}/inbox")
    page.screenshot(path=save["inbox"], full_page=True)


def _desks(page: Page, live: Live, save: dict[str, Path]) -> None:
    """The merchant inspects a return (1 of 2 mugs, damaged); an agent opens the dashboard."""
    add_merchants(live.shop)
    add_agent(live.shop)
    case_id = returned_case(live.shop)
    waiting = open_under_review(live.shop, order="o-coupon", line="A", qty=1)
    page.goto(f"{live.base}/cases/{waiting}")  # still the customer: the next deadline
    page.screenshot(path=save["case-deadline"], full_page=True)
    sign_in(page, live, MERCHANT_NAME)
    page.screenshot(path=save["merchant-returns"], full_page=True)
    page.goto(f"{live.base}/merchant/cases/{case_id}")
    page.locator("form[action$='/receive'] button").click()
    page.locator("#result-partial").check()
    page.locator("#accepted-M").fill("1")
    page.locator("#disposition-M").select_option("damaged")
    page.screenshot(path=save["merchant-inspect"], full_page=True)
    page.locator("form[action$='/inspect'] button").click()
    for _ in range(40):  # the worker pays the accepted mug
        if read_case(live.shop.engine, case_id, DESK).state != "refunding":
            break
        page.wait_for_timeout(250)
    page.reload()
    page.screenshot(path=save["merchant-inspected"], full_page=True)
    page.context.clear_cookies()
    sign_in(page, live, AGENT)
    page.goto(f"{live.base}/desk")  # the queue: the case still under review waits there
    page.screenshot(path=save["desk-queue"], full_page=True)
    page.goto(f"{live.base}/desk/cases/{waiting}")  # its page: plan, history, every act
    page.screenshot(path=save["desk-case"], full_page=True)
    page.goto(f"{live.base}/desk/dashboard")
    page.screenshot(path=save["dashboard"], full_page=True)
    page.goto(f"{live.base}/desk/feedback")
    page.screenshot(path=save["feedback"], full_page=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/pages"))
    out: Path = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for locale, width in VIEWS:
            with tempfile.TemporaryDirectory() as tmp:
                url = f"sqlite:///{tmp}/shop.sqlite"
                upgrade(url)
                shop = make_shop(url)
                with serving(shop) as live:
                    page = new_page(browser, locale, width)
                    save = {name: out / f"{name}-{locale}-{width}.png" for name in SHOTS}
                    _journey(page, live, save)
                    _desks(page, live, save)
                    page.context.close()
                shop.engine.dispose()
            for path in save.values():
                print(path)
        browser.close()


if __name__ == "__main__":
    main()
