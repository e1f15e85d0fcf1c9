"""What a case's refund did, as the customer follows it: the money per tender with its state
(pending, sent to the gateway, succeeded, failed, moved to the wallet) and every other effect
of the applied plan (coupons, points, cashback, campaign eligibility, tier) in the plan's own
words.

Read for a case the actor may see (``load_case``: another customer's case is
``case.not_found``); a merchant, who sees no tenders (``access.sees_tenders``), gets no
money lines and no customer assets, only nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select

from refundry.services import access
from refundry.services.access import Actor
from refundry.services.cases.process import load_case
from refundry.services.uow import UnitOfWork
from refundry.store.tables import order_tenders, refund_effects, refund_tenders, refunds

__all__ = ["CaseRefund", "RefundEffect", "RefundTender", "case_refund"]


@dataclass(frozen=True, slots=True)
class RefundTender:
    tender_id: str
    kind: str  # external | wallet | gift_card | points
    method: str | None  # alipay, wechat, card … for an external tender
    amount: int
    points: int
    status: str  # pending | accepted | succeeded | failed | to_wallet


@dataclass(frozen=True, slots=True)
class RefundEffect:
    type: str  # docs/plan-json.md, effects[].type
    amount: int | None
    points: int | None
    reason: str
    data: dict[str, Any]  # the effect as the plan lists it


@dataclass(frozen=True, slots=True)
class CaseRefund:
    refund_id: str
    status: str  # refunding | refunded | refund_failed
    total: int
    tenders: tuple[RefundTender, ...]
    effects: tuple[RefundEffect, ...]  # every effect but the money to tenders


def case_refund(engine: Engine, case_id: str, actor: Actor) -> CaseRefund | None:
    """The refund the case applied, or None while it has none (or for a merchant)."""
    with UnitOfWork(engine, readonly=True) as uow:
        conn = uow.conn
        row = load_case(conn, case_id, actor)
        if row.refund_id is None or not access.sees_tenders(actor):
            return None
        refund = conn.execute(select(refunds).where(refunds.c.id == row.refund_id)).one()
        methods = {
            t.tender_id: t.method
            for t in conn.execute(
                select(order_tenders.c.tender_id, order_tenders.c.method).where(
                    order_tenders.c.order_id == row.order_id
                )
            )
        }
        tenders = tuple(
            RefundTender(
                tender_id=t.tender_id,
                kind=t.kind,
                method=methods.get(t.tender_id),
                amount=t.amount,
                points=t.points,
                status=t.status,
            )
            for t in conn.execute(
                select(refund_tenders)
                .where(refund_tenders.c.refund_id == row.refund_id)
                .order_by(refund_tenders.c.tender_id)
            )
        )
        effects = []
        for e in conn.execute(
            select(refund_effects)
            .where(refund_effects.c.refund_id == row.refund_id)
            .order_by(refund_effects.c.position)
        ):
            if e.type == "refund_to_tender":
                continue  # the tenders above, with their state
            data = json.loads(e.data)
            effects.append(
                RefundEffect(
                    type=e.type,
                    amount=data.get("amount"),
                    points=data.get("points"),
                    reason=str(data.get("reason", "")),
                    data=data,
                )
            )
    return CaseRefund(
        refund_id=refund.id,
        status=refund.status,
        total=refund.total,
        tenders=tenders,
        effects=tuple(effects),
    )
