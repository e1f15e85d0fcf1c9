"""What a plan tells the customer (SPEC §3.8, §6): one notice per customer-visible effect.

The plan only names the template and its parameters; rendering in the customer's locale and
channel, and delivery through the outbox, happen when the plan is applied.
"""

from __future__ import annotations

from collections.abc import Iterable

from refundry.domain.plan_types import Amount, Effect, Notice

__all__ = ["notices_for"]

# effect type -> template key; effects not listed are bookkeeping the customer is not told about
_TEMPLATES = {
    "coupon_return": "coupon.returned",
    "coupon_reissue": "coupon.reissued",
    "coupon_forfeit": "coupon.forfeited",
    "entitlement_reactivate": "entitlement.reactivated",
    "entitlement_reissue": "entitlement.reissued",
    "entitlement_forfeit": "entitlement.forfeited",
    "points_return_redeemed": "points.returned",
    "points_reverse_earned": "points.reversed",
    "points_cancel_pending": "points.cancelled",
    "discount_clawback": "discount.clawed_back",
    "kept_gift_deduction": "gift.kept_deducted",
    "reward_clawback": "reward.clawed_back",
    "reward_cancel": "reward.cancelled",
    "eligibility_restored": "eligibility.restored",
    "first_purchase_restored": "eligibility.first_purchase_restored",
    "eligibility_withheld": "eligibility.withheld",
    "tier_change": "tier.changed",
    "shipping_refund": "shipping.refunded",
}


def notices_for(
    effects: Iterable[Effect], *, amount: Amount, currency: str, needs_review: bool
) -> tuple[Notice, ...]:
    out: list[Notice] = []
    if needs_review:
        out.append(Notice("refund.under_manual_review", {"currency": currency}))
    elif amount.total:
        out.append(Notice("refund.sent", {"amount": amount.total, "currency": currency}))
    for effect in effects:
        template = _TEMPLATES.get(effect.type)
        if template is not None:
            out.append(Notice(template, {**effect.data, "currency": currency}))
    return tuple(out)
