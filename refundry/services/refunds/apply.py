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
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Connection,
    Engine,
    Integer,
    String,
    bindparam,
    case,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from refundry.domain.errors import RefundRefused
from refundry.domain.fingerprint import fingerprint
from refundry.domain.json_io import parse_request
from refundry.domain.json_text import compact, compact_unsorted, parse_stored
from refundry.domain.order import Order
from refundry.domain.plan import plan_refund
from refundry.domain.plan_doc import (
    PlanDoc,
    dumps_plan_compact,
    hash_and_text,
    load_plan,
    plan_to_dict,
)
from refundry.domain.policy import Policy
from refundry.domain.request import RefundRequest
from refundry.services.audit.chain import AuditTrail
from refundry.services.errors import Conflict, PlanStale, Unprocessable
from refundry.services.faults import fault_point
from refundry.services.outbox.messages import enqueue
from refundry.services.refunds.batch import RowBatch
from refundry.services.refunds.debts import settle_debts
from refundry.services.refunds.effects import move_balances, record_effects, record_tenders
from refundry.services.refunds.memo import Memo
from refundry.services.refunds.state import PlanInputs, load_plan_inputs
from refundry.services.uow import UnitOfWork
from refundry.store.prepared import Prepared, pipelined
from refundry.store.tables import (
    case_units,
    idempotency_keys,
    order_lines,
    order_tenders,
    orders,
)

__all__ = ["ApplyResult", "apply_refund", "naive_mode", "preview_refund", "use_naive_apply"]

# How long a previewed plan may be applied "as of" its preview time.
PREVIEW_MAX_AGE = timedelta(minutes=15)

# Statements built once and executed with parameters (their cache key and compiled form are
# reused; building them per call was most of the apply path's time).
_KEY = Prepared(
    select(idempotency_keys.c.request_hash, idempotency_keys.c.response).where(
        idempotency_keys.c.key == bindparam("key")
    )
)
_INSERT_KEY = Prepared(insert(idempotency_keys))
# The order's lines some open case holds units of (services/cases/process.hold_units).
_HELD = Prepared(
    select(
        order_lines.c.line_id, order_lines.c.quantity, order_lines.c.refunded_qty, case_units.c.held
    )
    .join(
        case_units,
        (case_units.c.order_id == order_lines.c.order_id)
        & (case_units.c.line_id == order_lines.c.line_id),
    )
    .where(order_lines.c.order_id == bindparam("order_id"), case_units.c.held > 0)
)
_l, _t, _o = order_lines.c, order_tenders.c, orders.c
_LINE = (_l.order_id == bindparam("b_order_id")) & (_l.line_id == bindparam("b_line_id"))
_NAIVE_SET_UNITS = Prepared(
    update(order_lines).where(_LINE).values(refunded_qty=bindparam("b_after"))
)
_TENDER = (_t.order_id == bindparam("b_order_id")) & (_t.tender_id == bindparam("b_tender_id"))
_NAIVE_SET_TENDER = Prepared(
    update(order_tenders).where(_TENDER).values(refunded=bindparam("b_after"))
)
_ORDER_VALUES = {
    "refund_count": bindparam("b_seq"),
    "goods_refunded": _o.goods_refunded + bindparam("b_goods_units"),
}
_COUNT_REFUND = Prepared(
    update(orders)
    .where((_o.id == bindparam("b_order_id")) & (_o.refund_count == bindparam("b_seen")))
    .values(_ORDER_VALUES)
)
_NAIVE_COUNT_REFUND = Prepared(
    update(orders).where(_o.id == bindparam("b_order_id")).values(_ORDER_VALUES)
)
# Multi-row updates, one statement per refund instead of one per line or tender; built once per
# number of rows (orders have a handful of lines).
_MEMO_ROWS = 64
_take_units: dict[int, Prepared] = {}
_add_tenders: dict[int, Prepared] = {}


def _take_units_stmt(n: int) -> Prepared:
    """Line i (``b_line_i``) gains ``b_qty_i`` units only if it still has ``b_seen_i`` refunded:
    the caller checks that all ``n`` rows moved (a concurrent writer is detected, never
    overwritten)."""
    stmt = _take_units.get(n)
    if stmt is None:
        lines = [bindparam(f"b_line_{i}", type_=String()) for i in range(n)]
        guards = [
            (_l.line_id == lines[i])
            & (_l.refunded_qty == bindparam(f"b_seen_{i}", type_=Integer()))
            for i in range(n)
        ]
        added = case(
            *[(_l.line_id == lines[i], bindparam(f"b_qty_{i}", type_=Integer())) for i in range(n)],
            else_=0,
        )
        stmt = Prepared(
            update(order_lines)
            .where((_l.order_id == bindparam("b_order_id")) & or_(*guards))
            .values(refunded_qty=_l.refunded_qty + added)
        )
        if n <= _MEMO_ROWS:
            _take_units[n] = stmt
    return stmt


