"""Reading a plan's inputs from the store: the order, its earlier refunds, the customer now.

Everything is read by key or by the order's own ids, never by scanning the customer's history,
so building a snapshot costs the same for a customer with 10 orders as with 10,000.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import (
    Connection,
    Integer,
    String,
    bindparam,
    cast,
    func,
    literal_column,
    null,
    select,
    union_all,
)

from refundry.domain.customer import (
    CampaignReward,
    CustomerSnapshot,
    Entitlement,
    OtherOrder,
    TierLevel,
)
from refundry.domain.express import snapshot_before, statuses_before
from refundry.domain.json_io import parse_history, parse_stored_order
from refundry.domain.json_text import compact_unsorted, parse_stored
from refundry.domain.order import CampaignKind, Order
from refundry.domain.plan_doc import PlanDoc
from refundry.domain.policy import Policy
from refundry.domain.request import PriorRefund
from refundry.services.errors import NotFound
from refundry.services.refunds.ledger import account_id
from refundry.services.refunds.memo import Memo
from refundry.store.prepared import Later, Prepared, pipelined
from refundry.store.tables import (
    campaign_quotas,
    campaign_rewards,
    campaign_spend,
    customers,
    entitlements,
    idempotency_keys,
    ledger_accounts,
    order_entitlements,
    orders,
    refund_reversals,
    refunds,
)
from refundry.store.types import UTCDateTime

__all__ = [
    "PlanInputs",
    "SentRead",
    "inputs_before_step",
    "load_plan_inputs",
    "plan_inputs_of",
    "send_plan_inputs_read",
]

# Statements built once: executing a prebuilt statement reuses its memoized cache key and
# compiled form, where building select() per call cost most of the apply path's time
# (bench/apply_bench.py --profile).

# PostgreSQL: the order row's lock, taken alone before anything is read (a statement sees the
# database as of its start, so what is read with the lock could predate the lock's holder).
_LOCK_ORDER = Prepared(
    select(orders.c.id).where(orders.c.id == bindparam("order_id")).with_for_update()
)

_la = ledger_accounts.c


def _balance(kind: str, customer_id: Any) -> Any:
    """The customer's ``kind`` balance (NULL if that account never moved), by account id."""
    prefix = account_id(kind, "")  # "<kind>:" followed by the customer id
    return (
        select(_la.balance)
        .where(_la.id == literal_column(f"'{prefix}'", String) + customer_id)
        .scalar_subquery()
    )


def _customer_columns(customer_id: Any) -> list[Any]:
    return [
        customers.c.id.label("t3"),
        customers.c.locale.label("t4"),
        customers.c.tier_table.label("t5"),
        customers.c.risk_flags.label("t6"),
        _balance("points", customer_id).label("n1"),
        _balance("wallet", customer_id).label("n2"),
        _balance("growth", customer_id).label("n3"),
    ]


def _plan_state(with_answer: bool) -> Any:
    """Everything keyed by the order id, in one round trip: UNION ALL of rows of five kinds
    (``k``), in columns ``t1…t6`` (text), ``n1…n3`` (numbers) and ``d1`` (a time):

    0. the order's document and customer id, the customer (NULL: no such customer) and its
       points, wallet and growth balances (NULL: never moved);
    1. the order's rewards: id, status;
    2. its earlier refunds' plans, by seq;
    3. (``with_answer``) the stored first answer of the idempotency key: request hash, response;
    4. the coupons and entitlements the order used: id, category, kind, state, value,
       valid_until.
    """
    text_null, number_null, no_time = null(), null(), null()
    order_and_customer = (
        select(
            literal_column("0", Integer).label("k"),
            orders.c.document.label("t1"),
            orders.c.customer_id.label("t2"),
            *_customer_columns(orders.c.customer_id),
            cast(null(), UTCDateTime()).label("d1"),  # typed: PostgreSQL unifies by it
        )
        .select_from(orders.outerjoin(customers, customers.c.id == orders.c.customer_id))
        .where(orders.c.id == bindparam("order_id"))
    )
    rewards = select(
        literal_column("1", Integer),
        campaign_rewards.c.id,
        campaign_rewards.c.status,
        *[text_null] * 4,
        *[number_null] * 3,
        no_time,
    ).where(campaign_rewards.c.order_id == bindparam("order_id"))
    # A refund whose 极速退款 an inspection partly reversed counts as its reversal's history
    # document: the accepted units and the money each tender kept (services/refunds/reversal).
    plans = (
        select(
            literal_column("2", Integer),
            func.coalesce(refund_reversals.c.history, refunds.c.plan),
            *[text_null] * 5,
            refunds.c.seq,
            *[number_null] * 2,
            no_time,
        )
        .select_from(
            refunds.outerjoin(refund_reversals, refund_reversals.c.refund_id == refunds.c.id)
        )
        .where(refunds.c.order_id == bindparam("order_id"))
    )
    e, oe = entitlements.c, order_entitlements.c
    used = (
        select(
            literal_column("4", Integer),
            e.id,
            e.category,
            e.kind,
            e.state,
            *[text_null] * 2,
            e.value,
            *[number_null] * 2,
            e.valid_until,
        )
        .select_from(order_entitlements.join(entitlements, e.id == oe.entitlement_id))
        .where(oe.order_id == bindparam("order_id"))
    )
    parts = [order_and_customer, rewards, plans, used]
    if with_answer:
        k = idempotency_keys.c
        answer = select(
            literal_column("3", Integer),
            k.request_hash,
            k.response,
            *[text_null] * 4,
            *[number_null] * 3,
            no_time,
        ).where(k.key == bindparam("idempotency_key"))
        parts.append(answer)
    both = union_all(*parts)
    return both.order_by(both.selected_columns.k, both.selected_columns.n1)


