"""Ingest, preview and apply on the real databases (SQLite file and PostgreSQL)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from refundry.demo import worked_examples as ex
from refundry.domain.policy import Policy
from refundry.services.audit.verify import verify_chain
from refundry.services.errors import PlanStale, Unprocessable
from refundry.services.orders.ingest import ingest_order
from refundry.services.refunds.apply import apply_refund, preview_refund
from refundry.services.refunds.ledger import balance
from refundry.services.uow import UnitOfWork
from refundry.store.tables import (
    campaign_rewards,
    entitlements,
    ledger_accounts,
    ledger_postings,
    order_lines,
    outbox,
    refunds,
)

NOW = datetime(2026, 11, 24, 4, 0, tzinfo=UTC)
POLICY = Policy()


def ingest(engine: Engine, doc: Any) -> None:
    with UnitOfWork(engine) as uow:
        ingest_order(uow.conn, doc, policy=POLICY, now=NOW)
        uow.commit()


def apply(engine: Engine, order_id: str, *line_ids: str, key: str) -> Any:
    req = ex.request(order_id, *line_ids)
    plan = preview_refund(engine, order_id=order_id, request=req, policy=POLICY, now=NOW)
    return apply_refund(
        engine,
        order_id=order_id,
        request=req,
        expected_plan_hash=plan["plan_hash"],
        idempotency_key=key,
        actor="agent:test",
        now=NOW,
        policy=POLICY,
    )


def ledgers_balance(engine: Engine) -> None:
    with UnitOfWork(engine, readonly=True) as uow:
        sums = dict(
            uow.conn.execute(
                select(ledger_postings.c.account_id, func.sum(ledger_postings.c.amount)).group_by(
                    ledger_postings.c.account_id
                )
            ).all()
        )
        for acc in uow.conn.execute(select(ledger_accounts)):
            if not acc.id.startswith("shop/"):
                assert acc.balance == sums.get(acc.id, 0), acc.id
        journals = uow.conn.execute(
            select(ledger_postings.c.journal_id, func.sum(ledger_postings.c.amount)).group_by(
                ledger_postings.c.journal_id
            )
        ).all()
        assert all(total == 0 for _, total in journals)


def test_threshold_example_applies_100_then_400_and_everything_balances(engine: Engine) -> None:
    ingest(engine, ex.THRESHOLD)
    first = apply(engine, "o-500-100", "Y", key="k1")
    assert first.plan["amount"]["total"] == 10000
    assert first.status == "refunding"  # the card refund waits for the gateway
    second = apply(engine, "o-500-100", "X", key="k2")
    assert second.plan["amount"]["total"] == 40000
    with UnitOfWork(engine, readonly=True) as uow:
        qty = dict(
            uow.conn.execute(select(order_lines.c.line_id, order_lines.c.refunded_qty)).all()
        )
        assert qty == {"X": 1, "Y": 1}
        gateway = [
            json.loads(p)
            for (p,) in uow.conn.execute(
                select(outbox.c.payload)
                .where(outbox.c.topic == "gateway.refund")
                .order_by(outbox.c.id)
            )
        ]
        assert [g["amount"] for g in gateway] == [10000, 40000]
        assert verify_chain(uow.conn).ok
    ledgers_balance(engine)


def test_points_example_reverses_from_balance_and_deducts_shortfall(engine: Engine) -> None:
    ingest(engine, {"order": ex.POINTS, "customer": {"points_balance": 120 - 500}})
    result = apply(engine, "o-points", "A", key="kp")
    assert result.plan["amount"]["total"] == 49620
    with UnitOfWork(engine, readonly=True) as uow:
        assert balance(uow.conn, "points", ex.CUSTOMER) == 0
    ledgers_balance(engine)


def test_expired_coupon_is_reissued_for_seven_days(engine: Engine) -> None:
    ingest(engine, {"order": ex.COUPON, "customer": {"coupons": ex.COUPON_SNAPSHOT["coupons"]}})
    result = apply(engine, "o-coupon", "A", key="kc")
    assert result.plan["amount"]["total"] == 27000
    with UnitOfWork(engine, readonly=True) as uow:
        rows = {r.id: r for r in uow.conn.execute(select(entitlements))}
    assert rows["CP-30"].state == "replaced"
    new = rows[f"CP-30~{result.refund_id}"]
    assert (new.state, new.value, new.reissued_from) == ("available", 3000, "CP-30")
    assert new.valid_until == datetime(2026, 12, 1, 4, 0, tzinfo=UTC)


def test_same_key_replays_first_result_and_moves_money_once(engine: Engine) -> None:
    ingest(engine, ex.THRESHOLD)
    first = apply(engine, "o-500-100", "Y", key="same")
    req = ex.request("o-500-100", "Y")
    again = apply_refund(
        engine,
        order_id="o-500-100",
        request=req,
        expected_plan_hash=first.plan["plan_hash"],
        idempotency_key="same",
        actor="agent:test",
        now=NOW,
        policy=POLICY,
    )
    assert again.replayed and again.refund_id == first.refund_id
    with UnitOfWork(engine, readonly=True) as uow:
        assert uow.conn.execute(select(func.count()).select_from(refunds)).scalar() == 1


def test_same_key_other_request_is_refused_with_its_code(engine: Engine) -> None:
    ingest(engine, ex.THRESHOLD)
    first = apply(engine, "o-500-100", "Y", key="k")
    with pytest.raises(Unprocessable) as err:
        apply_refund(
            engine,
            order_id="o-500-100",
            request=ex.request("o-500-100", "X"),
            expected_plan_hash=first.plan["plan_hash"],
            idempotency_key="k",
            actor="agent:test",
            now=NOW,
            policy=POLICY,
        )
    assert err.value.code == "idempotency.key_reused"


def test_stale_preview_is_refused_with_the_new_plan(engine: Engine) -> None:
    ingest(engine, ex.THRESHOLD)
    req = ex.request("o-500-100", "X")
    old = preview_refund(engine, order_id="o-500-100", request=req, policy=POLICY, now=NOW)
    apply(engine, "o-500-100", "Y", key="first")  # the state moves under the preview of X
    with pytest.raises(PlanStale) as err:
        apply_refund(
            engine,
            order_id="o-500-100",
            request=req,
            expected_plan_hash=old["plan_hash"],
            idempotency_key="second",
            actor="agent:test",
            now=NOW,
            policy=POLICY,
        )
    assert err.value.code == "plan.stale"
    assert err.value.plan["amount"]["total"] == 40000
    with UnitOfWork(engine, readonly=True) as uow:
        assert uow.conn.execute(select(func.count()).select_from(refunds)).scalar() == 1


def test_customer_contact_from_the_import_envelope(engine: Engine) -> None:
    from refundry.store.tables import customer_contacts

    contact = {
        "phone": "+86 138 0000 0001",
        "email": "a@example.com",
        "channels": ["in_app", "sms"],
    }
    ingest(engine, {"order": ex.THRESHOLD, "customer": {"contact": contact}})
    with UnitOfWork(engine, readonly=True) as uow:
        row = uow.conn.execute(select(customer_contacts)).one()
    assert (row.phone, row.email, json.loads(row.channels)) == (
        "+86 138 0000 0001",
        "a@example.com",
        ["in_app", "sms"],
    )


def test_cumulative_cashback_with_tiers_drops_to_the_tier_and_keeps_what_is_left(
    engine: Engine,
) -> None:
    """SPEC §3.5 with issue 16's figures, through the store: tiers 800 -> 100 and 1600 -> 300,
    spend 1700 (1200 earlier + this order's 500), 300 granted as one grant. Refunding the 500.00
    line leaves 1200: 200 clawed, 300.00 back, and the stored reward still holds 100, which the
    next refund (the customer's spend falling to 700, below every tier) claws."""
    tiers = [{"threshold": 80000, "reward": 10000}, {"threshold": 160000, "reward": 30000}]
    campaign = {"id": "CUM", "kind": "cumulative_cashback", "measure": "paid", "tiers": tiers}
    order_a = ex.order("o-cum-a", [ex.line("A", 50000)], 50000, campaigns=[campaign])
    order_b = ex.order("o-cum-b", [ex.line("B", 50000)], 50000, campaigns=[campaign])
    grant = {"id": "R-CUM", "campaign_id": "CUM", "threshold": 160000, "amount": 30000}
    customer = {
        "campaign_spend": {"CUM": 70000},
        "campaign_rewards": [{**grant, "status": "granted"}],
    }
    ingest(engine, {"order": order_b, "customer": customer})
    ingest(engine, {"order": order_a, "customer": customer})  # spend 70000 + 2 × 50000

    first = apply(engine, "o-cum-a", "A", key="k-cum-a")
    assert first.plan["amount"]["total"] == 30000
    assert [
        (e["reward_id"], e["amount"])
        for e in first.plan["effects"]
        if e["type"] == "reward_clawback"
    ] == [("R-CUM", 20000)]
    second = apply(engine, "o-cum-b", "B", key="k-cum-b")
    assert second.plan["amount"]["total"] == 40000  # spend 70000 < 80000: the 100 left is clawed
    with UnitOfWork(engine, readonly=True) as uow:
        row = uow.conn.execute(
            select(campaign_rewards.c.reduced, campaign_rewards.c.status).where(
                campaign_rewards.c.id == "R-CUM"
            )
        ).one()
    assert (row.reduced, row.status) == (30000, "clawed_back")
    ledgers_balance(engine)
