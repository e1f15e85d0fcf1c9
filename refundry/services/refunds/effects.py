"""Writing an applied plan's effects to the store, inside the apply transaction.

Money to external tenders goes to the outbox (the gateway is called after commit); money to the
wallet, a gift card or the points balance is a ledger posting here and now. Every other asset
(coupons, entitlements, campaign spend and quotas, rewards, growth, tier) changes here too, and
every effect gets its audit entry and, where the customer is told, its notification.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, case, insert, select, update

from refundry.domain.json_text import compact
from refundry.domain.order import Order, Tender
from refundry.domain.plan_doc import EffectDoc, PlanDoc, TenderDoc
from refundry.domain.plan_types import EffectKind
from refundry.services.audit.chain import AuditTrail
from refundry.services.outbox.messages import enqueue
from refundry.services.refunds.batch import RowBatch
from refundry.services.refunds.ledger import move_accounts, post
from refundry.store.prepared import Prepared
from refundry.store.tables import (
    campaign_quotas,
    campaign_rewards,
    campaign_spend,
    customers,
    entitlements,
)

__all__ = ["move_balances", "record_effects", "record_tenders"]

GATEWAY_TOPIC = "gateway.refund"

# Statements built once, executed with parameters (cache key and compiled form reused).
_INSERT_ENTITLEMENT = Prepared(insert(entitlements))
_SET_TIER = Prepared(
    update(customers)
    .where(customers.c.id == bindparam("b_customer_id"))
    .values(tier=bindparam("b_tier"))
)
_e = entitlements.c
_ENTITLEMENT = Prepared(select(entitlements).where(_e.id == bindparam("b_item_id")))
_ENTITLEMENT_STATE = Prepared(select(_e.state).where(_e.id == bindparam("b_item_id")))
# ``available`` also unlinks the order that used it.
_state_update = (
    update(entitlements)
    .where(_e.id == bindparam("b_item_id"))
    .values(state=bindparam("b_state"), updated_at=bindparam("b_at", type_=_e.updated_at.type))
)
_SET_STATE = Prepared(_state_update)
_SET_STATE_UNLINKED = Prepared(_state_update.values(order_id=None))
# PostgreSQL: the state before and the new state in one round trip (the subquery locks the row
# and reads it; RETURNING gives the subquery's, i.e. the earlier, state).
_OLD = (
    select(_e.id, _e.state).where(_e.id == bindparam("b_item_id")).with_for_update().subquery("old")
)
_swap_state = (
    update(entitlements)
    .where(_e.id == _OLD.c.id)
    .values(state=bindparam("b_state"), updated_at=bindparam("b_at", type_=_e.updated_at.type))
    .returning(_OLD.c.state)
)
_SWAP_STATE = Prepared(_swap_state)
_SWAP_STATE_UNLINKED = Prepared(_swap_state.values(order_id=None))
_s, _q, _r = campaign_spend.c, campaign_quotas.c, campaign_rewards.c
_LESS_SPEND = Prepared(
    update(campaign_spend)
    .where(
        (_s.customer_id == bindparam("b_customer_id"))
        & (_s.campaign_id == bindparam("b_campaign_id"))
    )
    .values(spend=_s.spend - bindparam("b_amount"))
)
_RELEASE_QUOTA = Prepared(
    update(campaign_quotas)
    .where(
        (_q.customer_id == bindparam("b_customer_id"))
        & (_q.campaign_id == bindparam("b_campaign_id"))
        & (_q.used > 0)
    )
    .values(used=_q.used - 1)
)
_reduced_after = _r.reduced + bindparam("b_amount")
_REDUCE_REWARD = Prepared(
    update(campaign_rewards)
    .where(_r.id == bindparam("b_reward_id"))
    .values(
        reduced=_reduced_after,
        status=case(
            (_reduced_after >= _r.amount, bindparam("b_final", type_=_r.status.type)),
            else_=_r.status,
        ),
    )
    .returning(_r.reduced)
)


# Effects that are a ledger posting: (ledger kind, the amount taken off the balance, memo).
_REVERSALS: dict[str, tuple[str, Callable[[EffectDoc], int], str]] = {
    EffectKind.POINTS_REVERSE_EARNED: (
        "points",
        lambda e: e.get("from_balance", 0),
        "earned points reversed",
    ),
    EffectKind.GROWTH_REVERSE: ("growth", lambda e: e.get("amount", 0), "growth value reversed"),
}


def _tender_posting(share: TenderDoc, order: Order, refund_id: str) -> Any:
    """(journal id, ledger kind, amount) of a tender share paid back by posting, else None."""
    if not share["amount"]:
        return None
    tender = next(t for t in order.tenders if t.id == share["tender_id"])
    kind = tender.kind.value
    if kind == "external":
        return None
    amount = share["points"] if kind == "points" else share["amount"]
    return f"refund:{refund_id}:{tender.id}", kind, amount


def _effect_posting(effect: EffectDoc, refund_id: str) -> Any:
    reversal = _REVERSALS.get(effect["type"])
    if reversal is None or not (taken := reversal[1](effect)):
        return None
    return f"refund:{refund_id}:{effect['type']}", reversal[0], -taken


def move_balances(
    conn: Connection, *, plan: PlanDoc, order: Order, refund_id: str
) -> dict[str, int]:
    """Move the customer's balances for every posting ``record_tenders`` and ``record_effects``
    will make, in one statement (``ledger.move_accounts``); returns journal id → balance after
    that posting, to pass to both as ``balances`` (each entry is used up). Empty when the
    postings are better made one by one: fewer than two, not mergeable, or on SQLite (an
    in-process statement costs no round trip: the one statement measured no faster there)."""
    if conn.dialect.name == "sqlite":
        return {}
    postings = [p for s in plan["tenders"] if (p := _tender_posting(s, order, refund_id))]
    postings += [p for e in plan["effects"] if (p := _effect_posting(e, refund_id))]
    journals = [p[0] for p in postings]
    if len(postings) < 2 or len(set(journals)) != len(journals):
        return {}
    afters = move_accounts(
        conn, order.customer_id, [(kind, amount) for _, kind, amount in postings]
    )
    return {} if afters is None else dict(zip(journals, afters, strict=True))


def record_tenders(
    conn: Connection,
    *,
    plan: PlanDoc,
    order: Order,
    refund_id: str,
    at: datetime,
    trail: AuditTrail,
    batch: RowBatch,
    balances: dict[str, int] | None = None,
) -> bool:
    """Move each tender's share; returns True when a gateway call is still to be made.
    ``balances``: from ``move_balances`` (those accounts have already moved)."""
    tenders = {t.id: t for t in order.tenders}
    waiting = False
    rows = []
    for share in plan["tenders"]:
        if not share["amount"]:
            continue
        tender = tenders[share["tender_id"]]
        kind = tender.kind.value
        status = "succeeded"
        key = None
        if kind == "external":
            status, waiting = "pending", True
            key = f"{refund_id}:{tender.id}"
            _gateway_request(conn, order, tender, share, refund_id=refund_id, at=at, batch=batch)
        else:
            ledger_kind = "gift_card" if kind == "gift_card" else kind
            amount = share["points"] if kind == "points" else share["amount"]
            journal_id = f"refund:{refund_id}:{tender.id}"
            post(
                conn,
                journal_id=journal_id,
                kind=ledger_kind,
                customer_id=order.customer_id,
                amount=amount,
                at=at,
                order_id=order.id,
                refund_id=refund_id,
                memo=f"refund to {kind} tender {tender.id}",
                batch=batch,
                after=balances.pop(journal_id, None) if balances else None,
            )
        rows.append(
            {
                "refund_id": refund_id,
                "tender_id": tender.id,
                "order_id": order.id,
                "customer_id": order.customer_id,
                "kind": kind,
                "amount": share["amount"],
                "points": share["points"],
                "status": status,
                "idempotency_key": key,
                "attempt": 1,
                "updated_at": at,
            }
        )
        trail.record(
            "refund.tender",
            order_id=order.id,
            refund_id=refund_id,
            tender_id=tender.id,
            kind=kind,
            amount=share["amount"],
            points=share["points"],
            status=status,
        )
    batch.tenders.extend(rows)  # written at the batch's flush
    return waiting


def _gateway_request(
    conn: Connection,
    order: Order,
    tender: Tender,
    share: TenderDoc,
    *,
    refund_id: str,
    at: datetime,
    batch: RowBatch,
) -> None:
    """An external tender's share goes to the gateway from the outbox, after commit, with the
    gateway's idempotency key ``<refund id>:<tender id>``."""
    key = f"{refund_id}:{tender.id}"
    enqueue(
        conn,
        topic=GATEWAY_TOPIC,
        key=f"gateway:{key}",
        at=at,
        payload={
            "refund_id": refund_id,
            "order_id": order.id,
            "customer_id": order.customer_id,  # the gateway_calls' rows carry it
            "tender_id": tender.id,
            "transaction_id": tender.gateway_txn_id,
            "amount": share["amount"],
            "currency": order.currency,
            "idempotency_key": key,
        },
        batch=batch,
    )


