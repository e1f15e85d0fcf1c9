"""Coupons, entitlements, quotas and first-purchase eligibility (SPEC §3.3, §3.5, §3.6).

Each comes back in the step after which none of the units it was used on is kept — and only
in that step, so a later step never returns it twice.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from refundry.domain.customer import CustomerSnapshot, Entitlement
from refundry.domain.errors import InvalidInput
from refundry.domain.json_text import instant
from refundry.domain.order import Campaign, CampaignKind, Order
from refundry.domain.plan_types import Effect
from refundry.domain.policy import Policy
from refundry.domain.reasons import say

__all__ = ["benefit_effects", "quota_effects"]


def _released(
    order: Order, line_ids: tuple[str, ...], before: dict[str, int], after: dict[str, int]
) -> bool:
    """True when this step refunds the last kept unit of ``line_ids`` (empty: all goods)."""
    ids = line_ids or tuple(g[0] for g in order.goods)
    quantity = order.quantity
    kept_after = any(after[i] < quantity[i] for i in ids)
    return not kept_after and any(before[i] < quantity[i] for i in ids)


def benefit_effects(
    *,
    order: Order,
    customer: CustomerSnapshot,
    policy: Policy,
    before: dict[str, int],
    after: dict[str, int],
    now: datetime,
) -> list[Effect]:
    effects: list[Effect] = []
    for adj in order.adjustments:
        if adj.source.type not in ("coupon", "entitlement"):
            continue
        if not _released(order, adj.lines, before, after):
            continue
        if adj.source.type == "coupon":
            held = customer.coupons.get(adj.source.id)
            what = "coupon"
        else:
            held = customer.entitlements.get(adj.source.id)
            what = "entitlement"
        if held is None:
            raise InvalidInput(
                f"the order used {what} {adj.source.id!r} but the snapshot does not list it",
                code="snapshot.invalid",
                field=f"snapshot.{what}s",
            )
        value = held.value or adj.amount
        effects.append(_give_back(what, held, value, policy, now, adjustment_id=adj.id))
    for benefit in order.benefits:
        if not _released(order, benefit.lines, before, after):
            continue
        held = customer.entitlements.get(benefit.id)
        if held is None:
            raise InvalidInput(
                f"the order used entitlement {benefit.id!r} but the snapshot does not list it",
                code="snapshot.invalid",
                field="snapshot.entitlements",
            )
        effects.append(_give_back("entitlement", held, held.value, policy, now, adjustment_id=None))
    return effects


def _give_back(
    what: str,
    held: Entitlement,
    value: int,
    policy: Policy,
    now: datetime,
    *,
    adjustment_id: str | None,
) -> Effect:
    data: dict[str, int | str | bool | None] = {
        f"{what}_id": held.id,
        "kind": held.kind,
        "value": value,
        "adjustment_id": adjustment_id,
    }
    if held.is_valid(now):
        return Effect(
            "coupon_return" if what == "coupon" else "entitlement_reactivate",
            {**data, "valid_until": instant(held.valid_until) if held.valid_until else None},
            reason=say(f"{what}.usable_again"),
            rule="spec.3.3" if what == "coupon" else "spec.3.6",
        )
    if policy.expired_coupon == "forfeit":
        return Effect(
            f"{what}_forfeit",
            data,
            reason=say(f"{what}.forfeit"),
            rule="policy.expired_coupon=forfeit",
        )
    valid_until = now + timedelta(days=policy.coupon_reissue_days)
    return Effect(
        f"{what}_reissue",
        {**data, "valid_until": instant(valid_until)},
        reason=say(f"{what}.reissued"),
        rule=f"policy.coupon_reissue_days={policy.coupon_reissue_days}",
    )


def _withheld_because(campaign: Campaign, customer: CustomerSnapshot, now: datetime) -> str | None:
    if campaign.has_ended(now):
        return "campaign_ended"
    if campaign.high_value and customer.is_frequent_refunder:
        return "frequent_refunder"
    return None


def quota_effects(
    *,
    order: Order,
    customer: CustomerSnapshot,
    before: dict[str, int],
    after: dict[str, int],
    now: datetime,
    all_goods_before: bool,
    all_goods_after: bool,
) -> list[Effect]:
    effects: list[Effect] = []
    for campaign in order.campaigns:
        if campaign.kind == CampaignKind.FIRST_PURCHASE:
            if all_goods_after and not all_goods_before:
                why = _withheld_because(campaign, customer, now)
                if why is None and any(
                    o.paid and not o.fully_refunded for o in customer.other_orders
                ):
                    why = "other_paid_order"
                effects.append(_eligibility(campaign, why, "first_purchase_restored"))
            continue
        uses_quota = (
            campaign.quota_per_customer is not None
            or campaign.kind == CampaignKind.PARTICIPATION_QUOTA
        )
        if uses_quota and _released(order, order.campaign_lines[campaign.id], before, after):
            why = _withheld_because(campaign, customer, now)
            if why is None:
                used = customer.quotas_used.get(campaign.id, 1)
                effects.append(
                    Effect(
                        "quota_release",
                        {"campaign_id": campaign.id, "used_after": max(used - 1, 0)},
                        reason=say("quota.released"),
                        rule="spec.3.5.quota",
                    )
                )
            effects.append(_eligibility(campaign, why, "eligibility_restored"))
    return effects


def _eligibility(campaign: Campaign, why: str | None, restored: str) -> Effect:
    data: dict[str, int | str | bool | None] = {
        "campaign_id": campaign.id,
        "high_value": campaign.high_value,
    }
    if why is None:
        return Effect(
            restored,
            data,
            reason=say("eligibility.restored"),
            rule="spec.3.eligibility",
        )
    return Effect(
        "eligibility_withheld",
        {**data, "why": why},
        reason=say(f"eligibility.{why}"),
        rule="spec.3.eligibility",
    )
