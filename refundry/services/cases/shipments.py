"""Return shipments: what the logistics provider booked, and the tracking events that follow.

A booking (from the outbox relay) stores the label or pickup on the case and tells the
customer. Tracking events (webhooks) are deduplicated on their id; a ``picked_up`` or later
event on an ``awaiting_return`` case moves it to ``return_in_transit`` as if the customer had
entered the tracking number, and ``delivered`` is recorded for the merchant to confirm receipt.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from refundry.domain.case import CaseState
from refundry.domain.json_text import instant
from refundry.services.audit.chain import AuditTrail
from refundry.services.cases.process import Actor, current_case, move
from refundry.services.outbox.messages import notify_customer
from refundry.services.ports import ReturnBooking
from refundry.services.uow import UnitOfWork
from refundry.store.tables import cases, shipment_events, shipments

__all__ = ["handle_tracking_event", "record_booking"]

CARRIER = Actor("system", "logistics")
# Tracking statuses in journey order: a late, reordered event never moves a shipment back.
_RANK = {
    "booked": 0,
    "label_created": 1,
    "picked_up": 2,
    "in_transit": 3,
    "delivered": 4,
    "exception": 4,
}


def record_booking(
    conn: Connection, *, case_id: str, booking: ReturnBooking, payer: str, at: datetime, actor: str
) -> None:
    row = current_case(conn, case_id, lock=True)
    void = row.state != "awaiting_return"  # cancelled or closed while the carrier booked
    shipment = {
        **json.loads(row.shipment or "{}"),
        "status": "void" if void else "booked",
        "carrier": booking.carrier,
        "tracking_number": booking.tracking_number,
        "label": booking.label,
        "cost": booking.cost,
        "payer": payer,
    }
    conn.execute(
        insert(shipments).values(
            id="sh_" + uuid.uuid4().hex[:16],
            case_id=case_id,
            customer_id=row.customer_id,
            carrier=booking.carrier,
            service=booking.service,
            tracking_number=booking.tracking_number,
            payer=payer,
            cost=booking.cost,
            status="void" if void else "booked",
            label=json.dumps(booking.label),
            updated_at=at,
        )
    )
    conn.execute(
        update(cases)
        .where(cases.c.id == case_id)
        .values(shipment=json.dumps(shipment, ensure_ascii=False), updated_at=at)
    )
    trail = AuditTrail(actor=actor, at=at, customer_id=row.customer_id)
    trail.record(
        "case.return_booking_void" if void else "case.return_booked",
        order_id=row.order_id,
        case_id=case_id,
        carrier=booking.carrier,
        tracking_number=booking.tracking_number,
        cost=booking.cost,
        payer=payer,
    )
    if void:  # the customer is not sent a label for a case it cancelled
        trail.flush(conn)
        return
    notify_customer(
        conn,
        customer_id=row.customer_id,
        key=f"notify:{case_id}:label",
        at=at,
        template="case.return_label_issued",
        order_id=row.order_id,
        case_id=case_id,
        params={
            "case_id": case_id,
            "rma": row.rma,
            "address": row.return_address,
            "carrier": booking.carrier,
            "tracking_number": booking.tracking_number,
            "service": booking.service,
        },
    )
    trail.flush(conn)


def handle_tracking_event(
    engine: Engine,
    *,
    event_id: str,
    tracking_number: str,
    status: str,
    occurred_at: datetime,
    now: datetime,
    data: dict[str, Any] | None = None,
) -> str:
    """Apply one tracking event; returns "applied", "duplicate" or "unknown_shipment"."""
    try:
        with UnitOfWork(engine) as uow:
            conn = uow.conn
            ship = conn.execute(
                select(shipments).where(shipments.c.tracking_number == tracking_number)
            ).first()
            if ship is None:
                # Not booked yet as far as we know (the event beat our record of the booking):
                # the caller must answer the carrier with a non-2xx so it sends it again.
                return "unknown_shipment"
            if conn.execute(
                select(shipment_events.c.event_id).where(shipment_events.c.event_id == event_id)
            ).first():
                return "duplicate"
            conn.execute(
                insert(shipment_events).values(
                    event_id=event_id,
                    shipment_id=ship.id,
                    customer_id=ship.customer_id,
                    status=status,
                    at=occurred_at,
                    data=json.dumps(data or {}, default=str),
                )
            )
            if _RANK.get(status, 0) > _RANK.get(ship.status, 0):  # only ever forward
                conn.execute(
                    update(shipments)
                    .where(shipments.c.id == ship.id)
                    .values(status=status, updated_at=now)
                )
            row = current_case(conn, ship.case_id, lock=True)
            trail = AuditTrail(actor=CARRIER.tag, at=now, customer_id=row.customer_id)
            if (
                status in ("picked_up", "in_transit", "delivered")
                and row.state == CaseState.AWAITING_RETURN
            ):
                move(
                    conn,
                    row,
                    "ship",
                    actor=CARRIER,
                    at=now,
                    trail=trail,
                    data={"tracking_number": tracking_number, "by": "carrier"},
                    values={"tracking_number": tracking_number},
                )
            trail.record(
                "shipment.tracking",
                case_id=row.id,
                order_id=row.order_id,
                tracking_number=tracking_number,
                status=status,
                occurred_at=instant(occurred_at),
            )
            trail.flush(conn)
            uow.commit()
            return "applied"
    except IntegrityError:
        return "duplicate"
