"""The apply path's shortcuts: the parsed-order cache, the one-statement ledger move, the
compact stored plan, the one-round-trip entitlement state change and the idle ping."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select, update

from refundry.demo import worked_examples as ex
from refundry.domain.json_io import dumps_plan, dumps_plan_compact
from refundry.domain.policy import Policy
from refundry.services.refunds import apply as apply_service
from refundry.services.refunds import state
from refundry.services.refunds.apply import preview_refund
from refundry.services.refunds.ledger import balance, move_accounts
from refundry.services.refunds.memo import forget_all
from refundry.services.refunds.state import load_plan_inputs
from refundry.services.uow import UnitOfWork
from refundry.store.engine import make_engine
from refundry.store.tables import audit_log, customers, entitlements, ledger_postings, refunds
from tests.services.test_apply import NOW, POLICY, apply, ingest, ledgers_balance


def order_with_points(order_id: str, customer_id: str) -> dict[str, Any]:
    """Paid by card and points, earned points and growth: a full refund posts three times."""
    return {
        "order": {
            "id": order_id,
            "customer_id": customer_id,
            "currency": "CNY",
            "status": "delivered",
            "paid_at": "2026-11-20T10:00:00+08:00",
            "lines": [
                {"id": "A", "sku": "S-A", "title": "A", "quantity": 1, "unit_price": 10000},
            ],
            "tenders": [
                {
                    "id": "T-CARD",
                    "kind": "external",
                    "method": "card",
                    "amount": 8000,
                    "gateway_txn_id": f"ch_{order_id}",
                },
                {"id": "T-PTS", "kind": "points", "amount": 2000, "points": 2000},
            ],
            "points_earned": {"points": 770, "status": "granted"},
            "growth_value": 770,
        },
        "customer": {
            "points_balance": 5000,
            "growth_value": 1000,
            "tier_table": [{"name": "regular", "min_growth": 0}],
        },
    }


def test_an_order_is_parsed_once_per_digest_and_policy(engine: Engine) -> None:
    ingest(engine, ex.THRESHOLD)
    order_id = ex.THRESHOLD["id"]
    state._orders.clear()
    with UnitOfWork(engine, readonly=True) as uow:
        first = load_plan_inputs(uow.conn, order_id, policy=POLICY)
        again = load_plan_inputs(uow.conn, order_id, policy=POLICY)
        other = load_plan_inputs(uow.conn, order_id, policy=Policy(minor_units_per_point=2))
    assert again.order is first.order and again.order_digest == first.order_digest
    assert other.order is not first.order and other.order.minor_units_per_point == 2
    state._orders.clear()
    with UnitOfWork(engine, readonly=True) as uow:
        fresh = load_plan_inputs(uow.conn, order_id, policy=POLICY)
    assert fresh.order is not first.order and fresh.order == first.order


def test_forget_all_empties_every_memo_a_preview_fills(engine: Engine) -> None:
    """What bench/apply_bench.py --cold-apply relies on: after forget_all an apply finds
    nothing of its preview in this process."""
    ingest(engine, ex.THRESHOLD)
    order_id = ex.THRESHOLD["id"]
    request = {
        "order_id": order_id,
        "reason": "changed_mind",
        "lines": [{"line_id": ex.THRESHOLD["lines"][0]["id"], "quantity": 1}],
    }
    preview_refund(engine, order_id=order_id, request=request, policy=POLICY, now=NOW)
    memos = (apply_service._previewed, state._orders, state._snapshots)
    assert all(len(memo) > 0 for memo in memos)
    forget_all()
    assert [len(memo) for memo in memos] == [0, 0, 0]


def test_the_order_cache_is_bounded(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    ingest(engine, ex.THRESHOLD)
    monkeypatch.setattr(state._orders, "size", 1)
    state._orders.clear()
    with UnitOfWork(engine, readonly=True) as uow:
        for mpp in (1, 2, 3):
            load_plan_inputs(uow.conn, ex.THRESHOLD["id"], policy=Policy(minor_units_per_point=mpp))
    assert len(state._orders) == 1


def test_a_reward_status_change_is_a_new_order_digest(engine: Engine) -> None:
    """The cache key covers the rewards' statuses read with the order (not only its text)."""
    ingest(engine, {"order": ex.CASHBACK, "customer": {"points_balance": 0}})
    with UnitOfWork(engine, readonly=True) as uow:
        before = load_plan_inputs(uow.conn, ex.CASHBACK["id"], policy=POLICY)
    apply(engine, ex.CASHBACK["id"], *[ln["id"] for ln in ex.CASHBACK["lines"]], key="k1")
    with UnitOfWork(engine, readonly=True) as uow:
        after = load_plan_inputs(uow.conn, ex.CASHBACK["id"], policy=POLICY)
    statuses = [(r.id, r.status) for r in after.order.rewards]
    if statuses != [(r.id, r.status) for r in before.order.rewards]:
        assert after.order_digest != before.order_digest and after.order is not before.order


