"""Risk features from the store, restrictions, notifications and an agent's lift (SPEC §5)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, func, insert, select

from refundry.demo import worked_examples as ex
from refundry.domain.policy import Policy
from refundry.domain.process_policy import ProcessPolicy, RiskRule
from refundry.domain.risk import RiskDecision, RiskFeatures, RuleMatch
from refundry.notifications import render
from refundry.services.audit.chain import AuditTrail
from refundry.services.audit.verify import verify_chain
from refundry.services.customers.risk import (
    active_restrictions,
    assess_customer,
    lift_suspension,
    record_restriction,
    risk_features,
    risk_flags_for_plan,
)
from refundry.services.errors import Conflict, NotFound
from refundry.services.orders.ingest import ingest_order
from refundry.services.refunds.apply import apply_refund, preview_refund
from refundry.services.uow import UnitOfWork
from refundry.store.tables import audit_log, cases, orders, outbox, refunds, risk_restrictions

NOW = datetime(2026, 11, 24, 4, 0, tzinfo=UTC)
POLICY = Policy()
CUSTOMER = ex.CUSTOMER


def ingest(engine: Engine, doc: Any, *, at: datetime = NOW) -> None:
    with UnitOfWork(engine) as uow:
        ingest_order(uow.conn, doc, policy=POLICY, now=at)
        uow.commit()


def paid_order(order_id: str, paid_at: datetime, customer: str = CUSTOMER) -> dict[str, Any]:
    doc = ex.order(order_id, [ex.line("A", 10000)], 10000, paid_at=paid_at.isoformat())
    doc["customer_id"] = customer
    return doc


def add_refund(conn: Connection, refund_id: str, order_id: str, at: datetime, total: int) -> None:
    conn.execute(
        insert(refunds).values(
            id=refund_id,
            order_id=order_id,
            customer_id=conn.execute(
                select(orders.c.customer_id).where(orders.c.id == order_id)
            ).scalar_one(),
            seq=1,
            status="refunded",
            reason="changed_mind",
            total=total,
            plan="{}",
            plan_hash="h",
            actor="agent:test",
            created_at=at,
            updated_at=at,
        )
    )


def add_case(conn: Connection, case_id: str, order_id: str, kind: str, at: datetime) -> None:
    conn.execute(
        insert(cases).values(
            id=case_id,
            order_id=order_id,
            customer_id=CUSTOMER,
            kind=kind,
            reason="not_received",
            return_method="none",
            state="under_review",
            state_since=at,
            lines="[]",
            merchant_ids='["m-1"]',
            amount=10000,
            created_at=at,
            updated_at=at,
        )
    )


def features(engine: Engine, at: datetime = NOW) -> RiskFeatures:
    with UnitOfWork(engine, readonly=True) as uow:
        return risk_features(uow.conn, CUSTOMER, now=at)


def test_features_count_only_this_customers_rows_inside_each_window(engine: Engine) -> None:
    ingest(engine, paid_order("o-old", NOW - timedelta(days=100)), at=NOW - timedelta(days=176))
    for name, days_ago in (("o-60", 60), ("o-20", 20), ("o-5", 5), ("o-1", 1)):
        ingest(engine, paid_order(name, NOW - timedelta(days=days_ago)))
    ingest(engine, paid_order("o-other", NOW - timedelta(days=2), customer="c-other"))
    with UnitOfWork(engine) as uow:
        c = uow.conn
        add_refund(c, "r-89d", "o-old", NOW - timedelta(days=89), 1000)
        add_refund(c, "r-91d", "o-old", NOW - timedelta(days=91), 7000)  # outside 90 days
        add_refund(c, "r-30d", "o-60", NOW - timedelta(days=30), 2000)  # on the 30-day edge
        add_refund(c, "r-29d", "o-20", NOW - timedelta(days=29), 3000)
        add_refund(c, "r-now", "o-20", NOW, 400)
        add_refund(c, "r-later", "o-5", NOW + timedelta(hours=1), 5000)  # after "now"
        add_refund(c, "r-other", "o-other", NOW - timedelta(days=1), 9000)
        add_case(c, "k-10d", "o-20", "refund_only", NOW - timedelta(days=10))
        add_case(c, "k-31d", "o-60", "refund_only", NOW - timedelta(days=31))
        add_case(c, "k-ret", "o-5", "return_and_refund", NOW - timedelta(days=2))
        uow.commit()
    assert features(engine) == RiskFeatures(
        refund_count_30d=2,  # r-29d, r-now
        refund_count_90d=4,  # r-89d, r-30d, r-29d, r-now
        refund_only_count_30d=1,  # k-10d
        refund_amount_30d=3400,
        refund_rate_90d_pct=50,  # o-60 and o-20 of o-60, o-20, o-5, o-1 (o-old paid 100d ago)
        order_count_90d=4,
        account_age_days=None,  # the shop sent no account creation time
        known_for_days=176,  # first ingested 176 days ago
    )


def test_refund_rate_rounds_down_and_is_zero_without_orders(engine: Engine) -> None:
    for name in ("a", "b", "c"):
        ingest(engine, paid_order(name, NOW - timedelta(days=3)))
    with UnitOfWork(engine) as uow:
        add_refund(uow.conn, "r-a", "a", NOW, 100)
        add_refund(uow.conn, "r-b", "b", NOW, 100)
        uow.commit()
    assert features(engine).refund_rate_90d_pct == 66  # 2 of 3
    assert features(engine, NOW + timedelta(days=91)).refund_rate_90d_pct == 0


def test_a_refund_applied_through_the_apply_path_counts(engine: Engine) -> None:
    opened = (NOW - timedelta(days=3, hours=1)).isoformat()
    ingest(
        engine,
        {"order": ex.THRESHOLD, "customer": {"account_created_at": opened}},
        at=NOW - timedelta(days=3),
    )
    req = ex.request("o-500-100", "Y")
    plan = preview_refund(engine, order_id="o-500-100", request=req, policy=POLICY, now=NOW)
    apply_refund(
        engine,
        order_id="o-500-100",
        request=req,
        expected_plan_hash=plan["plan_hash"],
        idempotency_key="k1",
        actor="agent:test",
        now=NOW,
        policy=POLICY,
    )
    assert features(engine) == RiskFeatures(
        refund_count_30d=1,
        refund_count_90d=1,
        refund_amount_30d=10000,
        refund_rate_90d_pct=100,
        order_count_90d=1,
        account_age_days=3,
        known_for_days=3,
    )
    with UnitOfWork(engine, readonly=True) as uow:
        decision = assess_customer(uow.conn, CUSTOMER, now=NOW, policy=ProcessPolicy())
    # 100% of one order is no pattern: frequent_refunder waits for 3 orders in 90 days.
    assert decision.decision == "manual_review"
    assert decision.reasons == (
        ("new_account_large", "account_age_days = 3 < 7: the account is less than a week old"),
    )


def test_unknown_customer_is_not_found(engine: Engine) -> None:
    with UnitOfWork(engine, readonly=True) as uow, pytest.raises(NotFound) as err:
        risk_features(uow.conn, "c-nobody", now=NOW)
    assert err.value.code == "customer.not_found"


RESTRICT = RiskDecision(
    "restrict_high_value",
    (RuleMatch("frequent_refunder", "restrict_high_value", 30, "refund_rate_90d_pct = 75 ≥ 60"),),
)
SUSPEND = RiskDecision(
    "suspend",
    (RuleMatch("serial_refunder", "suspend", 30, "refund_count_30d = 9 ≥ 8"),),
)


def record(engine: Engine, decision: RiskDecision, at: datetime = NOW) -> list[int]:
    with UnitOfWork(engine) as uow:
        trail = AuditTrail(actor="system:risk", at=at, customer_id=CUSTOMER)
        ids = record_restriction(uow.conn, CUSTOMER, decision=decision, now=at, trail=trail)
        trail.flush(uow.conn)
        uow.commit()
    return ids


def audit(engine: Engine, action: str) -> list[tuple[str, dict[str, Any]]]:
    with UnitOfWork(engine, readonly=True) as uow:
        rows = uow.conn.execute(
            select(audit_log.c.actor, audit_log.c.data)
            .where(audit_log.c.action == action)
            .order_by(audit_log.c.seq)
        ).all()
        assert verify_chain(uow.conn).ok
    return [(actor, json.loads(data)) for actor, data in rows]


def notifications(engine: Engine) -> list[tuple[str, dict[str, Any]]]:
    with UnitOfWork(engine, readonly=True) as uow:
        rows = uow.conn.execute(
            select(outbox.c.key, outbox.c.payload)
            .where(outbox.c.topic == "notify")
            .order_by(outbox.c.id)
        ).all()
    return [(key, json.loads(payload)) for key, payload in rows]


def restriction_state(engine: Engine, at: datetime) -> tuple[set[str], frozenset[str]]:
    with UnitOfWork(engine, readonly=True) as uow:
        return (
            active_restrictions(uow.conn, CUSTOMER, now=at),
            risk_flags_for_plan(uow.conn, CUSTOMER, now=at),
        )


def test_high_value_restriction_is_recorded_notified_audited_and_ends(engine: Engine) -> None:
    ingest(engine, ex.THRESHOLD)
    [rid] = record(engine, RESTRICT)
    with UnitOfWork(engine, readonly=True) as uow:
        row = uow.conn.execute(select(risk_restrictions)).one()
    assert (row.id, row.customer_id, row.kind, row.rule, row.reason) == (
        rid,
        CUSTOMER,
        "restrict_high_value",
        "frequent_refunder",
        "refund_rate_90d_pct = 75 ≥ 60",
    )
    assert (row.since, row.until, row.lifted_at) == (NOW, NOW + timedelta(days=30), None)
    assert notifications(engine) == [
        (
            f"notify:risk:{rid}",
            {
                "customer_id": CUSTOMER,
                "locale": "zh-CN",
                "template": "risk.restricted_high_value",
                "params": {"days": 30, "reason": "refund_rate_90d_pct = 75 ≥ 60"},
            },
        )
    ]
    assert audit(engine, "risk.restrict_high_value") == [
        (
            "system:risk",
            {
                "customer_id": CUSTOMER,
                "restriction_id": rid,
                "rule": "frequent_refunder",
                "reason": "refund_rate_90d_pct = 75 ≥ 60",
                "until": "2026-12-24T04:00:00Z",
            },
        )
    ]
    in_force = ({"restrict_high_value"}, frozenset({"frequent_refunder"}))
    assert restriction_state(engine, NOW) == in_force
    assert restriction_state(engine, NOW + timedelta(days=30, seconds=-1)) == in_force
    assert restriction_state(engine, NOW + timedelta(days=30)) == (set(), frozenset())


def test_a_restriction_in_force_is_not_recorded_or_notified_twice(engine: Engine) -> None:
    ingest(engine, ex.THRESHOLD)
    first = record(engine, RESTRICT)
    assert record(engine, RESTRICT, NOW + timedelta(days=1)) == []
    again = record(engine, RESTRICT, NOW + timedelta(days=30))  # the first one has ended
    assert len(first) == len(again) == 1 and first != again
    assert len(notifications(engine)) == 2


def test_approve_and_review_record_nothing(engine: Engine) -> None:
    ingest(engine, ex.THRESHOLD)
    review = RiskDecision("manual_review", (RuleMatch("x", "manual_review", 0, "because"),))
    assert record(engine, RiskDecision("approve")) == record(engine, review) == []
    with UnitOfWork(engine, readonly=True) as uow:
        count = select(func.count()).select_from
        assert uow.conn.execute(count(risk_restrictions)).scalar() == 0
        # nothing but the orders' own order.ingested events
        told = count(outbox).where(outbox.c.key.not_like("event:order.ingested:%"))
        assert uow.conn.execute(told).scalar() == 0


def test_suspension_lasts_until_an_agent_lifts_it(engine: Engine) -> None:
    ingest(engine, ex.THRESHOLD)
    [sid] = record(engine, SUSPEND)
    assert restriction_state(engine, NOW + timedelta(days=3650))[0] == {"suspend"}
    lifted_at = NOW + timedelta(days=2)
    assert lift_suspension(
        engine, customer_id=CUSTOMER, actor="agent:alice", reason="verified by phone", now=lifted_at
    ) == [sid]
    with UnitOfWork(engine, readonly=True) as uow:
        row = uow.conn.execute(select(risk_restrictions)).one()
    assert (row.until, row.lifted_at, row.lifted_by, row.lift_reason) == (
        None,
        lifted_at,
        "agent:alice",
        "verified by phone",
    )
    assert restriction_state(engine, lifted_at) == (set(), frozenset())
    assert notifications(engine) == [
        (
            f"notify:risk:{sid}",
            {
                "customer_id": CUSTOMER,
                "locale": "zh-CN",
                "template": "risk.refund_rights_suspended",
                "params": {"days": None, "reason": "refund_count_30d = 9 ≥ 8"},
            },
        ),
        (
            f"notify:risk:{sid}:lifted",
            {
                "customer_id": CUSTOMER,
                "locale": "zh-CN",
                "template": "risk.refund_rights_restored",
                "params": {},
            },
        ),
    ]
    assert audit(engine, "risk.suspension_lifted") == [
        (
            "agent:alice",
            {
                "customer_id": CUSTOMER,
                "restriction_ids": [sid],
                "rules": ["serial_refunder"],
                "since": ["2026-11-24T04:00:00Z"],
                "reason": "verified by phone",
            },
        )
    ]
    with pytest.raises(Conflict) as err:
        lift_suspension(
            engine, customer_id=CUSTOMER, actor="agent:alice", reason="x", now=lifted_at
        )
    assert err.value.code == "risk.not_suspended"


def test_lifting_without_a_suspension_is_refused_and_changes_nothing(engine: Engine) -> None:
    ingest(engine, ex.THRESHOLD)
    record(engine, RESTRICT)
    with pytest.raises(Conflict) as err:
        lift_suspension(engine, customer_id=CUSTOMER, actor="agent:bob", reason="x", now=NOW)
    assert err.value.code == "risk.not_suspended"
    assert restriction_state(engine, NOW)[0] == {"restrict_high_value"}
    assert len(notifications(engine)) == 1
    assert audit(engine, "risk.suspension_lifted") == []


def test_suspension_with_a_rate_rule_keeps_the_restriction_after_the_lift(engine: Engine) -> None:
    ingest(engine, ex.THRESHOLD)
    both = RiskDecision("suspend", RESTRICT.matches + SUSPEND.matches)
    assert len(record(engine, both)) == 2
    assert restriction_state(engine, NOW)[0] == {"restrict_high_value", "suspend"}
    lift_suspension(engine, customer_id=CUSTOMER, actor="agent:alice", reason="ok", now=NOW)
    assert restriction_state(engine, NOW) == (
        {"restrict_high_value"},
        frozenset({"frequent_refunder"}),
    )


def test_assessed_suspension_end_to_end(engine: Engine) -> None:
    policy = ProcessPolicy(
        risk_rules=(RiskRule("two_refunds", "refund_count_30d", ">=", 2, "suspend", 0, "busy"),)
    )
    ingest(engine, paid_order("a", NOW - timedelta(days=3)))
    ingest(engine, paid_order("b", NOW - timedelta(days=3)))
    with UnitOfWork(engine) as uow:
        add_refund(uow.conn, "r-a", "a", NOW - timedelta(days=1), 100)
        add_refund(uow.conn, "r-b", "b", NOW, 100)
        decision = assess_customer(uow.conn, CUSTOMER, now=NOW, policy=policy)
        trail = AuditTrail(actor="system:risk", at=NOW, customer_id=CUSTOMER)
        record_restriction(uow.conn, CUSTOMER, decision=decision, now=NOW, trail=trail)
        trail.flush(uow.conn)
        uow.commit()
    assert decision.reasons == (("two_refunds", "refund_count_30d = 2 ≥ 2: busy"),)
    assert restriction_state(engine, NOW)[0] == {"suspend"}


def test_risk_notifications_render_in_both_languages(engine: Engine) -> None:
    ingest(engine, ex.THRESHOLD)
    record(engine, RiskDecision("suspend", RESTRICT.matches + SUSPEND.matches))
    lift_suspension(engine, customer_id=CUSTOMER, actor="agent:alice", reason="ok", now=NOW)
    texts = [
        render(p["template"], p["params"], locale).text
        for _, p in notifications(engine)
        for locale in ("zh-CN", "en")
    ]
    assert texts == [
        "根据您近期的退款记录，您在30天内暂不能参与高价值活动。"
        "原因：refund_rate_90d_pct = 75 ≥ 60。",
        "Based on your recent refunds, you cannot join high-value campaigns for 30 days. "
        "Reason: refund_rate_90d_pct = 75 ≥ 60.",
        "您的退款申请权限已被暂停。原因：refund_count_30d = 9 ≥ 8。如有疑问请联系客服。",
        "Your right to request refunds has been suspended. Reason: refund_count_30d = 9 ≥ 8. "
        "Please contact customer service if you have any questions.",
        "您的退款申请权限已恢复。",
        "Your right to request refunds has been restored.",
    ]