_PLAN_STATE = Prepared(_plan_state(with_answer=False))
_PLAN_STATE_AND_ANSWER = Prepared(_plan_state(with_answer=True))
_SPEND = select(campaign_spend).where(
    campaign_spend.c.customer_id == bindparam("customer_id"),
    campaign_spend.c.campaign_id.in_(bindparam("campaigns", expanding=True)),
)
_CUMULATIVE_REWARDS = select(campaign_rewards).where(
    campaign_rewards.c.customer_id == bindparam("customer_id"),
    campaign_rewards.c.campaign_id.in_(bindparam("campaigns", expanding=True)),
    campaign_rewards.c.order_id.is_(None),
)
_QUOTAS = select(campaign_quotas).where(
    campaign_quotas.c.customer_id == bindparam("customer_id"),
    campaign_quotas.c.campaign_id.in_(bindparam("campaigns", expanding=True)),
)
_OTHER_OPEN_ORDER = (
    select(orders.c.id)
    .where(
        orders.c.customer_id == bindparam("customer_id"),
        orders.c.id != bindparam("order_id"),
        orders.c.goods_refunded < orders.c.goods_units,
    )
    .limit(1)
)


# Parsed orders (validation and apportionment: most of a plan's CPU time), kept per process:
# preview and apply parse the same stored order, and orders are immutable. Keyed by the order
# digest (the stored document text and its rewards' statuses, exactly what was parsed) and the
# policy's minor_units_per_point (the only part of the policy parse_order reads).
_orders: Memo[tuple[str, int], Order] = Memo(1024)


def _parsed_order(text: str, status: dict[str, str], digest: str, policy: Policy) -> Order:
    key = (digest, policy.minor_units_per_point)
    order = _orders.get(key)
    if order is not None:
        return order
    document = parse_stored(text)
    for reward in document.get("rewards", []):
        reward["status"] = status.get(reward["id"], reward["status"])
    order = parse_stored_order(document, policy=policy)  # validated when it was ingested
    _orders.put(key, order)
    return order


class _UsedEntitlement(NamedTuple):
    id: str
    category: str
    kind: str
    state: str
    value: int
    valid_until: datetime | None


# Customer snapshots, by the values they were built from (see load_customer).
_snapshots: Memo[tuple[Any, ...], CustomerSnapshot] = Memo(1024)


@dataclass(frozen=True, slots=True)
class PlanInputs:
    order: Order
    order_digest: str  # of the stored document and its rewards' current status
    history: list[PriorRefund]
    customer: CustomerSnapshot
    # With ``load_plan_inputs(idempotency_key=…)``: the key's stored (request hash, response),
    # None if the key is new.
    key_answer: tuple[str, str] | None = None
    # The state of each coupon and entitlement the order used, as read with the rest.
    entitlement_states: dict[str, str] | None = None
    # The stored order document and its rewards' statuses, as parsed into ``order``.
    order_text: str = ""
    reward_status: dict[str, str] | None = None


def load_plan_inputs(
    conn: Connection,
    order_id: str,
    *,
    policy: Policy,
    lock: bool = False,
    idempotency_key: str | None = None,
    now: datetime | None = None,
) -> PlanInputs:
    """Load what ``plan_refund`` needs; ``lock`` takes the order row's lock first (PostgreSQL
    ``SELECT … FOR UPDATE``; on SQLite the write transaction already holds the database).
    ``idempotency_key`` also reads that key's stored answer (``key_answer``), after the lock.

    Round trips: one for the lock (PostgreSQL only) and the read of everything keyed by the
    order, coupons and entitlements it used included; and only for campaigns that need them,
    their state."""
    # PostgreSQL: the transaction's BEGIN, the lock and the read go out together and are
    # awaited once, at the end of the block (the server runs them in order: the read starts
    # after the lock is held).
    with pipelined(conn):
        sent = send_plan_inputs_read(conn, order_id, lock=lock, idempotency_key=idempotency_key)
    return plan_inputs_of(conn, sent, policy=policy, now=now)


