"""Reading a plan's inputs from the store: the order, its earlier refunds, the customer now.

Everything is read by key or by the order's own ids, never by scanning the customer's history,
so building a snapshot costs the same for a customer with 10 orders as with 10,000.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select

from refundry.domain.customer import (
    CampaignReward,
    CustomerSnapshot,
    Entitlement,
    OtherOrder,
    TierLevel,
)
from refundry.domain.json_io import parse_history, parse_order
from refundry.domain.order import CampaignKind, Order
from refundry.domain.policy import Policy
from refundry.domain.request import PriorRefund
from refundry.services.errors import NotFound
from refundry.services.ledger import account_id
from refundry.store.tables import (
    campaign_quotas,
    campaign_rewards,
    campaign_spend,
    customers,
    entitlements,
    ledger_accounts,
    orders,
    refunds,
)

__all__ = ["PlanInputs", "load_plan_inputs"]


@dataclass(frozen=True, slots=True)
class PlanInputs:
    order: Order
    order_digest: str  # of the stored document and its rewards' current status
    history: list[PriorRefund]
    history_plans: list[dict[str, Any]]
    customer: CustomerSnapshot


def load_plan_inputs(
    conn: Connection, order_id: str, *, policy: Policy, lock: bool = False
) -> PlanInputs:
    """Load what ``plan_refund`` needs; ``lock`` takes the order row's lock first (PostgreSQL
    ``SELECT … FOR UPDATE``; on SQLite the write transaction already holds the database)."""
    query = select(orders.c.document, orders.c.customer_id).where(orders.c.id == order_id)
    if lock:
        query = query.with_for_update()
    row = conn.execute(query).first()
    if row is None:
        raise NotFound(f"no order {order_id!r}", code="order.not_found")
    document = json.loads(row.document)
    customer_id = row.customer_id
    reward_rows = conn.execute(
        select(campaign_rewards.c.id, campaign_rewards.c.status).where(
            campaign_rewards.c.order_id == order_id
        )
    ).all()
    status = {r.id: r.status for r in reward_rows}
    for reward in document.get("rewards", []):
        reward["status"] = status.get(reward["id"], reward["status"])
    order = parse_order(document, policy=policy)
    statuses = json.dumps(sorted(status.items()), separators=(",", ":"))
    order_digest = hashlib.sha256(f"{row.document}|{statuses}".encode()).hexdigest()

    plans = [
        json.loads(p)
        for (p,) in conn.execute(
            select(refunds.c.plan).where(refunds.c.order_id == order_id).order_by(refunds.c.seq)
        )
    ]
    return PlanInputs(
        order=order,
        order_digest=order_digest,
        history=parse_history(plans),
        history_plans=plans,
        customer=load_customer(conn, customer_id, order),
    )


def load_customer(conn: Connection, customer_id: str, order: Order) -> CustomerSnapshot:
    row = conn.execute(select(customers).where(customers.c.id == customer_id)).first()
    if row is None:
        raise NotFound(f"no customer {customer_id!r}", code="customer.not_found")
    balances = {
        r.id: int(r.balance)
        for r in conn.execute(
            select(ledger_accounts.c.id, ledger_accounts.c.balance).where(
                ledger_accounts.c.id.in_(
                    [account_id(k, customer_id) for k in ("points", "wallet", "growth")]
                )
            )
        )
    }
    used_ids = {a.source.id for a in order.adjustments if a.source.type != "campaign"}
    used_ids.update(b.id for b in order.benefits)
    coupons: dict[str, Entitlement] = {}
    held: dict[str, Entitlement] = {}
    if used_ids:
        for e in conn.execute(select(entitlements).where(entitlements.c.id.in_(sorted(used_ids)))):
            item = Entitlement(id=e.id, kind=e.kind, value=int(e.value), valid_until=e.valid_until)
            (coupons if e.category == "coupon" else held)[e.id] = item
    # Only the campaigns whose state the plan reads: spend for cumulative cashback, quotas for
    # campaigns that count participations, "another paid order" for first purchase.
    kinds = {c.id: c.kind for c in order.campaigns}
    cumulative = [cid for cid, k in kinds.items() if k == CampaignKind.CUMULATIVE_CASHBACK]
    counted = [
        c.id
        for c in order.campaigns
        if c.quota_per_customer is not None
        or c.kind in (CampaignKind.PARTICIPATION_QUOTA, CampaignKind.FIRST_PURCHASE)
    ]
    spend: dict[str, int] = {}
    quotas: dict[str, int] = {}
    rewards: list[CampaignReward] = []
    if cumulative:
        spend = {
            r.campaign_id: int(r.spend)
            for r in conn.execute(
                select(campaign_spend).where(
                    campaign_spend.c.customer_id == customer_id,
                    campaign_spend.c.campaign_id.in_(cumulative),
                )
            )
        }
        rewards = [
            CampaignReward(
                id=r.id,
                campaign_id=r.campaign_id,
                threshold=int(r.threshold),
                amount=int(r.amount),
                status=r.status,
            )
            for r in conn.execute(
                select(campaign_rewards).where(
                    campaign_rewards.c.customer_id == customer_id,
                    campaign_rewards.c.campaign_id.in_(cumulative),
                    campaign_rewards.c.order_id.is_(None),
                )
            )
        ]
    if counted:
        quotas = {
            r.campaign_id: int(r.used)
            for r in conn.execute(
                select(campaign_quotas).where(
                    campaign_quotas.c.customer_id == customer_id,
                    campaign_quotas.c.campaign_id.in_(counted),
                )
            )
        }
    others: tuple[OtherOrder, ...] = ()
    if CampaignKind.FIRST_PURCHASE in kinds.values():
        # One other order not fully refunded is all first purchase needs to know; the partial
        # index ix_orders_open keeps this off the customer's refunded history.
        other = conn.execute(
            select(orders.c.id)
            .where(
                orders.c.customer_id == customer_id,
                orders.c.id != order.id,
                orders.c.goods_refunded < orders.c.goods_units,
            )
            .limit(1)
        ).first()
        if other is not None:
            others = (OtherOrder(id=other.id, paid=True, fully_refunded=False),)
    return CustomerSnapshot(
        customer_id=customer_id,
        locale=row.locale,
        points_balance=balances.get(account_id("points", customer_id), 0),
        wallet_balance=balances.get(account_id("wallet", customer_id), 0),
        growth_value=balances.get(account_id("growth", customer_id), 0),
        tier_table=tuple(TierLevel(**t) for t in json.loads(row.tier_table)),
        coupons=coupons,
        entitlements=held,
        campaign_spend=spend,
        campaign_rewards=tuple(rewards),
        quotas_used=quotas,
        other_orders=others,
        risk_flags=frozenset(json.loads(row.risk_flags)),
    )
