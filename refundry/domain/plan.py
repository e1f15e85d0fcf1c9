"""The refund plan: a pure function of order, history, customer, request, policy and now.

``plan_refund`` works out one refund step (docs/refund-rules.md is its exact contract):
how much money moves and to which tender, and every other asset the step gives back or takes
back, each effect with the reason in words and the rule that decided it.

The amount is never built up from running totals: the customer's entitlement is a function of
the state after the step (which units are kept, which campaigns still qualify) plus the few
things that depended on the moment (reward claw-backs, points shortfalls, labels), and the step
moves the entitlement minus what earlier steps moved. So rounding never drifts and the last unit
always settles every tender exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from refundry.domain.assets import benefit_effects, quota_effects
from refundry.domain.campaigns import evaluate_campaigns
from refundry.domain.customer import CustomerSnapshot
from refundry.domain.errors import InvalidInput, RefundRefused
from refundry.domain.money import cumulative_part
from refundry.domain.notices import notices_for
from refundry.domain.order import REFUNDABLE_STATUSES, Order, OrderStatus
from refundry.domain.plan_types import (
    Amount,
    Deduction,
    Effect,
    Plan,
    UnitRefund,
)
from refundry.domain.policy import Policy
from refundry.domain.reasons import say
from refundry.domain.request import PriorRefund, RefundRequest
from refundry.domain.tenders import split_over_tenders

__all__ = ["plan_refund"]


def plan_refund(
    *,
    order: Order,
    history: Sequence[PriorRefund],
    customer: CustomerSnapshot,
    request: RefundRequest,
    policy: Policy,
    now: datetime,
    input_hash: str = "",
) -> Plan:
    """Compute the plan of one refund step. Raises RefundRefused for a request it cannot plan.

    Along SPEC §3: the units and what they paid (§1), the campaigns re-evaluated on the kept
    basket (items 4–5), shipping and the return label (item 7), the step's amount split over
    the tenders with points (items 1–2), the other assets (items 3, 5, 6), then the notices."""
    before, moved_before = _history_totals(order, history)
    after = _checked_request(order, request, before)
    units = _units(order, request, before, after)
    goods = sum(u.paid for u in units)

    campaigns = evaluate_campaigns(
        order=order, history=history, customer=customer, before=before, after=after, now=now
    )
    deductions: list[Deduction] = list(campaigns.deductions)
    give_backs: list[Deduction] = list(campaigns.give_backs)
    effects: list[Effect] = list(campaigns.effects)

    progress = _progress(order, before, after, goods)
    shipping_before = any(h.shipping_refunded for h in history)
    shipping = _shipping_and_label(
        order,
        history,
        request,
        policy,
        progress=progress,
        shipping_before=shipping_before,
        deductions=deductions,
        effects=effects,
    )
    carry = _carry(order, history, progress, campaigns.held_before, shipping_before, moved_before)
    given = sum(g.amount for g in give_backs)
    pre_total = goods + given + shipping - sum(d.amount for d in deductions) + carry

    split = split_over_tenders(
        order=order,
        policy=policy,
        customer=customer,
        moved_before=moved_before,
        total=pre_total,
        points_due=progress.part(order.points_earned.points, order.goods_paid),
    )
    effects.extend(split.effects)
    if split.shortfall_money:
        deductions.append(_points_shortfall(split.shortfall_money, split.shortfall_points))

    effects.extend(
        _asset_effects(order, customer, policy, before=before, after=after, now=now, p=progress)
    )
    summary = Amount(
        goods=goods,
        give_backs=given,
        shipping=shipping,
        deductions=sum(d.amount for d in deductions),
        carry=carry,
        rounding=split.rounding,
        total=sum(t.amount for t in split.tenders),
    )
    manual: dict[str, int | str | bool | None] | None = None
    if split.excess:
        manual = {"code": "plan.deductions_exceed_amount", "excess": split.excess}
    return Plan(
        order_id=order.id,
        currency=order.currency,
        now=now,
        input_hash=input_hash,
        request=request,
        status="needs_manual_review" if manual else "ready",
        manual_review=manual,
        units=tuple(units),
        amount=summary,
        tenders=tuple(split.tenders),
        deductions=tuple(deductions),
        give_backs=tuple(give_backs),
        effects=tuple(effects),
        notices=notices_for(
            effects, amount=summary, currency=order.currency, needs_review=split.excess > 0
        ),
    )


def _carry(
    order: Order,
    history: Sequence[PriorRefund],
    progress: _Progress,
    held_before: int,
    shipping_before: bool,
    moved_before: dict[str, int],
) -> int:
    """What earlier steps moved more (negative) or less than the rules give them: what the
    customer was entitled to before this step minus what the tenders got (docs/plan-json.md)."""
    entitled_before = (
        progress.paid_before
        - held_before
        + (order.shipping_fee if shipping_before else 0)
        - sum(h.path_deductions for h in history)
    )
    return entitled_before - sum(moved_before.values())


def _progress(order: Order, before: dict[str, int], after: dict[str, int], goods: int) -> _Progress:
    paid_before = _refunded_paid(order, before)
    return _Progress(
        paid_before=paid_before,
        paid_after=paid_before + goods,
        all_before=_all_goods_refunded(order, before),
        all_after=_all_goods_refunded(order, after),
    )


def _shipping_and_label(
    order: Order,
    history: Sequence[PriorRefund],
    request: RefundRequest,
    policy: Policy,
    *,
    progress: _Progress,
    shipping_before: bool,
    deductions: list[Deduction],
    effects: list[Effect],
) -> int:
    """SPEC §3 item 7: the shipping fee this step refunds (with the last unit of goods, when
    due and not refunded before), and the return label's payer and deduction."""
    shipping = 0
    last_goods = progress.all_after and not progress.all_before and order.shipping_fee > 0
    if last_goods and not shipping_before:
        shipping_effect = _shipping_refund(order, history, request, policy)
        if shipping_effect is not None:
            shipping = order.shipping_fee
            effects.append(shipping_effect)
    if request.uses_label:
        _return_label(request, policy, deductions, effects)
    return shipping


