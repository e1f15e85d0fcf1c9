"""Previewing and applying a refund: the plan, then every effect in one transaction.

``apply_refund`` takes the order's lock (PostgreSQL ``SELECT … FOR UPDATE``; SQLite
``BEGIN IMMEDIATE``), replays the first answer of an idempotency key it has seen, recomputes the
plan from the store and refuses with ``plan.stale`` if it is not the plan the caller previewed.
Otherwise it writes, in that one transaction: the refund and its effects, the refunded units
and tender amounts (conditional updates: a concurrent writer is detected, never overwritten),
ledger postings, coupons, campaign state, rewards, tier, the gateway requests and notifications
in the outbox, the audit entries and the idempotency key.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from refundry.domain.errors import RefundRefused
from refundry.domain.fingerprint import fingerprint
from refundry.domain.json_io import dumps_plan, parse_request, plan_hash, plan_to_dict
from refundry.domain.plan import plan_refund
from refundry.domain.policy import Policy
from refundry.services.audit import AuditTrail
from refundry.services.batch import RowBatch
from refundry.services.effects import record_effects, record_tenders
from refundry.services.errors import Conflict, PlanStale, Unprocessable
from refundry.services.faults import fault_point
from refundry.services.outbox import enqueue
from refundry.services.state import PlanInputs, load_plan_inputs
from refundry.services.uow import UnitOfWork
from refundry.store.tables import (
    idempotency_keys,
    order_lines,
    order_tenders,
    orders,
    refunds,
)

__all__ = ["ApplyResult", "apply_refund", "naive_mode", "preview_refund"]

# How long a previewed plan may be applied "as of" its preview time.
PREVIEW_MAX_AGE = timedelta(minutes=15)


def naive_mode() -> bool:
    """TEST ONLY. ``REFUNDRY_TEST_NAIVE_APPLY=1`` turns the apply path into the naive
    read-then-write (state read in its own transaction, absolute writes, no lock, no guard) so
    the race tests can prove they catch the over-refund it causes. Never set it elsewhere."""
    return os.environ.get("REFUNDRY_TEST_NAIVE_APPLY") == "1"


@dataclass(frozen=True, slots=True)
class ApplyResult:
    refund_id: str
    status: str
    plan: dict[str, Any]
    replayed: bool = False


def _compute(inputs: PlanInputs, request: Any, policy: Policy, at: datetime) -> dict[str, Any]:
    req = parse_request(request)
    digest = fingerprint(
        order=inputs.order,
        history=inputs.history,
        customer=inputs.customer,
        request=req,
        policy=policy,
        now=at,
        order_digest=inputs.order_digest,
    )
    plan = plan_to_dict(
        plan_refund(
            order=inputs.order,
            history=inputs.history,
            customer=inputs.customer,
            request=req,
            policy=policy,
            now=at,
            input_hash=digest,
        )
    )
    plan["plan_hash"] = plan_hash(plan)
    return plan


def preview_refund(
    engine: Engine, *, order_id: str, request: Any, policy: Policy, now: datetime
) -> dict[str, Any]:
    """The plan a request would apply now (nothing is written)."""
    with UnitOfWork(engine, readonly=True) as uow:
        inputs = load_plan_inputs(uow.conn, order_id, policy=policy)
        return _compute(inputs, request, policy, now)


def _request_hash(order_id: str, request: Any, expected_plan_hash: str) -> str:
    """Of the request as parsed (defaults filled in), so a resent request matches its first
    sending however its JSON was spelled."""
    req = parse_request(request)
    normal = [
        req.order_id,
        req.reason,
        req.kind,
        req.return_method,
        [[u.line_id, u.quantity] for u in req.lines],
    ]
    text = json.dumps(
        [order_id, normal, expected_plan_hash],
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def _replay(conn: Connection, key: str, request_hash: str) -> ApplyResult | None:
    row = conn.execute(select(idempotency_keys).where(idempotency_keys.c.key == key)).first()
    if row is None:
        return None
    if row.request_hash != request_hash:
        raise Unprocessable(
            "this idempotency key was used with a different request",
            code="idempotency.key_reused",
        )
    first = json.loads(row.response)
    return ApplyResult(first["refund_id"], first["status"], first["plan"], replayed=True)


def apply_refund(
    engine: Engine,
    *,
    order_id: str,
    request: Any,
    expected_plan_hash: str,
    idempotency_key: str,
    actor: str,
    now: datetime,
    policy: Policy,
    previewed_at: datetime | None = None,
) -> ApplyResult:
    """Apply the previewed plan of ``request`` exactly once."""
    if not idempotency_key:
        raise Unprocessable("an idempotency key is required", code="idempotency.key_missing")
    at = now
    if previewed_at is not None and timedelta(0) <= now - previewed_at <= PREVIEW_MAX_AGE:
        at = previewed_at  # the plan as shown, if it is still recent
    request_hash = _request_hash(order_id, request, expected_plan_hash)
    naive = naive_mode()
    stale_inputs = None
    if naive:
        with UnitOfWork(engine, readonly=True) as uow:
            stale_inputs = load_plan_inputs(uow.conn, order_id, policy=policy)
    try:
        with UnitOfWork(engine) as uow:
            conn = uow.conn
            inputs = stale_inputs or load_plan_inputs(conn, order_id, policy=policy, lock=True)
            replay = _replay(conn, idempotency_key, request_hash)
            if replay is not None:
                return replay
            try:
                plan = _compute(inputs, request, policy, at)
            except RefundRefused as exc:
                # The caller previewed a plan, so these units were refundable then: another
                # refund took them meanwhile. That is a conflict, not a bad request.
                raise PlanStale(
                    f"the order changed since the preview: {exc.message}", plan=None
                ) from exc
            if plan["plan_hash"] != expected_plan_hash:
                raise PlanStale("the refund would now differ from the plan previewed", plan=plan)
            if plan["status"] != "ready":
                raise Unprocessable(
                    "this plan needs an agent's review before it can be applied",
                    code="plan.needs_manual_review",
                )
            fault_point("apply.after_plan")
            refund_id = "rf_" + uuid.uuid4().hex[:20]
            status = _write(
                conn,
                inputs=inputs,
                plan=plan,
                refund_id=refund_id,
                actor=actor,
                at=now,
                naive=naive,
            )
            result = ApplyResult(refund_id, status, plan)
            conn.execute(
                insert(idempotency_keys).values(
                    key=idempotency_key,
                    scope="refund.apply",
                    request_hash=request_hash,
                    created_at=now,
                    response=json.dumps(
                        {"refund_id": refund_id, "status": status, "plan": plan},
                        ensure_ascii=False,
                        sort_keys=True,
                    ),
                )
            )
            fault_point("apply.after_writes")
            uow.commit()
    except IntegrityError as exc:
        # A concurrent apply won a race our guards did not see first (same idempotency key on
        # another order, or a constraint): answer from what is committed now.
        with UnitOfWork(engine, readonly=True) as uow:
            replay = _replay(uow.conn, idempotency_key, request_hash)
        if replay is not None:
            return replay
        raise Conflict(
            "a concurrent refund changed this order; preview again", code="refund.concurrent"
        ) from exc
    fault_point("apply.after_commit")
    return result


def _write(
    conn: Connection,
    *,
    inputs: PlanInputs,
    plan: dict[str, Any],
    refund_id: str,
    actor: str,
    at: datetime,
    naive: bool,
) -> str:
    order = inputs.order
    seq = len(inputs.history) + 1
    trail = AuditTrail(actor=actor, at=at)
    goods_units = 0
    for unit in plan["units"]:
        line = order_lines.c
        where = (line.order_id == order.id) & (line.line_id == unit["line_id"])
        if naive:
            stmt = update(order_lines).where(where).values(refunded_qty=unit["refunded_after"])
        else:
            stmt = (
                update(order_lines)
                .where(where & (line.refunded_qty == unit["refunded_before"]))
                .values(refunded_qty=line.refunded_qty + unit["quantity"])
            )
        if conn.execute(stmt).rowcount != 1:
            raise Conflict("a concurrent refund took these units", code="refund.concurrent")
        if not unit["gift"]:
            goods_units += unit["quantity"]
    for share in plan["tenders"]:
        if share["amount"]:
            t = order_tenders.c
            refunded = share["refunded_after"] if naive else t.refunded + share["amount"]
            conn.execute(
                update(order_tenders)
                .where((t.order_id == order.id) & (t.tender_id == share["tender_id"]))
                .values(refunded=refunded)
            )
    o = orders.c
    guard = o.id == order.id
    if not naive:
        guard = guard & (o.refund_count == len(inputs.history))
    if (
        conn.execute(
            update(orders)
            .where(guard)
            .values(
                refund_count=seq,
                goods_refunded=o.goods_refunded + goods_units,
            )
        ).rowcount
        != 1
    ):
        raise Conflict("a concurrent refund changed this order", code="refund.concurrent")
    kinds = {t.id: t.kind.value for t in order.tenders}
    waiting = any(s["amount"] and kinds[s["tender_id"]] == "external" for s in plan["tenders"])
    status = "refunding" if waiting else "refunded"
    conn.execute(
        insert(refunds).values(
            id=refund_id,
            order_id=order.id,
            seq=seq,
            status=status,
            reason=plan["request"]["reason"],
            total=plan["amount"]["total"],
            plan=dumps_plan(plan),
            plan_hash=plan["plan_hash"],
            actor=actor,
            created_at=at,
            updated_at=at,
        )
    )
    batch = RowBatch()
    record_tenders(
        conn, plan=plan, order=order, refund_id=refund_id, at=at, trail=trail, batch=batch
    )
    trail.record(
        "refund.applied",
        order_id=order.id,
        refund_id=refund_id,
        seq=seq,
        total=plan["amount"]["total"],
        status=status,
        plan_hash=plan["plan_hash"],
        amount=plan["amount"],
    )
    record_effects(
        conn,
        plan=plan,
        order=order,
        refund_id=refund_id,
        at=at,
        trail=trail,
        locale=inputs.customer.locale,
        batch=batch,
    )
    enqueue(
        conn,
        topic="event",
        key=f"event:refund.applied:{refund_id}",
        at=at,
        payload={
            "type": "refund.applied",
            "refund_id": refund_id,
            "order_id": order.id,
            "customer_id": order.customer_id,
            "total": plan["amount"]["total"],
            "currency": order.currency,
            "status": status,
        },
        batch=batch,
    )
    batch.flush(conn)
    trail.flush(conn)
    return status