def _add_tenders_stmt(n: int) -> Prepared:
    """Tender i (``b_tender_i``) gets ``b_amount_i`` more refunded."""
    stmt = _add_tenders.get(n)
    if stmt is None:
        tenders = [bindparam(f"b_tender_{i}", type_=String()) for i in range(n)]
        added = case(
            *[
                (_t.tender_id == tenders[i], bindparam(f"b_amount_{i}", type_=BigInteger()))
                for i in range(n)
            ],
            else_=0,
        )
        stmt = Prepared(
            update(order_tenders)
            .where((_t.order_id == bindparam("b_order_id")) & _t.tender_id.in_(tenders))
            .values(refunded=_t.refunded + added)
        )
        if n <= _MEMO_ROWS:
            _add_tenders[n] = stmt
    return stmt


_naive = False


def use_naive_apply(on: bool) -> None:
    """TEST ONLY. Turns the apply path into the naive read-then-write (state read in its own
    transaction, absolute writes, no lock, no guard) so the race tests can prove they catch the
    over-refund it causes. Nothing in production calls it; nothing reads the environment."""
    global _naive
    _naive = on


def naive_mode() -> bool:
    return _naive


@dataclass(frozen=True, slots=True)
class ApplyResult:
    refund_id: str
    status: str
    plan: PlanDoc
    replayed: bool = False


# Plans previewed in this process, by their input fingerprint (order, history, customer, request,
# policy, time: everything the pure function plan_refund reads), as stored text. apply_refund
# reads its inputs again under the lock; when they are the ones the preview read, the plan is
# the previewed one and is not computed a second time (bench/apply_bench.py: a third of a
# refund's CPU time). Texts, not dicts: every caller gets its own fresh dict.
_previewed: Memo[str, str] = Memo(1024)


def _compute_text(
    inputs: PlanInputs, req: RefundRequest, policy: Policy, at: datetime, *, remember: bool = False
) -> tuple[PlanDoc, str]:
    """The plan and its stored (compact) text; ``remember``: keep it for the apply to come."""
    digest = fingerprint(
        order=inputs.order,
        history=inputs.history,
        customer=inputs.customer,
        request=req,
        policy=policy,
        now=at,
        order_digest=inputs.order_digest,
    )
    text = _previewed.get(digest)
    if text is not None:
        return load_plan(text), text
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
    plan["plan_hash"], text = hash_and_text(plan)
    if remember:
        _previewed.put(digest, text)
    return plan, text


def preview_refund(
    engine: Engine, *, order_id: str, request: Any, policy: Policy, now: datetime
) -> PlanDoc:
    """The plan a request would apply now (nothing is written), read from its stored text: the
    same document, its objects' keys in the same order, whether the plan was computed now or
    remembered from an earlier preview (a computed plan's keys are in the order it built
    them), so the same preview answers the same bytes."""
    with UnitOfWork(engine, readonly=True) as uow:
        inputs = load_plan_inputs(uow.conn, order_id, policy=policy, now=now)
        text = _compute_text(inputs, parse_request(request), policy, now, remember=True)[1]
    return load_plan(text)


def _request_hash(order_id: str, req: RefundRequest, expected_plan_hash: str) -> str:
    """Of the request as parsed (defaults filled in), so a resent request matches its first
    sending however its JSON was spelled."""
    normal = [
        req.order_id,
        req.reason,
        req.kind,
        req.return_method,
        [[u.line_id, u.quantity] for u in req.lines],
    ]
    text = compact([order_id, normal, expected_plan_hash])
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def _replay(conn: Connection, key: str, request_hash: str) -> ApplyResult | None:
    row = _KEY.first(conn, {"key": key})
    if row is None:
        return None
    return _replayed((row.request_hash, row.response), request_hash)


