"""Reversing a 极速退款 whose inspection refused units (services/refunds/reversal.py), on SQLite
and PostgreSQL: the store ends as if only the accepted units had been refunded, cash stays with
its tenders and the rest is the debt, exactly once, and a crash before commit leaves nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, select

from refundry.domain.plan_doc import load_plan
from refundry.domain.policy import Policy
from refundry.services.audit.chain import AuditTrail
from refundry.services.audit.verify import verify_chain
from refundry.services.errors import Conflict
from refundry.services.orders.ingest import ingest_order
from refundry.services.refunds.apply import apply_refund, compute_plan, preview_refund
from refundry.services.refunds.ledger import balance
from refundry.services.refunds.reversal import reverse_refund
from refundry.services.refunds.state import inputs_before_step, load_plan_inputs
from refundry.services.uow import UnitOfWork
from refundry.store import tables as t
from tests.services.test_crashes import order_doc

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 24, 4, 0, tzinfo=UTC)
TIERS = [{"name": "silver", "min_growth": 0}, {"name": "gold", "min_growth": 1000}]


def rich_order(n: int) -> dict[str, Any]:
    """The crash tests' order for customer ``n``: coupon on A (expired by now: reissued when A
    comes back), points paid and earned, growth that decides the tier, a granted 满返 reward,
    a card."""
    doc = order_doc()
    doc.update(id=f"o-rev-{n}", customer_id=f"c-rev-{n}")
    doc["adjustments"][0]["source"]["id"] = f"CP-{n}"
    doc["tenders"][0]["gateway_txn_id"] = f"ch-{n}"
    doc["rewards"][0]["id"] = f"RW-{n}"
    return doc


def customer_doc(n: int) -> dict[str, Any]:
    return {
        "points_balance": 5000,
        "growth_value": 600,
        "tier_table": TIERS,
        "coupons": [{"id": f"CP-{n}", "value": 3000, "valid_until": "2026-01-01T00:00:00+00:00"}],
    }


def ingest(engine: Engine, n: int) -> None:
    with UnitOfWork(engine) as uow:
        ingest_order(
            uow.conn,
            {"order": rich_order(n), "customer": customer_doc(n)},
            policy=Policy(),
            now=NOW - timedelta(days=30),
        )
        uow.commit()


def apply_lines(
    engine: Engine, order_id: str, lines: dict[str, int], *, key: str, reason: str = "changed_mind"
) -> tuple[str, dict[str, Any]]:
    """Preview and apply a refund of ``lines``: (refund id, the plan applied)."""
    req = {
        "order_id": order_id,
        "reason": reason,
        "lines": [{"line_id": k, "quantity": q} for k, q in lines.items()],
    }
    plan = preview_refund(engine, order_id=order_id, request=req, policy=Policy(), now=NOW)
    refund_id = apply_refund(
        engine,
        order_id=order_id,
        request=req,
        expected_plan_hash=plan["plan_hash"],
        idempotency_key=key,
        actor="test",
        now=NOW,
        policy=Policy(),
    ).refund_id
    return refund_id, dict(plan)


def apply(engine: Engine, n: int, lines: dict[str, int]) -> str:
    return apply_lines(engine, f"o-rev-{n}", lines, key=f"k-{n}")[0]


def reverse(engine: Engine, refund_id: str, accepted: dict[str, int]) -> int:
    with UnitOfWork(engine) as uow:
        customer = uow.conn.execute(
            select(t.orders.c.customer_id)
            .join(t.refunds, t.refunds.c.order_id == t.orders.c.id)
            .where(t.refunds.c.id == refund_id)
        ).scalar_one()
        trail = AuditTrail(actor="agent:li", at=NOW + timedelta(days=2), customer_id=customer)
        debt = reverse_refund(
            uow.conn,
            refund_id=refund_id,
            accepted=accepted,
            policy=Policy(),
            trail=trail,
            at=NOW + timedelta(days=2),
        ).debt
        trail.flush(uow.conn)
        uow.commit()
    return debt


def state(conn: Connection, n: int) -> dict[str, Any]:
    """Everything a refund step changes, with the world's own ids taken out."""
    order_id, customer_id = f"o-rev-{n}", f"c-rev-{n}"
    lines = dict(
        conn.execute(
            select(t.order_lines.c.line_id, t.order_lines.c.refunded_qty).where(
                t.order_lines.c.order_id == order_id
            )
        ).all()
    )
    e = t.entitlements.c
    items = {
        row.id.replace(f"CP-{n}", "CP").split("~")[0] + ("~new" if "~" in row.id else ""): (
            row.state,
            row.order_id.replace(order_id, "o") if row.order_id else None,
        )
        for row in conn.execute(
            select(e.id, e.state, e.order_id).where(e.customer_id == customer_id)
        )
        if row.state != "revoked"
    }
    r = t.campaign_rewards.c
    rewards = [
        (row.amount, row.reduced, row.status)
        for row in conn.execute(select(r.amount, r.reduced, r.status).where(r.order_id == order_id))
    ]
    return {
        "lines": lines,
        "goods_refunded": conn.execute(
            select(t.orders.c.goods_refunded).where(t.orders.c.id == order_id)
        ).scalar_one(),
        "items": items,
        "points": balance(conn, "points", customer_id),
        "growth": balance(conn, "growth", customer_id),
        "tier": conn.execute(
            select(t.customers.c.tier).where(t.customers.c.id == customer_id)
        ).scalar_one(),
        "rewards": rewards,
    }