def record_effects(
    conn: Connection,
    *,
    plan: PlanDoc,
    order: Order,
    refund_id: str,
    at: datetime,
    trail: AuditTrail,
    locale: str,
    batch: RowBatch,
    balances: dict[str, int] | None = None,
    states: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """``balances``: from ``move_balances`` (those accounts have already moved). ``states``:
    the current state of the order's coupons and entitlements, when the caller read them in
    this transaction under a lock no other writer can pass (SQLite's write lock): they are
    then not read again before they change. Returns each effect as applied: the plan's
    effect with what the store adds (a reissued item's ``replacement_id``, balances and
    states before and after), for the ``refund.applied`` event the shop mirrors."""
    cid = order.customer_id
    rows = []
    applied: list[dict[str, Any]] = []
    step = _Step(conn, order, refund_id, at, batch, balances, states or {})
    for position, effect in enumerate(plan["effects"]):
        kind = effect["type"]
        before_after = _apply_effect(step, effect)
        rows.append(
            {
                "refund_id": refund_id,
                "customer_id": order.customer_id,
                "position": position,
                "type": kind,
                "data": compact(effect),
            }
        )
        applied.append({**effect, **before_after})
        data = {k: v for k, v in effect.items() if k != "type"}
        trail.record(
            f"effect.{kind}", order_id=order.id, refund_id=refund_id, **data, **before_after
        )
    batch.effects.extend(rows)
    for i, notice in enumerate(plan["notifications"]):
        enqueue(
            conn,
            topic="notify",
            key=f"notify:{refund_id}:{i}",
            at=at,
            batch=batch,
            payload={
                "customer_id": cid,
                "locale": locale,
                "order_id": order.id,
                "refund_id": refund_id,
                "template": notice["template"],
                "params": notice["params"],
            },
        )
    return applied


@dataclass(frozen=True, slots=True)
class _Step:
    """What every effect of one applied refund is stored against."""

    conn: Connection
    order: Order
    refund_id: str
    at: datetime
    batch: RowBatch
    balances: dict[str, int] | None
    states: dict[str, str]


def _apply_effect(step: _Step, effect: EffectDoc) -> dict[str, Any]:
    """Change the store for one effect; returns before/after figures for the audit entry. An
    effect kind the table does not know raises (a plan from a newer engine, or a bug): it must
    never be committed as if it had been stored."""
    kind = effect["type"]
    handler = _HANDLERS.get(kind)  # a StrEnum key is found by its text: no EffectKind(kind) call
    if handler is None:
        raise ValueError(f"{kind!r} is not a valid EffectKind")
    return handler(step, EffectKind(kind), effect)


def _reverse(step: _Step, kind: EffectKind, effect: EffectDoc) -> dict[str, Any]:
    ledger_kind, taken_of, memo = _REVERSALS[kind]
    taken = taken_of(effect)
    if not taken:
        return {}
    journal_id = f"refund:{step.refund_id}:{kind}"
    after = post(
        step.conn,
        journal_id=journal_id,
        kind=ledger_kind,
        customer_id=step.order.customer_id,
        amount=-taken,
        at=step.at,
        order_id=step.order.id,
        refund_id=step.refund_id,
        memo=memo,
        batch=step.batch,
        after=step.balances.pop(journal_id, None) if step.balances else None,
    )
    return {"balance_before": after + taken, "balance_after": after}


def _tier(step: _Step, kind: EffectKind, effect: EffectDoc) -> dict[str, Any]:
    _SET_TIER.run(step.conn, {"b_customer_id": step.order.customer_id, "b_tier": effect["to"]})
    return {}


_ITEM_STATE = {
    EffectKind.COUPON_RETURN: "available",
    EffectKind.ENTITLEMENT_REACTIVATE: "available",
    EffectKind.COUPON_FORFEIT: "forfeited",
    EffectKind.ENTITLEMENT_FORFEIT: "forfeited",
}


def _item_state(step: _Step, kind: EffectKind, effect: EffectDoc) -> dict[str, Any]:
    item = effect.get("coupon_id") or effect["entitlement_id"]
    return _set_state(step.conn, item, _ITEM_STATE[kind], step.at, before=step.states.get(item))


def _reissue(step: _Step, kind: EffectKind, effect: EffectDoc) -> dict[str, Any]:
    item = effect.get("coupon_id") or effect["entitlement_id"]
    valid_until = effect.get("valid_until")
    if valid_until is None:
        raise ValueError(f"a {kind} effect without valid_until: {effect!r}")
    old = _ENTITLEMENT.first(step.conn, {"b_item_id": item})
    new_id = f"{item}~{step.refund_id}"
    _INSERT_ENTITLEMENT.run(
        step.conn,
        {
            "id": new_id,
            "customer_id": step.order.customer_id,
            "category": old.category,
            "kind": old.kind,
            "value": effect["value"],
            "valid_until": datetime.fromisoformat(valid_until),
            "state": "available",
            "reissued_from": item,
            "updated_at": step.at,
        },
    )
    _set_state(step.conn, item, "replaced", step.at, before=old.state)
    return {"replacement_id": new_id}


def _less_spend(step: _Step, kind: EffectKind, effect: EffectDoc) -> dict[str, Any]:
    _LESS_SPEND.run(
        step.conn,
        {
            "b_customer_id": step.order.customer_id,
            "b_campaign_id": effect["campaign_id"],
            "b_amount": effect["amount"],
        },
    )
    return {}


def _release_quota(step: _Step, kind: EffectKind, effect: EffectDoc) -> dict[str, Any]:
    _RELEASE_QUOTA.run(
        step.conn,
        {"b_customer_id": step.order.customer_id, "b_campaign_id": effect["campaign_id"]},
    )
    return {}


def _reduce_reward(step: _Step, kind: EffectKind, effect: EffectDoc) -> dict[str, Any]:
    final = "clawed_back" if kind == EffectKind.REWARD_CLAWBACK else "cancelled"
    row = _REDUCE_REWARD.first(
        step.conn,
        {"b_reward_id": effect["reward_id"], "b_amount": effect["amount"], "b_final": final},
    )
    after = int(row.reduced)
    return {"reduced_before": after - effect["amount"], "reduced_after": after}


def _recorded_elsewhere(step: _Step, kind: EffectKind, effect: EffectDoc) -> dict[str, Any]:
    """Money and what the plan only says: the tenders and redeemed points are moved by
    record_tenders / move_balances, deductions and give-backs are in the refund's amount, and
    eligibility, shipping and label figures need no row beside the effect itself."""
    return {}


_Handler = Callable[[_Step, EffectKind, EffectDoc], dict[str, Any]]
_K = EffectKind
# Every kind, exactly once: tests/services/test_effects_table.py checks the table is complete.
_HANDLERS: dict[str, _Handler] = {
    _K.POINTS_REVERSE_EARNED: _reverse,
    _K.GROWTH_REVERSE: _reverse,
    _K.TIER_CHANGE: _tier,
    _K.COUPON_RETURN: _item_state,
    _K.ENTITLEMENT_REACTIVATE: _item_state,
    _K.COUPON_FORFEIT: _item_state,
    _K.ENTITLEMENT_FORFEIT: _item_state,
    _K.COUPON_REISSUE: _reissue,
    _K.ENTITLEMENT_REISSUE: _reissue,
    _K.CAMPAIGN_SPEND_DECREASE: _less_spend,
    _K.QUOTA_RELEASE: _release_quota,
    _K.FIRST_PURCHASE_RESTORED: _release_quota,
    _K.REWARD_CLAWBACK: _reduce_reward,
    _K.REWARD_CANCEL: _reduce_reward,
    _K.REFUND_TO_TENDER: _recorded_elsewhere,
    _K.POINTS_RETURN_REDEEMED: _recorded_elsewhere,
    _K.POINTS_CANCEL_PENDING: _recorded_elsewhere,
    _K.DISCOUNT_CLAWBACK: _recorded_elsewhere,
    _K.DISCOUNT_GIVE_BACK: _recorded_elsewhere,
    _K.KEPT_GIFT_DEDUCTION: _recorded_elsewhere,
    _K.KEPT_GIFT_GIVE_BACK: _recorded_elsewhere,
    _K.ELIGIBILITY_RESTORED: _recorded_elsewhere,
    _K.ELIGIBILITY_WITHHELD: _recorded_elsewhere,
    _K.SHIPPING_REFUND: _recorded_elsewhere,
    _K.RETURN_LABEL: _recorded_elsewhere,
}


def _set_state(
    conn: Connection, item_id: str, state: str, at: datetime, *, before: str | None = None
) -> dict[str, Any]:
    """``before``: the state just read in this transaction, if the caller has it."""
    params = {"b_item_id": item_id, "b_state": state, "b_at": at}
    if before is None and conn.dialect.name != "sqlite":
        swap = _SWAP_STATE_UNLINKED if state == "available" else _SWAP_STATE
        before = swap.first(conn, params)[0]
        return {"state_before": before, "state_after": state}
    if before is None:
        before = _ENTITLEMENT_STATE.first(conn, {"b_item_id": item_id})[0]
    (_SET_STATE_UNLINKED if state == "available" else _SET_STATE).run(conn, params)
    return {"state_before": before, "state_after": state}
