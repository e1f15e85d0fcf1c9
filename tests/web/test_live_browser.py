"""The live case page in Chromium, against a real uvicorn server with the worker running.

On SQLite and PostgreSQL: a customer keeps a case under review open; an agent approves it
through the case service while the page stays open, and the page follows the case (refunding,
refunded, completed) without being reloaded; the countdown ticks; the rating form appears,
the customer rates the case and an agent reads the rating on the desk's feedback list. Then
axe-core on the new pages (the case page with its deadline, with the rating form and with a
rating, the inbox, the feedback list) in zh-CN and en at 375 and 1280 px, one server for all.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, Page, expect

from refundry.services.cases import actions as case_actions
from tests.web.browser import Live, new_page, serving
from tests.web.conftest import COUPON, NOW, Shop, link_token
from tests.web.test_accessibility import _problems, _violations
from tests.web.test_accessibility import sign_in as desk_sign_in
from tests.web.test_desk import AGENT, DESK, add_agent, open_under_review
from tests.web.test_live import ME, completed_case

SCRIPT = "<script>window.pwned = 1</script> fast, thank you"


def _customer(browser: Browser, live: Live, locale: str, width: int) -> Page:
    page = new_page(browser, locale, width, axe=True)
    page.goto(f"{live.base}/signin?token={link_token('c-100')}")
    page.locator("form[action='/signin'] button").click()
    page.wait_for_url("**/orders")
    return page


def test_the_case_page_follows_the_case_live_and_the_agent_reads_the_rating(
    browser: Browser, live: Live
) -> None:
    add_agent(live.shop)
    case_id = open_under_review(live.shop, kind="refund_only")
    page = new_page(browser, "en", 375)
    page.goto(f"{live.base}/signin?token={link_token('c-100')}")
    page.get_by_role("button", name="Continue").click()
    page.goto(f"{live.base}/cases/{case_id}")
    expect(page.locator("#case-state")).to_have_text("Under review")
    timer = page.get_by_role("timer")
    expect(timer).to_have_text("2 days")  # the server's words for 48 h
    expect(timer).to_have_text("1 day 23 hr")  # the script counts down from them
    page.evaluate("window.stayed = true")  # gone if the page were loaded again

    case_actions.approve(live.shop.app.state.ctx.desk, case_id, actor=DESK, now=NOW)
    # the worker pays and completes it; the page follows through its stream
    expect(page.locator("#case-state")).to_have_text("Completed")
    timeline = page.get_by_role("list").filter(has_text="Refunding")
    expect(timeline.get_by_role("listitem")).to_have_count(6)  # requested … completed
    expect(page.get_by_role("timer")).to_have_count(0)  # no deadline left
    expect(page.get_by_role("status").filter(has_text="Completed")).to_have_count(1)
    assert page.evaluate("window.stayed") is True

    page.get_by_role("heading", name="How did we do?").wait_for()
    page.get_by_label("5 – very good").check()
    page.get_by_label("Anything you want to tell us (optional)").fill(SCRIPT)
    page.get_by_role("button", name="Send my rating").click()
    expect(page.get_by_role("status").filter(has_text="Thank you for your rating.")).to_be_visible()
    expect(page.get_by_text("5 of 5")).to_be_visible()
    page.context.close()

    desk = new_page(browser, "en", 1280)
    desk_sign_in(desk, live, AGENT)
    desk.get_by_role("link", name="Feedback").click()
    row = desk.get_by_role("row").filter(has=desk.get_by_role("link", name=case_id))
    expect(row.get_by_role("cell")).to_have_text(
        ["5 of 5", SCRIPT, "Nov 24, 2026, 12:00:00\u202fPM"]
    )
    assert desk.evaluate("window.pwned") is None  # the feedback shows as text, never runs
    desk.context.close()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_new_pages_have_no_serious_accessibility_violation(
    browser: Browser, shop: Shop
) -> None:
    add_agent(shop)
    waiting = open_under_review(shop, kind="refund_only")
    to_rate = completed_case(shop, COUPON, "A")
    rated = completed_case(shop)
    case_actions.rate(shop.app.state.ctx.desk, rated, actor=ME, now=NOW, rating=2)
    found: dict[str, list[dict[str, object]]] = {}
    with serving(shop) as live:
        for locale, width in (("en", 375), ("en", 1280), ("zh-CN", 375), ("zh-CN", 1280)):
            where = f"{locale} {width}px"
            page = _customer(browser, live, locale, width)
            page.goto(f"{live.base}/cases/{waiting}")
            page.get_by_role("timer").wait_for()
            found[f"case with a deadline, {where}"] = _violations(page)
            page.goto(f"{live.base}/cases/{to_rate}")
            page.locator("#feedback").wait_for()
            found[f"rating form, {where}"] = _violations(page)
            page.locator("form[action$='/rating'] button").click()  # no mark: 422
            page.locator("#rating-error").wait_for()
            found[f"rating form with an error, {where}"] = _violations(page)
            page.goto(f"{live.base}/cases/{rated}")
            found[f"case rated, {where}"] = _violations(page)
            page.goto(f"{live.base}/inbox")
            found[f"inbox, {where}"] = _violations(page)
            page.context.close()
            desk = new_page(browser, locale, width, axe=True)
            desk_sign_in(desk, live, AGENT)
            desk.goto(f"{live.base}/desk/feedback")
            found[f"feedback list, {where}"] = _violations(desk)
            desk.context.close()
    assert len(found) == 24
    assert _problems(found) == {}
