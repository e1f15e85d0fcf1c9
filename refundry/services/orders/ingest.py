"""Ingesting a paid order: record it with everything it consumed and earned.

An import line is either an order document (docs/plan-json.md) or an envelope
``{"order": {...}, "customer": {...}}`` whose ``customer`` part (the snapshot's fields) gives a
customer seen for the first time its opening state *before* this order: balances, tier table,
coupons and entitlements it holds, campaign spend and rewards; ``contact`` (phone, email,
notification channels) and ``account_created_at`` (the account's creation time at the shop,
which the risk rules' account age reads; services/customers/profile.py) are saved whenever
they are sent, for a known customer too. The order's own movements are then
posted: points redeemed and earned, wallet paid, growth earned, coupons and entitlements used,
campaign spend and quotas taken, rewards promised or granted. Ingesting the same order twice is
a no-op; the same id with different content is refused (``order.conflict``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from refundry.domain.customer import CustomerSnapshot
from refundry.domain.errors import InvalidInput
from refundry.domain.json_io import parse_order, parse_snapshot
from refundry.domain.json_text import spaced
from refundry.domain.order import CampaignKind, Order, TenderKind
from refundry.domain.policy import Policy
from refundry.domain.reader import printable
from refundry.services.audit.chain import AuditTrail
from refundry.services.customers.profile import account_created_at, parse_contact, save_contact
from refundry.services.errors import Conflict
from refundry.services.outbox.messages import enqueue
from refundry.services.refunds.ledger import post
from refundry.store.tables import (
    campaign_quotas,
    campaign_rewards,
    campaign_spend,
    campaigns,
    customers,
    entitlements,
    order_adjustments,
    order_entitlements,
    order_lines,
    order_tenders,
    orders,
)

__all__ = ["IngestResult", "ingest_order", "split_envelope"]


@dataclass(frozen=True, slots=True)
class IngestResult:
    order_id: str
    created: bool


def split_envelope(doc: Any) -> tuple[Any, Any]:
    """(order document, customer block or None) from an import line."""
    if isinstance(doc, dict) and "order" in doc:
        extra = sorted(str(key) for key in set(doc) - {"order", "customer"})
        if extra:
            raise InvalidInput(
                f"unknown field {extra[0]!r}", code="order.invalid", field=printable(extra[0])
            )
        return doc["order"], doc.get("customer")
    return doc, None


def content_hash(doc: Any) -> str:
    text = json.dumps(doc, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def ingest_order(
    conn: Connection, doc: Any, *, policy: Policy, now: datetime, actor: str = "import"
) -> IngestResult:
    """Record one paid order in the caller's transaction. Raises on invalid input."""
    order_doc, customer_doc = split_envelope(doc)
    order = parse_order(order_doc, policy=policy)
    digest = content_hash(order_doc)
    existing = conn.execute(select(orders.c.content_hash).where(orders.c.id == order.id)).first()
    if existing is not None:
        if existing.content_hash == digest:
            return IngestResult(order.id, created=False)
        raise Conflict(
            f"order {order.id} was ingested with different content", code="order.conflict"
        )
    opening, contact, opened = parse_customer_block(customer_doc, order, now)
    trail = AuditTrail(actor=actor, at=now, customer_id=order.customer_id)
    _ensure_customer(conn, order.customer_id, opening, now, trail)
    if contact is not None:
        save_contact(conn, order.customer_id, contact)
    if opened is not None:
        conn.execute(
            update(customers)
            .where(customers.c.id == order.customer_id)
            .values(account_created_at=opened)
        )
    _record_order(conn, order, order_doc, digest, now)
    _consume(conn, order, now)
    _post_movements(conn, order, now)
    trail.record("order.ingested", order_id=order.id, **ingested_entry(order))
    enqueue(
        conn,
        topic="event",
        key=f"event:order.ingested:{order.id}",
        at=now,
        payload=ingested_event(order),
    )
    trail.flush(conn)
    return IngestResult(order.id, created=True)


