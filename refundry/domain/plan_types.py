"""The values a plan is made of: immutable named tuples (a plan builds dozens of them, and a
tuple is the cheapest immutable value Python constructs), and the frozen Plan that holds them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import NamedTuple

from refundry.domain.request import RefundRequest

__all__ = [
    "Amount",
    "Deduction",
    "Effect",
    "EffectKind",
    "Notice",
    "Plan",
    "TenderRefund",
    "UnitRefund",
]

Scalar = int | str | bool | None


class EffectKind(StrEnum):
    """Every effect a plan can list (docs/plan-json.md); the store dispatches on these."""

    REFUND_TO_TENDER = "refund_to_tender"  # money to one tender
    POINTS_RETURN_REDEEMED = "points_return_redeemed"  # redeemed points come back
    POINTS_REVERSE_EARNED = "points_reverse_earned"  # earned points taken back
    POINTS_CANCEL_PENDING = "points_cancel_pending"  # earned points not yet vested: cancelled
    COUPON_RETURN = "coupon_return"  # a still-valid coupon is usable again
    COUPON_REISSUE = "coupon_reissue"  # an expired coupon is replaced by a new one
    COUPON_FORFEIT = "coupon_forfeit"  # policy: an expired coupon is lost
    ENTITLEMENT_REACTIVATE = "entitlement_reactivate"
    ENTITLEMENT_REISSUE = "entitlement_reissue"
    ENTITLEMENT_FORFEIT = "entitlement_forfeit"
    DISCOUNT_CLAWBACK = "discount_clawback"  # 满减 lost on kept units: deducted
    DISCOUNT_GIVE_BACK = "discount_give_back"  # … and given back with those units later
    KEPT_GIFT_DEDUCTION = "kept_gift_deduction"  # 满赠 gift kept: its value deducted
    KEPT_GIFT_GIVE_BACK = "kept_gift_give_back"
    REWARD_CLAWBACK = "reward_clawback"  # a granted cashback taken back
    REWARD_CANCEL = "reward_cancel"  # a pending cashback cancelled
    CAMPAIGN_SPEND_DECREASE = "campaign_spend_decrease"  # cumulative spend lowered
    QUOTA_RELEASE = "quota_release"  # a participation quota given back
    ELIGIBILITY_RESTORED = "eligibility_restored"
    ELIGIBILITY_WITHHELD = "eligibility_withheld"  # … or not, with why
    FIRST_PURCHASE_RESTORED = "first_purchase_restored"
    GROWTH_REVERSE = "growth_reverse"  # growth value taken back
    TIER_CHANGE = "tier_change"  # the membership tier it leads to
    SHIPPING_REFUND = "shipping_refund"  # the shipping fee comes back
    RETURN_LABEL = "return_label"  # the prepaid label's cost deducted


class UnitRefund(NamedTuple):
    line_id: str
    sku: str
    quantity: int
    gift: bool
    refunded_before: int
    refunded_after: int
    of: int
    list: int  # list price of the units in this step
    paid: int  # their apportioned paid amount (cumulative rounding)


class Deduction(NamedTuple):
    """Money held back from (or, in ``give_backs``, added to) a step, and why."""

    kind: str
    ref: str
    amount: int
    reason: str
    rule: str


class Effect(NamedTuple):
    type: str
    data: dict[str, Scalar]
    reason: str
    rule: str


class Notice(NamedTuple):
    """A message to the customer: a template key and its parameters."""

    template: str
    params: dict[str, Scalar]


class TenderRefund(NamedTuple):
    tender_id: str
    kind: str
    amount: int  # minor units
    points: int  # whole points, for a points tender
    refunded_after: int
    paid: int


class Amount(NamedTuple):
    goods: int
    give_backs: int
    shipping: int
    deductions: int
    carry: int
    rounding: int
    total: int


@dataclass(frozen=True, slots=True)
class Plan:
    order_id: str
    currency: str
    now: datetime
    input_hash: str
    request: RefundRequest
    status: str  # "ready" | "needs_manual_review"
    manual_review: dict[str, Scalar] | None
    units: tuple[UnitRefund, ...]
    amount: Amount
    tenders: tuple[TenderRefund, ...]
    deductions: tuple[Deduction, ...]
    give_backs: tuple[Deduction, ...]
    effects: tuple[Effect, ...]
    notices: tuple[Notice, ...] = ()

    @property
    def needs_manual_review(self) -> bool:
        return self.status == "needs_manual_review"