def test_three_postings_in_one_move_match_one_by_one(engine: Engine) -> None:
    ingest(engine, order_with_points("o-p1", "c-p1"))
    with UnitOfWork(engine, readonly=True) as uow:
        points0 = balance(uow.conn, "points", "c-p1")  # after the order's own postings
        growth0 = balance(uow.conn, "growth", "c-p1")
    result = apply(engine, "o-p1", "A", key="k-p1")
    plan = result.plan
    points_back = next(s["points"] for s in plan["tenders"] if s["tender_id"] == "T-PTS")
    reversed_ = next(e for e in plan["effects"] if e["type"] == "points_reverse_earned")
    growth = next(e for e in plan["effects"] if e["type"] == "growth_reverse")
    assert points_back and reversed_["from_balance"] and growth["amount"]
    with UnitOfWork(engine, readonly=True) as uow:
        conn = uow.conn
        assert balance(conn, "points", "c-p1") == points0 + points_back - reversed_["from_balance"]
        assert balance(conn, "growth", "c-p1") == growth0 - growth["amount"]
        audit = {
            row.action: json.loads(row.data)
            for row in conn.execute(
                select(audit_log).where(audit_log.c.refund_id == result.refund_id)
            )
        }
        journals = {
            r.journal_id
            for r in conn.execute(
                select(ledger_postings.c.journal_id).where(
                    ledger_postings.c.refund_id == result.refund_id
                )
            )
        }
    # The reversal is audited after the points tender's posting, as one by one.
    points_audit = audit["effect.points_reverse_earned"]
    assert points_audit["balance_before"] == points0 + points_back
    assert points_audit["balance_after"] == points0 + points_back - reversed_["from_balance"]
    assert audit["effect.growth_reverse"]["balance_before"] == growth0
    rid = result.refund_id
    assert journals == {
        f"refund:{rid}:T-PTS",
        f"refund:{rid}:points_reverse_earned",
        f"refund:{rid}:growth_reverse",
    }
    ledgers_balance(engine)


def test_move_accounts_opens_new_accounts_and_refuses_rises_after_falls(engine: Engine) -> None:
    ingest(engine, order_with_points("o-p2", "c-p2"))
    with UnitOfWork(engine) as uow:
        conn = uow.conn
        start = balance(conn, "points", "c-p2")
        afters = move_accounts(
            conn, "c-p2", [("points", 30), ("wallet", 7), ("points", -10), ("wallet", 5)]
        )
        assert afters == [start + 30, 7, start + 20, 12]
        assert balance(conn, "points", "c-p2") == start + 20
        assert balance(conn, "wallet", "c-p2") == 12
        assert move_accounts(conn, "c-p2", [("wallet", -1), ("wallet", 1)]) is None
        assert move_accounts(conn, "c-p2", [("wallet", 0)]) is None
        assert move_accounts(conn, "c-p2", []) == []
        assert balance(conn, "wallet", "c-p2") == 12  # refused moves moved nothing


def test_the_stored_plan_is_compact_and_the_same_json(engine: Engine) -> None:
    ingest(engine, ex.THRESHOLD)
    result = apply(engine, ex.THRESHOLD["id"], "Y", key="k1")
    with UnitOfWork(engine, readonly=True) as uow:
        text = uow.conn.execute(
            select(refunds.c.plan).where(refunds.c.id == result.refund_id)
        ).scalar_one()
    assert text == dumps_plan_compact(result.plan)
    assert json.loads(text) == json.loads(dumps_plan(result.plan)) == result.plan


def test_a_returned_coupon_audits_its_state_before(engine: Engine) -> None:
    ingest(engine, {"order": ex.COUPON, "customer": ex.COUPON_SNAPSHOT})
    lines = [ln["id"] for ln in ex.COUPON["lines"]]
    result = apply(engine, ex.COUPON["id"], *lines, key="k1")
    with UnitOfWork(engine, readonly=True) as uow:
        rows = uow.conn.execute(
            select(audit_log.c.action, audit_log.c.data).where(
                audit_log.c.refund_id == result.refund_id, audit_log.c.action.like("effect.coupon%")
            )
        ).all()
        states = dict(uow.conn.execute(select(entitlements.c.id, entitlements.c.state)).all())
    assert rows, "the full refund gives the coupon back or forfeits it"
    for action, data in rows:
        entry = json.loads(data)
        if action == "effect.coupon_reissue":
            assert states[entry["coupon_id"]] == "replaced"
            continue
        assert entry["state_before"] == "used"
        assert states[entry["coupon_id"]] == entry["state_after"]


def test_a_postgresql_connection_cut_while_idle_is_replaced(pg_url: str) -> None:
    """PostgreSQL only: SQLite has no server that could drop a connection."""
    import psycopg

    from tests.conftest import _drop_pg, _fresh_pg

    db_url = _fresh_pg(pg_url)
    engine = make_engine(db_url, ping_after_idle=0, pool_size=1, max_overflow=0)
    try:
        with engine.connect() as conn:
            pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        with psycopg.connect(db_url.replace("+psycopg", ""), autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with engine.connect() as conn:  # the idle check finds it dead and reconnects
            assert conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one() != pid
    finally:
        engine.dispose()
        _drop_pg(db_url)


def test_previews_at_other_moments_share_the_customer_until_a_risk_flag_ends(
    engine: Engine,
) -> None:
    """The customer snapshot (and so its digest in the plan's fingerprint) is kept by what it is
    made of: a moment counts only through the risk flags in force then."""
    ingest(engine, ex.THRESHOLD)
    order_id, customer_id = ex.THRESHOLD["id"], ex.THRESHOLD["customer_id"]
    flag = [{"flag": "frequent_refunder", "until": (NOW + timedelta(hours=1)).isoformat()}]
    with UnitOfWork(engine) as uow:
        uow.conn.execute(
            update(customers)
            .where(customers.c.id == customer_id)
            .values(risk_flags=json.dumps(flag))
        )
        uow.commit()
    state._snapshots.clear()
    moments = (NOW, NOW + timedelta(minutes=10), NOW + timedelta(hours=2))
    with UnitOfWork(engine, readonly=True) as uow:
        now, later, after = (
            load_plan_inputs(uow.conn, order_id, policy=POLICY, now=at).customer for at in moments
        )
    assert later is now and now.risk_flags == frozenset({"frequent_refunder"})
    assert after is not now and after.risk_flags == frozenset()
    assert len(state._snapshots) == 2