def tenders(conn: Connection, n: int) -> dict[str, int]:
    ot = t.order_tenders.c
    return dict(
        conn.execute(select(ot.tender_id, ot.refunded).where(ot.order_id == f"o-rev-{n}")).all()
    )


def test_reversal_leaves_the_state_of_refunding_only_the_accepted_units(engine: Engine) -> None:
    """极速退款 of A and both B, the inspection accepts one B: units, the coupon (reissued by
    the step, used by the order again), redeemed and earned points, growth and tier, the 满返
    claw-back are those of a refund of one B alone; the card keeps what it was paid and the debt
    is the money difference."""
    ingest(engine, 1)
    ingest(engine, 2)
    express = apply(engine, 1, {"A": 1, "B": 2})
    alone = apply(engine, 2, {"B": 1})
    with UnitOfWork(engine, readonly=True) as uow:
        applied = load_plan(
            uow.conn.execute(select(t.refunds.c.plan).where(t.refunds.c.id == express)).scalar_one()
        )
        accepted_only = load_plan(
            uow.conn.execute(select(t.refunds.c.plan).where(t.refunds.c.id == alone)).scalar_one()
        )
        # The step's inputs with the step undone give the applied plan back.
        inputs = load_plan_inputs(uow.conn, "o-rev-1", policy=Policy(), now=NOW)
        before = inputs_before_step(inputs, applied, 1, Policy())
        again = compute_plan(before, applied["request"], Policy(), NOW)
        assert again["plan_hash"] == applied["plan_hash"]
        paid_before = tenders(uow.conn, 1)
    kinds = {e["type"] for e in applied["effects"]}
    assert {"coupon_reissue", "points_reverse_earned", "reward_clawback", "tier_change"} <= kinds
    debt = reverse(engine, express, {"B": 1})
    with UnitOfWork(engine, readonly=True) as uow:
        reversed_, alone_state = state(uow.conn, 1), state(uow.conn, 2)
        # The tier the growth gives (1,500 - one B's 225 = 1,275: gold), which the step had
        # lowered to silver. World 2's stored tier is its opening one (600: silver): ingest does
        # not raise the tier with an order's growth, so it is compared with the growth instead.
        assert (reversed_.pop("tier"), alone_state.pop("tier")) == ("gold", "silver")
        assert reversed_["growth"] >= 1000
        assert reversed_ == alone_state
        kept = tenders(uow.conn, 1)
        assert verify_chain(uow.conn).ok
    # The card keeps what the gateway refunded; the redeemed points beyond one B's share came
    # back from the balance, which held them.
    assert kept["CARD"] == paid_before["CARD"]
    alone_tenders = {x["tender_id"]: x["amount"] for x in accepted_only["tenders"]}
    assert kept["PTS"] == alone_tenders["PTS"]
    assert debt == sum(kept.values()) - accepted_only["amount"]["total"]
    assert debt == applied["amount"]["total"] - accepted_only["amount"]["total"] - (
        paid_before["PTS"] - kept["PTS"]
    )
    with pytest.raises(Conflict) as again_err:
        reverse(engine, express, {"B": 1})
    assert again_err.value.code == "refund.already_reversed"


def test_a_failed_inspection_reverses_every_unit_and_later_plans_settle_the_debt(
    engine: Engine,
) -> None:
    """0 units accepted: every unit refundable again, the state of no refund at all; asking for
    them again plans normally and its carry takes the debt off the money it moves."""
    ingest(engine, 3)
    ingest(engine, 4)
    express = apply(engine, 3, {"B": 1})
    with UnitOfWork(engine, readonly=True) as uow:
        untouched = state(uow.conn, 4)
        paid = tenders(uow.conn, 3)
    debt = reverse(engine, express, {})
    with UnitOfWork(engine, readonly=True) as uow:
        assert state(uow.conn, 3) == untouched
        kept = tenders(uow.conn, 3)
    assert kept["CARD"] == paid["CARD"]
    assert debt == sum(kept.values())  # nothing accepted: everything still moved is owed
    req = {
        "order_id": "o-rev-3",
        "reason": "changed_mind",
        "lines": [{"line_id": "B", "quantity": 1}],
    }
    plan = preview_refund(engine, order_id="o-rev-3", request=req, policy=Policy(), now=NOW)
    fresh = preview_refund(
        engine, order_id="o-rev-4", request={**req, "order_id": "o-rev-4"}, policy=Policy(), now=NOW
    )
    assert plan["units"] == fresh["units"]
    assert plan["amount"]["carry"] == -debt
    assert plan["amount"]["total"] == fresh["amount"]["total"] - debt