def _replayed(answer: tuple[str, str] | None, request_hash: str) -> ApplyResult | None:
    """The stored first answer (request hash, response) of a key, None if the key is new."""
    if answer is None:
        return None
    stored_hash, response = answer
    if stored_hash != request_hash:
        raise Unprocessable(
            "this idempotency key was used with a different request",
            code="idempotency.key_reused",
        )
    first = parse_stored(response)
    return ApplyResult(first["refund_id"], first["status"], first["plan"], replayed=True)


def _refuse_units_held(conn: Connection, order_id: str, req: RefundRequest) -> None:
    """``refund.units_held_by_case`` when the request asks for units an open case holds: they
    are that case's to refund (or to give back when it ends). Read after the order's lock,
    which ``open_case`` takes too, so a case opened meanwhile is seen."""
    asked: dict[str, int] = {}
    for units in req.lines:
        asked[units.line_id] = asked.get(units.line_id, 0) + units.quantity
    for line in _HELD.rows(conn, {"order_id": order_id}):
        want = asked.get(line.line_id, 0)
        left = int(line.quantity) - int(line.refunded_qty)
        free = max(left - int(line.held), 0)
        if free < want <= left:  # beyond ``left``: the plan's refund.units_exhausted
            raise Conflict(
                f"line {line.line_id!r}: {line.held} unit(s) are held by an open case and "
                f"{free} are free; {want} asked (the case refunds its own units)",
                code="refund.units_held_by_case",
            )


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
    req = parse_request(request)
    request_hash = _request_hash(order_id, req, expected_plan_hash)
    naive = naive_mode()
    stale_inputs = None
    if naive:
        with UnitOfWork(engine, readonly=True) as uow:
            stale_inputs = load_plan_inputs(uow.conn, order_id, policy=policy, now=at)
    try:
        with UnitOfWork(engine) as uow:
            conn = uow.conn
            if stale_inputs is not None:
                inputs = stale_inputs
                replay = _replay(conn, idempotency_key, request_hash)
            else:
                # The key's first answer is read with the plan inputs, after the lock.
                inputs = load_plan_inputs(
                    conn,
                    order_id,
                    policy=policy,
                    lock=True,
                    idempotency_key=idempotency_key,
                    now=at,
                )
                replay = _replayed(inputs.key_answer, request_hash)
            if replay is not None:
                return replay
            _refuse_units_held(conn, order_id, req)
            plan, text = _plan_as_previewed(inputs, req, policy, at, expected_plan_hash)
            fault_point("apply.after_plan")
            refund_id = "rf_" + uuid.uuid4().hex[:20]
            # PostgreSQL: the writes go out without waiting for each answer (store.prepared).
            with pipelined(conn):
                status = _write(
                    conn,
                    inputs=inputs,
                    plan=plan,
                    plan_text=text,
                    refund_id=refund_id,
                    actor=actor,
                    at=now,
                    naive=naive,
                )
                _remember_answer(
                    conn,
                    key=idempotency_key,
                    customer_id=inputs.order.customer_id,
                    request_hash=request_hash,
                    answer=(refund_id, status, text),
                    at=now,
                )
            result = ApplyResult(refund_id, status, plan)
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


def _plan_as_previewed(
    inputs: PlanInputs, req: RefundRequest, policy: Policy, at: datetime, expected_hash: str
) -> tuple[PlanDoc, str]:
    """The plan computed now, if it is the one the caller previewed and it can apply alone."""
    try:
        plan, text = _compute_text(inputs, req, policy, at)
    except RefundRefused as exc:
        # The caller previewed a plan, so these units were refundable then: another refund
        # took them meanwhile. That is a conflict, not a bad request.
        raise PlanStale(f"the order changed since the preview: {exc.message}", plan=None) from exc
    if plan["plan_hash"] != expected_hash:
        raise PlanStale("the refund would now differ from the plan previewed", plan=plan)
    if plan["status"] != "ready":
        raise Unprocessable(
            "this plan needs an agent's review before it can be applied",
            code="plan.needs_manual_review",
        )
    return plan, text


def _remember_answer(
    conn: Connection,
    *,
    key: str,
    customer_id: str,
    request_hash: str,
    answer: tuple[str, str, str],
    at: datetime,
) -> None:
    """The idempotency key's first answer (refund id, status, the plan's stored text), in the
    refund's transaction: a retry replays it. The plan's text is embedded as it is (not
    encoded again)."""
    refund_id, status, plan_text = answer
    head = compact_unsorted({"refund_id": refund_id, "status": status})
    _INSERT_KEY.run(
        conn,
        {
            "key": key,
            "customer_id": customer_id,
            "scope": "refund.apply",
            "request_hash": request_hash,
            "created_at": at,
            "response": f'{{"plan":{plan_text},{head[1:]}',
        },
    )


