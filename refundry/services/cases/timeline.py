"""A case's timeline: every stage it went through, with its time and who moved it.

Read from ``case_events`` (one row per transition, written by ``process.move``) for a case
the actor may see (``load_case``: another customer's case is ``case.not_found``). Who moved
it is given by role only (customer, merchant, agent, system): the desk's names stay the
desk's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, select

from refundry.services.access import Actor
from refundry.services.cases.process import load_case
from refundry.services.uow import UnitOfWork
from refundry.store.tables import case_events

__all__ = ["CaseEvent", "case_timeline"]


@dataclass(frozen=True, slots=True)
class CaseEvent:
    at: datetime
    action: str  # the transition: open, review, approve, ship, receive, inspect, refund …
    from_state: str | None
    to_state: str
    by: str  # the role that moved it: customer | merchant | agent | admin | system


def case_timeline(engine: Engine, case_id: str, actor: Actor) -> tuple[CaseEvent, ...]:
    """The case's transitions, oldest first."""
    with UnitOfWork(engine, readonly=True) as uow:
        load_case(uow.conn, case_id, actor)
        rows = uow.conn.execute(
            select(case_events)
            .where(case_events.c.case_id == case_id)
            .order_by(case_events.c.at, case_events.c.id)
        )
        return tuple(
            CaseEvent(
                at=r.at,
                action=r.action,
                from_state=r.from_state,
                to_state=r.to_state,
                by=r.actor.partition(":")[0],
            )
            for r in rows
        )
