"""The agent's journey in Chromium (Playwright), against a real uvicorn server with the worker
running, on SQLite and PostgreSQL: an agent signs in, finds a case under review in the queue
by its filters, and approves it; another filters the queue by who holds a case, claims one,
writes an internal note and records part of its express-refund debt as recovered; a wrong
password is refused; a customer's session cannot reach the desk. With JavaScript off: every
step is a form post and a redirect. axe-core checks the desk's pages (tests/web/
test_accessibility.py's check) at 375 px and 1280 px, the case page with every form in zh-CN
and en. Elements are found by role and label."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from refundry.services.cases.views import read_case
from tests.web.browser import Live, new_page
from tests.web.conftest import CUSTOMER, link_token
from tests.web.test_accessibility import AXE, _problems, _violations
from tests.web.test_desk import AGENT, DESK, PASSWORD, add_agent, open_under_review
from tests.web.test_desk_acts import open_at, with_debt


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
    expect(row).to_contain_text("No review rule decided")
    row.get_by_role("link", name=case_id).click()

    expect(page.get_by_role("heading", level=1)).to_have_text(f"Case {case_id}")
    expect(page.get_by_text("What would apply now")).to_contain_text("CN¥193.33")
    page.get_by_label("Comment for the approval (optional)").fill("wrong colour, confirmed")
    page.get_by_role("button", name="Approve").click()
    expect(page.get_by_role("status")).to_contain_text("Approved.")
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


def test_an_agent_claims_a_case_from_the_queue_notes_it_and_records_a_debt_recovery(
    browser: Browser, live: Live
) -> None:
    add_agent(live.shop)
    case_id = with_debt(live.shop)
    page = new_page(browser, "en", 375, js=False)
    _sign_in(page, live)

    page.get_by_label("Held by").select_option(label="Nobody")
    page.get_by_label("Risk").select_option(label="Not flagged")
    page.get_by_role("button", name="Filter").click()
    row = page.get_by_role("row").filter(has_text=case_id)
    expect(row).to_contain_text("recover the debt")
    row.get_by_role("button", name=f"Claim {case_id}").click()
    expect(page.get_by_role("status")).to_contain_text("The case is yours.")
    expect(page.get_by_role("row").filter(has_text=case_id)).to_have_count(0)  # held now
    page.get_by_label("Held by").select_option(label="Me")
    page.get_by_role("button", name="Filter").click()
    page.get_by_role("row").filter(has_text=case_id).get_by_role("link", name=case_id).click()

    expect(page.get_by_role("heading", level=1)).to_have_text(f"Case {case_id}")
    expect(page.locator("#case-assignee")).to_have_text(f"You ({AGENT})")
    page.get_by_label("Note for the desk").fill("<script>alert(3)</script> customer says it broke")
    page.get_by_role("button", name="Add the note").click()
    expect(page.get_by_role("status")).to_contain_text("Note added.")
    note = page.get_by_role("listitem").filter(has_text="customer says it broke")
    expect(note).to_contain_text("<script>alert(3)</script> customer says it broke")

    page.get_by_label("Amount recovered (CNY)").fill("20.00")
    page.get_by_label("Paid back outside refundry").check()
    page.get_by_role("button", name="Record the recovery").click()
    expect(page.get_by_role("alert")).to_contain_text("needs the shop's reference")
    page.get_by_label("Amount recovered (CNY)").fill("20.00")
    page.get_by_label("Paid back outside refundry").check()
    page.get_by_label("The shop's reference").fill("BANK-9")
    page.get_by_role("button", name="Record the recovery").click()
    expect(page.get_by_role("status")).to_contain_text("Debt recovery recorded.")
    expect(page.get_by_role("heading", level=3).filter(has_text="debt")).to_contain_text(
        "CN¥100.00 owed"
    )
    expect(page.get_by_role("listitem").filter(has_text="BANK-9")).to_contain_text(
        "Debt recovered: CN¥20.00, CN¥100.00 still owed"
    )
    case = read_case(live.shop.engine, case_id, DESK)
    assert (case.debt, case.assignee) == (10000, f"agent:{AGENT}")
    page.context.close()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("locale", "width"), [("en", 375), ("en", 1280), ("zh-CN", 375), ("zh-CN", 1280)]
)
def test_the_desk_case_page_with_every_form_has_no_serious_accessibility_violation(
    browser: Browser, live: Live, locale: str, width: int
) -> None:
    """The filtered queue with its claim and assign forms; a case under review (hold, decide,
    escalate, note, suspend), one with a debt (recover, write off) and a note in its timeline,
    a refusal, and one whose customer is suspended (lift, the restriction in the history)."""
    assert AXE.exists(), "axe-core is missing: run `make tools` (make test does)"
    add_agent(live.shop)
    add_agent(live.shop, name="bo")
    under_review = open_at(live.shop, "o-mugs", "M", 2)
    owing = with_debt(live.shop)
    page = new_page(browser, locale, width, axe=True)
    found: dict[str, list[dict[str, Any]]] = {}
    page.goto(f"{live.base}/desk/signin")
    page.locator("#name").fill(AGENT)
    page.locator("#password").fill(PASSWORD)
    page.locator("form[action='/desk/signin'] button").click()
    page.goto(f"{live.base}/desk?held=nobody&risk=approve")
    found["queue filtered"] = _violations(page)
    page.goto(f"{live.base}/desk?held=nobody")
    found["queue"] = _violations(page)
    page.goto(f"{live.base}/desk/cases/{under_review}")
    assert page.locator("form[action$='/escalate']").count() == 1
    found["case under review"] = _violations(page)
    page.locator("#note-text").fill("checked the photos")
    page.locator("form[action$='/note'] button").click()
    found["case with a note"] = _violations(page)
    page.locator("form[action$='/escalate'] button").click()  # no reason: refused
    found["case with a refusal"] = _violations(page)
    page.locator("#suspend-reason").fill("chargebacks")
    page.locator("form[action$='/suspend'] button").click()
    assert page.locator("form[action$='/lift']").count() == 1
    found["customer suspended"] = _violations(page)
    page.goto(f"{live.base}/desk/cases/{owing}")
    assert page.locator("form[action$='/write-off-debt']").count() == 1
    found["case with a debt"] = _violations(page)
    assert _problems(found) == {}
    page.context.close()
