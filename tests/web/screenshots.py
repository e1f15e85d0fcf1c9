"""Regenerate the pages' pictures in docs/pages/: ``make screenshots``.

Seeds tests/web's shop on a temporary SQLite file, serves it with uvicorn and the worker
(tests/web/browser.py), and walks the customer's journey in Debian's Chromium, saving each
page: in Chinese at 375 px (a phone) and in English at 1280 px. docs/pages.md shows them.

    .venv/bin/python -m tests.web.screenshots [--out docs/pages]
"""

from __future__ import annotations

import argparse
import re
import tempfile
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

from refundry.store.migrate import upgrade
from tests.web.browser import CHROMIUM, CHROMIUM_ARGS, Live, new_page, serving
from tests.web.conftest import MUGS, PHONE, THRESHOLD, link_token, make_shop

SHOTS = ("orders", "order", "request", "preview", "code", "case")
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
                    page.context.close()
                shop.engine.dispose()
            for path in save.values():
                print(path)
        browser.close()


if __name__ == "__main__":
    main()
