"""A tender's refund moving forward on the gateway's word, and its refund's status with it.

The gateway's answers come from the relay (services/outbox/relay.py: a round's answers, several
to a transaction when ``relay_answers_per_transaction`` says so), from the gateway's webhooks
(gateway_events.py) and, once attempts are used up, from the relay's last lookup. An agent's
retry or wallet fallback (failed_refunds.py) settles the refund's status the same way.

``record_tender_outcomes`` takes many answers at once with a fixed number of statements — the
tenders locked by one statement, updated by one, their refunds locked, read and updated by one
each, the messages written by one — where one answer at a time cost a dozen statements per
answer (bench/relay_bench.py). What it writes, and in what order the audit chain and the
outbox get it, is what recording the answers one after the other in the same transaction would
write: each answer is judged against the tender as the earlier answers left it, and its
entries (its tender's outcome, then its refund's case and status when the refund moved) follow
it in the answers' order (tests/services/test_tender_outcomes.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Connection, String, bindparam, case, func, select, tuple_, update

from refundry.domain.plan_doc import load_plan
from refundry.services.audit.chain import AuditTrail
from refundry.services.cases.refund import follow_refund
from refundry.services.outbox.messages import enqueue
from refundry.services.refunds.batch import RowBatch
from refundry.store.tables import cases, customers, refund_tenders, refunds

__all__ = [
    "FINAL_TENDER",
    "TenderAnswer",
    "record_tender_outcome",
    "record_tender_outcomes",
    "settle_refund_status",
]

FINAL_TENDER = ("succeeded", "failed", "to_wallet")


@dataclass(frozen=True, slots=True)
class TenderAnswer:
    """What the gateway said of one tender's refund under one attempt's key."""

    refund_id: str
    tender_id: str
    idempotency_key: str
    status: str  # accepted | succeeded | failed
    gateway_refund_id: str | None = None
    code: str | None = None  # the refusal's code (a failed tender keeps it)


def record_tender_outcome(
    conn: Connection,
    *,
    refund_id: str,
    tender_id: str,
    idempotency_key: str,
    status: str,
    gateway_refund_id: str | None,
    code: str | None,
    at: datetime,
    actor: str,
) -> bool:
    """Move a tender's refund forward (never back: a final state is never overwritten, and an
    answer for an earlier attempt's key is ignored). Returns True when something changed."""
    answer = TenderAnswer(refund_id, tender_id, idempotency_key, status, gateway_refund_id, code)
    return record_tender_outcomes(conn, [answer], at=at, actor=actor)[0]


def record_tender_outcomes(
    conn: Connection, answers: Sequence[TenderAnswer], *, at: datetime, actor: str
) -> list[bool]:
    """``record_tender_outcome`` for each answer, in order, in the caller's transaction;
    returns, per answer, whether it changed its tender. The answers' tenders are locked first
    (in key order), then their refunds (in id order), the order every writer of them keeps;
    then each answer is judged and settled in memory against the rows as the earlier answers
    left them, and what they changed is written at the end."""
    if not answers:
        return []
    t = refund_tenders.c
    pairs = sorted({(a.refund_id, a.tender_id) for a in answers})
    locked = conn.execute(
        select(t.refund_id)
        .where(tuple_(t.refund_id, t.tender_id).in_(pairs))
        .order_by(t.refund_id, t.tender_id)
        .with_for_update()
    ).scalars()
    settling = _Settling(conn, sorted(set(locked)), at=at)
    trail = AuditTrail(actor=actor, at=at, customer_id=None)
    changed: list[bool] = []
    for a in answers:
        row = settling.tender(a.refund_id, a.tender_id)
        if (
            row is None
            or row["idempotency_key"] != a.idempotency_key
            or row["status"] in FINAL_TENDER
            or (a.status == "accepted" and row["status"] == "accepted")
        ):
            changed.append(False)
            continue
        changed.append(True)
        settling.move_tender(row, a)
        with trail.about(str(row["customer_id"])):
            trail.record(
                f"gateway.{a.status}",
                order_id=row["order_id"],
                refund_id=a.refund_id,
                tender_id=a.tender_id,
                amount=int(row["amount"]),
                code=a.code,
                gateway_refund_id=a.gateway_refund_id,
            )
        settling.settle(a.refund_id, trail)
    settling.finish()
    trail.flush_batch(conn)
    return changed