CRASHING_INSPECTION = """
import sys
from datetime import UTC, datetime
from refundry.domain.policy import Policy
from refundry.domain.process_policy import ProcessPolicy
from refundry.services import faults
from refundry.services.access import Actor
from refundry.services.cases.actions import inspect
from refundry.services.cases.opening import CaseDesk
from refundry.store.engine import make_engine

faults.arm("reversal.after_writes")
desk = CaseDesk(make_engine(sys.argv[1]), Policy(), ProcessPolicy())
inspect(desk, sys.argv[2], actor=Actor("agent", "li"), now=datetime.now(UTC), result="partial",
        accepted={"P": 1})
"""


def test_an_inspection_killed_after_the_reversal_writes_leaves_nothing_and_retries_once(
    engine: Engine, express_case: str
) -> None:
    url = engine.url.render_as_string(hide_password=False)
    died = subprocess.run(
        [sys.executable, "-c", CRASHING_INSPECTION, url, express_case],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        timeout=120,
    )
    assert died.returncode == -9, died.stderr.decode()
    with UnitOfWork(engine, readonly=True) as uow:
        assert uow.conn.execute(select(t.refund_reversals)).first() is None
        assert refunded_p(uow.conn) == 2
        assert (
            uow.conn.execute(
                select(t.cases.c.state).where(t.cases.c.id == express_case)
            ).scalar_one()
            == "received"
        )
    from refundry.domain.process_policy import ProcessPolicy
    from refundry.services.access import Actor
    from refundry.services.cases.actions import inspect
    from refundry.services.cases.opening import CaseDesk

    desk = CaseDesk(engine, Policy(), ProcessPolicy())
    row = inspect(
        desk, express_case, actor=Actor("agent", "li"), now=NOW, result="partial", accepted={"P": 1}
    )
    assert row.debt == 20000
    with UnitOfWork(engine, readonly=True) as uow:
        assert len(uow.conn.execute(select(t.refund_reversals)).all()) == 1
        assert refunded_p(uow.conn) == 1
        events = [
            k
            for (k,) in uow.conn.execute(select(t.outbox.c.key))
            if k.startswith("event:refund.reversed:")
        ]
        assert len(events) == 1


def refunded_p(conn: Connection) -> int:
    return int(
        conn.execute(
            select(t.order_lines.c.refunded_qty).where(
                t.order_lines.c.order_id == "o-express-9", t.order_lines.c.line_id == "P"
            )
        ).scalar_one()
    )


@pytest.fixture()
def express_case(engine: Engine) -> str:
    """A case of 2 × 200.00 paid by 极速退款 at approval, its parcel received."""
    from refundry.demo import worked_examples as ex
    from refundry.domain.process_policy import ProcessPolicy
    from refundry.services.access import Actor
    from refundry.services.cases.actions import approve, receive, ship
    from refundry.services.cases.opening import CaseDesk, open_case

    doc = ex.order("o-express-9", [{**ex.line("P", 20000), "quantity": 2}], 40000)
    with UnitOfWork(engine) as uow:
        ingest_order(
            uow.conn, {"order": doc, "customer": {}}, policy=Policy(), now=NOW - timedelta(days=200)
        )
        uow.commit()
    desk = CaseDesk(engine, Policy(), ProcessPolicy())
    customer = Actor("customer", ex.CUSTOMER)
    ask = {
        "order_id": "o-express-9",
        "reason": "quality_issue",
        "kind": "return_and_refund",
        "return_method": "self_ship",
        "lines": [{"line_id": "P", "quantity": 2}],
    }
    opened = open_case(desk, actor=customer, now=NOW, request=ask)
    agent = Actor("agent", "li")
    if opened.state == "under_review":
        approve(desk, opened.case_id, actor=agent, now=NOW)
    ship(desk, opened.case_id, actor=customer, now=NOW, tracking_number="SF1")
    receive(desk, opened.case_id, actor=agent, now=NOW)
    return opened.case_id