def _write(
    conn: Connection,
    *,
    inputs: PlanInputs,
    plan: PlanDoc,
    refund_id: str,
    actor: str,
    at: datetime,
    naive: bool,
    plan_text: str | None = None,
    trail: AuditTrail | None = None,
    batch: RowBatch | None = None,
) -> str:
    """``trail`` and ``batch``: the caller's, flushed by the caller (a bulk batch's, once for
    all its refunds); by default the refund's own, flushed here."""
    order = inputs.order
    seq = len(inputs.history) + 1
    own_trail = trail is None
    if trail is None:
        trail = AuditTrail(actor=actor, at=at, customer_id=order.customer_id)
    own_batch = batch is None
    if batch is None:
        batch = RowBatch()
    _guarded_writes(conn, order=order, plan=plan, seq=seq, seen=len(inputs.history), naive=naive)
    kinds = {t.id: t.kind.value for t in order.tenders}
    waiting = any(s["amount"] and kinds[s["tender_id"]] == "external" for s in plan["tenders"])
    status = "refunding" if waiting else "refunded"
    batch.refunds.append(
        {
            "id": refund_id,
            "order_id": order.id,
            "customer_id": order.customer_id,
            "seq": seq,
            "status": status,
            "reason": plan["request"]["reason"],
            "total": plan["amount"]["total"],
            # Compact: the stored plan is only ever read back as JSON (json.loads, the metrics'
            # json_each / jsonb); dumps_plan's indented text is for people.
            "plan": plan_text if plan_text is not None else dumps_plan_compact(plan),
            "plan_hash": plan["plan_hash"],
            "actor": actor,
            "created_at": at,
            "updated_at": at,
        }
    )
    _record_money_and_effects(
        conn,
        inputs=inputs,
        plan=plan,
        refund_id=refund_id,
        at=at,
        trail=trail,
        batch=batch,
        seq=seq,
        status=status,
        flush=own_batch,
        flush_trail=own_trail,
    )
    if plan["amount"]["carry"] < 0:  # earlier steps moved more: a reversed 极速退款's debt
        settle_debts(
            conn,
            order_id=order.id,
            netted=-plan["amount"]["carry"],
            refund_id=refund_id,
            trail=trail,
        )
        trail.flush(conn)
    return status


def _record_money_and_effects(
    conn: Connection,
    *,
    inputs: PlanInputs,
    plan: PlanDoc,
    refund_id: str,
    at: datetime,
    trail: AuditTrail,
    batch: RowBatch,
    seq: int,
    status: str,
    flush: bool = True,
    flush_trail: bool = True,
) -> None:
    """Money to each tender, the ``refund.applied`` entry, every other effect of the plan
    (services/refunds/effects.py), in that order, and the ``refund.applied`` event; the
    customer's ledger balances move once for all their postings. The refund's rows are
    written at ``batch``'s flush (here, with ``flush``)."""
    order = inputs.order
    # The customer's ledger balances the postings below move, in one statement.
    balances = move_balances(conn, plan=plan, order=order, refund_id=refund_id)
    record_tenders(
        conn,
        plan=plan,
        order=order,
        refund_id=refund_id,
        at=at,
        trail=trail,
        batch=batch,
        balances=balances,
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
    applied = record_effects(
        conn,
        plan=plan,
        order=order,
        refund_id=refund_id,
        at=at,
        trail=trail,
        locale=inputs.customer.locale,
        batch=batch,
        balances=balances,
        # SQLite: BEGIN IMMEDIATE holds the database since before the inputs were read.
        states=inputs.entitlement_states if conn.dialect.name == "sqlite" else None,
    )
    if balances:  # moved but not posted: never, unless move_balances and the postings disagree
        raise RuntimeError(f"ledger moves without their postings: {sorted(balances)}")
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
            # what /metrics counts of a refund (services/operations/metric_counters.py)
            "reason": plan["request"]["reason"],
            "deductions": _deductions_by_kind(plan),
            "merchants": sorted(
                {order.line(u["line_id"]).merchant_id for u in plan["units"] if u["quantity"]}
            ),
            # what the shop's systems mirror (webhooks: docs/webhooks.md)
            "plan_hash": plan["plan_hash"],
            "units": [
                {"line_id": u["line_id"], "sku": u["sku"], "quantity": u["quantity"]}
                for u in plan["units"]
                if u["quantity"]
            ],
            "tenders": [
                {
                    "tender_id": t["tender_id"],
                    "kind": t["kind"],
                    "amount": t["amount"],
                    "points": t["points"],
                }
                for t in plan["tenders"]
                if t["amount"] or t["points"]
            ],
            "effects": applied,
        },
        batch=batch,
    )
    if flush:
        batch.flush(conn)
    if flush_trail:
        trail.flush(conn)


