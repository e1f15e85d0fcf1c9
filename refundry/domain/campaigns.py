"""Threshold promotions re-evaluated on the basket the customer keeps (SPEC §3.4–3.5).

A campaign's kept basket is the units of its lines not refunded, measured at list price or at
their kept paid amount. What a failed campaign holds back (the discount on kept units, the value
of kept gifts) is a function of the state alone, so a step's claw-back and give-back are the
change of that holding; rewards are reduced to what the kept basket still earns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from refundry.domain.customer import CustomerSnapshot
from refundry.domain.money import cumulative_part
from refundry.domain.order import Campaign, CampaignKind, Order
from refundry.domain.plan_types import Deduction, Effect
from refundry.domain.reasons import say
from refundry.domain.request import PriorRefund

__all__ = ["CampaignOutcome", "basket", "evaluate_campaigns"]


@dataclass(slots=True)
class CampaignOutcome:
    deductions: list[Deduction] = field(default_factory=list)
    give_backs: list[Deduction] = field(default_factory=list)
    effects: list[Effect] = field(default_factory=list)
    held_before: int = 0  # discounts and gift values held on kept units before the step
    held_after: int = 0


def basket(order: Order, campaign: Campaign, refunded: dict[str, int]) -> int:
    """The campaign's kept basket at the state ``refunded``, in its own measure."""
    total = 0
    units = order.campaign_goods[campaign.id]
    if campaign.measure == "list":
        for line_id, n, price, _ in units:
            total += price * (n - refunded[line_id])
    else:
        for line_id, n, _, paid in units:
            total += paid - paid * refunded[line_id] // n
    return total


def _lost_discount(order: Order, adjustment_id: str, refunded: dict[str, int]) -> int:
    held = 0
    for line_id, share in order.shares[adjustment_id].items():
        n = order.line(line_id).quantity
        held += share - cumulative_part(share, refunded[line_id], n)
    return held


def evaluate_campaigns(
    *,
    order: Order,
    history: Sequence[PriorRefund],
    customer: CustomerSnapshot,
    before: dict[str, int],
    after: dict[str, int],
    now: datetime,
) -> CampaignOutcome:
    out = CampaignOutcome()
    reduced: dict[str, int] = {}
    for h in history:
        for reward_id, amount in h.reward_reductions.items():
            reduced[reward_id] = reduced.get(reward_id, 0) + amount
    for campaign in order.campaigns:
        kind = campaign.kind
        if kind == CampaignKind.THRESHOLD_DISCOUNT:
            _threshold_discount(order, campaign, before, after, out)
        elif kind == CampaignKind.GIFT_WITH_PURCHASE:
            _gifts(order, campaign, before, after, out)
        elif kind == CampaignKind.ORDER_CASHBACK:
            _order_cashback(order, campaign, after, reduced, out)
        elif kind == CampaignKind.CUMULATIVE_CASHBACK:
            _cumulative_cashback(order, campaign, customer, before, after, out)
    return out


def _failed(order: Order, campaign: Campaign, refunded: dict[str, int]) -> bool:
    return basket(order, campaign, refunded) < campaign.threshold


def _threshold_discount(
    order: Order,
    campaign: Campaign,
    before: dict[str, int],
    after: dict[str, int],
    out: CampaignOutcome,
) -> None:
    failed_before = _failed(order, campaign, before)
    failed_after = failed_before or _failed(order, campaign, after)
    if not failed_after:
        return
    for adj in order.adjustments:
        if adj.source.type != "campaign" or adj.source.id != campaign.id:
            continue
        held_before = _lost_discount(order, adj.id, before) if failed_before else 0
        held_after = _lost_discount(order, adj.id, after)
        out.held_before += held_before
        out.held_after += held_after
        data: dict[str, int | str | bool | None] = {
            "adjustment_id": adj.id,
            "campaign_id": campaign.id,
        }
        if failed_before:
            back = held_before - held_after
            if back:
                out.give_backs.append(
                    Deduction(
                        "discount_give_back",
                        adj.id,
                        back,
                        reason=say("discount.given_back", campaign=campaign.id),
                        rule="spec.3.4.threshold_discount",
                    )
                )
                out.effects.append(
                    Effect(
                        "discount_give_back",
                        {**data, "amount": back},
                        reason=say("discount.units_back"),
                        rule="spec.3.4.threshold_discount",
                    )
                )
        elif held_after:
            basket_after = basket(order, campaign, after)
            why = say(
                "discount.basket_short",
                basket=basket_after,
                measure=campaign.measure,
                campaign=campaign.id,
                threshold=campaign.threshold,
            )
            out.deductions.append(
                Deduction(
                    "discount_clawback",
                    adj.id,
                    held_after,
                    reason=say("discount.deducted", why=why),
                    rule="spec.3.4.threshold_discount",
                )
            )
            out.effects.append(
                Effect(
                    "discount_clawback",
                    {**data, "amount": held_after},
                    reason=why,
                    rule="spec.3.4.threshold_discount",
                )
            )