def test_the_refused_unit_is_refundable_again_and_its_refund_settles_the_case_debt(
    engine: Engine, express_case: str
) -> None:
    """Issue 16's figures: 2 × 200.00 paid by 极速退款, 1 unit accepted. The refused unit is
    not counted as refunded (order, refund and case views show the reversal); asking for it
    again plans normally, moves nothing more (the customer holds its 200.00) and settles the
    case's debt."""
    from refundry.domain.process_policy import ProcessPolicy
    from refundry.services.access import Actor
    from refundry.services.cases.actions import inspect
    from refundry.services.cases.opening import CaseDesk
    from refundry.services.cases.process import load_case
    from refundry.services.cases.views import case_view
    from refundry.services.orders.views import order_view
    from refundry.services.refunds.resource import refund_view

    agent = Actor("agent", "li")
    desk = CaseDesk(engine, Policy(), ProcessPolicy())
    row = inspect(desk, express_case, actor=agent, now=NOW, result="partial", accepted={"P": 1})
    assert (row.state, row.debt) == ("refunding", 20000)  # the card refund not yet confirmed
    with UnitOfWork(engine, readonly=True) as uow:
        order = order_view(uow.conn, "o-express-9", agent)
        assert [(x.line_id, x.refunded_qty) for x in order.lines] == [("P", 1)]
        assert [(r.refund_id, r.refused, r.debt) for r in order.reversals] == [
            (row.refund_id, {"P": 1}, 20000)
        ]
        assert [(x.tender_id, x.refunded) for x in order.tenders] == [("T1", 40000)]
        assert row.refund_id is not None
        refund = refund_view(uow.conn, row.refund_id, agent)
        assert refund.reversal is not None and refund.reversal.refused == {"P": 1}
        shown = case_view(uow.conn, load_case(uow.conn, express_case, agent), agent, "CNY")
        assert shown.reversal is not None and shown.reversal.debt == 20000
    _refund, plan = apply_lines(
        engine, "o-express-9", {"P": 1}, key="again", reason="quality_issue"
    )
    assert (plan["amount"]["goods"], plan["amount"]["carry"], plan["amount"]["total"]) == (
        20000,
        -20000,
        0,
    )
    with UnitOfWork(engine, readonly=True) as uow:
        assert load_case(uow.conn, express_case, agent).debt == 0
        assert refunded_p(uow.conn) == 2
        assert verify_chain(uow.conn).ok


def test_a_refund_applied_between_the_express_step_and_the_inspection_stays_as_applied(
    engine: Engine,
) -> None:
    """极速退款 of both B, then A refunded by another case, then the inspection accepts one B:
    the express step is planned again against the steps before it, A stays refunded, one B is
    refundable again, and its plan nets the debt."""
    ingest(engine, 5)
    express = apply(engine, 5, {"B": 2})
    apply_lines(engine, "o-rev-5", {"A": 1}, key="later-5")  # another case's refund
    debt = reverse(engine, express, {"B": 1})
    with UnitOfWork(engine, readonly=True) as uow:
        assert state(uow.conn, 5)["lines"] == {"A": 1, "B": 1}
        held = sum(tenders(uow.conn, 5).values())
        assert verify_chain(uow.conn).ok
    assert debt > 0
    again = {
        "order_id": "o-rev-5",
        "reason": "changed_mind",
        "lines": [{"line_id": "B", "quantity": 1}],
    }
    last = preview_refund(engine, order_id="o-rev-5", request=again, policy=Policy(), now=NOW)
    assert last["amount"]["carry"] < 0
    # Every unit back in the end: the tenders hold what a refund of the whole order pays.
    ingest(engine, 6)
    apply(engine, 6, {"A": 1, "B": 2})
    with UnitOfWork(engine, readonly=True) as uow:
        whole = sum(tenders(uow.conn, 6).values())
    assert held + last["amount"]["total"] == whole


def test_a_reissued_coupon_used_since_joins_the_debt(engine: Engine) -> None:
    """The express step reissued the expired coupon of A; the customer used the replacement
    before the inspection refused A: the replacement stays used, its value joins the debt."""
    ingest(engine, 7)
    express = apply(engine, 7, {"A": 1, "B": 2})
    e = t.entitlements.c
    with UnitOfWork(engine) as uow:
        replacement = f"CP-7~{express}"
        uow.conn.execute(t.entitlements.update().where(e.id == replacement).values(state="used"))
        uow.commit()
    with UnitOfWork(engine, readonly=True) as uow:
        paid = sum(tenders(uow.conn, 7).values())
    debt = reverse(engine, express, {"B": 2})
    with UnitOfWork(engine, readonly=True) as uow:
        states = dict(
            uow.conn.execute(select(e.id, e.state).where(e.customer_id == "c-rev-7")).all()
        )
        accepted_plan = load_plan(
            uow.conn.execute(
                select(t.refund_reversals.c.plan).where(t.refund_reversals.c.refund_id == express)
            ).scalar_one()
        )
        held = sum(tenders(uow.conn, 7).values())
    assert states == {"CP-7": "replaced", replacement: "used"}
    assert debt == held - accepted_plan["amount"]["total"] + 3000
    assert held <= paid
