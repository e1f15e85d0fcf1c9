"""SLA timers (SPEC §4): cases that wait too long are moved on, by policy.

- under review, merchant silent for ``merchant_silent_hours`` → approved;
- awaiting the return, nothing shipped within ``ship_within_days`` → closed;
- received but not inspected within ``inspect_within_hours`` → refunded as asked;
- refunded for ``complete_after_hours`` → completed.

Each due case is handled in its own transaction. On PostgreSQL the due cases are claimed with
``FOR UPDATE SKIP LOCKED``, so several workers share the sweep without handling a case twice;
the case's version check makes a lost race harmless on any database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from refundry.domain.case import CaseState, can
from refundry.services.audit.chain import AuditTrail
from refundry.services.cases.approval import approve_case
from refundry.services.cases.opening import CaseDesk
from refundry.services.cases.process import Actor, move
from refundry.services.cases.record import read_case
from refundry.services.cases.refund import refund_case
from refundry.services.errors import Conflict
from refundry.services.uow import UnitOfWork
from refundry.store.tables import cases

__all__ = ["TimerReport", "run_timers"]


@dataclass(slots=True)
class TimerReport:
    approved: int = 0
    closed: int = 0
    refunded: int = 0
    completed: int = 0


def _due(desk: CaseDesk, now: datetime) -> list[tuple[CaseState, timedelta]]:
    return [(CaseState(state), wait) for state, _, _, wait in desk.process.timers.running()]


def run_timers(
    desk: CaseDesk, *, now: datetime, worker: str = "timers", batch: int = 100
) -> TimerReport:
    report = TimerReport()
    actor = Actor("system", worker)
    for state, wait in _due(desk, now):
        with UnitOfWork(desk.engine, readonly=True) as uow:
            ids = [
                r
                for (r,) in uow.conn.execute(
                    select(cases.c.id)
                    .where(cases.c.state == state.value, cases.c.state_since <= now - wait)
                    .order_by(cases.c.state_since)
                    .limit(batch)
                )
            ]
        for case_id in ids:
            try:
                if _fire(desk, case_id, state, now, actor):
                    _count(report, state)
            except Conflict:
                continue  # another worker moved it first
    return report


def _count(report: TimerReport, state: CaseState) -> None:
    if state == CaseState.UNDER_REVIEW:
        report.approved += 1
    elif state == CaseState.AWAITING_RETURN:
        report.closed += 1
    elif state == CaseState.RECEIVED:
        report.refunded += 1
    else:
        report.completed += 1


def _fire(desk: CaseDesk, case_id: str, state: CaseState, now: datetime, actor: Actor) -> bool:
    with UnitOfWork(desk.engine) as uow:
        conn = uow.conn
        row = read_case(
            conn,
            (cases.c.id == case_id) & (cases.c.state == state.value),
            lock=True,
            skip_locked=True,
        )
        if row is None:
            return False  # moved meanwhile, or another worker holds it
        trail = AuditTrail(actor=actor.tag, at=now, customer_id=row.customer_id)
        if state == CaseState.UNDER_REVIEW:
            review = {
                "decision": "approve",
                "rule": "timer.merchant_silent",
                "explain": f"no decision within {desk.process.timers.merchant_silent_hours}"
                " hours: approved by policy",
                "by": actor.tag,
            }
            approve_case(conn, desk, row, actor=actor, at=now, trail=trail, review=review)
        elif state == CaseState.AWAITING_RETURN:
            move(
                conn,
                row,
                "expire",
                actor=actor,
                at=now,
                trail=trail,
                data={"why": f"not shipped within {desk.process.timers.ship_within_days} days"},
                notify="case.closed",
            )
        elif state == CaseState.RECEIVED:
            refund_case(
                conn, row, action="refund", actor=actor, at=now, trail=trail, policy=desk.policy
            )
        elif can(state, "complete"):
            move(conn, row, "complete", actor=actor, at=now, trail=trail, notify="case.completed")
        trail.flush(conn)
        uow.commit()
        return True
