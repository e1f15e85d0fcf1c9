"""The customer's journey in Chromium (Playwright), against a real uvicorn server with the
worker running, on SQLite and PostgreSQL.

Elements are found by role and label, as a screen reader announces them, and the checks are
what the customer reads: the money back per tender, the claw-back, the case's state. The
journey runs in English at 375 px with JavaScript on (a ``<script>`` typed into the
description must stay text and never run) and in Chinese at 1280 px with JavaScript off
(every step is a form post and a redirect).
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, Page, expect

from refundry.services.access import Actor
from refundry.services.cases.views import list_cases
from tests.web.browser import Live, new_page
from tests.web.conftest import CUSTOMER, FOREIGN, PHONE, THRESHOLD, link_token

SCRIPT = "<script>window.pwned = 1</script> scratched on arrival"

# What the customer reads, per language.
WORDS = {
    "en": {
        "continue": "Continue",
        "my_orders": "My orders",
        "order": f"Order {THRESHOLD}",
        "ask_x": "Ask for a refund — Item X",
        "changed_mind": "Quality problem",
        "refund_only": "Refund only",
        "describe": "Describe the problem (optional)",
        "check": "Check your request",
        "alipay": "Alipay",
        "back": "CN¥300.00",
        "clawback": "Discount you no longer qualify for: −CN¥33.33",
        "submit": "Submit request",
        "code_step": "Enter the code we sent you",
        "code": "Code",
        "received": "Request received",
        "states": ("Refunding", "Refunded", "Completed"),
        "done": ("Refunded", "Completed"),
        "not_found": "Page not found",
        "back_with_you": "Back with you",
    },
    "zh-CN": {
        "continue": "继续",
        "my_orders": "我的订单",
        "order": f"订单 {THRESHOLD}",
        "ask_x": "申请售后 — Item X",
        "changed_mind": "质量问题",
        "refund_only": "仅退款",
        "describe": "问题描述（选填）",
        "check": "确认您的申请",
        "alipay": "支付宝",
        "back": "¥300.00",
        "clawback": "不再满足条件的优惠: −¥33.33",
        "submit": "提交申请",
        "code_step": "请输入验证码",
        "code": "验证码",
        "received": "申请已提交",
        "states": ("退款中", "已退款", "已完成"),
        "done": ("已退款", "已完成"),
        "not_found": "找不到页面",
        "back_with_you": "已退回",
    },
}


def _page(browser: Browser, live: Live, locale: str, width: int, *, js: bool = True) -> Page:
    return new_page(browser, locale, width, js=js)


def _sign_in(page: Page, live: Live, words: dict[str, object], customer: str = CUSTOMER) -> None:
    page.goto(f"{live.base}/signin?token={link_token(customer)}")
    page.get_by_role("button", name=str(words["continue"])).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(str(words["my_orders"]))


def _cases(live: Live) -> list[str]:
    return [c.id for c in list_cases(live.shop.engine, Actor("customer", CUSTOMER)).items]


@pytest.mark.parametrize(("locale", "width", "js"), [("en", 375, True), ("zh-CN", 1280, False)])
def test_a_customer_asks_for_a_partial_refund_and_follows_the_case(
    browser: Browser, live: Live, locale: str, width: int, js: bool
) -> None:
    words = WORDS[locale]
    page = _page(browser, live, locale, width, js=js)
    _sign_in(page, live, words)

    page.get_by_role("link", name=str(words["order"])).click()
    page.get_by_role("link", name=str(words["ask_x"])).click()
    expect(page.get_by_label("Item X", exact=True)).to_have_value("1")  # one click from the line
    expect(page.get_by_label("Item Y", exact=True)).to_have_value("0")
    page.get_by_label(str(words["changed_mind"])).check()
    page.get_by_label(str(words["refund_only"]), exact=True).check()
    page.get_by_label(str(words["describe"])).fill(SCRIPT)
    page.get_by_role("button", name=str(words["continue"])).click()

    # "check your answers": the plan, nothing written yet
    expect(page.get_by_role("heading", level=1)).to_have_text(str(words["check"]))
    alipay = page.get_by_role("row").filter(
        has=page.get_by_role("rowheader", name=str(words["alipay"]))
    )
    expect(alipay.get_by_role("cell")).to_have_text(str(words["back"]))
    expect(page.get_by_text(str(words["clawback"]))).to_be_visible()
    expect(page.get_by_text(SCRIPT)).to_be_visible()  # shown as text
    assert _cases(live) == []

    page.get_by_role("button", name=str(words["submit"])).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(str(words["code_step"]))
    sent = live.shop.sms.last_to(PHONE)
    assert sent is not None
    code = re.search(r"(\d{6})", sent.text)
    assert code is not None
    page.get_by_label(str(words["code"]), exact=True).fill(code.group(1))
    page.get_by_role("button", name=str(words["submit"])).click()

    expect(page.get_by_role("heading", level=1)).to_have_text(str(words["received"]))
    (case_id,) = _cases(live)
    assert case_id in page.url
    state = page.get_by_role("definition").filter(has_text=re.compile("|".join(words["states"])))
    expect(state.first).to_be_visible()
    # the worker sends the money: the case moves on without anyone at the desk
    done = re.compile("|".join(words["done"]))
    for _ in range(40):
        if done.search(page.locator("#case-state").inner_text()):
            break
        page.wait_for_timeout(250)
        page.reload()
    expect(page.locator("#case-state")).to_have_text(done)
    paid = page.get_by_role("row").filter(
        has=page.get_by_role("rowheader", name=str(words["alipay"]))
    )
    expect(paid.get_by_role("cell")).to_have_text([str(words["back"]), str(words["back_with_you"])])
    if js:
        assert page.evaluate("window.pwned") is None  # the description never ran
    expect(page.get_by_text(SCRIPT)).to_be_visible()
    page.context.close()


def test_a_post_without_the_form_token_is_refused_and_changes_nothing(
    browser: Browser, live: Live
) -> None:
    page = _page(browser, live, "en", 1280)
    _sign_in(page, live, WORDS["en"])
    answer = page.context.request.post(
        f"{live.base}/orders/{THRESHOLD}/request/submit",
        form={"units.X": "0", "units.Y": "1", "reason": "changed_mind", "kind": "refund_only"},
    )
    assert answer.status == 403
    assert "Nothing was changed" in answer.text()
    assert _cases(live) == []
    page.context.close()


def test_another_customers_order_is_not_found(browser: Browser, live: Live) -> None:
    page = _page(browser, live, "zh-CN", 375)
    _sign_in(page, live, WORDS["zh-CN"])
    answer = page.goto(f"{live.base}/orders/{FOREIGN}")
    assert answer is not None and answer.status == 404
    expect(page.get_by_role("heading", level=1)).to_have_text(str(WORDS["zh-CN"]["not_found"]))
    expect(page.get_by_text("lamp")).to_have_count(0)
    page.context.close()
