"""The merchant desk and the operations dashboard in Chromium (Playwright), against a real
uvicorn server with the worker running, on SQLite and PostgreSQL. With JavaScript off (every
step a form post and a redirect): a merchant signs in, finds the return on its way, marks it
received and inspects it as partial (1 of 2 mugs, damaged), and the worker refunds the
accepted mug; another merchant's case is not found; a post without the form token changes
nothing; the agent's dashboard shows the figures of the store. Elements are found by role and
label."""

from __future__ import annotations

import re
import time

from playwright.sync_api import Browser, Page, expect

from refundry.services.cases.views import read_case
from refundry.services.operations.metrics_figures import scan_figures
from refundry.services.refunds.views import case_refund
from refundry.services.uow import UnitOfWork
from refundry.web.formats import money, percent
from tests.web.browser import Live, new_page, serving
from tests.web.conftest import Shop
from tests.web.test_dashboard import a_day_of_cases
from tests.web.test_desk import AGENT, DESK, PASSWORD, add_agent
from tests.web.test_merchant import (
    MERCHANT_NAME,
    OTHER_MERCHANT_NAME,
    add_merchants,
    returned_case,
)


def sign_in(page: Page, live: Live, name: str) -> None:
    page.goto(f"{live.base}/desk/signin")
    page.get_by_label("Name").fill(name)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def _refunded(live: Live, case_id: str) -> str:
    """The case's state once the worker paid its refund (the completion timer may follow at
    once: the test's clock stands still)."""
    for _ in range(80):
        state = read_case(live.shop.engine, case_id, DESK).state
        if state != "refunding":
            return state
        time.sleep(0.25)
    return "refunding"


def test_a_merchant_inspects_a_partial_return(browser: Browser, live: Live) -> None:
    add_merchants(live.shop)
    case_id = returned_case(live.shop)
    page = new_page(browser, "en", 1280, js=False)
    sign_in(page, live, MERCHANT_NAME)
    expect(page.get_by_role("heading", level=1)).to_have_text("Returns")
    page.get_by_label("State").select_option(label="Return on its way")
    page.get_by_role("button", name="Filter").click()
    row = page.get_by_role("row").filter(has_text=case_id)
    expect(row).to_contain_text("M × 2")
    row.get_by_role("link", name=case_id).click()

    expect(page.get_by_role("heading", level=1)).to_have_text(f"Case {case_id}")
    expect(page.get_by_text("Blue mug × 2")).to_be_visible()
    page.get_by_role("button", name="Mark the return received").click()
    expect(page.get_by_role("status")).to_contain_text("Return received.")
    expect(page.locator("#case-state")).to_have_text("Return received")

    page.get_by_label("Partial: some units accepted").check()
    page.get_by_label("Units accepted (partial result)").fill("1")
    page.get_by_label("Where the accepted units go").select_option(
        label="Damaged, kept out of stock"
    )
    page.get_by_role("button", name="Record the inspection").click()
    expect(page.get_by_role("status")).to_contain_text("Inspection recorded.")
    expect(page.locator("#inspection")).to_contain_text("Partial: some units accepted")
    expect(page.locator("#inspection")).to_contain_text("1 accepted: Damaged, kept out of stock")

    assert _refunded(live, case_id) in ("refunded", "completed")
    refund = case_refund(live.shop.engine, case_id, DESK)
    assert refund is not None
    assert refund.total == 9666  # the first of the mugs' units: ¥96.66 (cumulative rounding)
    page.reload()
    expect(page.locator("#case-state")).to_have_text(re.compile("^(Refunded|Completed)$"))
    page.context.close()


def test_a_merchant_cannot_see_another_merchants_case(browser: Browser, live: Live) -> None:
    add_merchants(live.shop)
    case_id = returned_case(live.shop)
    page = new_page(browser, "en", 375, js=False)
    sign_in(page, live, OTHER_MERCHANT_NAME)
    expect(page.get_by_role("heading", level=1)).to_have_text("Returns")
    expect(page.get_by_text("No case asks for your goods here.")).to_be_visible()
    answer = page.goto(f"{live.base}/merchant/cases/{case_id}")
    assert answer is not None and answer.status == 404
    expect(page.get_by_role("heading", level=1)).to_have_text("Page not found")
    assert read_case(live.shop.engine, case_id, DESK).state == "return_in_transit"
    page.context.close()


def test_the_dashboard_shows_the_figures_of_the_store(browser: Browser, shop: Shop) -> None:
    a_day_of_cases(shop)
    add_agent(shop)
    with UnitOfWork(shop.engine, readonly=True) as uow:
        scan = scan_figures(uow.conn)
    with serving(shop) as live:
        page = new_page(browser, "en", 1280, js=False)
        sign_in(page, live, AGENT)
        page.get_by_role("link", name="Dashboard").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Operations dashboard")
        totals = page.locator("#totals")
        expect(totals).to_contain_text(f"Orders{scan.orders}")
        expect(totals).to_contain_text(f"Cases opened{sum(scan.cases.values())}")
        expect(totals).to_contain_text(f"Cases refunded{scan.refund_seconds.count}")
        expect(totals).to_contain_text(percent(scan.auto_approval_ratio, "en"))

        reasons = page.get_by_role("table", name="Refund rate by reason: the figures")
        expect(reasons.get_by_role("row", name="Quality problem")).to_contain_text("25.0%")
        expect(reasons.get_by_role("row", name="Wrong item sent")).to_contain_text("25.0%")
        merchants = page.get_by_role("table", name="Refund rate by merchant: the figures")
        expect(merchants.get_by_role("row", name="m-1")).to_contain_text("50.0%")
        clawbacks = page.get_by_role("table", name="Claw-back totals: the figures")
        for c in scan.clawbacks:
            expect(clawbacks).to_contain_text(money(c.total, c.currency, "en"))
        chart = page.get_by_role("img", name="Refund rate by reason")
        expect(chart).to_be_visible()
        page.context.close()


def test_a_post_without_the_form_token_changes_nothing(browser: Browser, live: Live) -> None:
    """The merchant's own browser, signed in, posts the receive form without its token (as a
    form on another site would): refused with 403 before the route runs."""
    add_merchants(live.shop)
    case_id = returned_case(live.shop)
    page = new_page(browser, "en", 1280, js=False)
    sign_in(page, live, MERCHANT_NAME)
    page.goto(f"{live.base}/merchant/cases/{case_id}")
    expect(page.get_by_role("button", name="Mark the return received")).to_be_visible()
    for form in ({}, {"csrf_token": "forged"}):
        answer = page.request.post(
            f"{live.base}/merchant/cases/{case_id}/receive", form=form, max_redirects=0
        )
        assert answer.status == 403
        assert "did not come from this site" in answer.text()
    assert read_case(live.shop.engine, case_id, DESK).state == "return_in_transit"
    page.context.close()
