"""Risk control from the store: a customer's features, the decision, and the restrictions that
outlive a case (SPEC §5).

Features are read per customer and time window only: the customer's orders (ix_orders_customer)
and their refunds (ix_refunds_order), the customer's cases (ix_cases_customer). Windows are
rolling and end at ``now``: ``now - N days < t <= now``.

A restriction is a ``risk_restrictions`` row: ``restrict_high_value`` for the rule's days,
``suspend`` with no end until an agent lifts it (``lift_suspension``). Recording one queues a
notification and audits it in the caller's transaction.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    and_,
    case,
    exists,
    func,
    insert,
    or_,
    select,
    update,
)

from refundry.domain.json_text import instant
from refundry.domain.process_policy import ProcessPolicy
from refundry.domain.risk import RiskDecision, RiskFeatures, RuleMatch, assess
from refundry.services.audit.chain import AuditTrail
from refundry.services.errors import Conflict, NotFound
from refundry.services.outbox.messages import enqueue
from refundry.services.uow import UnitOfWork
from refundry.store.tables import cases, customers, orders, refunds, risk_restrictions

__all__ = [
    "FREQUENT_REFUNDER",
    "active_restrictions",
    "assess_customer",
    "in_force",
    "lift_suspension",
    "record_restriction",
    "risk_features",
    "risk_flags_for_plan",
]

# The customer risk flag the refund plan reads while a high-value restriction is active.
FREQUENT_REFUNDER = "frequent_refunder"

TEMPLATES = {
    "restrict_high_value": "risk.restricted_high_value",
    "suspend": "risk.refund_rights_suspended",
}
RESTORED_TEMPLATE = "risk.refund_rights_restored"


def _refund_figures(conn: Connection, customer_id: str, now: datetime) -> tuple[int, int, int]:
    """(count in 30 days, count in 90 days, amount in 30 days) of the customer's refunds."""
    since_30, since_90 = now - timedelta(days=30), now - timedelta(days=90)
    r = refunds.c
    in_30 = r.created_at > since_30
    row = conn.execute(
        select(
            func.coalesce(func.sum(case((in_30, 1), else_=0)), 0),
            func.count(),
            func.coalesce(func.sum(case((in_30, r.total), else_=0)), 0),
        )
        # ix_refunds_customer: the customer's refunds, no join with their orders
        .where(r.customer_id == customer_id, r.created_at > since_90, r.created_at <= now)
    ).one()
    return int(row[0]), int(row[1]), int(row[2])


def _orders_90d(conn: Connection, customer_id: str, now: datetime) -> tuple[int, int]:
    """(orders paid in the last 90 days, the percentage of them that have a refund by ``now``,
    rounded down so the figure never overstates; 0 without orders)."""
    o = orders.c
    refunded = exists().where(refunds.c.order_id == o.id, refunds.c.created_at <= now)
    paid, with_refund = conn.execute(
        select(func.count(), func.coalesce(func.sum(case((refunded, 1), else_=0)), 0)).where(
            o.customer_id == customer_id,
            o.paid_at > now - timedelta(days=90),
            o.paid_at <= now,
        )
    ).one()
    return int(paid), int(with_refund) * 100 // int(paid) if paid else 0


def risk_features(conn: Connection, customer_id: str, *, now: datetime) -> RiskFeatures:
    """The customer's features at ``now``. The account's age is the shop's account creation
    time (``customers.account_created_at``); without it the age is unknown (None) and the time
    refundry first saw the customer is its lower bound (``known_for_days``)."""
    row = conn.execute(
        select(customers.c.created_at, customers.c.account_created_at).where(
            customers.c.id == customer_id
        )
    ).first()
    if row is None:
        raise NotFound(f"no customer {customer_id}", code="customer.not_found")
    opened = row.account_created_at
    count_30, count_90, amount_30 = _refund_figures(conn, customer_id, now)
    refund_only_30 = conn.execute(
        select(func.count()).where(
            cases.c.customer_id == customer_id,
            cases.c.created_at > now - timedelta(days=30),
            cases.c.created_at <= now,
            cases.c.kind == "refund_only",
        )
    ).scalar_one()
    orders_90, rate_90 = _orders_90d(conn, customer_id, now)
    return RiskFeatures(
        refund_count_30d=count_30,
        refund_count_90d=count_90,
        refund_only_count_30d=int(refund_only_30),
        refund_amount_30d=amount_30,
        refund_rate_90d_pct=rate_90,
        order_count_90d=orders_90,
        account_age_days=None if opened is None else max(0, (now - opened).days),
        known_for_days=max(0, (now - row.created_at).days),
    )


def assess_customer(
    conn: Connection, customer_id: str, *, now: datetime, policy: ProcessPolicy
) -> RiskDecision:
    return assess(risk_features(conn, customer_id, now=now), policy.risk_rules)


def _active(customer_id: str, now: datetime) -> list[ColumnElement[bool]]:
    rr = risk_restrictions.c
    return [
        rr.customer_id == customer_id,
        rr.lifted_at.is_(None),
        rr.since <= now,
        or_(rr.until.is_(None), rr.until > now),
    ]


def in_force(customer_id: str, now: datetime) -> ColumnElement[bool]:
    """The customer's restriction rows in force at ``now`` (a WHERE clause)."""
    return and_(*_active(customer_id, now))