def _points_shortfall(money: int, points: int) -> Deduction:
    """SPEC §3 item 2: earned points the balance cannot cover, deducted from the cash refund."""
    return Deduction(
        "points_shortfall",
        "points",
        money,
        reason=say("points.shortfall", points=points),
        rule="policy.points_shortfall=deduct_from_refund",
    )


def _asset_effects(
    order: Order,
    customer: CustomerSnapshot,
    policy: Policy,
    *,
    before: dict[str, int],
    after: dict[str, int],
    now: datetime,
    p: _Progress,
) -> list[Effect]:
    """SPEC §3 items 3, 5 and 6 beyond money: coupons and benefits re-activated, quotas and
    first-purchase eligibility released, growth reversed and the tier it leads to."""
    effects = benefit_effects(
        order=order, customer=customer, policy=policy, before=before, after=after, now=now
    )
    effects.extend(
        quota_effects(
            order=order,
            customer=customer,
            before=before,
            after=after,
            now=now,
            all_goods_before=p.all_before,
            all_goods_after=p.all_after,
        )
    )
    effects.extend(_growth_effects(order, customer, p))
    return effects


def _units(
    order: Order, request: RefundRequest, before: dict[str, int], after: dict[str, int]
) -> list[UnitRefund]:
    """The units the step refunds, each line's paid amount by cumulative rounding (SPEC §1)."""
    units: list[UnitRefund] = []
    for req in request.lines:
        line = order.line(req.line_id)
        r0, r1 = before[line.id], after[line.id]
        paid = order.paid[line.id]
        moved = cumulative_part(paid, r1, line.quantity) - cumulative_part(paid, r0, line.quantity)
        units.append(
            UnitRefund(
                line_id=line.id,
                sku=line.sku,
                quantity=req.quantity,
                gift=line.is_gift,
                refunded_before=r0,
                refunded_after=r1,
                of=line.quantity,
                list=line.unit_price * req.quantity,
                paid=moved,
            )
        )
    return units