def _gifts(
    order: Order,
    campaign: Campaign,
    before: dict[str, int],
    after: dict[str, int],
    out: CampaignOutcome,
) -> None:
    failed_before = _failed(order, campaign, before)
    failed_after = failed_before or _failed(order, campaign, after)
    if not failed_after:
        return
    for line in order.lines:
        if line.gift_of != campaign.id:
            continue
        held_before = (
            line.declared_value * (line.quantity - before[line.id]) if failed_before else 0
        )
        held_after = line.declared_value * (line.quantity - after[line.id])
        out.held_before += held_before
        out.held_after += held_after
        data: dict[str, int | str | bool | None] = {"line_id": line.id, "campaign_id": campaign.id}
        if failed_before and held_before > held_after:
            back = held_before - held_after
            out.give_backs.append(
                Deduction(
                    "kept_gift_give_back",
                    line.id,
                    back,
                    reason=say("gift.given_back"),
                    rule="spec.3.4.gift_with_purchase",
                )
            )
            out.effects.append(
                Effect(
                    "kept_gift_give_back",
                    {**data, "amount": back},
                    reason=say("gift.given_back"),
                    rule="spec.3.4.gift_with_purchase",
                )
            )
        elif not failed_before and held_after:
            why = say("gift.kept", campaign=campaign.id, threshold=campaign.threshold, line=line.id)
            out.deductions.append(
                Deduction(
                    "kept_gift",
                    line.id,
                    held_after,
                    reason=say("gift.deducted", why=why),
                    rule="spec.3.4.gift_with_purchase",
                )
            )
            out.effects.append(
                Effect(
                    "kept_gift_deduction",
                    {**data, "amount": held_after},
                    reason=why,
                    rule="spec.3.4.gift_with_purchase",
                )
            )


def _reduce_reward(
    out: CampaignOutcome,
    *,
    reward_id: str,
    campaign_id: str,
    status: str,
    amount: int,
    why: str,
    rule: str,
) -> None:
    data: dict[str, int | str | bool | None] = {
        "reward_id": reward_id,
        "campaign_id": campaign_id,
        "amount": amount,
    }
    if status == "granted":
        out.deductions.append(
            Deduction(
                "reward_clawback",
                reward_id,
                amount,
                reason=say("reward.clawed_back", why=why),
                rule=rule,
            )
        )
        out.effects.append(Effect("reward_clawback", data, reason=why, rule=rule))
    else:
        out.effects.append(
            Effect("reward_cancel", data, reason=say("reward.cancelled", why=why), rule=rule)
        )


def _order_cashback(
    order: Order,
    campaign: Campaign,
    after: dict[str, int],
    reduced: dict[str, int],
    out: CampaignOutcome,
) -> None:
    kept = basket(order, campaign, after)
    target = campaign.reward_for(kept)
    for reward in order.rewards:
        if reward.campaign_id != campaign.id or reward.status not in ("granted", "pending"):
            continue
        current = reward.amount - reduced.get(reward.id, 0)
        if current > target:
            _reduce_reward(
                out,
                reward_id=reward.id,
                campaign_id=campaign.id,
                status=reward.status,
                amount=current - target,
                why=say(
                    "cashback.basket_earns",
                    basket=kept,
                    measure=campaign.measure,
                    target=target,
                    campaign=campaign.id,
                    current=current,
                ),
                rule="spec.3.4.cashback",
            )


def _cumulative_cashback(
    order: Order,
    campaign: Campaign,
    customer: CustomerSnapshot,
    before: dict[str, int],
    after: dict[str, int],
    out: CampaignOutcome,
) -> None:
    """A customer reward's ``amount`` is what it holds now (the store passes the amount granted
    less every reduction, from any order), so no reduction from this order's history applies."""
    decrease = 0
    for line_id in order.campaign_lines[campaign.id]:
        n = order.line(line_id).quantity
        paid = order.paid[line_id]
        decrease += cumulative_part(paid, after[line_id], n) - cumulative_part(
            paid, before[line_id], n
        )
    if not decrease:
        return
    spend = customer.campaign_spend.get(campaign.id, 0)
    spend_after = max(0, spend - decrease)
    out.effects.append(
        Effect(
            "campaign_spend_decrease",
            {"campaign_id": campaign.id, "amount": spend - spend_after, "spend_after": spend_after},
            reason=say("spend.decreased"),
            rule="spec.3.5.cumulative_spend",
        )
    )
    # The customer keeps what the highest tier the remaining spend reaches pays, however the shop
    # recorded it (one grant for the tier reached, or one per tier): the excess is taken back
    # from the highest-threshold rewards first, each reduced no further than what it holds.
    target = campaign.reward_for(spend_after)
    held = sorted(
        (
            r
            for r in customer.campaign_rewards
            if r.campaign_id == campaign.id and r.status in ("granted", "pending") and r.amount > 0
        ),
        key=lambda r: (-r.threshold, r.id),
    )
    holding = sum(r.amount for r in held)
    excess = holding - target
    for reward in held:
        if excess <= 0:
            break
        cut = min(reward.amount, excess)
        excess -= cut
        _reduce_reward(
            out,
            reward_id=reward.id,
            campaign_id=campaign.id,
            status=reward.status,
            amount=cut,
            why=say(
                "cashback.spend_earns",
                spend=spend_after,
                target=target,
                campaign=campaign.id,
                holding=holding,
            ),
            rule="spec.3.5.cumulative_spend",
        )
