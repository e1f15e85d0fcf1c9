"""Every template renders in zh-CN and en; amounts are exact; bad input is named."""

from __future__ import annotations

import re

import pytest

from refundry.domain import notices
from refundry.notifications import (
    TEMPLATE_KEYS,
    InvalidParam,
    MissingParam,
    UnknownTemplate,
    format_money,
    render,
)
from refundry.notifications.templates import normalize_locale

CAMPAIGN = {"campaign_id": "C-1000-200", "campaign_name": "1000 back 200"}

# One sample per template, shaped like what its producer sends.
SAMPLES: dict[str, dict[str, object]] = {
    # plans (refundry/domain/notices.py)
    "refund.sent": {"amount": 123450, "currency": "CNY"},
    "refund.under_manual_review": {"currency": "CNY"},
    "coupon.returned": {
        "coupon_id": "CP-1",
        "kind": "coupon",
        "value": 2000,
        "adjustment_id": "A1",
        "valid_until": "2024-12-31T23:59:59+08:00",
        "currency": "CNY",
    },
    "coupon.reissued": {
        "coupon_id": "CP-1",
        "kind": "coupon",
        "value": 2000,
        "adjustment_id": "A1",
        "valid_until": "2024-07-01T10:00:00+00:00",
        "currency": "CNY",
    },
    "coupon.forfeited": {
        "coupon_id": "CP-1",
        "kind": "coupon",
        "value": 2000,
        "adjustment_id": "A1",
        "currency": "CNY",
    },
    "entitlement.reactivated": {
        "entitlement_id": "E-FS",
        "kind": "free_shipping_pass",
        "value": 0,
        "adjustment_id": None,
        "valid_until": None,
    },
    "entitlement.reissued": {
        "entitlement_id": "E-FS",
        "kind": "free_shipping_pass",
        "value": 0,
        "adjustment_id": None,
        "valid_until": "2024-07-01T10:00:00+00:00",
    },
    "entitlement.forfeited": {
        "entitlement_id": "E-FS",
        "kind": "free_shipping_pass",
        "value": 0,
        "adjustment_id": None,
    },
    "points.returned": {"tender_id": "T-P", "points": 1500},
    "points.reversed": {"points": 1200, "from_balance": 1000, "shortfall": 200},
    "points.cancelled": {"points": 300},
    "discount.clawed_back": {
        "adjustment_id": "A2",
        **CAMPAIGN,
        "amount": 5000,
        "currency": "CNY",
    },
    "gift.kept_deducted": {"line_id": "G1", **CAMPAIGN, "amount": 3900, "currency": "CNY"},
    "reward.clawed_back": {"reward_id": "R1", **CAMPAIGN, "amount": 20000, "currency": "CNY"},
    "reward.cancelled": {"reward_id": "R1", **CAMPAIGN, "amount": 20000, "currency": "CNY"},
    "eligibility.restored": {**CAMPAIGN, "high_value": True},
    "eligibility.first_purchase_restored": {**CAMPAIGN, "high_value": False},
    "eligibility.withheld": {**CAMPAIGN, "high_value": True, "why": "frequent_refunder"},
    "tier.changed": {"from": "gold", "to": "silver"},
    "shipping.refunded": {"amount": 1000, "currency": "CNY"},
    # the relay
    "refund.refunding": {"amount": 123450, "currency": "CNY"},
    "refund.refunded": {"amount": 123450, "currency": "CNY"},
    "refund.refund_failed": {"amount": 123450, "currency": "CNY"},
    # the case process
    "case.received": {"case_id": "CS-1", "amount": 39900, "currency": "CNY"},
    "case.approved": {"case_id": "CS-1"},
    "case.rejected": {"case_id": "CS-1", "reason": "photos do not show the defect"},
    "case.return_label_issued": {
        "case_id": "CS-1",
        "rma": "RMA-77",
        "carrier": "SF",
        "tracking_number": "SF123",
        "return_address": "Hangzhou",
    },
    "case.return_received": {"case_id": "CS-1"},
    "case.inspection_passed": {"case_id": "CS-1"},
    "case.inspection_partial": {"case_id": "CS-1", "reason": "one unit was used"},
    "case.inspection_failed": {"case_id": "CS-1", "reason": "not the item sold"},
    "case.cancelled": {"case_id": "CS-1"},
    "case.closed": {"case_id": "CS-1", "reason": "not shipped within 7 days"},
    "case.needs_review": {"case_id": "CS-1"},
    "case.completed": {"case_id": "CS-1"},
    "identity.code": {"code": "482913", "minutes": 5},
    "risk.restricted_high_value": {"days": 30, "reason": "refund_rate"},
    "risk.refund_rights_suspended": {"reason": "abuse"},
    "risk.refund_rights_restored": {},
}