def active_restrictions(conn: Connection, customer_id: str, *, now: datetime) -> set[str]:
    """The kinds (restrict_high_value, suspend) in force for the customer at ``now``."""
    rr = risk_restrictions.c
    rows = conn.execute(select(rr.kind).distinct().where(and_(*_active(customer_id, now))))
    return {str(kind) for (kind,) in rows}


def risk_flags_for_plan(conn: Connection, customer_id: str, *, now: datetime) -> frozenset[str]:
    """The risk flags the refund plan reads: ``frequent_refunder`` while restricted."""
    if "restrict_high_value" in active_restrictions(conn, customer_id, now=now):
        return frozenset({FREQUENT_REFUNDER})
    return frozenset()


def _lock_customer(conn: Connection, customer_id: str) -> str:
    """Serialise restriction changes per customer (PostgreSQL row lock; SQLite's writer lock
    is already held). Returns the customer's locale."""
    locale = conn.execute(
        select(customers.c.locale).where(customers.c.id == customer_id).with_for_update()
    ).scalar_one_or_none()
    if locale is None:
        raise NotFound(f"no customer {customer_id}", code="customer.not_found")
    return str(locale)


def _notify(
    conn: Connection,
    *,
    key: str,
    customer_id: str,
    locale: str,
    template: str,
    params: dict[str, object],
    at: datetime,
) -> None:
    enqueue(
        conn,
        topic="notify",
        key=key,
        at=at,
        payload={
            "customer_id": customer_id,
            "locale": locale,
            "template": template,
            "params": params,
        },
    )


def record_restriction(
    conn: Connection,
    customer_id: str,
    *,
    decision: RiskDecision,
    now: datetime,
    trail: AuditTrail,
) -> list[int]:
    """Write a restriction per matched restricting rule, in the caller's transaction; returns
    the new rows' ids. A kind already in force is not recorded again (nor notified twice); the
    next assessment after it ends records it afresh. ``trail`` is flushed by the caller."""
    wanted = decision.restrictions
    if not wanted:
        return []
    locale = _lock_customer(conn, customer_id)
    in_force = active_restrictions(conn, customer_id, now=now)
    created: list[int] = []
    for match in wanted:
        if match.decision in in_force:
            continue
        in_force.add(match.decision)
        created.append(_record_one(conn, customer_id, match, now, trail, locale))
    return created


def _record_one(
    conn: Connection,
    customer_id: str,
    match: RuleMatch,
    now: datetime,
    trail: AuditTrail,
    locale: str,
) -> int:
    days = match.days if match.decision == "restrict_high_value" else None
    until = now + timedelta(days=days) if days is not None else None
    result = conn.execute(
        insert(risk_restrictions).values(
            customer_id=customer_id,
            kind=match.decision,
            rule=match.rule,
            reason=match.explanation,
            since=now,
            until=until,
        )
    )
    (restriction_id,) = result.inserted_primary_key or (None,)
    assert restriction_id is not None
    if match.decision == "restrict_high_value":
        # The refund plan reads the customer's risk flags from the customer row: a timed flag.
        stored = json.loads(
            conn.execute(
                select(customers.c.risk_flags).where(customers.c.id == customer_id)
            ).scalar_one()
        )
        stored.append(
            {
                "flag": "frequent_refunder",
                "until": instant(until) if until else None,
                "restriction_id": int(restriction_id),
            }
        )
        conn.execute(
            update(customers)
            .where(customers.c.id == customer_id)
            .values(risk_flags=json.dumps(stored))
        )
    _notify(
        conn,
        key=f"notify:risk:{restriction_id}",
        customer_id=customer_id,
        locale=locale,
        template=TEMPLATES[match.decision],
        params={"days": days, "reason": match.explanation},
        at=now,
    )
    trail.record(
        f"risk.{match.decision}",
        customer_id=customer_id,
        restriction_id=restriction_id,
        rule=match.rule,
        reason=match.explanation,
        until=instant(until) if until else None,
    )
    return int(restriction_id)


def lift_suspension(
    engine: Engine, *, customer_id: str, actor: str, reason: str, now: datetime
) -> list[int]:
    """An agent restores the customer's refund rights; returns the lifted rows' ids.
    Refused with ``risk.not_suspended`` when no suspension is in force."""
    rr = risk_restrictions.c
    with UnitOfWork(engine) as uow:
        conn = uow.conn
        locale = _lock_customer(conn, customer_id)
        rows = conn.execute(
            select(rr.id, rr.rule, rr.since)
            .where(and_(*_active(customer_id, now)), rr.kind == "suspend")
            .order_by(rr.id)
            .with_for_update()
        ).all()
        if not rows:
            raise Conflict(
                f"customer {customer_id} has no suspension in force", code="risk.not_suspended"
            )
        ids = [int(r.id) for r in rows]
        conn.execute(
            update(risk_restrictions)
            .where(rr.id.in_(ids))
            .values(lifted_at=now, lifted_by=actor, lift_reason=reason)
        )
        _notify(
            conn,
            key=f"notify:risk:{ids[0]}:lifted",
            customer_id=customer_id,
            locale=locale,
            template=RESTORED_TEMPLATE,
            params={},
            at=now,
        )
        trail = AuditTrail(actor=actor, at=now, customer_id=customer_id)
        trail.record(
            "risk.suspension_lifted",
            customer_id=customer_id,
            restriction_ids=ids,
            rules=[str(r.rule) for r in rows],
            since=[instant(r.since) for r in rows],
            reason=reason,
        )
        trail.flush(conn)
        uow.commit()
    return ids
