"""Writing an applied plan's effects to the store, inside the apply transaction.

Money to external tenders goes to the outbox (the gateway is called after commit); money to the
wallet, a gift card or the points balance is a ledger posting here and now. Every other asset
(coupons, entitlements, campaign spend and quotas, rewards, growth, tier) changes here too, and
every effect gets its audit entry and, where the customer is told, its notification.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, case, insert, select, update

from refundry.domain.order import Order
from refundry.services.audit import AuditTrail
from refundry.services.batch import RowBatch
from refundry.services.ledger import post
from refundry.services.outbox import enqueue
from refundry.store.tables import (
    campaign_quotas,
    campaign_rewards,
    campaign_spend,
    customers,
    entitlements,
    refund_effects,
    refund_tenders,
)

__all__ = ["record_effects", "record_tenders"]

GATEWAY_TOPIC = "gateway.refund"

# Statements built once, executed with parameters (cache key and compiled form reused).
_INSERT_TENDERS = insert(refund_tenders)
_INSERT_EFFECTS = insert(refund_effects)
_INSERT_ENTITLEMENT = insert(entitlements)
_SET_TIER = (
    update(customers)
    .where(customers.c.id == bindparam("b_customer_id"))
    .values(tier=bindparam("b_tier"))
)
_e = entitlements.c
_ENTITLEMENT = select(entitlements).where(_e.id == bindparam("b_item_id"))
_ENTITLEMENT_STATE = select(_e.state).where(_e.id == bindparam("b_item_id"))
# ``available`` also unlinks the order that used it.
_SET_STATE = (
    update(entitlements)
    .where(_e.id == bindparam("b_item_id"))
    .values(state=bindparam("b_state"), updated_at=bindparam("b_at", type_=_e.updated_at.type))
)
_SET_STATE_UNLINKED = _SET_STATE.values(order_id=None)
_s, _q, _r = campaign_spend.c, campaign_quotas.c, campaign_rewards.c
_LESS_SPEND = (
    update(campaign_spend)
    .where(
        (_s.customer_id == bindparam("b_customer_id"))
        & (_s.campaign_id == bindparam("b_campaign_id"))
    )
    .values(spend=_s.spend - bindparam("b_amount"))
)
_RELEASE_QUOTA = (
    update(campaign_quotas)
    .where(
        (_q.customer_id == bindparam("b_customer_id"))
        & (_q.campaign_id == bindparam("b_campaign_id"))
        & (_q.used > 0)
    )
    .values(used=_q.used - 1)
)
_reduced_after = _r.reduced + bindparam("b_amount")
_REDUCE_REWARD = (
    update(campaign_rewards)
    .where(_r.id == bindparam("b_reward_id"))
    .values(
        reduced=_reduced_after,
        status=case(
            (_reduced_after >= _r.amount, bindparam("b_final", type_=_r.status.type)),
            else_=_r.status,
        ),
    )
    .returning(_r.reduced)
)


def record_tenders(
    conn: Connection,
    *,
    plan: dict[str, Any],
    order: Order,
    refund_id: str,
    at: datetime,
    trail: AuditTrail,
    batch: RowBatch,
) -> bool:
    """Move each tender's share; returns True when a gateway call is still to be made."""
    tenders = {t.id: t for t in order.tenders}
    waiting = False
    rows = []
    for share in plan["tenders"]:
        if not share["amount"]:
            continue
        tender = tenders[share["tender_id"]]
        kind = tender.kind.value
        status = "succeeded"
        key = None
        if kind == "external":
            status, waiting = "pending", True
            key = f"{refund_id}:{tender.id}"
            enqueue(
                conn,
                topic=GATEWAY_TOPIC,
                key=f"gateway:{key}",
                at=at,
                payload={
                    "refund_id": refund_id,
                    "order_id": order.id,
                    "tender_id": tender.id,
                    "transaction_id": tender.gateway_txn_id,
                    "amount": share["amount"],
                    "currency": order.currency,
                    "idempotency_key": key,
                },
                batch=batch,
            )
        else:
            ledger_kind = "gift_card" if kind == "gift_card" else kind
            amount = share["points"] if kind == "points" else share["amount"]
            post(
                conn,
                journal_id=f"refund:{refund_id}:{tender.id}",
                kind=ledger_kind,
                customer_id=order.customer_id,
                amount=amount,
                at=at,
                order_id=order.id,
                refund_id=refund_id,
                memo=f"refund to {kind} tender {tender.id}",
                batch=batch,
            )
        rows.append(
            {
                "refund_id": refund_id,
                "tender_id": tender.id,
                "order_id": order.id,
                "kind": kind,
                "amount": share["amount"],
                "points": share["points"],
                "status": status,
                "idempotency_key": key,
                "attempt": 1,
                "updated_at": at,
            }
        )
        trail.record(
            "refund.tender",
            order_id=order.id,
            refund_id=refund_id,
            tender_id=tender.id,
            kind=kind,
            amount=share["amount"],
            points=share["points"],
            status=status,
        )
    if rows:
        conn.execute(_INSERT_TENDERS, rows)
    return waiting