def _shipping_refund(
    order: Order, history: Sequence[PriorRefund], request: RefundRequest, policy: Policy
) -> Effect | None:
    """The step refunds the last unit of goods: the shipping fee comes back if it is due
    (SPEC §3 item 7)."""
    why = _shipping_due(order, history, request, policy)
    if not why:
        return None
    return Effect(
        "shipping_refund",
        {"amount": order.shipping_fee},
        reason=say("shipping.refunded", why=why),
        rule=f"policy.shipping_refund={policy.shipping_refund}",
    )


def _return_label(
    request: RefundRequest, policy: Policy, deductions: list[Deduction], effects: list[Effect]
) -> None:
    """Who pays the return label or pickup (SPEC §3 item 7): the merchant for its own fault,
    else the customer, whose refund carries the cost."""
    cost, setting = policy.return_cost(request.return_method)
    if policy.is_merchant_fault(request.reason):
        effects.append(
            Effect(
                "return_label",
                {"amount": 0, "payer": "merchant"},
                reason=say("label.merchant_pays", reason=request.reason),
                rule="policy.merchant_fault_reasons",
            )
        )
        return
    if not cost:
        return
    rule = f"policy.{setting}"
    pickup = setting == "return_pickup_cost"
    paid_by, deducted = (
        ("label.customer_pickup", "label.pickup_deducted")
        if pickup
        else ("label.customer_label", "label.label_deducted")
    )
    deductions.append(
        Deduction(
            "return_label",
            "label",
            cost,
            reason=say(paid_by, reason=request.reason),
            rule=rule,
        )
    )
    effects.append(
        Effect(
            "return_label",
            {"amount": cost, "payer": "customer"},
            reason=say(deducted),
            rule=rule,
        )
    )


def _history_totals(
    order: Order, history: Sequence[PriorRefund]
) -> tuple[dict[str, int], dict[str, int]]:
    """Units refunded per line and money moved per tender by the earlier steps, checked."""
    done = {line.id: 0 for line in order.lines}
    moved = {t.id: 0 for t in order.tenders}
    for i, h in enumerate(history):
        for line_id, qty in h.units.items():
            if line_id not in done:
                raise InvalidInput(
                    f"an earlier refund names line {line_id!r}, which order {order.id} lacks",
                    code="history.invalid",
                    field=f"history[{i}].request.lines",
                )
            done[line_id] += qty
            if done[line_id] > order.quantity[line_id]:
                raise InvalidInput(
                    f"earlier refunds return more units of {line_id!r} than were bought",
                    code="history.invalid",
                    field=f"history[{i}].request.lines",
                )
        for tender_id, amount in h.moved.items():
            if tender_id not in moved:
                raise InvalidInput(
                    f"an earlier refund paid tender {tender_id!r}, which order {order.id} lacks",
                    code="history.invalid",
                    field=f"history[{i}].tenders",
                )
            moved[tender_id] += amount
    for t in order.tenders:
        if moved[t.id] > t.amount:
            raise InvalidInput(
                f"earlier refunds paid tender {t.id!r} more than it paid",
                code="history.invalid",
                field="history",
            )
    return done, moved


