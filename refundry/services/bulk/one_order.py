"""One order of a bulk batch (services/bulk/jobs.py): checked, then its rows left to the batch;
or, when the batch runs again order by order, refunded inside its own SAVEPOINT.

``refund_checked`` reads the order's inputs, asks its free units and computes the plan before
anything of it is written, so a refusal (an unknown order, nothing left to refund, a plan the
policy refuses or an agent must review) leaves nothing to undo and needs no savepoint. A write
the store then refuses is not the order's refusal alone: the batch's transaction is no longer
one to commit (PostgreSQL aborts it), so ``RefusedTogether`` sends the whole batch back to run
through ``refund_in_savepoint``, which records that order's refusal with its code.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from refundry.domain.errors import RefundryError
from refundry.domain.plan_doc import PlanDoc
from refundry.services.audit.chain import AuditTrail
from refundry.services.bulk.asking import read_lines, units_to_ask
from refundry.services.refunds.apply import compute_plan, record_refund
from refundry.services.refunds.batch import RowBatch
from refundry.services.refunds.state import (
    SentRead,
    load_plan_inputs,
    plan_inputs_of,
    send_plan_inputs_read,
)
from refundry.store.prepared import Later, pipelined, run_driver_sql

if TYPE_CHECKING:
    from refundry.services.bulk.jobs import Job

__all__ = [
    "OrderReads",
    "Outcome",
    "RefusedTogether",
    "refund_checked",
    "refund_in_savepoint",
]


@dataclass(slots=True)
class Outcome:
    """What became of an order (a bulk_job_orders row's state and the rest of it)."""

    state: str
    code: str | None = None
    message: str | None = None
    refund_id: str | None = None
    total: int = 0
    currency: str | None = None
    held: int = 0


class RefusedTogether(Exception):
    """The store refused a write of a batch run together: roll it back, run it order by order."""


@dataclass(frozen=True, slots=True)
class OrderReads:
    """An order's reads, sent: its lines (``units_to_ask``) and its plan inputs."""

    lines: Later
    inputs: SentRead


def send_reads(conn: Connection, order_id: str) -> OrderReads:
    """Inside ``pipelined`` (PostgreSQL): sent without waiting for their answers. The caller
    holds the order's lock."""
    return OrderReads(read_lines(conn, order_id), send_plan_inputs_read(conn, order_id))


def refund_checked(
    conn: Connection,
    job: Job,
    order_id: str,
    *,
    now: datetime,
    trail: AuditTrail,
    batch: RowBatch,
    reads: OrderReads | None = None,
    read_next: str | None = None,
) -> tuple[Outcome, OrderReads | None]:
    """The order's refund, its audit entries added to ``trail`` and its appended rows to
    ``batch``; or its refusal, with nothing written. The caller holds the order's lock
    (PostgreSQL: every order of the batch, locked first; SQLite: the database). ``reads``: the
    order's, if they were sent already. ``read_next``: an order whose reads go out right after
    this one's writes (PostgreSQL: one wait for both; the server runs them after the writes,
    so they see them as a read of their own would); its reads are returned (None if not
    sent)."""
    held = 0
    try:
        if reads is None:
            with pipelined(conn):  # PostgreSQL: both reads go out together, awaited once
                reads = send_reads(conn, order_id)
        inputs = plan_inputs_of(conn, reads.inputs, policy=job.policy, now=now)
        asked = units_to_ask(
            conn, order_id=order_id, selector=job.selector, reason=job.reason, lines=reads.lines
        )
        held = asked.held_by_case
        plan = compute_plan(inputs, asked.request, job.policy, now)
    except RefundryError as exc:
        return _refused(exc, held), None
    if plan["status"] != "ready":
        return _in_review(plan, held), None
    ahead = None
    try:
        with pipelined(conn):
            refund_id, _status = record_refund(
                conn,
                inputs=inputs,
                plan=plan,
                actor=f"bulk:{job.id}",
                at=now,
                trail=trail,
                batch=batch,
            )
            if read_next is not None:
                ahead = send_reads(conn, read_next)
    except (RefundryError, IntegrityError) as exc:  # a guard or the store, mid-write
        raise RefusedTogether from exc
    return _refunded(plan, refund_id, held), ahead


def refund_in_savepoint(
    conn: Connection, job: Job, order_id: str, *, now: datetime, trail: AuditTrail
) -> Outcome:
    """The order's refund inside a savepoint, its rows written there (its audit entries added
    to ``trail``), or the refusal that rolled it back (and its entries dropped)."""
    entries = len(trail.entries)
    # The savepoint on the driver itself: SQLAlchemy's begin_nested() compiled its SAVEPOINT
    # and RELEASE each time, 15% of a bulk refund (bench/bulk_bench.py's profile).
    run_driver_sql(conn, "SAVEPOINT bulk_order")
    held = 0
    try:
        inputs = load_plan_inputs(conn, order_id, policy=job.policy, lock=True, now=now)
        asked = units_to_ask(conn, order_id=order_id, selector=job.selector, reason=job.reason)
        held = asked.held_by_case
        plan = compute_plan(inputs, asked.request, job.policy, now)
        if plan["status"] != "ready":
            run_driver_sql(conn, "RELEASE SAVEPOINT bulk_order")
            return _in_review(plan, held)
        refund_id, _status = record_refund(
            conn, inputs=inputs, plan=plan, actor=f"bulk:{job.id}", at=now, trail=trail
        )
    except (RefundryError, IntegrityError) as exc:
        del trail.entries[entries:]
        # Undo the order's writes alone (PostgreSQL: and leave the transaction usable).
        run_driver_sql(conn, "ROLLBACK TO SAVEPOINT bulk_order")
        run_driver_sql(conn, "RELEASE SAVEPOINT bulk_order")
        return _refused(exc, held)
    run_driver_sql(conn, "RELEASE SAVEPOINT bulk_order")
    return _refunded(plan, refund_id, held)


def _refused(exc: RefundryError | IntegrityError, held: int) -> Outcome:
    if isinstance(exc, IntegrityError):
        first = str(exc.orig).splitlines()[0] if exc.orig else str(exc)
        return Outcome("refused", code="store.constraint_violated", message=first, held=held)
    state = "skipped" if exc.code.startswith("bulk.") else "refused"
    return Outcome(state, code=exc.code, message=exc.message, held=held)


def _in_review(plan: PlanDoc, held: int) -> Outcome:
    review = plan["manual_review"]
    return Outcome(
        "manual_review",
        code="plan.needs_manual_review",
        message=f"{review['code']}: {review['excess']} to waive or debit"
        if review
        else "the plan needs an agent's review",
        total=plan["amount"]["total"],
        currency=plan["currency"],
        held=held,
    )


def _refunded(plan: PlanDoc, refund_id: str, held: int) -> Outcome:
    return Outcome(
        "refunded",
        refund_id=refund_id,
        total=plan["amount"]["total"],
        currency=plan["currency"],
        held=held,
    )