def record_effects(
    conn: Connection,
    *,
    plan: dict[str, Any],
    order: Order,
    refund_id: str,
    at: datetime,
    trail: AuditTrail,
    locale: str,
    batch: RowBatch,
) -> None:
    cid = order.customer_id
    rows = []
    for position, effect in enumerate(plan["effects"]):
        kind = effect["type"]
        before_after = _apply_effect(
            conn, effect, order=order, refund_id=refund_id, at=at, batch=batch
        )
        rows.append(
            {
                "refund_id": refund_id,
                "position": position,
                "type": kind,
                "data": json.dumps(effect, ensure_ascii=False, sort_keys=True),
            }
        )
        data = {k: v for k, v in effect.items() if k != "type"}
        trail.record(
            f"effect.{kind}", order_id=order.id, refund_id=refund_id, **data, **before_after
        )
    if rows:
        conn.execute(_INSERT_EFFECTS, rows)
    for i, notice in enumerate(plan["notifications"]):
        enqueue(
            conn,
            topic="notify",
            key=f"notify:{refund_id}:{i}",
            at=at,
            batch=batch,
            payload={
                "customer_id": cid,
                "locale": locale,
                "order_id": order.id,
                "refund_id": refund_id,
                "template": notice["template"],
                "params": notice["params"],
            },
        )


def _apply_effect(
    conn: Connection,
    effect: dict[str, Any],
    *,
    order: Order,
    refund_id: str,
    at: datetime,
    batch: RowBatch,
) -> dict[str, Any]:
    """Change the store for one effect; returns before/after figures for the audit entry."""
    kind = effect["type"]
    cid = order.customer_id
    reversal = {
        "points_reverse_earned": ("points", "from_balance", "earned points reversed"),
        "growth_reverse": ("growth", "amount", "growth value reversed"),
    }.get(kind)
    if reversal is not None and effect[reversal[1]]:
        ledger_kind, field_name, memo = reversal
        after = post(
            conn,
            journal_id=f"refund:{refund_id}:{kind}",
            kind=ledger_kind,
            customer_id=cid,
            amount=-effect[field_name],
            at=at,
            order_id=order.id,
            refund_id=refund_id,
            memo=memo,
            batch=batch,
        )
        return {"balance_before": after + effect[field_name], "balance_after": after}
    if kind == "tier_change":
        conn.execute(_SET_TIER, {"b_customer_id": cid, "b_tier": effect["to"]})
        return {}
    if kind in ("coupon_return", "entitlement_reactivate"):
        item = effect.get("coupon_id") or effect["entitlement_id"]
        return _set_state(conn, item, "available", at)
    if kind in ("coupon_forfeit", "entitlement_forfeit"):
        item = effect.get("coupon_id") or effect["entitlement_id"]
        return _set_state(conn, item, "forfeited", at)
    if kind in ("coupon_reissue", "entitlement_reissue"):
        item = effect.get("coupon_id") or effect["entitlement_id"]
        old = conn.execute(_ENTITLEMENT, {"b_item_id": item}).one()
        new_id = f"{item}~{refund_id}"
        conn.execute(
            _INSERT_ENTITLEMENT,
            {
                "id": new_id,
                "customer_id": cid,
                "category": old.category,
                "kind": old.kind,
                "value": effect["value"],
                "valid_until": datetime.fromisoformat(effect["valid_until"]),
                "state": "available",
                "reissued_from": item,
                "updated_at": at,
            },
        )
        _set_state(conn, item, "replaced", at)
        return {"replacement_id": new_id}
    if kind == "campaign_spend_decrease":
        conn.execute(
            _LESS_SPEND,
            {
                "b_customer_id": cid,
                "b_campaign_id": effect["campaign_id"],
                "b_amount": effect["amount"],
            },
        )
        return {}
    if kind in ("quota_release", "first_purchase_restored"):
        conn.execute(_RELEASE_QUOTA, {"b_customer_id": cid, "b_campaign_id": effect["campaign_id"]})
        return {}
    if kind in ("reward_clawback", "reward_cancel"):
        final = "clawed_back" if kind == "reward_clawback" else "cancelled"
        row = conn.execute(
            _REDUCE_REWARD,
            {"b_reward_id": effect["reward_id"], "b_amount": effect["amount"], "b_final": final},
        ).one()
        after = int(row.reduced)
        return {"reduced_before": after - effect["amount"], "reduced_after": after}
    return {}


def _set_state(conn: Connection, item_id: str, state: str, at: datetime) -> dict[str, Any]:
    before = conn.execute(_ENTITLEMENT_STATE, {"b_item_id": item_id}).scalar_one()
    conn.execute(
        _SET_STATE_UNLINKED if state == "available" else _SET_STATE,
        {"b_item_id": item_id, "b_state": state, "b_at": at},
    )
    return {"state_before": before, "state_after": state}