def _checked_request(
    order: Order, request: RefundRequest, before: dict[str, int]
) -> dict[str, int]:
    if order.status not in REFUNDABLE_STATUSES:
        raise RefundRefused(
            f"order {order.id} is {order.status.value}: nothing was paid",
            code="order.not_refundable",
        )
    if request.order_id != order.id:
        raise RefundRefused(
            f"the request is for order {request.order_id}, not {order.id}",
            code="request.order_mismatch",
            field="request.order_id",
        )
    if not request.lines:
        raise RefundRefused(
            "the request names no units", code="refund.empty_request", field="request.lines"
        )
    after = dict(before)
    seen: set[str] = set()
    for i, req in enumerate(request.lines):
        where = f"request.lines[{i}]"
        if req.line_id in seen:
            raise RefundRefused(
                f"line {req.line_id!r} is named twice", code="refund.duplicate_line", field=where
            )
        seen.add(req.line_id)
        if req.line_id not in order.line_index:
            raise RefundRefused(
                f"order {order.id} has no line {req.line_id!r}",
                code="refund.unknown_line",
                field=f"{where}.line_id",
            )
        if type(req.quantity) is not int or req.quantity <= 0:
            raise RefundRefused(
                "quantity must be a positive integer",
                code="refund.invalid_quantity",
                field=f"{where}.quantity",
            )
        line = order.line(req.line_id)
        left = line.quantity - before[line.id]
        if left == 0:
            raise RefundRefused(
                f"every unit of line {line.id!r} is already refunded",
                code="refund.units_exhausted",
                field=f"{where}.line_id",
            )
        if req.quantity > left:
            raise RefundRefused(
                f"line {line.id!r} has {left} unit(s) left to refund, {req.quantity} asked",
                code="refund.quantity_exceeds_remaining",
                field=f"{where}.quantity",
            )
        after[line.id] = before[line.id] + req.quantity
    return after


def _all_goods_refunded(order: Order, refunded: dict[str, int]) -> bool:
    return all(refunded[line_id] == n for line_id, n, _, _ in order.goods)


def _shipping_due(
    order: Order, history: Sequence[PriorRefund], request: RefundRequest, policy: Policy
) -> str | None:
    """Why the shipping fee comes back with the last unit, or None when it does not."""
    if policy.shipping_refund == "always":
        return say("shipping.always")
    if policy.shipping_refund == "never":
        return None
    if order.status == OrderStatus.PAID:
        return say("shipping.never_shipped")
    reasons = [h.reason for h in history] + [request.reason]
    fault = next((r for r in reasons if policy.is_merchant_fault(r)), None)
    return say("shipping.merchant_fault", reason=fault) if fault else None


def _refunded_paid(order: Order, refunded: dict[str, int]) -> int:
    # cumulative_part inlined: this runs over every goods line on every plan
    return sum(paid * refunded[line_id] // n for line_id, n, _, paid in order.goods)


@dataclass(frozen=True, slots=True)
class _Progress:
    """The order's refunded goods paid amount before and after the step."""

    paid_before: int
    paid_after: int
    all_before: bool
    all_after: bool

    def part(self, total: int, goods_paid: int) -> int:
        """This step's share of an order-level quantity that follows the refunded paid amount
        (cumulative rounding over the order's goods paid; all of it with the last unit when
        the goods were free)."""
        if not total:
            return 0
        if goods_paid == 0:
            return total if self.all_after and not self.all_before else 0
        return total * self.paid_after // goods_paid - total * self.paid_before // goods_paid


def _growth_effects(order: Order, customer: CustomerSnapshot, progress: _Progress) -> list[Effect]:
    due = progress.part(order.growth_value, order.goods_paid)
    if not due:
        return []
    reversed_ = min(due, max(customer.growth_value, 0))
    growth_after = customer.growth_value - reversed_
    effects = [
        Effect(
            "growth_reverse",
            {"amount": reversed_, "due": due, "growth_after": growth_after},
            reason=say("growth.reversed"),
            rule="spec.3.6",
        )
    ]
    tier_before = customer.tier_for(customer.growth_value)
    tier_after = customer.tier_for(growth_after)
    if tier_before != tier_after:
        effects.append(
            Effect(
                "tier_change",
                {"from": tier_before, "to": tier_after},
                reason=say("tier.below", growth=growth_after, tier=tier_before),
                rule="snapshot.tier_table",
            )
        )
    return effects
