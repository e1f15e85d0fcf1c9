"""What an order touched, as its customer's order page shows it: what each unit paid after
apportionment (优惠分摊), the discounts and coupons it used, the points it earned and spent,
and the campaigns it took part in with their rewards.

Read from the ingested document through the domain (``parse_stored_order``: the same
apportionment the plans use; each unit's share is ``cumulative_part``'s, so the units of a
line add up to what the line paid, and the unit the next refund takes is the one listed
next). Who may read it is ``access.visible_order``'s; a merchant sees its own lines' units
only and nothing of the payment.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import Engine

from refundry.domain.json_io import parse_stored_order
from refundry.domain.money import cumulative_part
from refundry.domain.order import TenderKind
from refundry.services import access
from refundry.services.access import Actor
from refundry.services.uow import UnitOfWork

__all__ = ["OrderAdjustment", "OrderAssets", "OrderCampaign", "order_assets"]


@dataclass(frozen=True, slots=True)
class OrderAdjustment:
    id: str
    kind: str  # coupon | threshold_discount | … (docs/plan-json.md)
    amount: int
    source_type: str  # coupon | campaign | entitlement
    source_id: str
    lines: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class OrderCampaign:
    id: str
    kind: str
    reward: int  # the reward granted or pending for this order, minor units (0: none)
    reward_status: str | None


@dataclass(frozen=True, slots=True)
class OrderAssets:
    unit_paid: dict[str, tuple[int, ...]]  # line id -> what each unit paid, in refund order
    adjustments: tuple[OrderAdjustment, ...]
    campaigns: tuple[OrderCampaign, ...]
    points_earned: int
    points_status: str  # granted | pending
    points_spent: int  # whole points paid with a points tender


def order_assets(engine: Engine, order_id: str, actor: Actor) -> OrderAssets:
    """``order.not_found`` for an order the actor may not see."""
    with UnitOfWork(engine, readonly=True) as uow:
        row = access.visible_order(uow.conn, order_id, actor)
    order = parse_stored_order(json.loads(row.document))
    lines = order.lines
    if actor.role == "merchant":
        lines = tuple(ln for ln in lines if ln.merchant_id == actor.id)
    unit_paid = {
        ln.id: tuple(
            cumulative_part(order.paid[ln.id], k, ln.quantity)
            - cumulative_part(order.paid[ln.id], k - 1, ln.quantity)
            for k in range(1, ln.quantity + 1)
        )
        for ln in lines
    }
    if not access.sees_tenders(actor):
        return OrderAssets(unit_paid, (), (), 0, "granted", 0)
    rewards = {r.campaign_id: r for r in order.rewards}
    return OrderAssets(
        unit_paid=unit_paid,
        adjustments=tuple(
            OrderAdjustment(
                id=a.id,
                kind=a.kind,
                amount=a.amount,
                source_type=a.source.type,
                source_id=a.source.id,
                lines=a.lines,
            )
            for a in order.adjustments
        ),
        campaigns=tuple(
            OrderCampaign(
                id=c.id,
                kind=c.kind.value,
                reward=rewards[c.id].amount if c.id in rewards else 0,
                reward_status=rewards[c.id].status if c.id in rewards else None,
            )
            for c in order.campaigns
        ),
        points_earned=order.points_earned.points,
        points_status=order.points_earned.status,
        points_spent=sum(t.points for t in order.tenders if t.kind == TenderKind.POINTS),
    )