def settle_refund_status(
    conn: Connection, *, refund_id: str, at: datetime, trail: AuditTrail
) -> str:
    """The refund's status from its tenders: failed if any failed, refunded when all are done.

    The refund row is locked first: two writers settling two of its tenders at once (the relay
    and the gateway's webhook, two relay processes) take turns here, and the second reads the
    first one's committed tender (without it, on PostgreSQL, each read the other's tender as
    it was and the refund stayed ``refunding``: tests/services/test_tender_race.py). Every
    caller has locked its tender row before: tender, then refund."""
    settled = _Settling(conn, [refund_id], at=at)
    status = settled.settle(refund_id, trail)
    settled.finish()
    return status


# One tender moved by one answer: its status, the gateway's id when the answer names one, the
# refusal's code when it failed (executed once for all the answers of a transaction, in order)
_MOVE_TENDER = (
    update(refund_tenders)
    .where(
        refund_tenders.c.refund_id == bindparam("b_refund"),
        refund_tenders.c.tender_id == bindparam("b_tender"),
    )
    .values(
        status=bindparam("b_status"),
        updated_at=bindparam("b_at"),
        gateway_refund_id=func.coalesce(
            bindparam("b_gateway_refund_id", type_=String), refund_tenders.c.gateway_refund_id
        ),
        failure_code=case(
            (bindparam("b_failed", type_=Boolean), bindparam("b_failure_code", type_=String)),
            else_=refund_tenders.c.failure_code,
        ),
    )
)


_MOVE_REFUND = (
    update(refunds)
    .where(refunds.c.id == bindparam("b_refund"))
    .values(status=bindparam("b_status"), updated_at=bindparam("b_at"))
)


