"""axe-core in Chromium on every customer page, the merchant desk and the operations dashboard:
no serious or critical violation, in zh-CN and en, at 375 px and 1280 px (the agent desk's
pages: tests/web/test_desk_browser.py).

axe-core is the released package from the npm registry (`make tools` installs it into
.tools/node_modules, pinned in the Makefile). The pages' CSP allows no injected script, so
the test's browser context bypasses CSP to run it; the pages are otherwise as served. The
pages do not depend on the database, so this runs on SQLite only.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page

from tests.web.browser import Live, new_page, serving
from tests.web.conftest import FOREIGN, MUGS, PHONE, THRESHOLD, Shop, link_token
from tests.web.test_dashboard import a_day_of_cases
from tests.web.test_desk import AGENT, PASSWORD, add_agent
from tests.web.test_merchant import MERCHANT_NAME, add_merchants, returned_case

AXE = Path(__file__).parents[2] / ".tools" / "node_modules" / "axe-core" / "axe.min.js"
BLOCKING = ("serious", "critical")


def _violations(page: Page) -> list[dict[str, Any]]:
    page.add_script_tag(path=str(AXE))
    result: dict[str, Any] = page.evaluate(
        "async () => await axe.run(document, {resultTypes: ['violations']})"
    )
    return [v for v in result["violations"] if v["impact"] in BLOCKING]


def _problems(found: dict[str, list[dict[str, Any]]]) -> dict[str, list[str]]:
    return {
        where: [f"{v['id']} ({v['impact']}): {v['help']} at {v['nodes'][0]['target']}" for v in vs]
        for where, vs in found.items()
        if vs
    }


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("locale", "width"), [("en", 375), ("en", 1280), ("zh-CN", 375), ("zh-CN", 1280)]
)
def test_every_customer_page_has_no_serious_accessibility_violation(
    browser: Browser, live: Live, locale: str, width: int
) -> None:
    assert AXE.exists(), "axe-core is missing: run `make tools` (make test does)"
    page = new_page(browser, locale, width, axe=True)
    found: dict[str, list[dict[str, Any]]] = {}

    def check(name: str) -> None:
        found[name] = _violations(page)

    page.goto(f"{live.base}/signin")
    check("sign-in help")
    page.goto(f"{live.base}/signin?token={link_token('c-100')}")
    check("sign-in")
    page.locator("form[action='/signin'] button").click()
    check("order list")
    page.goto(f"{live.base}/orders/{MUGS}")
    check("order (three units)")
    page.goto(f"{live.base}/orders/{THRESHOLD}/request?line=X")
    check("request form")
    page.locator("input[value='quality_issue']").check()
    page.locator("input[value='refund_only']").check()
    page.locator("form[action$='/preview'] button").click()
    check("preview")
    page.locator("form[action$='/submit'] button").click()
    check("one-time code")
    page.locator("#code").fill("000000" if "000000" not in _sms(live) else "111111")
    page.locator("form[action$='/submit'] button").click()
    check("one-time code, wrong")
    page.goto(f"{live.base}/orders/{THRESHOLD}/request")
    page.locator("form[action$='/preview'] button").click()
    check("request form with errors")
    page.goto(f"{live.base}/orders/{THRESHOLD}/request?line=Y")
    page.locator("input[value='changed_mind']").check()
    page.locator("input[value='refund_only']").check()
    page.locator("form[action$='/preview'] button").click()
    page.locator("form[action$='/submit'] button").click()
    assert "/cases/" in page.url
    check("case")
    page.goto(f"{live.base}/orders/{FOREIGN}")
    check("not found")
    assert len(found) == 11
    assert _problems(found) == {}
    page.context.close()


def _sms(live: Live) -> str:
    sent = live.shop.sms.last_to(PHONE)
    assert sent is not None
    found = re.search(r"(\d{6})", sent.text)
    assert found is not None
    return found.group(1)


def test_the_check_finds_what_it_looks_for(browser: Browser) -> None:
    """The same check on a page with an unlabelled field and an image without a text
    alternative reports both (so an empty answer above means something)."""
    page = new_page(browser, "en", 375, axe=True)
    page.set_content(
        '<!doctype html><html lang="en"><head><title>t</title></head><body><main>'
        '<h1>t</h1><form><input type="text"></form><img src="data:,"></main></body></html>'
    )
    assert {v["id"] for v in _violations(page)} >= {"label", "image-alt"}
    page.context.close()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("locale", "width"), [("en", 375), ("en", 1280), ("zh-CN", 375), ("zh-CN", 1280)]
)
def test_the_merchant_desk_and_the_dashboard_have_no_serious_accessibility_violation(
    browser: Browser, shop: Shop, locale: str, width: int
) -> None:
    """The merchant's returns, a return to receive, to inspect, a refused inspection and an
    inspected one; the agents' dashboard with every chart drawn."""
    assert AXE.exists(), "axe-core is missing: run `make tools` (make test does)"
    cases = a_day_of_cases(shop)
    add_merchants(shop)
    add_agent(shop)
    pending = returned_case(shop)
    found: dict[str, list[dict[str, Any]]] = {}
    with serving(shop) as live:
        page = new_page(browser, locale, width, axe=True)
        sign_in(page, live, MERCHANT_NAME)
        found["returns"] = _violations(page)
        page.goto(f"{live.base}/merchant/cases/{pending}")
        found["return to receive"] = _violations(page)
        page.locator("form[action$='/receive'] button").click()
        found["return to inspect"] = _violations(page)
        page.locator("#result-partial").check()
        page.locator("form[action$='/inspect'] button").click()  # every unit: not partial
        found["inspection refused"] = _violations(page)
        page.goto(f"{live.base}/merchant/cases/{cases['returned']}")
        found["inspected return"] = _violations(page)
        page.goto(f"{live.base}/merchant/cases/{cases['waiting']}-none")
        found["not found"] = _violations(page)
        page.context.close()
        page = new_page(browser, locale, width, axe=True)
        sign_in(page, live, AGENT)
        page.goto(f"{live.base}/desk/dashboard")
        assert page.locator("svg[role='img']").count() == 6
        found["dashboard"] = _violations(page)
        page.context.close()
    assert len(found) == 7
    assert _problems(found) == {}


def sign_in(page: Page, live: Live, name: str) -> None:
    """The desk's sign-in in any language (fields by their ids)."""
    page.goto(f"{live.base}/desk/signin")
    page.locator("#name").fill(name)
    page.locator("#password").fill(PASSWORD)
    page.locator("form[action='/desk/signin'] button").click()
