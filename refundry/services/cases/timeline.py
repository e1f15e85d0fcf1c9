"""A case's timeline: every stage it went through, with its time and who moved it.

Read from ``case_events`` (one row per transition, written by ``process.move``) for a case
the actor may see (``load_case``: another customer's case is ``case.not_found``). Who moved
it is given by role only (customer, merchant, agent, system): the desk's names stay the
desk's.

``case_version`` is what a live page polls (refundry/web/routes/cases.py): a short digest of
the case's row and the number of its transitions, so a page learns that the case moved with
two small reads instead of rendering it again. It digests the whole row, not only its
``version`` column, because some writes (a rating, a carrier's tracking event) set columns
without bumping it, and the clock of a test does not move ``updated_at``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, func, select

from refundry.domain.case import FINAL_STATES, CaseState
from refundry.services.access import Actor
from refundry.services.cases.process import load_case
from refundry.services.uow import UnitOfWork
from refundry.store.tables import case_events

__all__ = ["CaseEvent", "CaseVersion", "case_timeline", "case_version"]


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


@dataclass(frozen=True, slots=True)
class CaseVersion:
    tag: str  # changes whenever the case's row or its transitions change
    final: bool  # the case is in a final state: it will not move again


def case_version(engine: Engine, case_id: str, actor: Actor) -> CaseVersion:
    """The case's version as ``actor`` may see it (``case.not_found`` when it may not)."""
    with UnitOfWork(engine, readonly=True) as uow:
        row = load_case(uow.conn, case_id, actor)
        moves = uow.conn.execute(
            select(func.count()).where(case_events.c.case_id == case_id)
        ).scalar_one()
    digest = hashlib.sha256(repr((row, int(moves))).encode()).hexdigest()[:16]
    return CaseVersion(tag=digest, final=CaseState(row.state) in FINAL_STATES)
