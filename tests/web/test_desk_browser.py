"""The agent's journey in Chromium (Playwright), against a real uvicorn server with the worker
running, on SQLite and PostgreSQL: an agent signs in, finds a case under review in the queue
by its filters, and approves it; a wrong password is refused; a customer's session cannot
reach the desk. With JavaScript off: every step is a form post and a redirect. axe-core
checks the desk's pages (tests/web/test_accessibility.py's check) at 375 px and 1280 px.
Elements are found by role and label."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from refundry.services.cases.views import read_case
from tests.web.browser import Live, new_page
from tests.web.conftest import CUSTOMER, link_token
from tests.web.test_accessibility import AXE, _problems, _violations
from tests.web.test_desk import AGENT, DESK, PASSWORD, add_agent, open_under_review


def _sign_in(page: Page, live: Live, password: str = PASSWORD) -> None:
    page.goto(f"{live.base}/desk/signin")
    page.get_by_label("Name").fill(AGENT)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def test_an_agent_finds_a_case_under_review_and_approves_it(browser: Browser, live: Live) -> None:
    add_agent(live.shop)
    case_id = open_under_review(live.shop)
    page = new_page(browser, "en", 1280, js=False)

    _sign_in(page, live, password="not the password")
    expect(page.get_by_role("alert")).to_contain_text("The name or password is not right")
    assert page.url.endswith("/desk/signin")

    _sign_in(page, live)
    expect(page.get_by_role("heading", level=1)).to_have_text("Work queue")
    page.get_by_label("State").select_option(label="Under review")
    page.get_by_label("Reason").select_option(label="Wrong item sent")
    page.get_by_role("button", name="Filter").click()
    row = page.get_by_role("row").filter(has_text=case_id)
    expect(row).to_contain_text("no review rule decided")
    row.get_by_role("link", name=case_id).click()

    expect(page.get_by_role("heading", level=1)).to_have_text(f"Case {case_id}")
    expect(page.get_by_text("What would apply now")).to_contain_text("CN¥193.33")
    page.get_by_label("Comment for the approval (optional)").fill("wrong colour, confirmed")
    page.get_by_role("button", name="Approve").click()
    expect(page.get_by_role("status")).to_contain_text("Done: approve.")
    expect(page.locator("#case-state")).to_have_text("Waiting for your return")
    assert read_case(live.shop.engine, case_id, DESK).state == "awaiting_return"
    page.context.close()


def test_a_customer_session_cannot_reach_the_desk(browser: Browser, live: Live) -> None:
    case_id = open_under_review(live.shop)
    page = new_page(browser, "en", 375)
    page.goto(f"{live.base}/signin?token={link_token(CUSTOMER)}")
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("My orders")
    page.goto(f"{live.base}/desk/cases/{case_id}")
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in to the desk")
    assert read_case(live.shop.engine, case_id, DESK).state == "under_review"
    page.context.close()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("width", [375, 1280])
def test_the_desk_pages_have_no_serious_accessibility_violation(
    browser: Browser, live: Live, width: int
) -> None:
    assert AXE.exists(), "axe-core is missing: run `make tools` (make test does)"
    add_agent(live.shop)
    case_id = open_under_review(live.shop)
    page = new_page(browser, "en", width, axe=True)
    found: dict[str, list[dict[str, Any]]] = {}
    page.goto(f"{live.base}/desk/signin")
    found["sign-in"] = _violations(page)
    _sign_in(page, live, password="wrong wrong wrong")
    found["sign-in refused"] = _violations(page)
    _sign_in(page, live)
    found["queue"] = _violations(page)
    page.goto(f"{live.base}/desk/cases/{case_id}")
    found["case"] = _violations(page)
    page.get_by_role("button", name="Reject").click()
    found["case with a refusal"] = _violations(page)
    expect(page.get_by_role("alert")).to_contain_text("a rejection needs a comment")
    assert _problems(found) == {}
    page.context.close()