CASE_KEYS = {
    "case.received", "case.approved", "case.rejected", "case.return_label_issued",
    "case.return_received", "case.inspection_passed", "case.inspection_partial",
    "case.inspection_failed", "case.cancelled", "case.closed", "case.needs_review",
    "case.completed", "identity.code", "risk.restricted_high_value",
    "risk.refund_rights_suspended", "risk.refund_rights_restored",
}  # fmt: skip
RELAY_KEYS = {"refund.refunded", "refund.refund_failed", "refund.refunding"}
CJK = re.compile(r"[\u4e00-\u9fff]")


def test_every_producer_key_has_a_template_and_a_sample() -> None:
    plan_keys = set(notices._TEMPLATES.values()) | {"refund.sent", "refund.under_manual_review"}
    expected = plan_keys | RELAY_KEYS | CASE_KEYS
    assert expected <= TEMPLATE_KEYS, sorted(expected - TEMPLATE_KEYS)
    assert set(SAMPLES) == TEMPLATE_KEYS


@pytest.mark.parametrize("locale", ["zh-CN", "en"])
@pytest.mark.parametrize("key", sorted(SAMPLES))
def test_every_template_renders_in_both_locales(key: str, locale: str) -> None:
    out = render(key, SAMPLES[key], locale)
    assert out.subject.strip() and out.text.strip()
    for text in (out.subject, out.text):
        assert not re.search(r"[{}]|None|True|False", text), text
    if locale == "zh-CN":
        assert CJK.search(out.subject) and CJK.search(out.text)
    else:
        assert not CJK.search(out.subject + out.text), out.text
    if "amount" in SAMPLES[key] and key != "gift.kept_deducted":
        amount = SAMPLES[key]["amount"]
        assert isinstance(amount, int)
        assert format_money(amount, "CNY", locale) in out.text


def test_spec_example_eligibility_restored() -> None:
    params = {"campaign_id": "C-1000-200", "campaign_name": "满1000元返200元", "high_value": True}
    assert (
        render("eligibility.restored", params, "zh-CN").text
        == "您的“满1000元返200元”活动资格已恢复，请继续享受优惠。"
    )


def test_campaign_id_names_the_campaign_without_a_name() -> None:
    out = render("eligibility.restored", {"campaign_id": "C-9"}, "en")
    assert "“C-9”" in out.text


@pytest.mark.parametrize(
    ("amount", "currency", "zh", "en"),
    [
        (123450, "CNY", "¥1,234.50", "CNY 1,234.50"),
        (5, "CNY", "¥0.05", "CNY 0.05"),
        (0, "CNY", "¥0.00", "CNY 0.00"),
        (-1999, "CNY", "-¥19.99", "-CNY 19.99"),
        (1234567, "JPY", "JPY 1,234,567", "JPY 1,234,567"),
        (1234567, "KWD", "KWD 1,234.567", "KWD 1,234.567"),
        (10**20 + 1, "USD", "USD 1,000,000,000,000,000,000.01", "USD 1,000,000,000,000,000,000.01"),
    ],
)
def test_money_is_formatted_from_integer_minor_units(
    amount: int, currency: str, zh: str, en: str
) -> None:
    assert format_money(amount, currency, "zh-CN") == zh
    assert format_money(amount, currency, "en") == en


def test_refund_names_the_order_when_known() -> None:
    params = {"amount": 100, "currency": "CNY", "order_id": "O-7"}
    assert render("refund.refunded", params, "zh-CN").text.startswith("订单O-7的退款¥1.00")
    assert "for order O-7" in render("refund.refunded", params, "en").text


def test_optional_parts_are_left_out() -> None:
    bare = {"coupon_id": "CP-1", "kind": "coupon", "value": 0, "valid_until": None}
    assert render("coupon.returned", bare, "zh-CN").text == "您使用的优惠券已退回账户，可再次使用。"
    full = render("coupon.returned", SAMPLES["coupon.returned"], "zh-CN").text
    assert full == "您使用的优惠券（面值¥20.00）已退回账户，有效期至2024-12-31，可再次使用。"
    no_shortfall = render("points.reversed", {"points": 1200, "shortfall": 0}, "en").text
    assert "could not cover" not in no_shortfall
    assert "其中200积分" in render("points.reversed", SAMPLES["points.reversed"], "zh-CN").text


