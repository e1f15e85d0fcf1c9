"""The customer's in-app inbox: reading marks a message read (the first reading time is kept)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine, and_, select, update

from refundry.services.errors import NotFound
from refundry.services.uow import UnitOfWork
from refundry.store.tables import inbox_messages

__all__ = ["mark_read"]


def mark_read(engine: Engine, *, customer_id: str, message_id: int, now: datetime) -> Any:
    """Mark the customer's message read and return its row; ``inbox.message_not_found`` (and
    nothing changes) when it is not this customer's."""
    m = inbox_messages.c
    mine = and_(m.id == message_id, m.customer_id == customer_id)
    with UnitOfWork(engine) as uow:
        uow.conn.execute(
            update(inbox_messages).where(mine, m.read_at.is_(None)).values(read_at=now)
        )
        row = uow.conn.execute(select(inbox_messages).where(mine)).first()
        if row is None:
            raise NotFound(f"no message {message_id}", code="inbox.message_not_found")
        uow.commit()
    return row