def _deductions_by_kind(plan: PlanDoc) -> dict[str, int]:
    by_kind: dict[str, int] = {}
    for d in plan["deductions"]:
        by_kind[d["kind"]] = by_kind.get(d["kind"], 0) + d["amount"]
    return by_kind


def _guarded_writes(
    conn: Connection, *, order: Order, plan: PlanDoc, seq: int, seen: int, naive: bool
) -> None:
    """Units taken, tenders credited and the order's refund count moved, each guarded by what
    the plan read (refunded units, ``seen`` earlier refunds): a concurrent refund that changed
    any of them makes this one ``refund.concurrent``, and nothing of it stands. ``naive``: the
    test-only unguarded writes the race tests must catch."""
    units = plan["units"]
    goods_units = sum(unit["quantity"] for unit in units if not unit["gift"])
    if naive:
        for unit in units:
            key = {"b_order_id": order.id, "b_line_id": unit["line_id"]}
            _NAIVE_SET_UNITS.run_expecting(
                conn,
                {**key, "b_after": unit["refunded_after"]},
                1,
                Conflict("a concurrent refund took these units", code="refund.concurrent"),
            )
    elif units:
        taken: dict[str, Any] = {"b_order_id": order.id}
        for i, unit in enumerate(units):
            taken[f"b_line_{i}"] = unit["line_id"]
            taken[f"b_seen_{i}"] = unit["refunded_before"]
            taken[f"b_qty_{i}"] = unit["quantity"]
        # Every line's guard must hold: one row moved per line (a plan names a line once:
        # refund.duplicate_line), or none of this refund stands.
        _take_units_stmt(len(units)).run_expecting(
            conn,
            taken,
            len(units),
            Conflict("a concurrent refund took these units", code="refund.concurrent"),
        )
    shares = [share for share in plan["tenders"] if share["amount"]]
    if naive:
        for share in shares:
            key = {"b_order_id": order.id, "b_tender_id": share["tender_id"]}
            _NAIVE_SET_TENDER.run(conn, {**key, "b_after": share["refunded_after"]})
    elif shares:
        added: dict[str, Any] = {"b_order_id": order.id}
        for i, share in enumerate(shares):
            added[f"b_tender_{i}"] = share["tender_id"]
            added[f"b_amount_{i}"] = share["amount"]
        _add_tenders_stmt(len(shares)).run(conn, added)
    counted = {"b_order_id": order.id, "b_seq": seq, "b_goods_units": goods_units}
    changed = Conflict("a concurrent refund changed this order", code="refund.concurrent")
    if naive:
        _NAIVE_COUNT_REFUND.run_expecting(conn, counted, 1, changed)
    else:
        _COUNT_REFUND.run_expecting(conn, {**counted, "b_seen": seen}, 1, changed)


def compute_plan(inputs: PlanInputs, request: Any, policy: Policy, at: datetime) -> PlanDoc:
    """The plan of ``request`` over inputs already read (the case process uses this inside its
    own transaction, after taking the order's lock with ``load_plan_inputs(lock=True)``)."""
    return _compute_text(inputs, parse_request(request), policy, at)[0]


def record_refund(
    conn: Connection,
    *,
    inputs: PlanInputs,
    plan: PlanDoc,
    actor: str,
    at: datetime,
    trail: AuditTrail | None = None,
    batch: RowBatch | None = None,
) -> tuple[str, str]:
    """Write a ready plan's refund in the caller's transaction; returns (refund id, status).
    With ``trail`` its audit entries are left in it for the caller to flush; with ``batch``
    its appended rows (the refund, its tenders and effects, postings, outbox messages)."""
    refund_id = "rf_" + uuid.uuid4().hex[:20]
    with pipelined(conn):
        status = _write(
            conn,
            inputs=inputs,
            plan=plan,
            refund_id=refund_id,
            actor=actor,
            at=at,
            naive=False,
            trail=trail,
            batch=batch,
        )
    return refund_id, status
