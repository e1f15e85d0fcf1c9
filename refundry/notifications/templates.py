"""Customer notification templates in zh-CN and en (SPEC §6).

A plan, the relay and the case process name a template key and its parameters; ``render`` turns
them into a subject (email) and a text (email body, SMS, inbox) in the customer's locale.

- Amounts are integer minor units and are formatted by integer arithmetic, never through a
  float: ``¥1,234.50`` in zh-CN for CNY, ``CNY 1,234.50`` in en (other currencies are written
  with their ISO code in both locales; JPY/KRW… have no decimals, BHD/KWD… three).
- A campaign is named by ``campaign_name`` when the params carry it, else by ``campaign_id``.
- An unknown template is ``notification.unknown_template``; a required parameter that is absent
  (or null) is ``notification.missing_param``; one of the wrong type (a float amount, a string
  where a count is expected) is ``notification.invalid_param``. Each names the template and the
  parameter.
- Locales: ``zh*`` renders zh-CN, ``en*`` renders en; any other language falls back to en, and
  no locale at all to zh-CN (the shop's default).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from refundry.domain.errors import RefundryError

__all__ = [
    "DEFAULT_LOCALE",
    "LOCALES",
    "TEMPLATE_KEYS",
    "InvalidParam",
    "MissingParam",
    "Rendered",
    "TemplateError",
    "UnknownTemplate",
    "format_money",
    "normalize_locale",
    "render",
]

DEFAULT_LOCALE = "zh-CN"
LOCALES = ("zh-CN", "en")


class TemplateError(RefundryError):
    code = "notification.template_error"

    def __init__(self, message: str, *, template: str, param: str | None = None) -> None:
        super().__init__(message, field=f"params.{param}" if param else None)
        self.template = template
        self.param = param


class UnknownTemplate(TemplateError):
    code = "notification.unknown_template"


class MissingParam(TemplateError):
    code = "notification.missing_param"


class InvalidParam(TemplateError):
    code = "notification.invalid_param"


@dataclass(frozen=True, slots=True)
class Rendered:
    subject: str  # the email subject; a short title for the inbox
    text: str  # the message itself (email body, SMS text)


def normalize_locale(locale: str | None) -> str:
    """``zh``, ``zh_CN``, ``zh-Hans-CN`` → ``zh-CN``; ``en-US`` → ``en``; others → ``en``."""
    if not locale:
        return DEFAULT_LOCALE
    language = locale.replace("_", "-").split("-", 1)[0].lower()
    return "zh-CN" if language == "zh" else "en"


# -- money ---------------------------------------------------------------------------------------

_MINOR_DIGITS = {
    "JPY": 0, "KRW": 0, "VND": 0, "CLP": 0, "ISK": 0, "UGX": 0, "PYG": 0,
    "BHD": 3, "KWD": 3, "JOD": 3, "OMR": 3, "TND": 3, "IQD": 3, "LYD": 3,
}  # fmt: skip
_CURRENCY = re.compile(r"[A-Z]{3}")


def format_money(amount: int, currency: str, locale: str) -> str:
    """Integer minor units as money text: ``¥1,234.50`` (zh-CN, CNY) or ``CNY 1,234.50``."""
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise TypeError(f"amount must be int minor units, not {type(amount).__name__}")
    digits = _MINOR_DIGITS.get(currency, 2)
    whole, frac = divmod(abs(amount), 10**digits)
    body = f"{whole:,}" + (f".{frac:0{digits}d}" if digits else "")
    sign = "-" if amount < 0 else ""
    if currency == "CNY" and normalize_locale(locale) == "zh-CN":
        return f"{sign}¥{body}"
    return f"{sign}{currency} {body}"


# -- reading parameters --------------------------------------------------------------------------


class _Args:
    """The params of one render; every accessor names the template and parameter on error."""

    __slots__ = ("locale", "params", "template")

    def __init__(self, template: str, params: Mapping[str, object], locale: str) -> None:
        self.template = template
        self.params = params
        self.locale = locale

    @property
    def zh(self) -> bool:
        return self.locale == "zh-CN"

    def has(self, name: str) -> bool:
        value = self.params.get(name)
        return value is not None and value != ""

    def _required(self, name: str) -> object:
        if not self.has(name):
            raise MissingParam(
                f"template {self.template!r} needs parameter {name!r}",
                template=self.template,
                param=name,
            )
        return self.params[name]

    def _invalid(self, name: str, what: str) -> InvalidParam:
        value = self.params.get(name)
        return InvalidParam(
            f"template {self.template!r}: parameter {name!r} must be {what}, "
            f"got {type(value).__name__} {value!r}",
            template=self.template,
            param=name,
        )

    def text(self, name: str) -> str:
        value = self._required(name)
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise self._invalid(name, "a string")
        return str(value)

    def opt(self, name: str) -> str | None:
        return self.text(name) if self.has(name) else None

    def integer(self, name: str) -> int:
        value = self._required(name)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._invalid(name, "an integer")
        return value

    def count(self, name: str) -> str:
        return f"{self.integer(name):,}"

    def money(self, name: str) -> str:
        amount = self.integer(name)
        currency = self._required("currency")
        if not isinstance(currency, str) or not _CURRENCY.fullmatch(currency):
            raise self._invalid("currency", "an ISO 4217 code such as 'CNY'")
        return format_money(amount, currency, self.locale)

    def opt_money(self, name: str) -> str | None:
        """The amount when the params carry a non-zero one."""
        if not self.has(name) or self.params[name] == 0:
            return None
        return self.money(name)

    def campaign(self) -> str:
        if self.has("campaign_name"):
            return self.text("campaign_name")
        return self.text("campaign_id")

    def date(self, name: str) -> str:
        """An ISO date or datetime as ``YYYY-MM-DD`` (the date as the producer wrote it)."""
        value = self.text(name)
        if not re.match(r"\d{4}-\d{2}-\d{2}", value):
            raise self._invalid(name, "an ISO date")
        return value[:10]

    def opt_date(self, name: str) -> str | None:
        return self.date(name) if self.has(name) else None


# -- the templates -------------------------------------------------------------------------------

_Body = Callable[[_Args], str]


@dataclass(frozen=True, slots=True)
class _Template:
    zh_subject: str
    en_subject: str
    zh: _Body
    en: _Body


def _zh_order(a: _Args) -> str:
    return f"订单{a.text('order_id')}的" if a.has("order_id") else "您的"


def _en_order(a: _Args) -> str:
    return f" for order {a.text('order_id')}" if a.has("order_id") else ""


def _zh_case(a: _Args) -> str:
    return f"您的售后申请（{a.text('case_id')}）"


def _en_case(a: _Args) -> str:
    return f"Your after-sales request {a.text('case_id')}"


def _zh_reason(a: _Args) -> str:
    return f"原因：{a.text('reason')}。" if a.has("reason") else ""


def _en_reason(a: _Args) -> str:
    return f" Reason: {a.text('reason')}." if a.has("reason") else ""


def _zh_valid(a: _Args) -> str:
    until = a.opt_date("valid_until")
    return f"，有效期至{until}" if until else ""


def _en_valid(a: _Args) -> str:
    until = a.opt_date("valid_until")
    return f", valid until {until}" if until else ""


def _zh_face(a: _Args) -> str:
    value = a.opt_money("value")
    return f"（面值{value}）" if value else ""


def _en_face(a: _Args) -> str:
    value = a.opt_money("value")
    return f" worth {value}" if value else ""


_ZH_BENEFIT = {"free_shipping_pass": "包邮卡", "coupon": "优惠券", "member_discount": "会员折扣"}
_EN_BENEFIT = {
    "free_shipping_pass": "free-shipping pass",
    "coupon": "coupon",
    "member_discount": "member discount",
}


def _zh_benefit(a: _Args) -> str:
    return _ZH_BENEFIT.get(a.opt("kind") or "", "权益")


def _en_benefit(a: _Args) -> str:
    return _EN_BENEFIT.get(a.opt("kind") or "", "benefit")


_ZH_WHY = {
    "campaign_ended": "活动已结束",
    "frequent_refunder": "根据您的退款记录，暂不能参与高价值活动",
    "other_paid_order": "您已有其他已支付订单计为首单",
}
_EN_WHY = {
    "campaign_ended": "the campaign has ended",
    "frequent_refunder": "your refund history currently restricts high-value campaigns",
    "other_paid_order": "another paid order already counts as your first purchase",
}


def _tier(a: _Args, name: str) -> str:
    """A tier name; the key must be present, null means no tier."""
    if name not in a.params:
        a.text(name)  # raises MissingParam
    return a.text(name) if a.has(name) else ("无等级" if a.zh else "no tier")


def _zh_shortfall(a: _Args) -> str:
    if not a.has("shortfall") or a.integer("shortfall") <= 0:
        return ""
    return f"其中{a.count('shortfall')}积分因余额不足，已折算从退款金额中扣除。"


def _en_shortfall(a: _Args) -> str:
    if not a.has("shortfall") or a.integer("shortfall") <= 0:
        return ""
    return (
        f" Your balance could not cover {a.count('shortfall')} of them: their value was "
        "deducted from the refund."
    )


def _zh_amount(a: _Args, lead: str) -> str:
    amount = a.opt_money("amount")
    return f"{lead}{amount}" if amount else ""


def _en_amount(a: _Args, lead: str) -> str:
    amount = a.opt_money("amount")
    return f"{lead}{amount}" if amount else ""


def _address(a: _Args) -> str | None:
    return a.opt("return_address") or a.opt("address")


def _zh_label(a: _Args) -> str:
    parts = []
    if a.has("rma"):
        parts.append(f"退货单号：{a.text('rma')}")
    if a.has("carrier"):
        parts.append(f"承运商：{a.text('carrier')}")
    if a.has("tracking_number"):
        parts.append(f"运单号：{a.text('tracking_number')}")
    if address := _address(a):
        parts.append(f"退货地址：{address}")
    if a.opt("service") == "pickup":
        parts.append("快递员将上门取件")
    return ("；".join(parts) + "。") if parts else ""


def _en_label(a: _Args) -> str:
    parts = []
    if a.has("rma"):
        parts.append(f"RMA: {a.text('rma')}")
    if a.has("carrier"):
        parts.append(f"carrier: {a.text('carrier')}")
    if a.has("tracking_number"):
        parts.append(f"tracking number: {a.text('tracking_number')}")
    if address := _address(a):
        parts.append(f"return address: {address}")
    if a.opt("service") == "pickup":
        parts.append("a courier will collect the parcel")
    return (" " + "; ".join(parts) + ".") if parts else ""


_TEMPLATES: dict[str, _Template] = {
    # -- refunds (plans and the relay) ---------------------------------------------------------
    "refund.sent": _Template(
        "退款已受理",
        "Your refund is on its way",
        lambda a: f"{_zh_order(a)}退款{a.money('amount')}已受理，将按原支付方式退回。",
        lambda a: (
            f"Your refund of {a.money('amount')}{_en_order(a)} is on its way back "
            "to the payment method(s) you used."
        ),
    ),
    "refund.under_manual_review": _Template(
        "退款申请人工审核中",
        "Your refund is being reviewed",
        lambda a: f"{_zh_order(a)}退款申请需要人工审核，我们会尽快处理并通知您结果。",
        lambda a: (
            f"Your refund request{_en_order(a)} needs a review by our team. "
            "We will let you know the result shortly."
        ),
    ),
    "refund.refunding": _Template(
        "退款处理中",
        "Your refund is being processed",
        lambda a: f"{_zh_order(a)}退款{a.money('amount')}正在处理中，退回原支付方式需要一些时间。",
        lambda a: (
            f"Your refund of {a.money('amount')}{_en_order(a)} is being processed; "
            "it can take a little while to reach the payment method(s) you used."
        ),
    ),
    "refund.refunded": _Template(
        "退款已到账",
        "Your refund has been completed",
        lambda a: f"{_zh_order(a)}退款{a.money('amount')}已退回原支付方式，请注意查收。",
        lambda a: (
            f"Your refund of {a.money('amount')}{_en_order(a)} has been returned "
            "to the payment method(s) you used."
        ),
    ),
    "refund.refund_failed": _Template(
        "退款遇到问题",
        "There was a problem with your refund",
        lambda a: (
            f"{_zh_order(a)}退款{a.money('amount')}未能退回原支付方式，"
            "客服正在为您处理，无需重新申请。"
        ),
        lambda a: (
            f"Your refund of {a.money('amount')}{_en_order(a)} could not be returned "
            "to your original payment method. Our support team is handling it; "
            "you do not need to ask again."
        ),
    ),
    "shipping.refunded": _Template(
        "运费已退还",
        "Shipping fee refunded",
        lambda a: f"运费{a.money('amount')}已随退款一并退还。",
        lambda a: f"The shipping fee of {a.money('amount')} has been refunded with your order.",
    ),
    # -- coupons and entitlements ----------------------------------------------------------------
    "coupon.returned": _Template(
        "优惠券已退回",
        "Your coupon is back",
        lambda a: f"您使用的优惠券{_zh_face(a)}已退回账户{_zh_valid(a)}，可再次使用。",
        lambda a: (
            f"The coupon you used{_en_face(a)} is back in your account{_en_valid(a)} "
            "and can be used again."
        ),
    ),
    "coupon.reissued": _Template(
        "优惠券已补发",
        "A new coupon has been issued",
        lambda a: (
            f"您使用的优惠券已过期，我们已为您补发一张同面值{_zh_face(a)}的新券，"
            f"有效期至{a.date('valid_until')}。"
        ),
        lambda a: (
            f"The coupon you used has expired, so we issued you a new one{_en_face(a)}, "
            f"valid until {a.date('valid_until')}."
        ),
    ),
    "coupon.forfeited": _Template(
        "优惠券不予退回",
        "Your coupon could not be returned",
        lambda a: f"您使用的优惠券{_zh_face(a)}已过期，按规则不予退回。",
        lambda a: (
            f"The coupon you used{_en_face(a)} has expired and, under our rules, "
            "cannot be returned."
        ),
    ),
    "entitlement.reactivated": _Template(
        "权益已恢复",
        "Your benefit is active again",
        lambda a: f"您使用的{_zh_benefit(a)}已恢复{_zh_valid(a)}，可再次使用。",
        lambda a: f"The {_en_benefit(a)} you used is active again{_en_valid(a)}.",
    ),
    "entitlement.reissued": _Template(
        "权益已补发",
        "Your benefit has been reissued",
        lambda a: (
            f"您使用的{_zh_benefit(a)}已过期，我们已为您补发，有效期至{a.date('valid_until')}。"
        ),
        lambda a: (
            f"The {_en_benefit(a)} you used has expired, so we issued you a new one, "
            f"valid until {a.date('valid_until')}."
        ),
    ),
    "entitlement.forfeited": _Template(
        "权益不予恢复",
        "Your benefit could not be returned",
        lambda a: f"您使用的{_zh_benefit(a)}已过期，按规则不予恢复。",
        lambda a: (
            f"The {_en_benefit(a)} you used has expired and, under our rules, cannot be returned."
        ),
    ),
    # -- points ----------------------------------------------------------------------------------
    "points.returned": _Template(
        "积分已退回",
        "Your points are back",
        lambda a: f"您用于支付的{a.count('points')}积分已退回账户。",
        lambda a: f"The {a.count('points')} points you paid with are back in your account.",
    ),
    "points.reversed": _Template(
        "积分已扣回",
        "Points taken back",
        lambda a: f"退款商品获得的{a.count('points')}积分已扣回。{_zh_shortfall(a)}",
        lambda a: (
            f"The {a.count('points')} points earned by the refunded items have been "
            f"taken back.{_en_shortfall(a)}"
        ),
    ),
    "points.cancelled": _Template(
        "待发放积分已取消",
        "Pending points cancelled",
        lambda a: f"退款商品对应的{a.count('points')}待发放积分已取消。",
        lambda a: (
            f"The {a.count('points')} pending points for the refunded items have been cancelled."
        ),
    ),
    # -- campaigns -------------------------------------------------------------------------------
    "discount.clawed_back": _Template(
        "活动优惠已扣回",
        "Campaign discount deducted",
        lambda a: (
            f"退款后保留的商品不再满足“{a.campaign()}”活动门槛，"
            f"已从退款中扣除相应优惠{a.money('amount')}。"
        ),
        lambda a: (
            f"The items you keep no longer reach the threshold of “{a.campaign()}”, "
            f"so its discount of {a.money('amount')} was deducted from the refund."
        ),
    ),
    "gift.kept_deducted": _Template(
        "赠品价值已扣除",
        "Gift value deducted",
        lambda a: (
            f"退款后保留的商品不再满足“{a.campaign()}”的赠品条件，赠品未退回，"
            f"已从退款中扣除赠品价值{a.money('amount')}。"
        ),
        lambda a: (
            f"The items you keep no longer qualify for the gift of “{a.campaign()}” "
            f"and the gift was kept, so its value of {a.money('amount')} was deducted "
            "from the refund."
        ),
    ),
    "reward.clawed_back": _Template(
        "活动奖励已扣回",
        "Campaign reward taken back",
        lambda a: f"因退款，“{a.campaign()}”已发放的活动奖励{a.money('amount')}已从退款中扣回。",
        lambda a: (
            f"Because of the refund, {a.money('amount')} of the reward you received "
            f"from “{a.campaign()}” was deducted from the refund."
        ),
    ),
    "reward.cancelled": _Template(
        "待发放奖励已取消",
        "Pending campaign reward cancelled",
        lambda a: f"因退款，“{a.campaign()}”待发放的活动奖励{a.money('amount')}已取消。",
        lambda a: (
            f"Because of the refund, {a.money('amount')} of the pending reward "
            f"from “{a.campaign()}” has been cancelled."
        ),
    ),
    "eligibility.restored": _Template(
        "活动资格已恢复",
        "Campaign eligibility restored",
        lambda a: f"您的“{a.campaign()}”活动资格已恢复，请继续享受优惠。",
        lambda a: (
            f"Your eligibility for “{a.campaign()}” has been restored. Enjoy the offer again."
        ),
    ),
    "eligibility.first_purchase_restored": _Template(
        "首单资格已恢复",
        "First-purchase offer restored",
        lambda a: f"您的“{a.campaign()}”首单资格已恢复，下次下单仍可享受首单优惠。",
        lambda a: (
            f"Your first-purchase eligibility for “{a.campaign()}” has been restored: "
            "your next order still gets the first-purchase offer."
        ),
    ),
    "eligibility.withheld": _Template(
        "活动资格未恢复",
        "Campaign eligibility not restored",
        lambda a: (
            f"您的订单已退款，但“{a.campaign()}”活动资格暂未恢复："
            f"{_ZH_WHY.get(a.text('why'), '不符合活动规则')}。"
        ),
        lambda a: (
            f"Your order was refunded, but your eligibility for “{a.campaign()}” "
            f"was not restored: {_EN_WHY.get(a.text('why'), 'the campaign rules do not allow it')}."
        ),
    ),
    "tier.changed": _Template(
        "会员等级已调整",
        "Your membership tier has changed",
        lambda a: f"因退款后成长值变化，您的会员等级已由{_tier(a, 'from')}调整为{_tier(a, 'to')}。",
        lambda a: (
            f"After the refund your growth value changed, and your membership tier "
            f"moved from {_tier(a, 'from')} to {_tier(a, 'to')}."
        ),
    ),
    # -- the case process ------------------------------------------------------------------------
    "case.received": _Template(
        "售后申请已提交",
        "We received your request",
        lambda a: f"{_zh_case(a)}已提交{_zh_amount(a, '，申请退款')}，我们会尽快审核。",
        lambda a: (
            f"{_en_case(a)}{_en_amount(a, ' for a refund of ')} has been received. "
            "We will review it shortly."
        ),
    ),
    "case.approved": _Template(
        "售后申请已通过",
        "Your request was approved",
        lambda a: f"{_zh_case(a)}已通过审核。{_zh_reason(a)}",
        lambda a: f"{_en_case(a)} has been approved.{_en_reason(a)}",
    ),
    "case.rejected": _Template(
        "售后申请未通过",
        "Your request was declined",
        lambda a: f"{_zh_case(a)}未通过审核。{_zh_reason(a)}如有疑问请联系客服。",
        lambda a: (
            f"{_en_case(a)} has been declined.{_en_reason(a)} "
            "Please contact customer service if you have any questions."
        ),
    ),
    "case.return_label_issued": _Template(
        "退货信息已生成",
        "Your return label is ready",
        lambda a: f"{_zh_case(a)}的退货信息已生成，请按要求寄回商品。{_zh_label(a)}",
        lambda a: (
            f"The return for {a.text('case_id')} is ready; please send the items back."
            f"{_en_label(a)}"
        ),
    ),
    "case.return_received": _Template(
        "退货已签收",
        "We received your return",
        lambda a: f"{_zh_case(a)}的退回商品已签收，我们将尽快验货。",
        lambda a: (
            f"We received the items returned for {a.text('case_id')} and will inspect them shortly."
        ),
    ),
    "case.inspection_passed": _Template(
        "验货通过",
        "Your return passed inspection",
        lambda a: f"{_zh_case(a)}的退回商品验货通过，退款即将发起。",
        lambda a: (
            f"The items returned for {a.text('case_id')} passed inspection; "
            "your refund will start shortly."
        ),
    ),
    "case.inspection_partial": _Template(
        "部分商品验货通过",
        "Your return partly passed inspection",
        lambda a: f"{_zh_case(a)}的退回商品部分验货通过，将按验收通过的数量退款。{_zh_reason(a)}",
        lambda a: (
            f"Only part of the items returned for {a.text('case_id')} passed "
            f"inspection; the refund covers the accepted items.{_en_reason(a)}"
        ),
    ),
    "case.inspection_failed": _Template(
        "验货未通过",
        "Your return did not pass inspection",
        lambda a: f"{_zh_case(a)}的退回商品未通过验货，商品将寄回给您。{_zh_reason(a)}",
        lambda a: (
            f"The items returned for {a.text('case_id')} did not pass inspection "
            f"and will be sent back to you.{_en_reason(a)}"
        ),
    ),
    "case.cancelled": _Template(
        "售后申请已取消",
        "Your request was cancelled",
        lambda a: f"{_zh_case(a)}已取消。",
        lambda a: f"{_en_case(a)} has been cancelled.",
    ),
    "case.closed": _Template(
        "售后申请已关闭",
        "Your request was closed",
        lambda a: f"{_zh_case(a)}已关闭。{_zh_reason(a)}",
        lambda a: f"{_en_case(a)} has been closed.{_en_reason(a)}",
    ),
    "case.needs_review": _Template(
        "售后申请人工审核中",
        "Your request is being reviewed",
        lambda a: f"{_zh_case(a)}需要人工审核，请耐心等待，我们会尽快通知您结果。",
        lambda a: (
            f"{_en_case(a)} needs a review by our team. We will let you know the result shortly."
        ),
    ),
    "case.completed": _Template(
        "售后已完成",
        "Your request is complete",
        lambda a: f"{_zh_case(a)}已完成，欢迎对本次服务进行评价。",
        lambda a: f"{_en_case(a)} is complete. We would love to hear how we did.",
    ),
    # -- identity and risk -----------------------------------------------------------------------
    "identity.code": _Template(
        "验证码",
        "Your verification code",
        lambda a: f"您的验证码为{a.text('code')}，{a.count('minutes')}分钟内有效，请勿告诉他人。",
        lambda a: (
            f"Your verification code is {a.text('code')}. It expires in "
            f"{a.count('minutes')} minutes. Do not share it with anyone."
        ),
    ),
    "risk.restricted_high_value": _Template(
        "高价值活动参与受限",
        "High-value campaigns restricted",
        lambda a: (
            f"根据您近期的退款记录，您在{a.count('days')}天内暂不能参与高价值活动。"
            f"原因：{a.text('reason')}。"
        ),
        lambda a: (
            f"Based on your recent refunds, you cannot join high-value campaigns for "
            f"{a.count('days')} days. Reason: {a.text('reason')}."
        ),
    ),
    "risk.refund_rights_suspended": _Template(
        "退款申请权限已暂停",
        "Refund requests suspended",
        lambda a: f"您的退款申请权限已被暂停。{_zh_reason(a)}如有疑问请联系客服。",
        lambda a: (
            f"Your right to request refunds has been suspended.{_en_reason(a)} "
            "Please contact customer service if you have any questions."
        ),
    ),
    "risk.refund_rights_restored": _Template(
        "退款申请权限已恢复",
        "Refund requests restored",
        lambda a: "您的退款申请权限已恢复。",
        lambda a: "Your right to request refunds has been restored.",
    ),
}

TEMPLATE_KEYS: frozenset[str] = frozenset(_TEMPLATES)


def render(template: str, params: Mapping[str, object], locale: str | None) -> Rendered:
    """Render ``template`` with ``params`` in ``locale`` (see the module docstring)."""
    entry = _TEMPLATES.get(template)
    if entry is None:
        raise UnknownTemplate(f"no notification template {template!r}", template=template)
    loc = normalize_locale(locale)
    args = _Args(template, params, loc)
    if loc == "zh-CN":
        return Rendered(entry.zh_subject, entry.zh(args))
    return Rendered(entry.en_subject, entry.en(args))