@dataclass(frozen=True, slots=True)
class SentRead:
    """The plan inputs' read of an order, sent (inside ``pipelined``: not yet awaited)."""

    order_id: str
    lock: Later | None
    answer: Later


def send_plan_inputs_read(
    conn: Connection, order_id: str, *, lock: bool = False, idempotency_key: str | None = None
) -> SentRead:
    """``load_plan_inputs``' statements, sent; ``plan_inputs_of`` reads their answers (outside
    any pipeline: a campaign's state may be read then). A bulk batch sends an order's read
    with the writes of the order before it (services/bulk/one_order.py)."""
    params = {"order_id": order_id}
    query = _PLAN_STATE
    if idempotency_key is not None:
        params["idempotency_key"] = idempotency_key
        query = _PLAN_STATE_AND_ANSWER
    locked = lock and conn.dialect.name != "sqlite"
    lock_answer = _LOCK_ORDER.later(conn, {"order_id": order_id}) if locked else None
    return SentRead(order_id, lock_answer, query.later(conn, params))


def plan_inputs_of(
    conn: Connection, sent: SentRead, *, policy: Policy, now: datetime | None = None
) -> PlanInputs:
    """The plan inputs from the answers of ``sent`` (``order.not_found`` if there is no such
    order)."""
    order_id = sent.order_id
    found = sent.answer.rows()
    if sent.lock is not None and sent.lock.first() is None:
        raise NotFound(f"no order {order_id!r}", code="order.not_found")
    row = None
    status: dict[str, str] = {}
    stored_plans: list[str] = []
    key_answer = None
    used: list[_UsedEntitlement] = []
    for r in found:
        if r.k == 0:
            row = r
        elif r.k == 1:
            status[r.t1] = r.t2
        elif r.k == 2:
            stored_plans.append(r.t1)
        elif r.k == 3:
            key_answer = (str(r.t1), str(r.t2))
        else:
            used.append(_UsedEntitlement(r.t1, r.t2, r.t3, r.t4, r.n1, r.d1))
    if row is None:
        raise NotFound(f"no order {order_id!r}", code="order.not_found")
    customer_id = row.t2
    pairs = sorted(status.items())
    statuses = compact_unsorted(pairs)
    if not statuses.isascii():  # the digest's text stays json.dumps's (ensure_ascii)
        statuses = json.dumps(pairs, separators=(",", ":"))
    order_digest = hashlib.sha256(f"{row.t1}|{statuses}".encode()).hexdigest()
    order = _parsed_order(row.t1, status, order_digest, policy)

    plans = [parse_stored(p) for p in stored_plans]
    return PlanInputs(
        order=order,
        order_digest=order_digest,
        history=parse_history(plans),
        customer=load_customer(conn, customer_id, order, row=row, used=used, now=now),
        key_answer=key_answer,
        entitlement_states={e.id: e.state for e in used},
        order_text=row.t1,
        reward_status=status,
    )


def load_customer(
    conn: Connection,
    customer_id: str,
    order: Order,
    *,
    row: Any,
    used: list[_UsedEntitlement],
    now: datetime | None = None,
) -> CustomerSnapshot:
    """The customer as the plan sees it, from the plan-state read: ``row`` its customer part
    (``t3`` NULL if there is no such customer), ``used`` the coupons and entitlements the order
    used (from ``order_entitlements``)."""
    if row.t3 is None:
        raise NotFound(f"no customer {customer_id!r}", code="customer.not_found")
    spend, rewards, quotas, others = _campaign_state(conn, customer_id, order)
    flags = active_flags(parse_stored(row.t6), now)
    # Everything the snapshot is made of, as read: the same values give the same (immutable)
    # snapshot object, so apply re-reading what its preview read builds and hashes nothing.
    # The moment counts only through the risk flags in force then, so the flags are the key,
    # not ``now``: the previews of an order one after another (each at its own moment) share
    # one snapshot and its digest (services/refunds/apply.py's fingerprint).
    key = (
        customer_id,
        order.id,
        (row.t4, row.t5, row.t6, row.n1, row.n2, row.n3),  # locale … balances
        tuple(used),
        tuple(sorted(spend.items())),
        tuple(rewards),
        tuple(sorted(quotas.items())),
        others,
        flags,
    )
    snapshot = _snapshots.get(key)
    if snapshot is not None:
        return snapshot
    coupons: dict[str, Entitlement] = {}
    held: dict[str, Entitlement] = {}
    for item_id, category, kind, _state, value, valid_until in used:
        item = Entitlement(id=item_id, kind=kind, value=int(value), valid_until=valid_until)
        (coupons if category == "coupon" else held)[item_id] = item
    snapshot = CustomerSnapshot(
        customer_id=customer_id,
        locale=row.t4,
        points_balance=int(row.n1 or 0),
        wallet_balance=int(row.n2 or 0),
        growth_value=int(row.n3 or 0),
        tier_table=tuple(TierLevel(**t) for t in parse_stored(row.t5)),
        coupons=coupons,
        entitlements=held,
        campaign_spend=spend,
        campaign_rewards=tuple(rewards),
        quotas_used=quotas,
        other_orders=others,
        risk_flags=flags,
    )
    _snapshots.put(key, snapshot)
    return snapshot