def parse_customer_block(
    customer_doc: Any, order: Order, now: datetime
) -> tuple[CustomerSnapshot | None, dict[str, Any] | None, datetime | None]:
    """The envelope's ``customer`` part: (opening snapshot, contact, account creation time),
    each None when not sent. Raises on invalid input."""
    if customer_doc is None:
        return None, None, None
    if not isinstance(customer_doc, dict):
        raise InvalidInput("must be an object", code="snapshot.invalid", field="customer")
    customer_doc = dict(customer_doc)
    contact = parse_contact(
        customer_doc.pop("contact", None), field="customer.contact", code="snapshot.invalid"
    )
    opened = account_created_at(
        customer_doc.pop("account_created_at", None),
        now=now,
        field="customer.account_created_at",
        code="snapshot.invalid",
    )
    opening = parse_snapshot({"customer_id": order.customer_id, **customer_doc})
    return opening, contact, opened


def ingested_entry(order: Order) -> dict[str, Any]:
    """The data of an order's ``order.ingested`` audit entry."""
    return {
        "customer_id": order.customer_id,
        "goods_paid": order.goods_paid,
        "shipping_fee": order.shipping_fee,
        "tenders": {t.id: t.amount for t in order.tenders},
    }


def ingested_event(order: Order) -> dict[str, Any]:
    """The payload of an order's ``order.ingested`` domain event."""
    return {
        "type": "order.ingested",
        "order_id": order.id,
        "customer_id": order.customer_id,
        "currency": order.currency,
        "goods_paid": order.goods_paid,
    }


def customer_row(customer_id: str, snap: CustomerSnapshot, now: datetime) -> dict[str, Any]:
    """The row of a customer seen for the first time (``snap``: the shop's opening state)."""
    return {
        "id": customer_id,
        "locale": snap.locale,
        "created_at": now,
        "tier": snap.tier_for(snap.growth_value),
        "risk_flags": json.dumps(sorted(snap.risk_flags)),
        "tier_table": json.dumps(
            [{"name": t.name, "min_growth": t.min_growth} for t in snap.tier_table]
        ),
    }


def opening_moves(snap: CustomerSnapshot) -> tuple[tuple[str, int], ...]:
    """A new customer's opening balances, posted in this order."""
    return (
        ("points", snap.points_balance),
        ("wallet", snap.wallet_balance),
        ("growth", snap.growth_value),
    )


def opened_entry(snap: CustomerSnapshot) -> dict[str, Any]:
    """The data of a new customer's ``customer.opened`` audit entry."""
    return {
        "customer_id": snap.customer_id,
        "points": snap.points_balance,
        "wallet": snap.wallet_balance,
        "growth": snap.growth_value,
    }


def _ensure_customer(
    conn: Connection,
    customer_id: str,
    opening: CustomerSnapshot | None,
    now: datetime,
    trail: AuditTrail,
) -> None:
    known = conn.execute(select(customers.c.id).where(customers.c.id == customer_id)).first()
    if known is None:
        _open_customer(conn, customer_id, opening, now, trail)
    if opening is not None:
        _add_held_items(conn, customer_id, opening, now)


def _open_customer(
    conn: Connection,
    customer_id: str,
    opening: CustomerSnapshot | None,
    now: datetime,
    trail: AuditTrail,
) -> None:
    """A customer seen for the first time: its row, opening ledger balances, campaign spend
    and quotas, as the shop's snapshot gives them (none: a new, empty account)."""
    snap = opening or CustomerSnapshot(customer_id=customer_id)
    conn.execute(insert(customers).values(**customer_row(customer_id, snap, now)))
    journal = f"opening:{customer_id}"
    for kind, amount in opening_moves(snap):
        post(
            conn,
            journal_id=journal,
            kind=kind,
            customer_id=customer_id,
            amount=amount,
            memo="opening balance",
            at=now,
        )
    for cid, spend in snap.campaign_spend.items():
        conn.execute(
            insert(campaign_spend).values(customer_id=customer_id, campaign_id=cid, spend=spend)
        )
    for cid, used in snap.quotas_used.items():
        conn.execute(
            insert(campaign_quotas).values(customer_id=customer_id, campaign_id=cid, used=used)
        )
    trail.record("customer.opened", **opened_entry(snap))


