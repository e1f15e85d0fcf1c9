"""A paid order sent by the shop's back end (over the API, later the pages): who may send it,
and one transaction that ingests it (services/orders/ingest.py).

Sending the same order again is answered as a repeat (``created`` False); the same id with
other content is ``order.conflict``. Two requests carrying the same new order at once race on
the orders table's primary key: the loser's insert fails, and ingesting once more finds the
winner's row and answers as for a repeat.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from refundry.domain.policy import Policy
from refundry.services import access
from refundry.services.access import Actor
from refundry.services.orders.ingest import IngestResult, ingest_order
from refundry.services.uow import UnitOfWork

__all__ = ["receive_order"]


def receive_order(
    engine: Engine, *, actor: Actor, doc: dict[str, Any], policy: Policy, now: datetime
) -> IngestResult:
    """Ingest ``doc`` (an order document or ``{"order": …, "customer": …}``, docs/plan-json.md)
    for an admin; the audit entry names ``actor``."""
    access.require(actor, "order.ingest")
    try:
        return _ingest(engine, doc, actor=actor, policy=policy, now=now)
    except IntegrityError:
        return _ingest(engine, doc, actor=actor, policy=policy, now=now)


def _ingest(
    engine: Engine, doc: dict[str, Any], *, actor: Actor, policy: Policy, now: datetime
) -> IngestResult:
    with UnitOfWork(engine) as uow:
        result = ingest_order(uow.conn, doc, policy=policy, now=now, actor=actor.tag)
        uow.commit()
    return result
