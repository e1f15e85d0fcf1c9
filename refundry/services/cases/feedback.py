"""The customers' ratings and feedback, for the desk (issue 13 point 2, "the feedback list").

A completed case may be rated once by its customer (``actions.rate``: 1 to 5 and an optional
text). The list holds every rated case, newest first by the case's last change (for a
completed case, which no transition leaves, that is its rating), with an opaque cursor; a
``rating`` filter narrows it to one mark (the desk reads the ones first). The desk only
(services/access.py, area ``agent.queue``): feedback names the customer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, and_, or_, select

from refundry.services import access
from refundry.services.access import Actor
from refundry.services.reads import decode_time_cursor, encode_cursor
from refundry.services.uow import UnitOfWork
from refundry.store.tables import cases

__all__ = ["Feedback", "FeedbackPage", "feedback_list"]


@dataclass(frozen=True, slots=True)
class Feedback:
    case_id: str
    order_id: str
    customer_id: str
    reason: str
    rating: int  # 1 (bad) to 5 (good)
    feedback: str  # as the customer wrote it ("" when none): a page escapes it
    rated_at: datetime


@dataclass(frozen=True, slots=True)
class FeedbackPage:
    items: tuple[Feedback, ...]
    next_cursor: str | None  # None on the last page


def feedback_list(
    engine: Engine,
    actor: Actor,
    *,
    rating: int | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> FeedbackPage:
    """Rated cases, newest first; ``rating`` keeps one mark only."""
    access.require(actor, "agent.queue")
    c = cases.c
    query = select(
        c.id, c.order_id, c.customer_id, c.reason, c.rating, c.feedback, c.updated_at
    ).where(c.rating.is_not(None))
    if rating is not None:
        query = query.where(c.rating == rating)
    if cursor is not None:
        before, case_id = decode_time_cursor(cursor)
        query = query.where(
            or_(c.updated_at < before, and_(c.updated_at == before, c.id < case_id))
        )
    with UnitOfWork(engine, readonly=True) as uow:
        rows = uow.conn.execute(query.order_by(c.updated_at.desc(), c.id.desc()).limit(limit + 1))
        found = rows.all()
    page = found[:limit]
    return FeedbackPage(
        items=tuple(
            Feedback(
                case_id=r.id,
                order_id=r.order_id,
                customer_id=r.customer_id,
                reason=r.reason,
                rating=int(r.rating),
                feedback=r.feedback or "",
                rated_at=r.updated_at,
            )
            for r in page
        ),
        next_cursor=(
            encode_cursor(page[-1].updated_at.isoformat(), page[-1].id)
            if len(found) > limit
            else None
        ),
    )