def _add_held_items(
    conn: Connection, customer_id: str, opening: CustomerSnapshot, now: datetime
) -> None:
    """Coupons, entitlements and cumulative rewards the shop tells us of: add the ones we
    lack (an item already known keeps its state: refundry's is the newer)."""
    for category, held in (("coupon", opening.coupons), ("entitlement", opening.entitlements)):
        for item in held.values():
            if conn.execute(select(entitlements.c.id).where(entitlements.c.id == item.id)).first():
                continue
            conn.execute(
                insert(entitlements).values(
                    id=item.id,
                    customer_id=customer_id,
                    category=category,
                    kind=item.kind,
                    value=item.value,
                    valid_until=item.valid_until,
                    state="available",
                    updated_at=now,
                )
            )
    for reward in opening.campaign_rewards:
        if conn.execute(
            select(campaign_rewards.c.id).where(campaign_rewards.c.id == reward.id)
        ).first():
            continue
        conn.execute(
            insert(campaign_rewards).values(
                id=reward.id,
                customer_id=customer_id,
                campaign_id=reward.campaign_id,
                threshold=reward.threshold,
                amount=reward.amount,
                reduced=0,
                status=reward.status,
            )
        )


def order_row(order: Order, order_doc: Any, digest: str, now: datetime) -> dict[str, Any]:
    return {
        "id": order.id,
        "customer_id": order.customer_id,
        "currency": order.currency,
        "status": order.status.value,
        "paid_at": order.paid_at,
        "delivered_at": order.delivered_at,
        "document": spaced(order_doc),  # json.dumps(doc, ensure_ascii=False, sort_keys=True)
        "content_hash": digest,
        "goods_units": sum(g[1] for g in order.goods),
        "goods_refunded": 0,
        "refund_count": 0,
        "ingested_at": now,
    }


def line_rows(order: Order) -> list[dict[str, Any]]:
    return [
        {
            "order_id": order.id,
            "line_id": ln.id,
            "customer_id": order.customer_id,
            "sku": ln.sku,
            "merchant_id": ln.merchant_id,
            "quantity": ln.quantity,
            "unit_price": ln.unit_price,
            "paid": order.paid[ln.id],
            "gift_of": ln.gift_of,
            "refunded_qty": 0,
        }
        for ln in order.lines
    ]


def adjustment_rows(order: Order) -> list[dict[str, Any]]:
    return [
        {
            "order_id": order.id,
            "adjustment_id": a.id,
            "customer_id": order.customer_id,
            "kind": a.kind,
            "amount": a.amount,
            "source_type": a.source.type,
            "source_id": a.source.id,
        }
        for a in order.adjustments
    ]


def tender_rows(order: Order) -> list[dict[str, Any]]:
    return [
        {
            "order_id": order.id,
            "tender_id": t.id,
            "customer_id": order.customer_id,
            "kind": t.kind.value,
            "method": t.method,
            "gateway_txn_id": t.gateway_txn_id,
            "amount": t.amount,
            "points": t.points,
            "refunded": 0,
        }
        for t in order.tenders
    ]


def campaign_row(order_doc: Any, campaign_id: str) -> dict[str, Any]:
    """A campaign's row, as the order document defines it."""
    definition = next(d for d in order_doc.get("campaigns", []) if d["id"] == campaign_id)
    return {"definition": json.dumps(definition, ensure_ascii=False, sort_keys=True)}


def reward_rows(order: Order) -> list[dict[str, Any]]:
    """The rewards the order earned (per-order cashback)."""
    return [
        {
            "id": r.id,
            "customer_id": order.customer_id,
            "campaign_id": r.campaign_id,
            "order_id": order.id,
            "threshold": 0,
            "amount": r.amount,
            "reduced": 0,
            "status": r.status,
        }
        for r in order.rewards
    ]


def consumed(order: Order) -> list[tuple[str, str, int]]:
    """(category, id, amount) of the coupons and entitlements the order used, in order."""
    used = [
        (a.source.type, a.source.id, a.amount)
        for a in order.adjustments
        if a.source.type in ("coupon", "entitlement")
    ]
    used += [("entitlement", b.id, 0) for b in order.benefits]
    return used


