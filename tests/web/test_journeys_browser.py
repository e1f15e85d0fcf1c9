"""Issue #13 point 5's journeys in Chromium (Playwright), each on SQLite and PostgreSQL against
a real uvicorn server with the worker running (the ``live`` fixture).

1. The customer's return, end to end: SPEC's 满1000元返200元 order (``o-campaign``: a rice
   cooker and a kettle; tests/web/conftest.py); the customer asks to return the cooker alone,
   reads the plan, submits with the one-time code; an agent approves it at the desk; the
   customer's case page, left open, shows the ship form without a reload; the customer enters
   the tracking number (refused first when empty); the merchant receives and inspects the
   return at the merchant desk; the worker refunds, and the page, still not reloaded, follows
   the case to the end and shows every asset's final state: the money per tender, the coupon
   reissued with its new validity, the points returned and reversed, the cashback taken back
   and the campaign's eligibility restored; the inbox says so in the seed's words. In en at
   375 px and in zh-CN at 1280 px (the desks in the same language); then the customer rates
   the case (the feedback holds a script tag, which stays text) and an agent reads the
   rating on the desk's feedback list. axe-core on each page state the journey newly
   reaches.
2. An agent resolves a manual review (a waiver) and a failed refund (a retry the gateway
   refuses again, then the wallet) at the desk, the worker paying each; in en at 1280 px and
   zh-CN at 375 px.

Fields and buttons are found by their ids and forms (the same in both languages); what is
checked is what the person reads, in their language.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from refundry.services.access import Actor
from refundry.services.cases.views import list_cases, read_case
from refundry.services.refunds.ledger import balance
from refundry.services.uow import UnitOfWork
from tests.web.browser import Live, new_page
from tests.web.conftest import (
    CAMPAIGN,
    CAMPAIGN_NAME,
    CUSTOMER,
    MUGS,
    PHONE,
    add_campaign_order,
    link_token,
)
from tests.web.test_accessibility import _problems, _violations
from tests.web.test_accessibility import sign_in as staff_sign_in
from tests.web.test_desk import AGENT, DESK, _held_case, add_agent, open_under_review
from tests.web.test_merchant import MERCHANT_NAME, add_merchants

# What the customer reads, per language.
WORDS: dict[str, dict[str, Any]] = {
    "en": {
        "ask": "Ask for a refund — Rice cooker",
        "check": "Check your request",
        "code_step": "Enter the code we sent you",
        "received": "Request received",
        "under_review": "Under review",
        "awaiting": "Waiting for your return",
        "in_transit": "Return on its way",
        "shipped": "Thank you: your return is on its way.",
        "no_tracking": "Enter the tracking number the carrier gave you, 100 characters at most",
        "done": "Completed",
        "received_by_merchant": "Return received",
        "thanks": "Thank you for your rating.",
        "rated": "5 of 5",
        "held": "Waiting for customer service",
        "failed": "Refund failed",
        "alipay": "Alipay",
        "points": "Points",
        "cash_back": "CN¥842.00",
        "points_back": "CN¥6.80 (680 points)",
        "with_you": "Back with you",
        "assets": (
            "Cashback taken back: CN¥200.00",
            "Points earned on this order are taken back: 1,050 points",
            "Points you paid with come back: 680 points",
            "Expired coupon reissued: CN¥50.00, valid until Dec 1, 2026",
            "Your eligibility for “满1000元返200元” is restored",
            "the order is refunded and the campaign's rules allow it again",
        ),
    },
    "zh-CN": {
        "ask": "申请售后 — Rice cooker",
        "check": "确认您的申请",
        "code_step": "请输入验证码",
        "received": "申请已提交",
        "under_review": "审核中",
        "awaiting": "等待您寄回",
        "in_transit": "退货运输中",
        "shipped": "谢谢，您的退货已寄出。",
        "no_tracking": "请填写快递公司提供的运单号，不超过 100 个字符",
        "done": "已完成",
        "received_by_merchant": "商家已收货",
        "thanks": "感谢您的评价。",
        "rated": "5 分（满分 5 分）",
        "held": "等待客服处理",
        "failed": "退款失败",
        "alipay": "支付宝",
        "points": "积分",
        "cash_back": "¥842.00",
        "points_back": "¥6.80",
        "with_you": "已退回",
        "assets": (
            "您的“满1000元返200元”活动资格已恢复",
            "订单已退款，活动规则允许您再次参加",
            "有效期至 2026年12月1日",
        ),
    },
}
ELIGIBILITY = "您的“满1000元返200元”活动资格已恢复，请继续享受优惠。"
FEEDBACK = "<script>window.pwned = 1</script> the cooker went back without a fuss"


def _code(live: Live) -> str:
    sent = live.shop.sms.last_to(PHONE)
    assert sent is not None
    found = re.search(r"(\d{6})", sent.text)
    assert found is not None
    return found.group(1)


def _case_of(live: Live) -> str:
    (case,) = list_cases(live.shop.engine, Actor("customer", CUSTOMER)).items
    return case.id


def _state(live: Live, case_id: str) -> str:
    return read_case(live.shop.engine, case_id, DESK).state


@pytest.mark.parametrize(("locale", "width"), [("en", 375), ("zh-CN", 1280)])
def test_a_customer_returns_part_of_an_order_and_sees_every_asset_come_back(
    browser: Browser, live: Live, locale: str, width: int
) -> None:
    words = WORDS[locale]
    assert CAMPAIGN_NAME in ELIGIBILITY
    add_campaign_order(live.shop)
    add_agent(live.shop)
    add_merchants(live.shop)
    found: dict[str, list[dict[str, Any]]] = {}
    page = new_page(browser, locale, width, axe=True)
    page.goto(f"{live.base}/signin?token={link_token(CUSTOMER)}")
    page.locator("form[action='/signin'] button").click()
    page.goto(f"{live.base}/orders/{CAMPAIGN}")
    page.get_by_role("link", name=words["ask"]).click()
    expect(page.get_by_label("Rice cooker", exact=True)).to_have_value("1")
    expect(page.get_by_label("Kettle", exact=True)).to_have_value("0")
    page.locator("input[value='wrong_item']").check()
    page.locator("input[value='return_and_refund']").check()
    page.locator("form[action$='/preview'] button").click()

    expect(page.get_by_role("heading", level=1)).to_have_text(words["check"])
    alipay = page.get_by_role("row").filter(has=page.get_by_role("rowheader", name=words["alipay"]))
    expect(alipay.get_by_role("cell")).to_have_text(words["cash_back"])
    page.locator("form[action$='/submit'] button").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(words["code_step"])
    page.locator("#code").fill(_code(live))
    page.locator("form[action$='/submit'] button").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(words["received"])
    case_id = _case_of(live)
    expect(page.locator("#case-state")).to_have_text(words["under_review"])
    page.evaluate("window.stayed = true")  # gone if the page were loaded again

    # the agent approves the return at the desk, in another browser (the same language)
    desk = new_page(browser, locale, 1280, js=False)
    staff_sign_in(desk, live, AGENT)
    desk.goto(f"{live.base}/desk/cases/{case_id}")
    desk.locator("form[action$='/approve'] button").click()
    expect(desk.locator("#case-state")).to_have_text(words["awaiting"])
    desk.context.close()

    # the customer's page follows: the ship form comes without a reload
    expect(page.locator("#case-state")).to_have_text(words["awaiting"])
    ship = page.locator("form[action$='/ship']")
    expect(ship).to_be_visible()
    assert page.evaluate("window.stayed") is True
    found["case awaiting the return, with the ship form"] = _violations(page)
    ship.get_by_role("button").click()  # no tracking number
    expect(page.get_by_role("alert")).to_contain_text(words["no_tracking"])
    assert _state(live, case_id) == "awaiting_return"
    found["ship form refused"] = _violations(page)
    page.locator("#tracking-number").fill("SF1234567890")
    page.locator("form[action$='/ship'] button").click()
    expect(page.get_by_role("status").filter(has_text=words["shipped"])).to_be_visible()
    expect(page.locator("#case-state")).to_have_text(words["in_transit"])
    expect(page.locator("form[action$='/ship']")).to_have_count(0)
    expect(page.locator("#case-live")).to_contain_text("SF1234567890")
    found["return shipped"] = _violations(page)
    page.evaluate("window.stayed = true")

    # the merchant receives and inspects it, in a third browser
    merchant = new_page(browser, locale, width, js=False)
    staff_sign_in(merchant, live, MERCHANT_NAME)
    merchant.goto(f"{live.base}/merchant/cases/{case_id}")
    expect(merchant.get_by_text("SF1234567890")).to_be_visible()
    merchant.locator("form[action$='/receive'] button").click()
    expect(merchant.locator("#case-state")).to_have_text(words["received_by_merchant"])
    merchant.locator("#result-pass").check()
    merchant.locator("#disposition-A").select_option("resellable")
    merchant.locator("form[action$='/inspect'] button").click()
    expect(merchant.locator("#inspection")).to_be_visible()
    merchant.context.close()

    # the worker refunds; the customer's page moves to the end on its own
    expect(page.locator("#case-state")).to_have_text(words["done"], timeout=20_000)
    assert page.evaluate("window.stayed") is True
    timeline = page.locator("ol.timeline > li")
    expect(timeline).to_have_count(10)  # requested, under review, … refunded, completed
    expect(timeline.last).to_contain_text(words["done"])
    live_part = page.locator("#case-live")
    cash = live_part.get_by_role("row").filter(
        has=page.get_by_role("rowheader", name=words["alipay"], exact=True)
    )
    expect(cash.get_by_role("cell")).to_have_text([words["cash_back"], words["with_you"]])
    points = live_part.get_by_role("row").filter(
        has=page.get_by_role("rowheader", name=words["points"])
    )
    expect(points.get_by_role("cell").first).to_contain_text(words["points_back"])
    for text in words["assets"]:
        expect(live_part).to_contain_text(text)
    found["case completed with every asset"] = _violations(page)

    # the rating form came with the last move; the customer rates, an agent reads it
    page.locator("#rating-5").check()
    page.locator("#feedback").fill(FEEDBACK)
    page.locator("form[action$='/rating'] button").click()
    expect(page.get_by_role("status").filter(has_text=words["thanks"])).to_be_visible()
    expect(page.get_by_text(words["rated"], exact=True)).to_be_visible()
    assert page.evaluate("window.pwned") is None

    page.goto(f"{live.base}/inbox")
    expect(page.get_by_text(ELIGIBILITY)).to_be_visible()
    page.context.close()

    desk = new_page(browser, locale, width)
    staff_sign_in(desk, live, AGENT)
    desk.goto(f"{live.base}/desk/feedback")
    row = desk.get_by_role("row").filter(has=desk.get_by_role("link", name=case_id))
    expect(row.get_by_role("cell").nth(0)).to_have_text(words["rated"])
    expect(row.get_by_role("cell").nth(1)).to_have_text(FEEDBACK)
    assert desk.evaluate("window.pwned") is None
    desk.context.close()
    assert _problems(found) == {}


def _desk_case(page: Page, live: Live, case_id: str, state: str) -> None:
    """The desk's case page once the case is in ``state`` (the worker moves it meanwhile)."""
    for _ in range(60):
        page.goto(f"{live.base}/desk/cases/{case_id}")
        if page.locator("#case-state").inner_text() == state:
            return
        page.wait_for_timeout(250)
    expect(page.locator("#case-state")).to_have_text(state)


