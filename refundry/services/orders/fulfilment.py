"""The shop tells refundry what happened to an order after it was paid: shipped, delivered,
completed, or cancelled before shipment (``POST /v1/orders/{id}/status``, the shop's back end).

The order's status and the step's time are written to the order row (``status``,
``shipped_at`` …) and to its stored document (``status``, and ``delivered_at`` on delivery), so
every rule that reads them reads the current status: the plan's shipping-fee rule (SPEC §3.7: a
paid order not yet shipped gives the fee back with its last unit), the review rules' days since
delivery (7天无理由 and the other return windows), and the plan's hash (a preview made before
the update is ``plan.stale`` after it). The ingested content hash is kept, so the shop sending
the original document again is still a repeat.

Steps go forward only: paid → shipped → delivered → completed, and unpaid or paid (not shipped)
→ cancelled. Refused, changing nothing:

- ``order.not_found`` (404): no such order;
- ``order.status_out_of_order`` (409): a step that cannot follow the current status (delivered
  before shipped, shipped again after delivery with another time, anything after completion);
- ``order.already_shipped`` (409): cancelled after shipment (a return is a case);
- ``order.status_conflict`` (409): the same step again with another time;
- ``order.cancel_needs_refund`` (409): cancelling a paid order with units not refunded yet
  (refund them first: nothing refundry paid out is lost from its books);
- ``order.update_invalid`` (422): a time before the previous step's, or in the future.

The same step with the same time is answered as done (``changed`` False): the shop may retry.
Each change is audited (``order.status_changed``) and is an outbox event
(``order.<status>``) in the same transaction.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, select, update

from refundry.domain.errors import InvalidInput
from refundry.domain.json_text import instant
from refundry.domain.order import OrderStatus
from refundry.services import access
from refundry.services.access import Actor
from refundry.services.audit.chain import AuditTrail
from refundry.services.errors import Conflict
from refundry.services.outbox.messages import enqueue
from refundry.services.uow import UnitOfWork
from refundry.store.tables import orders

__all__ = ["STEPS", "StatusUpdate", "update_status"]

# The status the shop may send -> (the statuses it may follow, the column of its time).
STEPS: dict[OrderStatus, tuple[frozenset[OrderStatus], str]] = {
    OrderStatus.SHIPPED: (frozenset({OrderStatus.PAID}), "shipped_at"),
    OrderStatus.DELIVERED: (frozenset({OrderStatus.SHIPPED}), "delivered_at"),
    OrderStatus.COMPLETED: (frozenset({OrderStatus.DELIVERED}), "completed_at"),
    OrderStatus.CANCELLED: (frozenset({OrderStatus.UNPAID, OrderStatus.PAID}), "cancelled_at"),
}
# The time a step's time may not precede: the one of the step before it.
_AFTER = {
    "shipped_at": "paid_at",
    "delivered_at": "shipped_at",
    "completed_at": "delivered_at",
    "cancelled_at": "paid_at",
}
CLOCK_SKEW = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    order_id: str
    status: str
    at: datetime
    changed: bool  # False: the same step with the same time was recorded before


def update_status(
    engine: Engine,
    *,
    actor: Actor,
    order_id: str,
    status: str,
    at: datetime,
    now: datetime,
) -> StatusUpdate:
    """Record that the order reached ``status`` at ``at`` (see the module's rules)."""
    access.require(actor, "order.update_status")
    wanted = _step(status)
    if at.tzinfo is None:
        raise InvalidInput("must carry a UTC offset", code="order.update_invalid", field="at")
    if at > now + CLOCK_SKEW:
        raise InvalidInput("is in the future", code="order.update_invalid", field="at")
    follows, column = STEPS[wanted]
    with UnitOfWork(engine) as uow:
        conn = uow.conn
        row = conn.execute(select(orders).where(orders.c.id == order_id).with_for_update()).first()
        if row is None:
            raise access.order_not_found(order_id)
        current = OrderStatus(row.status)
        recorded = getattr(row, column)
        if recorded is not None:
            if recorded == at:
                return StatusUpdate(order_id, wanted.value, at, changed=False)
            raise Conflict(
                f"order {order_id} was {wanted.value} at {recorded.isoformat()}",
                code="order.status_conflict",
            )
        if current not in follows and current is not wanted:  # same status: its time, at last
            _refuse(order_id, current, wanted)
        # the nearest earlier step with a time: delivered is checked against shipped, and
        # against paid when the shop never sent the shipment's time
        earlier: str | None = _AFTER[column]
        while earlier is not None and getattr(row, earlier) is None:
            earlier = _AFTER.get(earlier)
        before = getattr(row, earlier) if earlier is not None else None
        if earlier is not None and before is not None and at < before:
            raise InvalidInput(
                f"is before the order's {earlier.removesuffix('_at')} time {before.isoformat()}",
                code="order.update_invalid",
                field="at",
            )
        paid = current is OrderStatus.PAID
        if wanted is OrderStatus.CANCELLED and paid and row.goods_refunded < row.goods_units:
            raise Conflict(
                f"order {order_id} has {row.goods_units - row.goods_refunded} units not "
                "refunded: refund them before cancelling",
                code="order.cancel_needs_refund",
            )
        _record_step(conn, row, wanted, column, at=at, actor=actor, now=now)
        uow.commit()
    return StatusUpdate(order_id, wanted.value, at, changed=True)


def _record_step(
    conn: Connection,
    row: Any,
    wanted: OrderStatus,
    column: str,
    *,
    at: datetime,
    actor: Actor,
    now: datetime,
) -> None:
    """The order's new status and time, on its row and in its stored document (what the
    plan reads), audited and announced as ``order.<status>``."""
    current = OrderStatus(row.status)
    document: dict[str, Any] = json.loads(row.document)
    document["status"] = wanted.value
    if wanted is OrderStatus.DELIVERED:
        document["delivered_at"] = at.isoformat()
    conn.execute(
        update(orders)
        .where(orders.c.id == row.id)
        .values(
            status=wanted.value,
            document=json.dumps(document, ensure_ascii=False, sort_keys=True),
            **{column: at},
        )
    )
    trail = AuditTrail(actor=actor.tag, at=now, customer_id=row.customer_id)
    trail.record(
        "order.status_changed",
        order_id=row.id,
        customer_id=row.customer_id,
        status_before=current.value,
        status_after=wanted.value,
        at=instant(at),
    )
    trail.flush(conn)
    enqueue(
        conn,
        topic="event",
        key=f"event:order:{row.id}:{wanted.value}",
        at=now,
        payload={
            "type": f"order.{wanted.value}",
            "order_id": row.id,
            "customer_id": row.customer_id,
            "from": current.value,
            "to": wanted.value,
            column: instant(at),
        },
    )


def _step(status: str) -> OrderStatus:
    try:
        wanted = OrderStatus(status)
    except ValueError:
        wanted = None
    if wanted is None or wanted not in STEPS:
        raise InvalidInput(
            f"must be one of {', '.join(s.value for s in STEPS)}",
            code="order.update_invalid",
            field="status",
        )
    return wanted


def _refuse(order_id: str, current: OrderStatus, wanted: OrderStatus) -> None:
    shipped = (OrderStatus.SHIPPED, OrderStatus.DELIVERED, OrderStatus.COMPLETED)
    if wanted is OrderStatus.CANCELLED and current in shipped:
        raise Conflict(
            f"order {order_id} is {current.value}: it cannot be cancelled after shipment "
            "(a return is a case)",
            code="order.already_shipped",
        )
    allowed = [s.value for s, (follows, _) in STEPS.items() if current in follows]
    raise Conflict(
        f"order {order_id} is {current.value}: it cannot become {wanted.value} now"
        f" (next: {', '.join(allowed) or 'nothing'})",
        code="order.status_out_of_order",
    )
