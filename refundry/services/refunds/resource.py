"""Refunds as a resource (issue 12 point 1): one refund, a filtered page of refunds, and a
refund applied directly for an order.

A refund's ``status`` is ``pending`` (money on its way: ``refunding``), ``succeeded``
(``refunded``: every tender done, or moved to the wallet) or ``failed`` (``refund_failed``: a
tender the gateway refused, with its ``failure_code`` and ``failure_message``). Each tender
shows its transaction at the gateway (the order's ``gateway_txn_id``) and the gateway's refund
reference; ``effects`` are every effect of the applied plan, in the plan's order. The case that
asked for it, if any, is named (``case_id``).

Who sees a refund is who sees its order's refunds: its customer and the desk (agents, admins),
and a merchant one of whose lines it refunds; anyone else is told there is no such refund
(``refund.not_found``). A merchant sees it as it sees the order (services/access.py): no
tenders and no failure code (how the customer paid is not the merchant's), only the effects
that name one of its lines and none of another merchant's, and no amount when the refund also
returns other merchants' lines. Applying one (``apply_order_refund``) is the desk's:
the shop's back end and agents; it runs services/refunds/apply.py's ``apply_refund``, the one
exactly-once apply path, with the caller's ``Idempotency-Key`` scoped to the caller.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, and_, exists, or_, select

from refundry.domain.policy import Policy
from refundry.services import access
from refundry.services.access import Actor
from refundry.services.errors import NotFound, Unprocessable
from refundry.services.reads import Amount, decode_time_cursor, encode_cursor
from refundry.services.refunds.apply import apply_refund
from refundry.services.refunds.reversal import ReversalView, reversal_of
from refundry.services.uow import UnitOfWork
from refundry.store.tables import (
    cases,
    gateway_calls,
    order_lines,
    order_tenders,
    orders,
    refund_effects,
    refund_tenders,
    refunds,
)

__all__ = [
    "STATUS",
    "RefundFilter",
    "RefundPage",
    "RefundTenderView",
    "RefundView",
    "apply_order_refund",
    "list_refunds",
    "read_refund",
]

# The stored status -> the resource's.
STATUS = {"refunding": "pending", "refunded": "succeeded", "refund_failed": "failed"}
_STORED = {v: k for k, v in STATUS.items()}


@dataclass(frozen=True, slots=True)
class RefundTenderView:
    tender_id: str
    kind: str
    amount: Amount
    points: int
    status: str  # pending | accepted | succeeded | failed | to_wallet
    gateway_txn_id: str | None  # the payment at the gateway this refund goes back to
    gateway_refund_id: str | None  # the gateway's reference of the refund, once it has one
    attempt: int
    failure_code: str | None
    failure_message: str | None


@dataclass(frozen=True, slots=True)
class RefundView:
    id: str
    order_id: str
    customer_id: str
    case_id: str | None
    seq: int
    status: str  # pending | succeeded | failed
    reason: str
    amount: Amount | None  # None for a merchant when the refund has others' lines too
    plan_hash: str
    failure_code: str | None
    failure_message: str | None
    tenders: tuple[RefundTenderView, ...]
    effects: tuple[dict[str, Any], ...]
    actor: str
    created_at: datetime
    updated_at: datetime
    # an inspection that refused units of this 极速退款 (services/refunds/reversal.py)
    reversal: ReversalView | None = None


@dataclass(frozen=True, slots=True)
class RefundFilter:
    order_id: str | None = None
    status: str | None = None  # pending | succeeded | failed
    customer_id: str | None = None


@dataclass(frozen=True, slots=True)
class RefundPage:
    items: tuple[RefundView, ...]
    next_cursor: str | None


def _not_found(refund_id: str) -> NotFound:
    return NotFound(f"no refund {refund_id!r}", code="refund.not_found")


def _failure_message(conn: Connection, refund_id: str, tender_id: str, code: str) -> str:
    """The gateway's own words for its refusal, when its last answer carried any."""
    g = gateway_calls.c
    answer = conn.execute(
        select(g.answer)
        .where(g.refund_id == refund_id, g.tender_id == tender_id)
        .order_by(g.id.desc())
        .limit(1)
    ).scalar()
    if answer:
        doc = json.loads(answer)
        for found in (doc.get("message"), (doc.get("error") or {}).get("message")):
            if isinstance(found, str) and found:
                return found
    return f"the gateway refused the refund ({code})"


def _view(conn: Connection, row: Any, actor: Actor) -> RefundView:
    full = _full_view(conn, row)
    if actor.role != "merchant":
        return full
    owners = access.refund_line_owners(conn, row.id)
    visible = access.audit_entry_filter(actor, owners)
    mine = {line for line, owner in owners.items() if owner == actor.id}
    effects = tuple(
        shown
        for e in full.effects
        if (visible is None or visible(e)) and set(access.strings_in(e)) & mine
        if (shown := access.redact_audit_entry(actor, f"effect.{e['type']}", e)) is not None
    )
    return replace(
        full,
        amount=full.amount if visible is None else None,
        failure_code=None,
        failure_message=None,
        tenders=(),
        effects=effects,
    )


