"""What an agent does with a refund the gateway finally refused (``refund_failed``).

Either ask the gateway again (a new attempt with a new idempotency key: the first attempt has a
final answer) or put the money in the customer's wallet instead. Both are audited. Nothing else
of the refund (coupons, points, campaign state) is undone or redone.

Each decides its own access, in its transaction (services/access.py): a refund the actor may
not see is ``refund.not_found``; one it sees but may not resolve (a customer, a merchant) is
``auth.forbidden`` (area ``refund.resolve_failed``: the desk). ``retry_case_tender`` and
``case_tender_to_wallet`` are the same two acts named by the case (the desk's case page, the
API's ``/v1/cases/{id}/retry-refund`` and ``/refund-to-wallet``): the actor must see the case
and may take the case's action (``retry_refund``, ``refund_to_wallet``), and the tender must be
one of the case's refund.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, select, update

from refundry.services import access
from refundry.services.access import Actor
from refundry.services.audit.chain import AuditTrail
from refundry.services.cases.process import load_case
from refundry.services.errors import Conflict, NotFound
from refundry.services.outbox.messages import enqueue
from refundry.services.ports import PaymentGateway
from refundry.services.refunds.ledger import post
from refundry.services.refunds.tender_outcomes import settle_refund_status
from refundry.services.uow import UnitOfWork
from refundry.store.tables import order_tenders, orders, refund_tenders, refunds

__all__ = [
    "case_tender_to_wallet",
    "refund_to_wallet",
    "retry_case_tender",
    "retry_failed_refund",
]


def _failed_tender(conn: Connection, refund_id: str, tender_id: str, actor: Actor) -> Any:
    """The refund's failed tender, locked, once ``actor`` may resolve it."""
    seen = conn.execute(
        select(orders.c.customer_id)
        .join(orders, orders.c.id == refunds.c.order_id)
        .where(refunds.c.id == refund_id)
    ).first()
    if seen is None or not access.may_see_refund(
        actor, seen.customer_id, access.refund_merchants(conn, refund_id)
    ):
        raise NotFound(f"no refund {refund_id!r}", code="refund.not_found")
    access.require(actor, "refund.resolve_failed")
    t = refund_tenders.c
    row = conn.execute(
        select(refund_tenders)
        .where(t.refund_id == refund_id, t.tender_id == tender_id)
        .with_for_update()
    ).first()
    if row is None:
        raise NotFound(f"refund {refund_id} has no tender {tender_id}", code="refund.not_found")
    if row.status != "failed":
        raise Conflict(
            f"tender {tender_id} of refund {refund_id} is {row.status}, not failed",
            code="refund.not_failed",
        )
    return row


def retry_failed_refund(
    engine: Engine, *, refund_id: str, tender_id: str, actor: Actor, now: datetime, reason: str
) -> str:
    """Queue a new gateway attempt for a failed tender; returns its idempotency key."""
    with UnitOfWork(engine) as uow:
        conn = uow.conn
        row = _failed_tender(conn, refund_id, tender_id, actor)
        attempt = int(row.attempt) + 1
        key = f"{refund_id}:{tender_id}:a{attempt}"
        tender = conn.execute(
            select(order_tenders.c.gateway_txn_id, orders.c.currency, orders.c.customer_id)
            .join(orders, orders.c.id == order_tenders.c.order_id)
            .where(order_tenders.c.order_id == row.order_id, order_tenders.c.tender_id == tender_id)
        ).one()
        conn.execute(
            update(refund_tenders)
            .where(refund_tenders.c.refund_id == refund_id, refund_tenders.c.tender_id == tender_id)
            .values(
                status="pending",
                attempt=attempt,
                idempotency_key=key,
                failure_code=None,
                updated_at=now,
            )
        )
        enqueue(
            conn,
            topic="gateway.refund",
            key=f"gateway:{key}",
            at=now,
            payload={
                "refund_id": refund_id,
                "order_id": row.order_id,
                "customer_id": tender.customer_id,  # the gateway_calls' rows carry it
                "tender_id": tender_id,
                "transaction_id": tender.gateway_txn_id,
                "amount": int(row.amount),
                "currency": tender.currency,
                "idempotency_key": key,
            },
        )
        trail = AuditTrail(actor=actor.tag, at=now, customer_id=tender.customer_id)
        trail.record(
            "refund.retry",
            order_id=row.order_id,
            refund_id=refund_id,
            tender_id=tender_id,
            attempt=attempt,
            reason=reason,
            failure_code=row.failure_code,
        )
        settle_refund_status(conn, refund_id=refund_id, at=now, trail=trail)
        trail.flush(conn)
        uow.commit()
    return key