def campaign_counts(order: Order) -> list[tuple[Any, str, int]]:
    """(table, campaign id, amount) the order adds to the customer's campaign spend and
    quotas, in order."""
    added: list[tuple[Any, str, int]] = []
    for c in order.campaigns:
        if c.kind == CampaignKind.CUMULATIVE_CASHBACK:
            added.append(
                (campaign_spend, c.id, sum(order.paid[i] for i in order.campaign_lines[c.id]))
            )
        if c.quota_per_customer is not None or c.kind in (
            CampaignKind.PARTICIPATION_QUOTA,
            CampaignKind.FIRST_PURCHASE,
        ):
            added.append((campaign_quotas, c.id, 1))
    return added


def movements(order: Order) -> tuple[tuple[str, int, str], ...]:
    """(kind, amount, memo) of the order's ledger postings, in order (zero ones included)."""
    redeemed = sum(t.points for t in order.tenders if t.kind is TenderKind.POINTS)
    wallet = sum(t.amount for t in order.tenders if t.kind is TenderKind.WALLET)
    earned = order.points_earned.points if order.points_earned.status == "granted" else 0
    return (
        ("points", -redeemed, "points redeemed as payment"),
        ("points", earned, "points earned"),
        ("wallet", -wallet, "wallet balance paid"),
        ("growth", order.growth_value, "growth value earned"),
    )


def _record_order(
    conn: Connection, order: Order, order_doc: Any, digest: str, now: datetime
) -> None:
    conn.execute(insert(orders).values(**order_row(order, order_doc, digest, now)))
    conn.execute(insert(order_lines), line_rows(order))
    if order.adjustments:
        conn.execute(insert(order_adjustments), adjustment_rows(order))
    conn.execute(insert(order_tenders), tender_rows(order))
    _record_campaigns(conn, order, order_doc)


def _record_campaigns(conn: Connection, order: Order, order_doc: Any) -> None:
    """The campaigns the order took part in, defined once (as the first order naming each
    saw them), and the rewards the order earned."""
    for c in order.campaigns:
        if conn.execute(select(campaigns.c.id).where(campaigns.c.id == c.id)).first() is None:
            conn.execute(
                insert(campaigns).values(
                    id=c.id,
                    kind=c.kind.value,
                    high_value=c.high_value,
                    ends_at=c.ends_at,
                    **campaign_row(order_doc, c.id),
                )
            )
    for row in reward_rows(order):
        conn.execute(insert(campaign_rewards).values(**row))


def _consume(conn: Connection, order: Order, now: datetime) -> None:
    used = consumed(order)
    for category, item_id, amount in used:
        hit = conn.execute(
            update(entitlements)
            .where(entitlements.c.id == item_id)
            .values(state="used", order_id=order.id, updated_at=now)
        )
        if hit.rowcount == 0:
            # The shop did not tell us of it: it was valid when used and we know no expiry.
            conn.execute(
                insert(entitlements).values(
                    id=item_id,
                    customer_id=order.customer_id,
                    category=category,
                    kind="coupon" if category == "coupon" else "entitlement",
                    value=amount,
                    valid_until=None,
                    state="used",
                    order_id=order.id,
                    updated_at=now,
                )
            )
    if used:
        conn.execute(
            insert(order_entitlements),
            [
                {"order_id": order.id, "customer_id": order.customer_id, "entitlement_id": i}
                for i in sorted({u[1] for u in used})
            ],
        )
    for table, campaign_id, amount in campaign_counts(order):
        column = "spend" if table is campaign_spend else "used"
        _add(conn, table, column, order.customer_id, campaign_id, amount)


def _add(
    conn: Connection, table: Any, column: str, customer_id: str, campaign_id: str, amount: int
) -> None:
    where = (table.c.customer_id == customer_id) & (table.c.campaign_id == campaign_id)
    hit = conn.execute(update(table).where(where).values({column: table.c[column] + amount}))
    if hit.rowcount == 0:
        conn.execute(
            insert(table).values(
                customer_id=customer_id, campaign_id=campaign_id, **{column: amount}
            )
        )


def _post_movements(conn: Connection, order: Order, now: datetime) -> None:
    journal = f"order:{order.id}"
    for kind, amount, memo in movements(order):
        post(
            conn,
            journal_id=journal,
            kind=kind,
            customer_id=order.customer_id,
            amount=amount,
            memo=memo,
            at=now,
            order_id=order.id,
        )