@pytest.mark.parametrize(("locale", "width"), [("en", 1280), ("zh-CN", 375)])
def test_an_agent_resolves_a_manual_review_and_a_failed_refund(
    browser: Browser, live: Live, locale: str, width: int
) -> None:
    words = WORDS[locale]
    add_agent(live.shop)
    held = _held_case(live.shop)
    live.shop.app.state.ctx.gateway.set_card_state(f"ali-{MUGS}", "blocked")
    failing = open_under_review(live.shop, kind="refund_only")
    page = new_page(browser, locale, width, axe=True)
    found: dict[str, list[dict[str, Any]]] = {}
    staff_sign_in(page, live, AGENT)

    page.locator("#f-state").select_option("needs_manual_review")
    page.locator("form[action='/desk'] button").first.click()
    row = page.get_by_role("row").filter(has_text=held)
    expect(row).to_contain_text(words["held"])
    expect(page.get_by_role("row").filter(has_text=failing)).to_have_count(0)
    row.get_by_role("link", name=held).click()
    expect(page.locator("#case-state")).to_have_text(words["held"])
    found["case held for manual review"] = _violations(page)
    page.locator("#resolve-waiver").check()
    page.locator("#resolve-comment").fill("goodwill: the cashback stays")
    page.locator("form[action$='/resolve'] button").click()
    expect(page).to_have_url(re.compile(r"\?done=resolve$"))
    expect(page.get_by_role("status")).to_be_visible()
    _desk_case(page, live, held, words["done"])

    page.goto(f"{live.base}/desk/cases/{failing}")
    page.locator("form[action$='/approve'] button").click()
    expect(page).to_have_url(re.compile(r"\?done=approve$"))
    expect(page.get_by_role("status")).to_be_visible()
    _desk_case(page, live, failing, words["failed"])  # the card is blocked
    found["case with a failed refund"] = _violations(page)
    page.locator("form[action$='/retry'] button").click()
    expect(page).to_have_url(re.compile(r"\?done=retry$"))
    expect(page.get_by_role("status")).to_be_visible()
    _desk_case(page, live, failing, words["failed"])  # still blocked
    page.locator("form[action$='/wallet'] button").click()
    expect(page).to_have_url(re.compile(r"\?done=wallet$"))
    expect(page.get_by_role("status")).to_be_visible()
    _desk_case(page, live, failing, words["done"])
    found["failed refund moved to the wallet"] = _violations(page)
    page.context.close()

    assert (_state(live, held), _state(live, failing)) == ("completed", "completed")
    with UnitOfWork(live.shop.engine, readonly=True) as uow:
        assert balance(uow.conn, "wallet", CUSTOMER) == 19333
    assert _problems(found) == {}
