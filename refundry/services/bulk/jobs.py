"""A bulk refund as a durable job: made once, its orders frozen, run one batch at a time.

``start_job`` selects the orders and stores the job with one ``pending`` row per order, in one
transaction; the same selection, reason and policy run again finds that job instead
(``selector_hash``). ``run_batch`` takes the next pending orders and, in **one transaction**,
refunds each: an order is checked before anything of it is written, so a refusal writes nothing
of it, and its outcome row is written with its code (services/bulk/one_order.py; a write the
store refuses sends the batch back to run order by order, each inside a SAVEPOINT). The outcome
row of an order moves from ``pending`` in the same transaction as its refund, under the order's
lock and a guard on ``pending``, so a job killed at any moment and started again (or two runners
at once) refunds nothing twice: a committed batch is done, an uncommitted one left nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from refundry.domain.json_text import compact, parse_stored
from refundry.domain.policy import Policy, policy_from_mapping
from refundry.services.audit.chain import AuditTrail
from refundry.services.bulk.one_order import (
    OrderReads,
    RefusedTogether,
    refund_checked,
    refund_in_savepoint,
)
from refundry.services.bulk.selection import Selector, matching_orders, parse_selector
from refundry.services.collector import collector_paused
from refundry.services.errors import Conflict, NotFound, Unprocessable
from refundry.services.faults import fault_point
from refundry.services.refunds.batch import RowBatch
from refundry.services.uow import UnitOfWork
from refundry.store.prepared import Prepared, pipelined
from refundry.store.tables import bulk_job_orders, bulk_jobs, orders

__all__ = [
    "OUTCOMES",
    "BatchResult",
    "Job",
    "JobStart",
    "job_of",
    "read_job",
    "run_batch",
    "start_job",
    "unfinished_jobs",
]

# What became of an order of a job (bulk_job_orders.state):
OUTCOMES = (
    "pending",  # not yet reached
    "refunded",  # its refund applied (the money leaves through the outbox relay)
    "refused",  # the plan or the store refused it: ``code`` says why
    "manual_review",  # its plan needs an agent (plan.needs_manual_review): nothing applied
    "skipped",  # nothing to refund: every unit refunded already or held by an open case
)

_j, _jo = bulk_jobs.c, bulk_job_orders.c
_INSERT_ORDERS = Prepared(insert(bulk_job_orders))
_next = (
    select(_jo.order_id, _jo.customer_id)
    .where((_jo.job_id == bindparam("job_id")) & (_jo.state == "pending"))
    .order_by(_jo.position)
    .limit(bindparam("n"))
)
_NEXT = Prepared(_next)
# PostgreSQL: the next pending orders' rows locked as they are read; a row another runner
# settled meanwhile is passed over (its state read again once its lock is free).
_NEXT_CLAIMED = Prepared(_next.with_for_update())
# Runners of one job at once (the worker and `refundry bulk-refund --resume`) take an order's
# row first: the second finds it settled and passes on (PostgreSQL: FOR UPDATE waits for the
# first's commit; SQLite: one writer at a time).
_CLAIM = Prepared(
    select(_jo.state)
    .where((_jo.job_id == bindparam("job_id")) & (_jo.order_id == bindparam("order_id")))
    .with_for_update()
)
_SETTLE = Prepared(
    update(bulk_job_orders)
    .where(
        (_jo.job_id == bindparam("b_job_id"))
        & (_jo.order_id == bindparam("b_order_id"))
        & (_jo.state == "pending")
    )
    .values(
        state=bindparam("b_state"),
        code=bindparam("b_code"),
        message=bindparam("b_message"),
        refund_id=bindparam("b_refund_id"),
        total=bindparam("b_total"),
        currency=bindparam("b_currency"),
        held_by_case=bindparam("b_held"),
        updated_at=bindparam("b_at"),
    )
)


_LOCK_ORDERS = (
    select(orders.c.id)
    .where(orders.c.id.in_(bindparam("ids", expanding=True)))
    .order_by(orders.c.id)
    .with_for_update()
)
_DONE = Prepared(select(_j.done).where(_j.id == bindparam("job_id")))
# A batch's outcomes added to the job's counters (and, with its last orders, the job finished).
_COUNTERS = {
    name: _j[name] + bindparam(f"b_{name}")
    for name in ("done", "refunded", "refused", "manual_review", "skipped")
}
_COUNT = Prepared(
    update(bulk_jobs)
    .where(_j.id == bindparam("b_job_id"))
    .values({**_COUNTERS, "updated_at": bindparam("b_at")})
)
_COUNT_FINISHED = Prepared(
    update(bulk_jobs)
    .where(_j.id == bindparam("b_job_id"))
    .values(
        {
            **_COUNTERS,
            "updated_at": bindparam("b_at"),
            "state": "finished",
            "finished_at": bindparam("b_at"),
        }
    )
)


@dataclass(frozen=True, slots=True)
class Job:
    id: str
    selector: Selector
    reason: str
    policy: Policy
    rate: int  # refunds per second fed toward the gateway; 0: unlimited
    state: str  # running | finished
    total: int
    done: int
    refunded: int
    refused: int
    manual_review: int
    skipped: int
    actor: str
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None

    @property
    def pending(self) -> int:
        return self.total - self.done


@dataclass(frozen=True, slots=True)
class JobStart:
    job: Job
    created: bool  # False: the same selection's job was found and goes on


def start_job(
    engine: Engine,
    *,
    selector: Selector,
    reason: str,
    policy: Policy,
    rate: int,
    actor: str,
    now: datetime,
) -> JobStart:
    """The job of this selection, reason and policy: found if it exists, else made with every
    matching order pending (``bulk.nothing_selected`` when none matches: nothing is stored)."""
    if rate < 0:
        raise Unprocessable("the rate must be 0 (unlimited) or more", code="bulk.invalid")
    policy_doc = policy.as_dict()
    digest = selector.fingerprint(reason=reason, policy=policy_doc)
    with UnitOfWork(engine) as uow:
        conn = uow.conn
        found = conn.execute(
            select(bulk_jobs.c.id)
            .where(_j.selector_hash == digest)
            .order_by(_j.created_at.desc())
            .limit(1)
        ).first()
        if found is not None:
            return JobStart(_read(conn, found.id), created=False)
        selected = matching_orders(conn, selector)
        if not selected:
            raise Unprocessable("no order matches this selection", code="bulk.nothing_selected")
        job_id = "bj_" + uuid.uuid4().hex[:20]
        conn.execute(
            insert(bulk_jobs).values(
                id=job_id,
                selector_hash=digest,
                selector=compact(selector.as_dict()),
                reason=reason,
                policy=compact(policy_doc),
                rate=rate,
                state="running",
                total=len(selected),
                actor=actor,
                created_at=now,
                updated_at=now,
            )
        )
        rows = [
            {
                "job_id": job_id,
                "order_id": order_id,
                "position": i,
                "customer_id": customer_id,
                "state": "pending",
            }
            for i, (order_id, customer_id) in enumerate(selected)
        ]
        for start in range(0, len(rows), 10_000):
            _INSERT_ORDERS.run_many(conn, rows[start : start + 10_000])
        trail = AuditTrail(actor=actor, at=now, customer_id=None)
        trail.record(
            "bulk.job_started",
            job_id=job_id,
            selector=selector.as_dict() if not selector.order_ids else {"order_ids": "…"},
            reason=reason,
            orders=len(selected),
            rate=rate,
        )
        trail.flush(conn)
        job = _read(conn, job_id)
        uow.commit()
    return JobStart(job, created=True)


def read_job(engine: Engine, job_id: str) -> Job:
    """``bulk.job_not_found`` for an unknown id."""
    with UnitOfWork(engine, readonly=True) as uow:
        return _read(uow.conn, job_id)


def unfinished_jobs(engine: Engine) -> list[str]:
    with UnitOfWork(engine, readonly=True) as uow:
        rows = uow.conn.execute(
            select(_j.id).where(_j.state == "running").order_by(_j.created_at, _j.id)
        )
        return [r.id for r in rows]


def _read(conn: Connection, job_id: str) -> Job:
    row = conn.execute(select(bulk_jobs).where(_j.id == job_id)).first()
    if row is None:
        raise NotFound(f"no bulk refund job {job_id!r}", code="bulk.job_not_found")
    return job_of(row)


def job_of(row: Any) -> Job:
    selector, _ = parse_selector(parse_stored(row.selector), reason=row.reason)
    return Job(
        id=row.id,
        selector=selector,
        reason=row.reason,
        policy=policy_from_mapping(parse_stored(row.policy)),
        rate=int(row.rate),
        state=row.state,
        total=int(row.total),
        done=int(row.done),
        refunded=int(row.refunded),
        refused=int(row.refused),
        manual_review=int(row.manual_review),
        skipped=int(row.skipped),
        actor=row.actor,
        created_at=row.created_at,
        updated_at=row.updated_at,
        finished_at=row.finished_at,
    )


@dataclass(frozen=True, slots=True)
class BatchResult:
    processed: int  # orders given an outcome by this batch
    refunds: int  # refunds applied (gateway calls queued through the outbox)
    finished: bool  # no order of the job is pending any more


def run_batch(engine: Engine, job: Job, *, size: int, now: datetime) -> BatchResult:
    """Refund the next ``size`` pending orders of ``job`` in one transaction; each order's
    outcome is recorded in it, and the job's counters.

    Each order is checked first — its inputs read, its units asked, its plan computed — so a
    refusal is known before anything of it is written and needs no savepoint; the rows the
    batch's refunds append (refunds, their tenders and effects, postings, outbox messages,
    outcomes, audit entries) are written together at its end, one statement per table. Should
    the store refuse a write (a constraint, a guard), the batch is rolled back and run again
    order by order, each inside a SAVEPOINT with its rows written there, so the refused order
    is the only one refused (as services/orders/bulk_import.py does for an import's batch)."""
    with collector_paused():
        try:
            return _run_batch(engine, job, size=size, now=now, together=True)
        except RefusedTogether:
            return _run_batch(engine, job, size=size, now=now, together=False)


def _run_batch(
    engine: Engine, job: Job, *, size: int, now: datetime, together: bool
) -> BatchResult:
    counts = dict.fromkeys(OUTCOMES, 0)
    with UnitOfWork(engine) as uow:
        conn = uow.conn
        if not conn.in_transaction():
            # SQLite (the unit began on the driver): SQLAlchemy's transaction on top of it, or
            # an order's failing statement would make SQLAlchemy roll the whole batch back
            # (its autorollback outside a transaction) instead of to the order's savepoint.
            conn.begin()
        postgresql = conn.dialect.name == "postgresql"
        if together and postgresql:
            # The batch's outcome rows claimed at once (a second runner waits here, then finds
            # them settled and takes the next pending ones), and their orders locked in id
            # order before anything is read.
            pending = _NEXT_CLAIMED.rows(conn, {"job_id": job.id, "n": size})
            if pending:
                conn.execute(_LOCK_ORDERS, {"ids": sorted(r.order_id for r in pending)}).all()
        else:
            # SQLite: BEGIN IMMEDIATE took the write lock before this read, so no other runner
            # can settle these orders meanwhile. PostgreSQL, order by order: each order's row
            # is claimed below, its order locked as its inputs are read.
            pending = _NEXT.rows(conn, {"job_id": job.id, "n": size})
        # One audit trail for the batch, flushed once (each customer's chain head locked and
        # moved once, in chain order); a refused order records none (run order by order: its
        # entries are dropped with its savepoint). The job's own entries (finished) go to the
        # system chain.
        trail = AuditTrail(actor=f"bulk:{job.id}", at=now, customer_id=None)
        # ``together``: the refunds' appended rows, written at the end; else each refund's own.
        batch = RowBatch() if together else None
        settled: list[dict[str, Any]] = []
        ahead: OrderReads | None = None
        for i, row in enumerate(pending):
            if not together and postgresql:
                claimed = _CLAIM.first(conn, {"job_id": job.id, "order_id": row.order_id})
                if claimed is None or claimed.state != "pending":
                    continue  # another runner settled it
            with trail.about(row.customer_id):  # each order's entries to its customer's chain
                if batch is not None:
                    outcome, ahead = refund_checked(
                        conn,
                        job,
                        row.order_id,
                        now=now,
                        trail=trail,
                        batch=batch,
                        reads=ahead,
                        # PostgreSQL: the next order's reads go out with this one's writes.
                        read_next=pending[i + 1].order_id
                        if postgresql and i + 1 < len(pending)
                        else None,
                    )
                else:
                    outcome = refund_in_savepoint(conn, job, row.order_id, now=now, trail=trail)
            settled.append(
                {
                    "b_job_id": job.id,
                    "b_order_id": row.order_id,
                    "b_state": outcome.state,
                    "b_code": outcome.code,
                    "b_message": outcome.message,
                    "b_refund_id": outcome.refund_id,
                    "b_total": outcome.total,
                    "b_currency": outcome.currency,
                    "b_held": outcome.held,
                    "b_at": now,
                }
            )
            counts[outcome.state] += 1
            fault_point("bulk.between_orders")
        processed = len(settled)
        if batch is not None:
            try:
                with pipelined(conn):
                    batch.flush(conn)
            except IntegrityError as exc:
                raise RefusedTogether from exc
        # Every outcome row moves from pending, under its claim: never fewer, or ours must not
        # stand.
        if _SETTLE.run_many(conn, settled) != processed:
            raise Conflict(
                f"an order of job {job.id} was settled by another runner",
                code="bulk.concurrent",
            )
        left = job.total - _done_before(conn, job.id) - processed
        counted = {
            "b_job_id": job.id,
            "b_done": processed,
            "b_refunded": counts["refunded"],
            "b_refused": counts["refused"],
            "b_manual_review": counts["manual_review"],
            "b_skipped": counts["skipped"],
            "b_at": now,
        }
        if processed:  # (a finished job run again changes nothing)
            (_COUNT_FINISHED if left <= 0 else _COUNT).run(conn, counted)
        if processed and left <= 0:
            with trail.acting(job.actor):
                trail.record("bulk.job_finished", job_id=job.id)
        trail.flush_batch(conn)
        fault_point("bulk.after_batch_writes")
        uow.commit()
    fault_point("bulk.after_batch_commit")
    return BatchResult(processed=processed, refunds=counts["refunded"], finished=left <= 0)


def _done_before(conn: Connection, job_id: str) -> int:
    return int(_DONE.first(conn, {"job_id": job_id}).done)


def outcome_counts(conn: Connection, job_id: str) -> dict[str, int]:
    """Orders per outcome, counted from the rows (the job row keeps the same counts)."""
    rows = conn.execute(
        select(_jo.state, func.count()).where(_jo.job_id == job_id).group_by(_jo.state)
    )
    return {str(state): int(n) for state, n in rows}