def _campaign_state(
    conn: Connection, customer_id: str, order: Order
) -> tuple[dict[str, int], list[CampaignReward], dict[str, int], tuple[OtherOrder, ...]]:
    """The customer's campaign state the plan reads (SPEC §3 item 5): spend and rewards of
    cumulative-spend campaigns, participation quotas used, and another open paid order (for
    first-purchase eligibility)."""
    # Only the campaigns whose state the plan reads: spend for cumulative cashback, quotas for
    # campaigns that count participations, "another paid order" for first purchase.
    kinds = {c.id: c.kind for c in order.campaigns}
    cumulative = [cid for cid, k in kinds.items() if k == CampaignKind.CUMULATIVE_CASHBACK]
    counted = [
        c.id
        for c in order.campaigns
        if c.quota_per_customer is not None
        or c.kind in (CampaignKind.PARTICIPATION_QUOTA, CampaignKind.FIRST_PURCHASE)
    ]
    spend: dict[str, int] = {}
    quotas: dict[str, int] = {}
    rewards: list[CampaignReward] = []
    if cumulative:
        spend = {
            r.campaign_id: int(r.spend)
            for r in conn.execute(_SPEND, {"customer_id": customer_id, "campaigns": cumulative})
        }
        rewards = [
            CampaignReward(
                id=r.id,
                campaign_id=r.campaign_id,
                threshold=int(r.threshold),
                amount=int(r.amount) - int(r.reduced),  # what the reward still holds
                status=r.status,
            )
            for r in conn.execute(
                _CUMULATIVE_REWARDS, {"customer_id": customer_id, "campaigns": cumulative}
            )
        ]
    if counted:
        quotas = {
            r.campaign_id: int(r.used)
            for r in conn.execute(_QUOTAS, {"customer_id": customer_id, "campaigns": counted})
        }
    others: tuple[OtherOrder, ...] = ()
    if CampaignKind.FIRST_PURCHASE in kinds.values():
        # One other order not fully refunded is all first purchase needs to know; the partial
        # index ix_orders_open keeps this off the customer's refunded history.
        other = conn.execute(
            _OTHER_OPEN_ORDER, {"customer_id": customer_id, "order_id": order.id}
        ).first()
        if other is not None:
            others = (OtherOrder(id=other.id, paid=True, fully_refunded=False),)
    return spend, rewards, quotas, others


def active_flags(stored: list[Any], now: datetime | None) -> frozenset[str]:
    """The customer's risk flags in force: plain names (given by the shop) always; timed
    ``{"flag", "until"}`` entries (written by the risk rules) until they end. Without ``now``
    every timed flag counts (the cautious reading)."""
    flags = set()
    for item in stored:
        if isinstance(item, str):
            flags.add(item)
        elif (
            now is None
            or item.get("until") is None
            or (datetime.fromisoformat(item["until"]) > now)
        ):
            flags.add(item["flag"])
    return frozenset(flags)


def inputs_before_step(
    inputs: PlanInputs, applied: PlanDoc, seq: int, policy: Policy
) -> PlanInputs:
    """The inputs of the order's step ``seq`` (whose plan was ``applied``) as they would be now
    had that step not been applied: the steps before it, the customer and the order's rewards
    with the step's effects undone (domain/express.py). Planning the step again from these with
    every unit it refunded gives the applied plan back, as long as nothing else changed the
    customer in between (tests/services/test_reversals.py checks it)."""
    status = statuses_before(inputs.reward_status or {}, applied)
    order = inputs.order
    if status != (inputs.reward_status or {}):
        document = parse_stored(inputs.order_text)
        for reward in document.get("rewards", []):
            reward["status"] = status.get(reward["id"], reward["status"])
        order = parse_stored_order(document, policy=policy)
    return replace(
        inputs,
        order=order,
        order_digest=hashlib.sha256(f"{inputs.order_digest}|before:{seq}".encode()).hexdigest(),
        history=inputs.history[: seq - 1],
        customer=snapshot_before(inputs.customer, applied),
        key_answer=None,
        reward_status=status,
    )
