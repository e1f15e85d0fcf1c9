"""Gateway webhooks: a refund's final word, arriving late, twice, or before our own record."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime

from sqlalchemy import Engine, insert, select
from sqlalchemy.exc import IntegrityError

from refundry.services.ports import GatewayEvent
from refundry.services.refunds.tender_outcomes import record_tender_outcome
from refundry.services.uow import UnitOfWork
from refundry.store.tables import gateway_calls, gateway_events, refund_tenders

__all__ = ["handle_gateway_event"]


def handle_gateway_event(engine: Engine, event: GatewayEvent, *, now: datetime) -> str:
    """Apply one webhook event; returns "applied", "duplicate" or "ignored" (no such refund,
    an earlier attempt's key, or the tender already final). Duplicates change nothing."""
    try:
        with UnitOfWork(engine) as uow:
            conn = uow.conn
            if conn.execute(
                select(gateway_events.c.event_id).where(gateway_events.c.event_id == event.event_id)
            ).first():
                return "duplicate"
            conn.execute(insert(gateway_events).values(event_id=event.event_id, received_at=now))
            row = conn.execute(
                select(
                    refund_tenders.c.refund_id,
                    refund_tenders.c.tender_id,
                    refund_tenders.c.customer_id,
                ).where(refund_tenders.c.idempotency_key == event.idempotency_key)
            ).first()
            outcome = "ignored"
            if row is not None:
                conn.execute(
                    insert(gateway_calls).values(
                        refund_id=row.refund_id,
                        tender_id=row.tender_id,
                        customer_id=row.customer_id,
                        idempotency_key=event.idempotency_key,
                        kind="webhook",
                        outcome=event.type.removeprefix("refund."),
                        at=now,
                        answer=json.dumps(asdict(event), default=str, sort_keys=True),
                    )
                )
                changed = record_tender_outcome(
                    conn,
                    refund_id=row.refund_id,
                    tender_id=row.tender_id,
                    idempotency_key=event.idempotency_key,
                    status="succeeded" if event.type == "refund.succeeded" else "failed",
                    gateway_refund_id=event.gateway_refund_id,
                    code=event.code,
                    at=now,
                    actor="gateway:webhook",
                )
                outcome = "applied" if changed else "ignored"
            uow.commit()
            return outcome
    except IntegrityError:
        return "duplicate"  # the same event, delivered concurrently, was recorded first
