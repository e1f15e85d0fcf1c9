"""The after-sales case process through the services, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select

from refundry.demo import worked_examples as ex
from refundry.domain.case import IllegalTransition
from refundry.domain.errors import InvalidInput
from refundry.domain.policy import Policy
from refundry.domain.process_policy import ProcessPolicy
from refundry.services.audit.verify import verify_chain
from refundry.services.cases.actions import (
    approve,
    cancel,
    inspect,
    rate,
    receive,
    reject,
    resolve_manual_review,
    ship,
)
from refundry.services.cases.opening import CaseDesk, open_case
from refundry.services.cases.process import Actor, load_case
from refundry.services.cases.timers import run_timers
from refundry.services.errors import Conflict, Forbidden, NotFound, Unprocessable
from refundry.services.orders.ingest import ingest_order
from refundry.services.refunds.ledger import balance
from refundry.services.uow import UnitOfWork
from refundry.store.tables import inbox_messages, order_lines, outbox
from tests.services.case_world import (
    AGENT,
    CUSTOMER,
    MERCHANT,
    START,
    request,
    settle_money,
    state,
    timeline,
    world_for,
)


@pytest.fixture()
def world(engine: Engine) -> dict[str, Any]:
    return world_for(engine)


def test_refund_only_small_case_is_approved_by_rule_refunded_and_completed(
    world: dict[str, Any],
) -> None:
    desk, clock = world["desk"], world["clock"]
    opened = open_case(
        desk,
        actor=CUSTOMER,
        now=clock(),
        request=request("o-500-100", "Y", reason="not_received", kind="refund_only"),
    )
    assert opened.review["rule"] == "small_amount"
    assert opened.state == "refunding"
    assert opened.plan["amount"]["total"] == 10000
    settle_money(world)
    assert state(world, opened.case_id) == "refunded"
    run_timers(desk, now=clock())
    world["relay"].drain()
    assert state(world, opened.case_id) == "completed"
    assert timeline(world, opened.case_id) == [
        "open",
        "review",
        "approve",
        "refund",
        "confirm",
        "complete",
    ]
    rate(desk, opened.case_id, actor=CUSTOMER, now=clock(), rating=5, feedback="fast")
    with pytest.raises(Unprocessable) as err:
        rate(desk, opened.case_id, actor=CUSTOMER, now=clock(), rating=4)
    assert err.value.code == "case.already_rated"
    with UnitOfWork(world["engine"], readonly=True) as uow:
        templates = [
            t
            for (t,) in uow.conn.execute(
                select(inbox_messages.c.template).order_by(inbox_messages.c.id)
            )
        ]
        assert templates[:3] == ["case.received", "case.approved", "refund.sent"]
        assert "case.completed" in templates and "refund.refunded" in templates
        assert verify_chain(uow.conn).ok
    assert {"case.completed", "refund.applied"} <= {
        e["type"] for e in world["publisher"].events.values()
    }


def test_return_with_inspection_pass_refunds_and_restocks(world: dict[str, Any]) -> None:
    desk, clock = world["desk"], world["clock"]
    desk = CaseDesk(
        desk.engine,
        desk.policy,
        ProcessPolicy(review_rules=(), express=ProcessPolicy().express.__class__(enabled=False)),
    )
    opened = open_case(
        desk,
        actor=CUSTOMER,
        now=clock(),
        request=request("o-1000-200", "A", reason="quality_issue"),
    )
    assert opened.state == "under_review"  # no rule: the agent queue
    with pytest.raises(NotFound):  # another merchant's case does not exist for it
        approve(desk, opened.case_id, actor=Actor("merchant", "m-other"), now=clock())
    with pytest.raises(Forbidden) as err:  # the customer cannot approve its own case
        approve(desk, opened.case_id, actor=CUSTOMER, now=clock())
    assert err.value.code == "auth.forbidden"
    row = approve(desk, opened.case_id, actor=MERCHANT, now=clock())
    assert (row.state, row.rma is not None, row.express) == ("awaiting_return", True, False)
    assert row.return_address == ProcessPolicy().return_address
    ship(desk, opened.case_id, actor=CUSTOMER, now=clock(), tracking_number="SF1001")
    receive(desk, opened.case_id, actor=MERCHANT, now=clock())
    row = inspect(desk, opened.case_id, actor=MERCHANT, now=clock(), result="pass")
    assert row.state == "refunding"
    settle_money(world)
    assert state(world, opened.case_id) == "refunded"
    restock = [e for e in world["publisher"].events.values() if e["type"] == "restock"]
    assert restock == [
        {
            "type": "restock",
            "case_id": opened.case_id,
            "order_id": "o-1000-200",
            "customer_id": CUSTOMER.id,
            "line_id": "A",
            "sku": "SKU-A",
            "quantity": 1,
            "disposition": "resellable",
        }
    ]
    assert world["gateway"].ledger.refunded["ali-o-1000-200"] == 80000


def test_partial_inspection_refunds_accepted_units_only(world: dict[str, Any]) -> None:
    desk, clock = world["desk"], world["clock"]
    desk = CaseDesk(
        desk.engine,
        desk.policy,
        ProcessPolicy(review_rules=(), express=ProcessPolicy().express.__class__(enabled=False)),
    )
    opened = open_case(
        desk,
        actor=CUSTOMER,
        now=clock(),
        request=request("o-500-100", "X", "Y", reason="wrong_item"),
    )
    approve(desk, opened.case_id, actor=AGENT, now=clock(), comment="photos fine")
    ship(desk, opened.case_id, actor=CUSTOMER, now=clock(), tracking_number="YT9")
    receive(desk, opened.case_id, actor=AGENT, now=clock())
    with pytest.raises(Exception) as bad:
        inspect(
            desk,
            opened.case_id,
            actor=AGENT,
            now=clock(),
            result="partial",
            accepted={"X": 1, "Y": 1},
        )
    assert getattr(bad.value, "code", "") == "case.inspection_invalid"
    for disposition in ({"X": "damaged"}, {"Y": "lost"}):  # X not accepted; no such place
        with pytest.raises(InvalidInput) as refused:
            inspect(
                desk,
                opened.case_id,
                actor=AGENT,
                now=clock(),
                result="partial",
                accepted={"Y": 1},
                disposition=disposition,
            )
        assert (refused.value.code, refused.value.field) == (
            "case.inspection_invalid",
            "disposition",
        )
        assert state(world, opened.case_id) == "received"
    row = inspect(
        desk,
        opened.case_id,
        actor=AGENT,
        now=clock(),
        result="partial",
        accepted={"Y": 1},
        disposition={"Y": "damaged"},
    )
    assert row.state == "refunding"
    assert json.loads(row.inspection)["disposition"] == {"Y": "damaged"}
    with UnitOfWork(world["engine"], readonly=True) as uow:
        restocks = [
            json.loads(p)
            for p in uow.conn.execute(
                select(outbox.c.payload).where(outbox.c.key.like(f"event:restock:{row.id}:%"))
            ).scalars()
        ]
    assert [(r["line_id"], r["quantity"], r["disposition"]) for r in restocks] == [
        ("Y", 1, "damaged")
    ]
    with UnitOfWork(world["engine"], readonly=True) as uow:
        qty = dict(
            uow.conn.execute(
                select(order_lines.c.line_id, order_lines.c.refunded_qty).where(
                    order_lines.c.order_id == "o-500-100"
                )
            ).all()
        )
    assert qty == {"X": 0, "Y": 1}
    # X went back to the customer with the parcel: it can be asked for again.
    again = open_case(
        desk, actor=CUSTOMER, now=clock(), request=request("o-500-100", "X", reason="wrong_item")
    )
    assert again.state == "under_review"


def test_failed_inspection_rejects_and_records_express_debt(world: dict[str, Any]) -> None:
    desk, clock = world["desk"], world["clock"]
    opened = open_case(
        desk, actor=CUSTOMER, now=clock(), request=request("o-500-100", "Y", reason="quality_issue")
    )
    row = (
        approve(desk, opened.case_id, actor=AGENT, now=clock())
        if opened.state == "under_review"
        else None
    )
    with UnitOfWork(world["engine"], readonly=True) as uow:
        row = load_case(uow.conn, opened.case_id, AGENT)
    assert (row.state, row.express, row.refund_id is not None) == ("awaiting_return", True, True)
    ship(desk, opened.case_id, actor=CUSTOMER, now=clock(), tracking_number="SF77")
    receive(desk, opened.case_id, actor=MERCHANT, now=clock())
    row = inspect(
        desk, opened.case_id, actor=MERCHANT, now=clock(), result="fail", reason="used and damaged"
    )
    assert (row.state, row.debt) == ("rejected_after_inspection", 10000)
    with UnitOfWork(world["engine"], readonly=True) as uow:
        refunded = uow.conn.execute(
            select(order_lines.c.refunded_qty).where(
                order_lines.c.order_id == "o-500-100", order_lines.c.line_id == "Y"
            )
        ).scalar_one()
    assert refunded == 0  # every unit of the express refund reversed: refundable again


def test_express_refund_then_partial_inspection_records_the_refused_units_debt(
    world: dict[str, Any], engine: Engine
) -> None:
    """Issue 16's figures: 2 × 200.00 returned, 极速退款 paid 400.00 before the goods arrived,
    the inspection accepts 1 unit: the case records 200.00 owed for the refused one."""
    doc = ex.order("o-express-2", [{**ex.line("P", 20000), "quantity": 2}], 40000)
    world["gateway"].capture("ali-o-express-2", 40000, "CNY")
    with UnitOfWork(engine) as uow:
        ingest_order(
            uow.conn,
            {"order": doc, "customer": {}},
            policy=Policy(),
            now=START - timedelta(days=200),
        )
        uow.commit()
    desk, clock = world["desk"], world["clock"]
    ask = request("o-express-2", reason="quality_issue")
    ask["lines"] = [{"line_id": "P", "quantity": 2}]
    opened = open_case(desk, actor=CUSTOMER, now=clock(), request=ask)
    if opened.state == "under_review":
        approve(desk, opened.case_id, actor=AGENT, now=clock())
    with UnitOfWork(engine, readonly=True) as uow:
        row = load_case(uow.conn, opened.case_id, AGENT)
    assert (row.state, row.express) == ("awaiting_return", True)
    ship(desk, opened.case_id, actor=CUSTOMER, now=clock(), tracking_number="SF78")
    receive(desk, opened.case_id, actor=MERCHANT, now=clock())
    row = inspect(
        desk, opened.case_id, actor=MERCHANT, now=clock(), result="partial", accepted={"P": 1}
    )
    assert row.debt == 20000
    assert json.loads(row.accepted) == [{"line_id": "P", "quantity": 1}]
    # The refused unit is not counted as refunded: it can be asked for again.
    with UnitOfWork(engine, readonly=True) as uow:
        refunded = uow.conn.execute(
            select(order_lines.c.refunded_qty).where(
                order_lines.c.order_id == "o-express-2", order_lines.c.line_id == "P"
            )
        ).scalar_one()
    assert refunded == 1
    again = request("o-express-2", "P", reason="quality_issue")
    assert open_case(desk, actor=CUSTOMER, now=clock(), request=again).case_id


def test_illegal_transition_names_the_state_and_the_allowed_actions(
    world: dict[str, Any],
) -> None:
    desk, clock = world["desk"], world["clock"]
    opened = open_case(
        desk,
        actor=CUSTOMER,
        now=clock(),
        request=request("o-1000-200", "A", reason="quality_issue"),
    )
    with pytest.raises(IllegalTransition) as err:
        receive(desk, opened.case_id, actor=AGENT, now=clock())
    assert err.value.code == "case.illegal_transition"
    assert str(err.value).endswith(
        f"cannot receive a case that is {opened.state}; allowed: "
        + {
            "under_review": "approve, cancel, escalate, reject",
            "awaiting_return": "cancel, expire, ship",
        }[opened.state]
    )


def test_units_in_an_open_case_cannot_be_asked_again(world: dict[str, Any]) -> None:
    desk, clock = world["desk"], world["clock"]
    first = open_case(
        desk,
        actor=CUSTOMER,
        now=clock(),
        request=request("o-1000-200", "A", reason="quality_issue"),
    )
    assert first.state == "under_review"
    with pytest.raises(Conflict) as err:
        open_case(
            desk,
            actor=CUSTOMER,
            now=clock(),
            request=request("o-1000-200", "A", reason="quality_issue"),
        )
    assert err.value.code == "case.units_unavailable"


def test_other_customers_cases_and_orders_are_not_found(world: dict[str, Any]) -> None:
    desk, clock = world["desk"], world["clock"]
    stranger = Actor("customer", "c-999")
    with pytest.raises(NotFound):
        open_case(desk, actor=stranger, now=clock(), request=request("o-1000-200", "A"))
    opened = open_case(desk, actor=CUSTOMER, now=clock(), request=request("o-1000-200", "A"))
    with pytest.raises(NotFound):
        cancel(desk, opened.case_id, actor=stranger, now=clock())


def test_timers_approve_silent_reviews_and_close_unshipped_returns(
    world: dict[str, Any],
) -> None:
    desk, clock = world["desk"], world["clock"]
    desk = CaseDesk(
        desk.engine,
        desk.policy,
        ProcessPolicy(review_rules=(), express=ProcessPolicy().express.__class__(enabled=False)),
    )
    opened = open_case(desk, actor=CUSTOMER, now=clock(), request=request("o-1000-200", "A"))
    assert run_timers(desk, now=clock() + timedelta(hours=47)).approved == 0
    report = run_timers(desk, now=clock() + timedelta(hours=48))
    assert report.approved == 1
    assert state(world, opened.case_id) == "awaiting_return"
    report = run_timers(desk, now=clock() + timedelta(hours=48, days=7))
    assert report.closed == 1
    assert state(world, opened.case_id) == "closed"
    again = open_case(
        desk, actor=CUSTOMER, now=clock() + timedelta(days=9), request=request("o-1000-200", "A")
    )
    assert again.state == "under_review"  # the closed case gave its units back


def test_reject_needs_a_comment_and_is_told(world: dict[str, Any]) -> None:
    desk, clock = world["desk"], world["clock"]
    desk = CaseDesk(desk.engine, desk.policy, ProcessPolicy(review_rules=()))
    opened = open_case(desk, actor=CUSTOMER, now=clock(), request=request("o-1000-200", "A"))
    with pytest.raises(Exception) as err:
        reject(desk, opened.case_id, actor=AGENT, now=clock(), comment=" ")
    assert getattr(err.value, "code", "") == "case.comment_required"
    row = reject(desk, opened.case_id, actor=AGENT, now=clock(), comment="used item")
    assert row.state == "rejected"
    assert json.loads(row.review)["explain"] == "used item"


def test_plan_exceeding_deductions_is_held_then_waived_by_an_agent(
    world: dict[str, Any],
) -> None:
    desk, clock = world["desk"], world["clock"]
    with UnitOfWork(world["engine"]) as uow:
        # A cashback of 150.00 granted on 200.00: refunding one 100.00 unit claws it all back.
        doc = ex.order(
            "o-claw",
            [ex.line("A", 10000), ex.line("B", 10000)],
            20000,
            campaigns=[
                {
                    "id": "MF-200",
                    "kind": "order_cashback",
                    "tiers": [{"threshold": 20000, "reward": 15000}],
                }
            ],
            rewards=[{"id": "RW-9", "campaign_id": "MF-200", "amount": 15000, "status": "granted"}],
        )
        ingest_order(uow.conn, doc, policy=Policy(), now=clock())
        uow.commit()
    opened = open_case(
        desk,
        actor=CUSTOMER,
        now=clock(),
        request=request("o-claw", "A", reason="not_received", kind="refund_only"),
    )
    assert opened.state == "needs_manual_review"
    resolve_manual_review(
        desk,
        opened.case_id,
        actor=AGENT,
        now=clock(),
        resolution="waiver",
        comment="goodwill: customer kept the B unit",
    )
    assert state(world, opened.case_id) == "refunded"  # nothing to send: the step moved 0
    # The waived 50.00 is not clawed again: refunding B moves all B paid.
    second = open_case(
        desk,
        actor=CUSTOMER,
        now=clock(),
        request=request("o-claw", "B", reason="not_received", kind="refund_only"),
    )
    assert second.plan["amount"]["total"] == 10000
    assert second.state == "refunding"
    with UnitOfWork(world["engine"], readonly=True) as uow:
        assert balance(uow.conn, "wallet", ex.CUSTOMER) == 0
        assert verify_chain(uow.conn).ok


def test_what_the_review_rules_decide_is_audited_as_the_system_not_the_customer(
    world: dict[str, Any], engine: Engine
) -> None:
    """Issue 16 point 5: automatic approvals were recorded with the customer as actor."""
    from refundry.store.tables import audit_log

    desk, clock = world["desk"], world["clock"]
    opened = open_case(
        desk,
        actor=CUSTOMER,
        now=clock(),
        request=request("o-1000-200", "B", reason="wrong_item", kind="refund_only"),
        evidence=["photo-of-the-wrong-item.jpg"],  # review rule wrong_item_with_photo approves
    )
    assert opened.review["by"] == "rules" and opened.review["decision"] == "approve", opened.review
    with UnitOfWork(engine, readonly=True) as uow:
        actors = {
            action: actor
            for action, actor in uow.conn.execute(
                select(audit_log.c.action, audit_log.c.actor).order_by(audit_log.c.seq)
            )
        }
    assert actors["case.opened"] == f"customer:{ex.CUSTOMER}"
    assert actors["case.approve"] == "system:review"
    assert actors["case.review"] == f"customer:{ex.CUSTOMER}"  # the customer asked for review


def test_the_order_audit_is_redacted_per_role_like_the_other_views(
    world: dict[str, Any], engine: Engine
) -> None:
    """Issue 16 point 5: a merchant read tender ids and amounts in its order's audit, a customer
    the risk reasons its case view hides. The desk sees everything."""
    from refundry.services.audit.views import order_audit

    desk, clock = world["desk"], world["clock"]
    opened = open_case(
        desk,
        actor=CUSTOMER,
        now=clock(),
        request=request("o-1000-200", "B", reason="wrong_item", kind="refund_only"),
        evidence=["photo-of-the-wrong-item.jpg"],
    )
    assert opened.review["decision"] == "approve"  # refunded at once: tender entries exist

    def keys(value: Any) -> set[str]:
        if isinstance(value, dict):
            return set(value) | {k for v in value.values() for k in keys(v)}
        if isinstance(value, list):
            return {k for v in value for k in keys(v)}
        return set()

    agent = order_audit(engine, "o-1000-200", AGENT)
    agent_actions = {e.action for e in agent.entries}
    assert "refund.tender" in agent_actions
    assert {"tender_id", "risk"} <= {k for e in agent.entries for k in keys(e.data)}

    merchant = order_audit(engine, "o-1000-200", MERCHANT)
    assert not {a for a in (e.action for e in merchant.entries) if a.startswith("refund.tender")}
    assert "effect.refund_to_tender" not in {e.action for e in merchant.entries}
    assert not {"tender_id", "tenders", "risk"} & {
        k for e in merchant.entries for k in keys(e.data)
    }
    assert "case.opened" in {e.action for e in merchant.entries}

    customer = order_audit(engine, "o-1000-200", CUSTOMER)
    assert "risk" not in {k for e in customer.entries for k in keys(e.data)}
    assert "refund.tender" in {e.action for e in customer.entries}  # the customer's own money