class _Settling:
    """Refunds whose tenders moved, locked and read with their tenders and customers by one
    statement each; ``settle`` moves one refund's status, ``batch`` holds the messages."""

    def __init__(self, conn: Connection, refund_ids: Sequence[str], *, at: datetime) -> None:
        self.conn = conn
        self.at = at
        self.batch = RowBatch()
        self.refunds = {
            str(r.id): r
            for r in conn.execute(
                select(
                    refunds.c.id,
                    refunds.c.status,
                    refunds.c.order_id,
                    refunds.c.customer_id,
                    refunds.c.plan,
                )
                .where(refunds.c.id.in_(refund_ids))
                .order_by(refunds.c.id)
                .with_for_update()
            )
        }
        t = refund_tenders.c
        # every tender of these refunds, as the answers judged so far leave it
        self.tenders: dict[str, list[dict[str, Any]]] = {}
        for r in conn.execute(
            select(
                t.refund_id,
                t.tender_id,
                t.order_id,
                t.customer_id,
                t.kind,
                t.amount,
                t.status,
                t.idempotency_key,
                t.attempt,
                t.gateway_refund_id,
                t.failure_code,
            )
            .where(t.refund_id.in_(refund_ids))
            .order_by(t.refund_id, t.tender_id)
        ):
            self.tenders.setdefault(str(r.refund_id), []).append(r._asdict())
        self.tender_moves: list[dict[str, Any]] = []  # written at finish, in order
        self.status: dict[str, str] = {}  # a refund's status as settled so far
        self.moved: list[dict[str, Any]] = []  # the refunds' new statuses, written at finish
        self._locales: dict[str, str] | None = None
        self._with_case: set[str] | None = None

    def tender(self, refund_id: str, tender_id: str) -> dict[str, Any] | None:
        for row in self.tenders.get(refund_id, ()):
            if row["tender_id"] == tender_id:
                return row
        return None

    def move_tender(self, row: dict[str, Any], a: TenderAnswer) -> None:
        row["status"] = a.status
        if a.gateway_refund_id:
            row["gateway_refund_id"] = a.gateway_refund_id
        if a.status == "failed":
            row["failure_code"] = a.code
        self.tender_moves.append(
            {
                "b_refund": a.refund_id,
                "b_tender": a.tender_id,
                "b_status": a.status,
                "b_gateway_refund_id": a.gateway_refund_id or None,
                "b_failure_code": a.code if a.status == "failed" else None,
                "b_failed": a.status == "failed",
                "b_at": self.at,
            }
        )

    def finish(self) -> None:
        """Write what was decided: the tenders' moves, the refunds' statuses, their messages.
        (A case moved by ``settle`` reads neither, so they may wait until here.)"""
        if self.tender_moves:
            self.conn.execute(_MOVE_TENDER, self.tender_moves)
            self.tender_moves.clear()
        if self.moved:
            self.conn.execute(_MOVE_REFUND, self.moved)
            self.moved.clear()
        self.batch.flush(self.conn)

    def settle(self, refund_id: str, trail: AuditTrail) -> str:
        refund = self.refunds[refund_id]
        rows = self.tenders.get(refund_id, [])
        states = [r["status"] for r in rows]
        # Each status is reached at most once per gateway attempt: a deterministic message key,
        # the same however often a crashed worker repeats the transaction.
        attempts = sum(int(r["attempt"]) for r in rows)
        if any(s == "failed" for s in states):
            status = "refund_failed"
        elif all(s in ("succeeded", "to_wallet") for s in states):
            status = "refunded"
        else:
            status = "refunding"
        before = self.status.get(refund_id, refund.status)
        if status == before:
            return status
        self.status[refund_id] = status
        customer_id = str(refund.customer_id)
        at = self.at
        self.moved.append({"b_refund": refund_id, "b_status": status, "b_at": at})
        with trail.about(customer_id):
            if refund_id in self._cases():
                # the messages a case's move queues come after those queued before it, as
                # they would one answer at a time
                self.batch.flush(self.conn)
                follow_refund(self.conn, refund_id=refund_id, status=status, at=at, trail=trail)
            trail.record(
                f"refund.{status}",
                order_id=refund.order_id,
                refund_id=refund_id,
                status_before=before,
                status_after=status,
            )
        plan = load_plan(refund.plan)
        enqueue(
            self.conn,
            topic="notify",
            key=f"notify:{refund_id}:{status}:a{attempts}",
            at=at,
            batch=self.batch,
            payload={
                "customer_id": customer_id,
                "locale": self._locale(customer_id),
                "order_id": refund.order_id,
                "refund_id": refund_id,
                "template": f"refund.{status}",
                "params": {"amount": plan["amount"]["total"], "currency": plan["currency"]},
            },
        )
        enqueue(
            self.conn,
            topic="event",
            key=f"event:refund.{status}:{refund_id}:a{attempts}",
            at=at,
            batch=self.batch,
            payload={
                "type": f"refund.{status}",
                "refund_id": refund_id,
                "order_id": refund.order_id,
                "customer_id": customer_id,
                "from": before,
                "to": status,
                # grows with each gateway attempt (an agent's retry): the shop orders a
                # refund's events by it, then refunding before refunded / refund_failed
                "attempt": attempts,
                "total": plan["amount"]["total"],
                "currency": plan["currency"],
                # each tender as it stands: the shop sees which one failed and why
                "tenders": [
                    {
                        "tender_id": r["tender_id"],
                        "kind": r["kind"],
                        "amount": int(r["amount"]),
                        "status": r["status"],
                        "gateway_refund_id": r["gateway_refund_id"],
                        "failure_code": r["failure_code"],
                    }
                    for r in rows
                ],
            },
        )
        return status

    def _cases(self) -> set[str]:
        """The refunds (of these) that a case is waiting on: only those have a case to move."""
        if self._with_case is None:
            self._with_case = {
                str(r)
                for r in self.conn.execute(
                    select(cases.c.refund_id).where(cases.c.refund_id.in_(list(self.refunds)))
                ).scalars()
            }
        return self._with_case

    def _locale(self, customer_id: str) -> str:
        if self._locales is None:
            owners = sorted({str(r.customer_id) for r in self.refunds.values()})
            self._locales = {
                str(r.id): str(r.locale)
                for r in self.conn.execute(
                    select(customers.c.id, customers.c.locale).where(customers.c.id.in_(owners))
                )
            }
        return self._locales[customer_id]