def test_return_label_details() -> None:
    params = {
        "case_id": "CS-1",
        "rma": "RMA-77",
        "address": "杭州市西湖区文三路1号",  # the shipments service's name for it
        "carrier": "SF",
        "tracking_number": "SF123",
        "service": "pickup",
    }
    assert render("case.return_label_issued", params, "zh-CN").text == (
        "您的售后申请（CS-1）的退货信息已生成，请按要求寄回商品。退货单号：RMA-77；承运商：SF；"
        "运单号：SF123；退货地址：杭州市西湖区文三路1号；快递员将上门取件。"
    )
    en = render("case.return_label_issued", {"case_id": "CS-1", "rma": "RMA-77"}, "en").text
    assert en == "The return for CS-1 is ready; please send the items back. RMA: RMA-77."


def test_tier_may_be_none() -> None:
    out = render("tier.changed", {"from": "silver", "to": None}, "en")
    assert "from silver to no tier" in out.text
    with pytest.raises(MissingParam):
        render("tier.changed", {"to": "silver"}, "en")


def test_identity_code_and_risk() -> None:
    assert (
        render("identity.code", {"code": "482913", "minutes": 5}, "zh-CN").text
        == "您的验证码为482913，5分钟内有效，请勿告诉他人。"
    )
    assert "for 30 days" in render("risk.restricted_high_value", SAMPLES[
        "risk.restricted_high_value"], "en").text  # fmt: skip


def test_unknown_template_is_a_clear_error() -> None:
    with pytest.raises(UnknownTemplate) as err:
        render("refund.teleported", {}, "en")
    assert err.value.code == "notification.unknown_template"
    assert "refund.teleported" in str(err.value)


@pytest.mark.parametrize(
    ("key", "missing"),
    [
        ("refund.sent", "amount"),
        ("refund.sent", "currency"),
        ("coupon.returned", "currency"),  # a face value needs its currency
        ("coupon.reissued", "valid_until"),
        ("points.returned", "points"),
        ("discount.clawed_back", "campaign"),  # neither campaign_name nor campaign_id
        ("eligibility.withheld", "why"),
        ("case.received", "case_id"),
        ("identity.code", "code"),
        ("identity.code", "minutes"),
        ("risk.restricted_high_value", "days"),
        ("risk.restricted_high_value", "reason"),
    ],
)
def test_missing_param_is_a_clear_error(key: str, missing: str) -> None:
    params = dict(SAMPLES[key])
    drop = ("campaign_id", "campaign_name") if missing == "campaign" else (missing,)
    for name in drop:
        params.pop(name)
    for locale in ("zh-CN", "en"):
        with pytest.raises(MissingParam) as err:
            render(key, params, locale)
        assert err.value.code == "notification.missing_param"
        expected = "campaign_id" if missing == "campaign" else missing
        assert err.value.param == expected
        assert key in str(err.value) and repr(expected) in str(err.value)


def test_null_counts_as_missing() -> None:
    with pytest.raises(MissingParam):
        render("refund.sent", {"amount": None, "currency": "CNY"}, "en")


@pytest.mark.parametrize("bad", [12.5, "1234", True])
def test_amount_must_be_integer_minor_units(bad: object) -> None:
    with pytest.raises(InvalidParam) as err:
        render("refund.sent", {"amount": bad, "currency": "CNY"}, "zh-CN")
    assert err.value.code == "notification.invalid_param"
    assert err.value.param == "amount"


def test_currency_must_be_an_iso_code() -> None:
    with pytest.raises(InvalidParam):
        render("refund.sent", {"amount": 1, "currency": "yuan"}, "zh-CN")


@pytest.mark.parametrize(
    ("given", "used"),
    [
        ("zh-CN", "zh-CN"),
        ("zh_CN", "zh-CN"),
        ("zh-Hans-CN", "zh-CN"),
        ("zh", "zh-CN"),
        ("en", "en"),
        ("en-US", "en"),
        ("fr-FR", "en"),
        (None, "zh-CN"),
        ("", "zh-CN"),
    ],
)
def test_locales(given: str | None, used: str) -> None:
    assert normalize_locale(given) == used
    text = render("case.cancelled", {"case_id": "CS-1"}, given).text
    assert bool(CJK.search(text)) == (used == "zh-CN")