def _full_view(conn: Connection, row: Any) -> RefundView:
    t, ot = refund_tenders.c, order_tenders.c
    tender_rows = conn.execute(
        select(refund_tenders, ot.gateway_txn_id)
        .join(
            order_tenders,
            and_(ot.order_id == t.order_id, ot.tender_id == t.tender_id),
        )
        .where(t.refund_id == row.id)
        .order_by(t.tender_id)
    ).all()
    tenders = tuple(
        RefundTenderView(
            tender_id=r.tender_id,
            kind=r.kind,
            amount=Amount(int(r.amount), row.currency),
            points=int(r.points),
            status=r.status,
            gateway_txn_id=r.gateway_txn_id,
            gateway_refund_id=r.gateway_refund_id,
            attempt=int(r.attempt),
            failure_code=r.failure_code if r.status == "failed" else None,
            failure_message=(
                _failure_message(conn, row.id, r.tender_id, r.failure_code or "refused")
                if r.status == "failed"
                else None
            ),
        )
        for r in tender_rows
    )
    effects = tuple(
        {"type": e.type, **json.loads(e.data)}
        for e in conn.execute(
            select(refund_effects.c.type, refund_effects.c.data)
            .where(refund_effects.c.refund_id == row.id)
            .order_by(refund_effects.c.position)
        )
    )
    failed = next((x for x in tenders if x.status == "failed"), None)
    case_id = conn.execute(select(cases.c.id).where(cases.c.refund_id == row.id)).scalar()
    return RefundView(
        id=row.id,
        order_id=row.order_id,
        customer_id=row.customer_id,
        case_id=case_id,
        seq=int(row.seq),
        status=STATUS.get(row.status, row.status),
        reason=row.reason,
        amount=Amount(int(row.total), row.currency),
        plan_hash=row.plan_hash,
        failure_code=failed.failure_code if failed else None,
        failure_message=failed.failure_message if failed else None,
        tenders=tenders,
        effects=effects,
        actor=row.actor,
        created_at=row.created_at,
        updated_at=row.updated_at,
        reversal=reversal_of(conn, row.id),
    )


def _query() -> Any:
    return select(refunds, orders.c.customer_id, orders.c.currency).join(
        orders, orders.c.id == refunds.c.order_id
    )


def refund_view(conn: Connection, refund_id: str, actor: Actor) -> RefundView:
    row = conn.execute(_query().where(refunds.c.id == refund_id)).first()
    if row is None or not _sees(conn, actor, row):
        raise _not_found(refund_id)
    return _view(conn, row, actor)


def _sees(conn: Connection, actor: Actor, row: Any) -> bool:
    merchants = access.refund_merchants(conn, row.id) if actor.role == "merchant" else ()
    return access.may_see_refund(actor, row.customer_id, merchants)


def read_refund(engine: Engine, refund_id: str, actor: Actor) -> RefundView:
    with UnitOfWork(engine, readonly=True) as uow:
        return refund_view(uow.conn, refund_id, actor)


def list_refunds(
    engine: Engine,
    actor: Actor,
    *,
    where: RefundFilter | None = None,
    cursor: str | None = None,
    limit: int = 20,
) -> RefundPage:
    """Newest first (created_at, then id): a customer's own refunds, a merchant's refunds of
    its lines (as it may see them), every refund for the desk, none for anyone else.
    ``cursor`` is the ``next_cursor`` of the previous page."""
    where = where or RefundFilter()
    if actor.role not in ("customer", "merchant", "agent", "admin"):
        return RefundPage(items=(), next_cursor=None)
    query = _query()
    if actor.role == "customer":
        query = query.where(orders.c.customer_id == actor.id)
    elif actor.role == "merchant":  # narrows the read; _sees below stays the rule
        query = query.where(
            exists().where(
                order_lines.c.order_id == refunds.c.order_id,
                order_lines.c.merchant_id == actor.id,
            )
        )
    if where.customer_id is not None:
        query = query.where(orders.c.customer_id == where.customer_id)
    if where.order_id is not None:
        query = query.where(refunds.c.order_id == where.order_id)
    if where.status is not None:
        query = query.where(refunds.c.status == _STORED[where.status])
    if cursor is not None:
        at, last_id = decode_time_cursor(cursor)
        query = query.where(
            or_(
                refunds.c.created_at < at,
                and_(refunds.c.created_at == at, refunds.c.id < last_id),
            )
        )
    query = query.order_by(refunds.c.created_at.desc(), refunds.c.id.desc()).limit(limit + 1)
    with UnitOfWork(engine, readonly=True) as uow:
        rows: Sequence[Any] = list(uow.conn.execute(query))
        page = rows[:limit]
        items = tuple(_view(uow.conn, r, actor) for r in page if _sees(uow.conn, actor, r))
    more = len(rows) > limit
    return RefundPage(
        items=items,
        next_cursor=encode_cursor(page[-1].created_at.isoformat(), page[-1].id) if more else None,
    )


def apply_order_refund(
    engine: Engine,
    *,
    actor: Actor,
    order_id: str,
    request: dict[str, Any],
    expected_plan_hash: str,
    idempotency_key: str,
    policy: Policy,
    now: datetime,
) -> tuple[RefundView, bool]:
    """Apply ``request`` (docs/plan-json.md) for the order, exactly once per the caller's
    ``idempotency_key``; returns the refund and whether it was applied before (a replay).
    ``plan.stale`` (with the new plan) when the plan is no longer the one previewed."""
    with UnitOfWork(engine, readonly=True) as uow:
        access.visible_order(uow.conn, order_id, actor)  # a stranger: order.not_found
    access.require(actor, "refund.apply")
    if not idempotency_key:
        raise Unprocessable(
            "applying a refund needs an Idempotency-Key", code="idempotency.key_missing"
        )
    # The apply path's keys are global: this caller's key cannot meet another's, nor a case's
    # (and a digest fits the key column whatever the caller's key and subject).
    scope = f"{len(actor.tag)}:{actor.tag}:{idempotency_key}".encode()
    scoped = "http:" + hashlib.sha256(scope).hexdigest()
    done = apply_refund(
        engine,
        order_id=order_id,
        request=request,
        expected_plan_hash=expected_plan_hash,
        idempotency_key=scoped,
        actor=actor.tag,
        now=now,
        policy=policy,
    )
    return read_refund(engine, done.refund_id, actor), done.replayed