def refund_to_wallet(
    engine: Engine,
    *,
    refund_id: str,
    tender_id: str,
    actor: Actor,
    now: datetime,
    reason: str,
    gateway: PaymentGateway,
) -> None:
    """Credit the failed tender's amount to the customer's wallet instead.

    The gateway is asked first: if it knows a refund under the tender's current key that did
    not end in a refusal, the money may still arrive that way, and crediting the wallet too
    would refund twice. That is refused with ``refund.gateway_outcome_open``.
    """
    with UnitOfWork(engine) as uow:
        conn = uow.conn
        row = _failed_tender(conn, refund_id, tender_id, actor)
        if row.idempotency_key:
            known = gateway.lookup(idempotency_key=row.idempotency_key)
            if known is not None and known.status != "refused":
                raise Conflict(
                    f"the gateway reports this refund as {known.status}",
                    code="refund.gateway_outcome_open",
                )
        customer_id = conn.execute(
            select(orders.c.customer_id).where(orders.c.id == row.order_id)
        ).scalar_one()
        post(
            conn,
            journal_id=f"refund:{refund_id}:{tender_id}:to_wallet",
            kind="wallet",
            customer_id=customer_id,
            amount=int(row.amount),
            at=now,
            order_id=row.order_id,
            refund_id=refund_id,
            memo=f"failed {row.kind} refund moved to the wallet",
        )
        conn.execute(
            update(refund_tenders)
            .where(refund_tenders.c.refund_id == refund_id, refund_tenders.c.tender_id == tender_id)
            .values(status="to_wallet", updated_at=now)
        )
        trail = AuditTrail(actor=actor.tag, at=now, customer_id=customer_id)
        trail.record(
            "refund.to_wallet",
            order_id=row.order_id,
            refund_id=refund_id,
            tender_id=tender_id,
            amount=int(row.amount),
            reason=reason,
            failure_code=row.failure_code,
        )
        settle_refund_status(conn, refund_id=refund_id, at=now, trail=trail)
        trail.flush(conn)
        uow.commit()


def _case_refund_id(engine: Engine, case_id: str, actor: Actor, action: access.CaseAction) -> str:
    with UnitOfWork(engine, readonly=True) as uow:
        row = load_case(uow.conn, case_id, actor)
    access.require_case_action(row, actor, action)
    if not row.refund_id:
        raise Conflict(f"case {case_id} has no refund yet", code="refund.not_failed")
    return str(row.refund_id)


def retry_case_tender(
    engine: Engine, case_id: str, *, tender_id: str, actor: Actor, now: datetime, reason: str
) -> str:
    """An agent asks the gateway again for a failed tender of the case's refund."""
    refund_id = _case_refund_id(engine, case_id, actor, "retry_refund")
    return retry_failed_refund(
        engine, refund_id=refund_id, tender_id=tender_id, actor=actor, now=now, reason=reason
    )


def case_tender_to_wallet(
    engine: Engine,
    case_id: str,
    *,
    tender_id: str,
    actor: Actor,
    now: datetime,
    reason: str,
    gateway: PaymentGateway,
) -> None:
    """An agent puts a failed tender of the case's refund in the customer's wallet."""
    refund_id = _case_refund_id(engine, case_id, actor, "refund_to_wallet")
    refund_to_wallet(
        engine,
        refund_id=refund_id,
        tender_id=tender_id,
        actor=actor,
        now=now,
        reason=reason,
        gateway=gateway,
    )
