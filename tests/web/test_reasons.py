"""A plan's reasons in the customer's language (issue #13 point 1): every reason the domain
writes is read back to its template and parameters exactly, and every reason of SPEC's worked
examples and of the property tests' random scenarios reads in zh-CN with no English sentence
left. The pages over HTTP: tests/web/test_pages.py."""

from __future__ import annotations

import re
from typing import Any

from hypothesis import HealthCheck, given, settings

from refundry.demo import worked_examples as ex
from refundry.domain.json_io import plan_from_json
from refundry.domain.process_policy import RiskRule
from refundry.domain.reasons import (
    PARAMETERS,
    TEMPLATES,
    WORDS,
    Said,
    _patterns,
    read_reason,
    say,
)
from refundry.domain.risk import _explain
from refundry.web.formats import money
from refundry.web.reasons import reason_in_words, risk_in_words
from refundry.web.templating import _translations
from tests.domain.strategies import Scenario, scenarios
from tests.domain.test_properties import Run

ZH = _translations("zh-CN").gettext
ENGLISH = re.compile(r"[A-Za-z]{2,}[ ,;:']+[A-Za-z]{2,}")  # two English words in a row
CJK = re.compile(r"[\u4e00-\u9fff]")


def in_zh(text: str) -> str:
    return reason_in_words(text, ZH, lambda amount: money(amount, "CNY", "zh-CN"))


def reasons(plan: dict[str, Any]) -> list[str]:
    items = [*plan["deductions"], *plan["give_backs"], *plan["effects"]]
    return [item["reason"] for item in items]


def assert_read_in_zh(text: str) -> None:
    said = read_reason(text)
    assert said is not None, f"no template writes {text!r}"
    shown = in_zh(text)
    assert CJK.search(shown), shown
    assert not ENGLISH.search(shown), f"{text!r} reads {shown!r}"


def _sample(name: str) -> str:
    kind = PARAMETERS[name]
    if kind == "word":
        return WORDS[name][-1]
    if kind == "name":
        return "MF-1000-200"  # a shop's names are shown as they are
    return "12345" if kind == "money" else "7"


def test_every_template_is_read_back_as_itself_and_no_other() -> None:
    for template_id, text in TEMPLATES.items():
        names = re.findall(r"%\((\w+)\)s", text)
        params: dict[str, Any] = {n: _sample(n) for n in names if PARAMETERS[n] != "why"}
        if "why" in names:
            params["why"] = say("eligibility.campaign_ended")
        written = say(template_id, **params)
        said = read_reason(written)
        assert said is not None and said.template == template_id, (template_id, said)
        matching = [other for other, pattern in _patterns() if pattern.fullmatch(written)]
        assert matching == [template_id]
        assert_read_in_zh(written)


def test_a_text_no_template_writes_is_shown_as_it_is() -> None:
    old = "the refund of an older release, in its own words"
    assert read_reason(old) is None
    assert in_zh(old) == old
    # a nested reason must itself be a template's
    assert read_reason("whatever: the granted reward is clawed back") is None


def test_the_cashback_clawback_reads_with_money_per_locale() -> None:
    text = (
        "the kept basket (20000, paid) earns 0 from MF-1000-200, not 20000: "
        "the granted reward is clawed back"
    )
    assert read_reason(text) == Said(
        "reward.clawed_back",
        {
            "why": Said(
                "cashback.basket_earns",
                {
                    "basket": "20000",
                    "measure": "paid",
                    "target": "0",
                    "campaign": "MF-1000-200",
                    "current": "20000",
                },
            )
        },
    )
    assert in_zh(text) == (
        "保留商品的金额（实付 ¥200.00）在 MF-1000-200 中可得返现 ¥0.00，而不是 ¥200.00："
        "已发放的返现将被扣回"
    )


def _worked_plans() -> list[dict[str, Any]]:
    def plan(order: Any, *lines: str, snap: Any = None, history: Any = None) -> Any:
        return plan_from_json(
            order=order,
            snapshot=snap or ex.snapshot(),
            request=ex.request(order["id"], *lines),
            history=history or [],
            now=ex.NOW,
        )

    threshold_y = plan(ex.THRESHOLD, "Y")
    gift_y = plan(ex.GIFT, "Y")
    return [
        plan(ex.POINTS, "A", snap=ex.POINTS_SNAPSHOT),
        plan(ex.COUPON, "A", snap=ex.COUPON_SNAPSHOT),
        threshold_y,
        plan(ex.THRESHOLD, "X", history=[threshold_y]),
        plan(ex.CASHBACK, "A"),
        plan(ex.CASHBACK, "B"),
        plan(ex.TIERED, "A"),
        plan(ex.TIERED, "B"),
        gift_y,
        plan(ex.GIFT, "G", history=[gift_y]),
    ]


def test_every_reason_of_the_worked_examples_reads_in_zh_cn() -> None:
    written = [text for p in _worked_plans() for text in reasons(p)]
    assert len(written) > 20
    for text in written:
        assert_read_in_zh(text)
    kinds = {read_reason(text).template for text in written}  # type: ignore[union-attr]
    assert {"reward.clawed_back", "gift.deducted", "gift.given_back"} <= kinds


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_every_reason_of_random_scenarios_reads_in_zh_cn(sc: Scenario) -> None:
    for _step, _expected, plan in Run(sc).steps():
        for text in reasons(plan):
            assert_read_in_zh(text)


def test_a_risk_reason_reads_in_chinese_with_money_and_the_shops_own_words() -> None:
    zh = _translations("zh-CN").gettext

    def yuan(amount: int) -> str:
        return money(amount, "CNY", "zh-CN")

    def rule(feature: str, op: str, value: int, explain: str = "") -> RiskRule:
        return RiskRule(
            name=feature,
            feature=feature,
            op=op,
            value=value,
            decision="manual_review",
            days=0,
            explain=explain,
        )

    count = rule("refund_count_30d", ">=", 8, "常退货的顾客")
    assert risk_in_words(_explain(count, 9), zh, yuan) == (
        "近 30 天退款次数：9（规则：≥ 8）：常退货的顾客"
    )
    amount = rule("refund_amount_30d", ">", 500000)
    assert risk_in_words(_explain(amount, 612345), zh, yuan) == (
        "近 30 天退款金额：¥6,123.45（规则：> ¥5,000.00）"
    )
    young = rule("account_age_days", "<", 90)
    at_least = risk_in_words(_explain(young, 30, at_least=True), zh, yuan)
    assert at_least.startswith("账户注册天数：至少 30") and "account_age_days" not in at_least
    assert risk_in_words("something else", zh, yuan) == "something else"
