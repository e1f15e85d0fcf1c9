"""Service-level journeys: from ingest through review, return, inspection and refund to the
final balances, coupons, points, eligibility, inbox, broker events and audit chain — every test
on SQLite and on PostgreSQL (the ``engine`` fixture), with the real SMTP server and Redis.

1. each SPEC §3 worked example as a case, with SPEC's literal figures;
2. each kind × each reason: the label payer, the shipping-fee rule, the final state, and the
   customer told of each step on every channel exactly once;
3. a prepaid label and a pickup booked through the relay and the carrier, with tracking events
   duplicated and reordered;
4. the one-time code a large case needs, and the lock after five wrong codes;
5. risk: high-value eligibility withheld from a frequent refunder, suspended refund rights.
"""

from __future__ import annotations

import json
import re
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from refundry.demo import worked_examples as ex
from refundry.domain.json_text import instant
from refundry.domain.policy import MERCHANT_FAULT_REASONS, REASONS
from refundry.domain.process_policy import ExpressPolicy, ProcessPolicy, RiskRule
from refundry.services.cases.actions import approve, cancel, inspect, receive, ship
from refundry.services.cases.opening import OpenedCase, open_case
from refundry.services.cases.process import Actor
from refundry.services.cases.shipments import handle_tracking_event
from refundry.services.customers.identity import request_code
from refundry.services.customers.risk import active_restrictions, lift_suspension
from refundry.services.errors import Conflict, Forbidden, Unprocessable
from refundry.services.refunds.failed_refunds import refund_to_wallet, retry_failed_refund
from refundry.services.refunds.ledger import balance
from refundry.services.uow import UnitOfWork
from refundry.store.tables import (
    audit_log,
    campaign_quotas,
    cases,
    customers,
    otp_codes,
    refunds,
    shipment_events,
    shipments,
)
from tests.e2e.conftest import START, World, contact_of

CUSTOMER = Actor("customer", ex.CUSTOMER)
AGENT = Actor("agent", "li")
MERCHANT = Actor("merchant", "m-1")

# What the outside world sees of each path, in order (the Redis stream's event types).
RETURN_EVENTS = [
    "case.requested",
    "case.under_review",
    "case.approved",
    "case.awaiting_return",
    "case.return_in_transit",
    "case.received",
    "case.inspected",
    "restock",
    "refund.applied",
    "case.refunding",
    "case.refunded",
    "refund.refunded",
    "case.completed",
]
REFUND_ONLY_EVENTS = [
    "case.requested",
    "case.under_review",
    "case.approved",
    "refund.applied",
    "case.refunding",
    "case.refunded",
    "refund.refunded",
    "case.completed",
]
RETURN_TIMELINE = [
    "open",
    "review",
    "approve",
    "issue_return",
    "ship",
    "receive",
    "inspect",
    "refund",
    "confirm",
    "complete",
]
REFUND_ONLY_TIMELINE = ["open", "review", "approve", "refund", "confirm", "complete"]


def req(
    order_id: str,
    *lines: str | tuple[str, int],
    reason: str = "changed_mind",
    kind: str = "return_and_refund",
    method: str = "self_ship",
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "order_id": order_id,
        "reason": reason,
        "kind": kind,
        "lines": [
            {"line_id": x, "quantity": 1}
            if isinstance(x, str)
            else {"line_id": x[0], "quantity": x[1]}
            for x in lines
        ],
    }
    if kind == "return_and_refund":
        doc["return_method"] = method
    return doc


def regular_order(order_id: str, customer: str = ex.CUSTOMER, price: int = 5000) -> dict[str, Any]:
    doc = ex.order(order_id, [ex.line("R", price)], price)
    doc["customer_id"] = customer
    return doc


def shop(world: World, example: dict[str, Any], customer: dict[str, Any] | None = None) -> None:
    """The example's order (opening the customer as the example needs) and a regular order the
    customer keeps: one refunded order of two is not yet a frequent refunder."""
    world.ingest(example, customer)
    world.ingest(regular_order("o-regular"))


def open_and_approve(
    world: World, request: dict[str, Any], *, actor: Actor = CUSTOMER, **kw: Any
) -> OpenedCase:
    """The customer asks; the case waits for review (no rule decides); an agent approves."""
    opened = open_case(world.desk, actor=actor, request=request, now=world.now(), **kw)
    assert opened.state == "under_review", opened.review
    world.drain()
    world.advance(hours=2)
    approve(world.desk, opened.case_id, actor=AGENT, now=world.now(), comment="checked")
    world.drain()
    return opened


def send_back_and_inspect(world: World, case_id: str) -> None:
    """The goods come back (self-ship tracking number, or the carrier's scans for a booked
    label or pickup), the merchant receives them and passes the inspection."""
    row = world.case(case_id)
    assert row.state == "awaiting_return"
    if row.return_method == "self_ship":
        world.advance(days=1)
        ship(world.desk, case_id, actor=CUSTOMER, now=world.now(), tracking_number="SF1234567")
    else:
        shipment = json.loads(row.shipment)
        assert shipment["status"] == "booked", shipment
        world.advance(days=1)
        world.logistics.customer_ships(shipment["tracking_number"])
    world.advance(days=3)
    world.carrier_events()
    assert world.state(case_id) == "return_in_transit"
    receive(world.desk, case_id, actor=MERCHANT, now=world.now())
    world.drain()
    world.advance(hours=1)
    assert inspect(world.desk, case_id, actor=MERCHANT, now=world.now(), result="pass").state == (
        "refunding"
    )


def journey(world: World, request: dict[str, Any]) -> OpenedCase:
    """One whole case: open, review, (return, inspection), refund, money confirmed, completed."""
    opened = open_and_approve(world, request)
    if request["kind"] == "return_and_refund":
        send_back_and_inspect(world, opened.case_id)
    else:
        assert world.state(opened.case_id) == "refunding"
    world.settle_money()
    assert world.state(opened.case_id) == "refunded"
    world.complete()
    assert world.state(opened.case_id) == "completed"
    return opened


def applied_plan(world: World, case_id: str) -> dict[str, Any]:
    with UnitOfWork(world.engine, readonly=True) as uow:
        refund_id = uow.conn.execute(
            select(cases.c.refund_id).where(cases.c.id == case_id)
        ).scalar_one()
        plan: dict[str, Any] = json.loads(
            uow.conn.execute(select(refunds.c.plan).where(refunds.c.id == refund_id)).scalar_one()
        )
    plan["refund_id"] = refund_id
    return plan


def effects(plan: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e for e in plan["effects"] if e["type"] == kind]


# == 1. SPEC §3's worked examples as cases =================================================


def test_points_example_496_20_back_and_the_balance_emptied(world: World) -> None:
    # Balance 120 after the order earned its 500 points: opened at −380 before it.
    shop(world, ex.POINTS, {"points_balance": 120 - 500})
    assert world.balances() == {"points": 120, "wallet": 0}
    opened = journey(world, req("o-points", "A"))
    assert opened.plan["amount"]["total"] == 49620
    plan = applied_plan(world, opened.case_id)
    assert plan["amount"]["total"] == 49620
    assert [(d["kind"], d["amount"]) for d in plan["deductions"]] == [("points_shortfall", 380)]
    (reversal,) = effects(plan, "points_reverse_earned")
    assert (reversal["points"], reversal["from_balance"], reversal["shortfall"]) == (500, 120, 380)
    assert world.refunded() == {"ali-o-points": 49620}
    assert world.balances() == {"points": 0, "wallet": 0}
    assert world.timeline(opened.case_id) == RETURN_TIMELINE
    assert world.assert_told_everywhere() == [
        "case.received",
        "case.approved",
        "case.return_label_issued",
        "case.return_received",
        "case.inspection_passed",
        "refund.sent",
        "points.reversed",
        "refund.refunded",
        "case.completed",
    ]
    assert world.stream_types() == RETURN_EVENTS
    world.assert_sound()


def test_expired_coupon_example_270_back_and_a_new_30_coupon_for_7_days(world: World) -> None:
    shop(world, ex.COUPON, {"coupons": ex.COUPON_SNAPSHOT["coupons"]})
    assert world.entitlement("CP-30").state == "used"
    opened = open_and_approve(
        world, req("o-coupon", "A", reason="not_received", kind="refund_only")
    )
    refunded_at = world.now()
    world.settle_money()
    world.complete()
    assert world.state(opened.case_id) == "completed"
    plan = applied_plan(world, opened.case_id)
    assert plan["amount"]["total"] == 27000
    assert world.refunded() == {"ali-o-coupon": 27000}
    coupons = world.entitlements()
    assert coupons["CP-30"].state == "replaced"
    new = coupons[f"CP-30~{plan['refund_id']}"]
    assert (new.state, new.value, new.reissued_from, new.category) == (
        "available",
        3000,
        "CP-30",
        "coupon",
    )
    assert new.valid_until == refunded_at + timedelta(days=7)
    assert world.balances() == {"points": 0, "wallet": 0}
    assert world.timeline(opened.case_id) == REFUND_ONLY_TIMELINE
    assert world.assert_told_everywhere() == [
        "case.received",
        "case.approved",
        "refund.sent",
        "coupon.reissued",
        "refund.refunded",
        "case.completed",
    ]
    (told,) = world.inbox_params("coupon.reissued")
    assert (told["value"], told["valid_until"]) == (
        3000,
        instant(refunded_at + timedelta(days=7)),
    )
    assert world.stream_types() == REFUND_ONLY_EVENTS
    world.assert_sound()


def test_threshold_example_y_100_then_x_400(world: World) -> None:
    shop(world, ex.THRESHOLD)
    first = journey(world, req("o-500-100", "Y"))
    plan_y = applied_plan(world, first.case_id)
    assert plan_y["amount"]["total"] == 10000
    assert [(d["kind"], d["ref"], d["amount"]) for d in plan_y["deductions"]] == [
        ("discount_clawback", "ADJ-T", 6667)
    ]
    assert world.refunded() == {"ali-o-500-100": 10000}
    world.advance(days=1)
    second = journey(world, req("o-500-100", "X", reason="quality_issue", kind="refund_only"))
    plan_x = applied_plan(world, second.case_id)
    assert plan_x["amount"]["total"] == 40000
    assert [(g["kind"], g["ref"], g["amount"]) for g in plan_x["give_backs"]] == [
        ("discount_give_back", "ADJ-T", 6667)
    ]
    assert world.refunded() == {"ali-o-500-100": 50000}  # whole again
    assert world.balances() == {"points": 0, "wallet": 0}
    assert world.assert_told_everywhere() == [
        "case.received",
        "case.approved",
        "case.return_label_issued",
        "case.return_received",
        "case.inspection_passed",
        "refund.sent",
        "discount.clawed_back",
        "refund.refunded",
        "case.completed",
        "case.received",
        "case.approved",
        "refund.sent",
        "refund.refunded",
        "case.completed",
    ]
    assert world.stream_types() == RETURN_EVENTS + REFUND_ONLY_EVENTS
    world.assert_sound()


@pytest.mark.parametrize(
    ("line", "total", "reward"),
    [
        ("B", 20000, ("granted", 20000, 0)),  # kept 1000 still reaches 满1000返200
        ("A", 80000, ("clawed_back", 20000, 20000)),  # kept 200: the 200 is clawed
    ],
    ids=["refund-200-keeps-reward", "refund-1000-claws-200"],
)
def test_cashback_example(
    world: World, line: str, total: int, reward: tuple[str, int, int]
) -> None:
    shop(world, ex.CASHBACK)
    opened = journey(world, req("o-1000-200", line, reason="quality_issue"))
    plan = applied_plan(world, opened.case_id)
    assert plan["amount"]["total"] == total
    assert world.refunded() == {"ali-o-1000-200": total}
    assert world.reward("RW-1") == reward
    clawed = reward[2] > 0
    assert [(d["kind"], d["amount"]) for d in plan["deductions"]] == (
        [("reward_clawback", 20000)] if clawed else []
    )
    assert world.assert_told_everywhere() == [
        "case.received",
        "case.approved",
        "case.return_label_issued",
        "case.return_received",
        "case.inspection_passed",
        "refund.sent",
        *(["reward.clawed_back"] if clawed else []),
        "refund.refunded",
        "case.completed",
    ]
    assert world.stream_types() == RETURN_EVENTS
    assert world.balances() == {"points": 0, "wallet": 0}
    world.assert_sound()


def test_tiered_cashback_example_b_700_then_a_1000(world: World) -> None:
    shop(world, ex.TIERED)
    first = journey(world, req("o-tiers", "B"))
    assert applied_plan(world, first.case_id)["amount"]["total"] == 70000
    assert world.reward("RW-2") == ("granted", 50000, 30000)  # down to the 200 tier
    assert world.refunded() == {"ali-o-tiers": 70000}
    world.advance(days=1)
    second = journey(world, req("o-tiers", "A", reason="merchant_breach", kind="refund_only"))
    plan_a = applied_plan(world, second.case_id)
    assert plan_a["amount"]["total"] == 100000
    assert [(d["kind"], d["amount"]) for d in plan_a["deductions"]] == [("reward_clawback", 20000)]
    assert world.reward("RW-2") == ("clawed_back", 50000, 50000)
    assert world.refunded() == {"ali-o-tiers": 170000}
    assert world.assert_told_everywhere() == [
        "case.received",
        "case.approved",
        "case.return_label_issued",
        "case.return_received",
        "case.inspection_passed",
        "refund.sent",
        "reward.clawed_back",
        "refund.refunded",
        "case.completed",
        "case.received",
        "case.approved",
        "refund.sent",
        "reward.clawed_back",
        "refund.refunded",
        "case.completed",
    ]
    assert [p["amount"] for p in world.inbox_params("reward.clawed_back")] == [30000, 20000]
    assert world.stream_types() == RETURN_EVENTS + REFUND_ONLY_EVENTS
    world.assert_sound()


def test_gift_example_refund_y_without_the_gift_170(world: World) -> None:
    shop(world, ex.GIFT)
    opened = journey(world, req("o-gift", "Y"))
    plan = applied_plan(world, opened.case_id)
    assert plan["amount"]["total"] == 17000
    assert [(d["kind"], d["ref"], d["amount"]) for d in plan["deductions"]] == [
        ("kept_gift", "G", 3000)
    ]
    assert world.refunded() == {"ali-o-gift": 17000}
    assert world.assert_told_everywhere() == [
        "case.received",
        "case.approved",
        "case.return_label_issued",
        "case.return_received",
        "case.inspection_passed",
        "refund.sent",
        "gift.kept_deducted",
        "refund.refunded",
        "case.completed",
    ]
    assert world.stream_types() == RETURN_EVENTS
    world.assert_sound()


# == 2. each kind × each reason ============================================================

# A 300.00 + 2 × B 100.00, shipping 10.00, delivered two days ago.
KR_ORDER = ex.order(
    "o-kr",
    [ex.line("A", 30000), {**ex.line("B", 10000), "quantity": 2}],
    51000,
    shipping_fee=1000,
    delivered_at=(START - timedelta(days=2)).isoformat(),
)
LABEL_COST = 1000  # Policy.return_label_cost


@pytest.mark.parametrize("reason", REASONS)
@pytest.mark.parametrize("kind", ["refund_only", "return_and_refund"])
def test_kind_and_reason(world: World, kind: str, reason: str) -> None:
    merchant_fault = reason in MERCHANT_FAULT_REASONS
    assert merchant_fault == (reason != "changed_mind")
    world.ingest(KR_ORDER)
    method = "prepaid_label"
    opened = journey(world, req("o-kr", "A", ("B", 2), reason=reason, kind=kind, method=method))
    plan = applied_plan(world, opened.case_id)
    shipping = 1000 if merchant_fault else 0  # delivered: back only for a merchant fault
    label = LABEL_COST if kind == "return_and_refund" and not merchant_fault else 0
    assert plan["amount"]["goods"] == 50000
    assert plan["amount"]["shipping"] == shipping
    assert plan["amount"]["total"] == 50000 + shipping - label
    assert world.refunded() == {"ali-o-kr": 50000 + shipping - label}
    assert [(d["kind"], d["amount"]) for d in plan["deductions"]] == (
        [("return_label", LABEL_COST)] if label else []
    )
    row = world.case(opened.case_id)
    assert row.state == "completed"
    if kind == "return_and_refund":
        payer = "merchant" if merchant_fault else "customer"
        (label_effect,) = effects(plan, "return_label")
        assert (label_effect["payer"], label_effect["amount"]) == (payer, label)
        assert json.loads(row.shipment)["payer"] == payer
        with UnitOfWork(world.engine, readonly=True) as uow:
            booked = uow.conn.execute(select(shipments)).one()
        assert (booked.payer, booked.service, booked.status) == (
            payer,
            "prepaid_label",
            "delivered",
        )
        assert booked.tracking_number == row.tracking_number
        (carrier,) = world.logistics.bookings
        assert (carrier.rma, carrier.to_address) == (row.rma, row.return_address)
        assert world.timeline(opened.case_id) == RETURN_TIMELINE
    else:
        assert row.shipment is None and effects(plan, "return_label") == []
        assert world.logistics.bookings == ()
        assert world.timeline(opened.case_id) == REFUND_ONLY_TIMELINE
    told = world.assert_told_everywhere()
    steps = (
        ["case.return_label_issued", "case.return_received", "case.inspection_passed"]
        if kind == "return_and_refund"
        else []
    )
    assert told == [
        "case.received",
        "case.approved",
        *steps,
        "refund.sent",
        *(["shipping.refunded"] if shipping else []),
        "refund.refunded",
        "case.completed",
    ]
    events = world.stream_types()
    if kind == "return_and_refund":
        i = RETURN_EVENTS.index("restock")
        assert events == [*RETURN_EVENTS[:i], "restock", "restock", *RETURN_EVENTS[i + 1 :]]
    else:
        assert events == REFUND_ONLY_EVENTS
    world.assert_sound()


def test_unshipped_order_gets_its_shipping_back_even_when_the_customer_changed_its_mind(
    world: World,
) -> None:
    world.ingest({**KR_ORDER, "id": "o-unshipped", "status": "paid"} | _tender("o-unshipped"))
    opened = journey(
        world, req("o-unshipped", "A", ("B", 2), reason="changed_mind", kind="refund_only")
    )
    plan = applied_plan(world, opened.case_id)
    assert (plan["amount"]["shipping"], plan["amount"]["total"]) == (1000, 51000)
    (effect,) = effects(plan, "shipping_refund")
    assert effect["reason"] == "the last unit of goods is refunded and the order never shipped"
    assert world.refunded() == {"ali-o-unshipped": 51000}
    world.assert_sound()


def test_shipping_comes_back_with_the_last_unit_after_an_earlier_merchant_fault(
    world: World,
) -> None:
    world.ingest(KR_ORDER)
    first = journey(world, req("o-kr", "B", reason="quality_issue", kind="refund_only"))
    plan_1 = applied_plan(world, first.case_id)
    assert (plan_1["amount"]["shipping"], plan_1["amount"]["total"]) == (0, 10000)
    world.advance(days=1)
    last = journey(world, req("o-kr", "A", "B", reason="changed_mind"))
    plan_2 = applied_plan(world, last.case_id)
    assert (plan_2["amount"]["shipping"], plan_2["amount"]["total"]) == (1000, 41000)
    assert world.refunded() == {"ali-o-kr": 51000}  # whole again
    assert world.assert_told_everywhere().count("shipping.refunded") == 1
    world.assert_sound()


def _tender(order_id: str) -> dict[str, Any]:
    return {"tenders": [{**KR_ORDER["tenders"][0], "gateway_txn_id": f"ali-{order_id}"}]}


# == 3. prepaid label and pickup through the relay and the carrier =========================


def test_prepaid_label_booked_through_the_relay_tracked_with_duplicated_reordered_events(
    world: World,
) -> None:
    world.ingest(KR_ORDER)
    opened = open_case(
        world.desk,
        actor=CUSTOMER,
        now=world.now(),
        request=req("o-kr", "A", reason="changed_mind", method="prepaid_label"),
    )
    approve(world.desk, opened.case_id, actor=MERCHANT, now=world.now())
    row = world.case(opened.case_id)
    assert (row.state, json.loads(row.shipment)) == (
        "awaiting_return",
        {"service": "prepaid_label", "payer": "customer", "status": "booking"},
    )
    assert world.logistics.bookings == ()  # booked by the relay, after the commit
    # The carrier books the label but its answer is lost: the relay tries again later with
    # the same key and gets the same booking back.
    world.logistics.inject("book_then_time_out")
    world.drain()
    assert len(world.logistics.bookings) == 1
    assert json.loads(world.case(opened.case_id).shipment)["status"] == "booking"
    world.advance(seconds=3)
    world.drain()
    (booking,) = world.logistics.bookings
    assert [r.outcome for r in world.logistics.requests] == ["created", "replayed"]
    row = world.case(opened.case_id)
    shipment = json.loads(row.shipment)
    assert shipment["status"] == "booked"
    assert shipment["tracking_number"] == booking.tracking_number
    assert shipment["label"]["kind"] == "prepaid_label"
    assert shipment["cost"] == booking.cost == 1000
    assert (booking.rma, booking.key) == (row.rma, f"logistics:{opened.case_id}")
    (label,) = world.inbox_params("case.return_label_issued")
    assert (label["tracking_number"], label["rma"]) == (booking.tracking_number, row.rma)
    # label_created, twice: recorded once, the case does not move.
    assert world.carrier_events() == ["applied", "duplicate"]
    assert world.state(opened.case_id) == "awaiting_return"
    # An event for a parcel we never booked is refused so the carrier sends it again.
    assert _track(world, "RR000000000ZZ", "picked_up") == "unknown_shipment"
    world.advance(hours=1)
    world.logistics.customer_ships(booking.tracking_number)
    world.advance(days=3)  # picked up, in transit and delivered all fall due together
    outcomes = world.carrier_events()
    assert sorted(outcomes) == ["applied"] * 3 + ["duplicate"] * 3
    row = world.case(opened.case_id)
    assert (row.state, row.tracking_number) == ("return_in_transit", booking.tracking_number)
    assert world.timeline(opened.case_id).count("ship") == 1
    with UnitOfWork(world.engine, readonly=True) as uow:
        scans = uow.conn.execute(
            select(shipment_events.c.status).order_by(shipment_events.c.at)
        ).scalars()
        assert list(scans) == ["label_created", "picked_up", "in_transit", "delivered"]
        assert uow.conn.execute(select(shipments.c.status)).scalar_one() == "delivered"
        tracked = uow.conn.execute(
            select(audit_log.c.data).where(audit_log.c.action == "shipment.tracking")
        ).scalars()
        assert len(list(tracked)) == 4
    receive(world.desk, opened.case_id, actor=MERCHANT, now=world.now())
    inspect(world.desk, opened.case_id, actor=MERCHANT, now=world.now(), result="pass")
    world.settle_money()
    world.complete()
    assert world.state(opened.case_id) == "completed"
    plan = applied_plan(world, opened.case_id)
    assert plan["amount"]["total"] == 30000 - LABEL_COST
    assert world.refunded() == {"ali-o-kr": 29000}
    world.assert_told_everywhere()
    world.assert_sound()


def _track(world: World, tracking_number: str, status: str) -> str:
    return handle_tracking_event(
        world.engine,
        event_id=f"tev-foreign-{tracking_number}",
        tracking_number=tracking_number,
        status=status,
        occurred_at=world.now(),
        now=world.now(),
    )


def test_pickup_booked_and_collected_by_the_carrier(world: World) -> None:
    world.ingest(KR_ORDER)
    opened = open_and_approve(world, req("o-kr", ("B", 2), reason="wrong_item", method="pickup"))
    (booking,) = world.logistics.bookings
    assert (booking.service, booking.cost, booking.label["kind"]) == ("pickup", 1500, "pickup")
    row = world.case(opened.case_id)
    shipment = json.loads(row.shipment)
    assert (shipment["service"], shipment["payer"], shipment["status"]) == (
        "pickup",
        "merchant",
        "booked",
    )
    assert shipment["label"]["slot_start"] == booking.label["slot_start"]
    send_back_and_inspect(world, opened.case_id)
    world.settle_money()
    world.complete()
    plan = applied_plan(world, opened.case_id)
    (label_effect,) = effects(plan, "return_label")
    assert (label_effect["payer"], label_effect["amount"]) == ("merchant", 0)
    assert plan["amount"]["total"] == 20000  # nothing deducted; shipping stays (A is kept)
    assert world.refunded() == {"ali-o-kr": 20000}
    assert world.state(opened.case_id) == "completed"
    assert "case.return_label_issued" in world.assert_told_everywhere()
    world.assert_sound()


# == 4. one-time code ======================================================================

BIG = ex.order("o-big", [ex.line("A", 150000)], 150000)
BIG_2 = ex.order("o-big-2", [ex.line("A", 120000)], 120000)
CODE = re.compile(r"\d{6}")


def _code(world: World, *, now: datetime | None = None) -> tuple[str, str]:
    """Ask for a code; read it from the SMS the customer received."""
    code_id = request_code(
        world.engine,
        customer_id=ex.CUSTOMER,
        purpose="case.submit",
        now=now or world.now(),
        policy=world.desk.process.identity,
        sms=world.sms,
        secret=world.desk.identity_secret,
        rng=secrets,
    )
    phone, _ = contact_of(ex.CUSTOMER)
    text = world.sms.last_to(phone)
    assert text is not None and text.key == code_id
    (code,) = CODE.findall(text.text)
    return code_id, code


def test_large_case_needs_the_code_texted_to_the_customer(world: World) -> None:
    world.ingest(BIG)
    world.ingest(BIG_2)
    request = req("o-big", "A", reason="not_received", kind="refund_only")
    with pytest.raises(Unprocessable) as err:
        open_case(world.desk, actor=CUSTOMER, request=request, now=world.now())
    assert err.value.code == "identity.code_required"
    with UnitOfWork(world.engine, readonly=True) as uow:
        assert uow.conn.execute(select(cases.c.id)).first() is None  # nothing written
    code_id, code = _code(world)
    opened = open_and_approve(world, request, otp=(code_id, code))
    assert opened.plan["amount"]["total"] == 150000 > world.desk.process.identity.otp_above_amount
    world.settle_money()
    world.complete()
    assert world.state(opened.case_id) == "completed"
    assert world.refunded() == {"ali-o-big": 150000}
    # A used code does not open another case.
    with pytest.raises(Unprocessable) as err:
        open_case(
            world.desk,
            actor=CUSTOMER,
            request=req("o-big-2", "A", reason="not_received", kind="refund_only"),
            now=world.now(),
            otp=(code_id, code),
        )
    assert err.value.code == "identity.code_used"
    with UnitOfWork(world.engine, readonly=True) as uow:
        opened_entry = json.loads(
            uow.conn.execute(
                select(audit_log.c.data).where(audit_log.c.action == "case.opened")
            ).scalar_one()
        )
        assert opened_entry["identity_verified"] is True
        everything = " ".join(uow.conn.execute(select(audit_log.c.data)).scalars())
        assert code not in everything  # the code itself is never recorded
        assert uow.conn.execute(select(otp_codes.c.used_at)).scalar_one() is not None
    # The code went by SMS only, never to the inbox or the mailbox.
    told = world.assert_told_everywhere()
    assert "identity.code" not in told
    assert [m.key for m in world.sms.sent].count(code_id) == 1
    world.assert_sound()


def test_five_wrong_codes_lock_submission_until_the_lock_ends(world: World) -> None:
    world.ingest(BIG)
    request = req("o-big", "A", reason="not_received", kind="refund_only")
    code_id, code = _code(world)
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    for left in (4, 3, 2, 1):
        with pytest.raises(Unprocessable) as err:
            open_case(
                world.desk, actor=CUSTOMER, request=request, now=world.now(), otp=(code_id, wrong)
            )
        assert err.value.code == "identity.code_invalid"
        assert f"{left} attempt" in str(err.value)
    with pytest.raises(Conflict) as locked:
        open_case(
            world.desk, actor=CUSTOMER, request=request, now=world.now(), otp=(code_id, wrong)
        )
    assert locked.value.code == "identity.locked"
    # Locked: even the right code is refused, and no new code is sent.
    with pytest.raises(Conflict) as again:
        open_case(world.desk, actor=CUSTOMER, request=request, now=world.now(), otp=(code_id, code))
    assert again.value.code == "identity.locked"
    texts = len(world.sms.sent)
    with pytest.raises(Conflict):
        _code(world)
    assert len(world.sms.sent) == texts
    # After the lock (30 minutes) the old code stays dead; a new one works.
    world.advance(minutes=31)
    with pytest.raises(Unprocessable) as expired:
        open_case(world.desk, actor=CUSTOMER, request=request, now=world.now(), otp=(code_id, code))
    assert expired.value.code == "identity.code_expired"
    opened = open_and_approve(world, request, otp=_code(world))
    world.settle_money()
    world.complete()
    assert world.state(opened.case_id) == "completed"
    with UnitOfWork(world.engine, readonly=True) as uow:
        actions = list(
            uow.conn.execute(
                select(audit_log.c.action)
                .where(audit_log.c.action.like("identity.%"))
                .order_by(audit_log.c.seq)
            ).scalars()
        )
    assert actions == [
        "identity.code_requested",
        "identity.locked",
        "identity.code_requested",
        "identity.verified",
    ]
    world.assert_sound()


# == 5. risk ===============================================================================

RISKY = "c-risky"
# A flash sale flagged high_value, one per customer: refunding the order gives the
# participation back — unless the customer is a frequent refunder (SPEC §3, eligibility (c)).
FLASH = {
    **regular_order("o-flash", RISKY, 30000),
    "campaigns": [
        {
            "id": "FLASH-HV",
            "kind": "participation_quota",
            "quota_per_customer": 1,
            "high_value": True,
        }
    ],
}
RISKY_CUSTOMER = Actor("customer", RISKY)


def _frequent_refunder(world: World) -> OpenedCase:
    """Two of the customer's three orders refunded (66% ≥ 60%): opening a case on the third
    restricts the customer from high-value campaigns for 30 days."""
    for order_id in ("o-r1", "o-r2"):
        world.ingest(regular_order(order_id, RISKY, 10000))
    world.ingest(FLASH)
    for order_id in ("o-r1", "o-r2"):
        opened = open_and_approve(
            world,
            req(order_id, "R", reason="not_received", kind="refund_only"),
            actor=RISKY_CUSTOMER,
        )
        world.settle_money()
        world.complete()
        assert world.state(opened.case_id) == "completed"
        world.advance(days=1)
    return open_case(
        world.desk,
        actor=RISKY_CUSTOMER,
        request=req("o-flash", "R", reason="not_received", kind="refund_only"),
        now=world.now(),
    )


def test_frequent_refunder_is_restricted_from_high_value_campaigns_and_told(
    world: World,
) -> None:
    flash = _frequent_refunder(world)
    assert flash.state == "under_review"
    (reason,) = json.loads(world.case(flash.case_id).risk)["reasons"]
    assert reason["rule"] == "frequent_refunder"
    assert reason["explain"].startswith("refund_rate_90d_pct = 66 ≥ 60")
    with UnitOfWork(world.engine, readonly=True) as uow:
        assert active_restrictions(uow.conn, RISKY, now=world.now()) == {"restrict_high_value"}
        assert active_restrictions(uow.conn, RISKY, now=world.now() + timedelta(days=30)) == set()
    world.drain()
    (told,) = world.inbox_params("risk.restricted_high_value", RISKY)
    assert told["days"] == 30
    world.assert_told_everywhere(RISKY)
    world.assert_sound()


def test_frequent_refunder_does_not_get_high_value_eligibility_back(world: World) -> None:
    flash = _frequent_refunder(world)
    world.advance(hours=2)
    approve(world.desk, flash.case_id, actor=AGENT, now=world.now())
    world.settle_money()
    world.complete()
    assert world.state(flash.case_id) == "completed"
    plan = applied_plan(world, flash.case_id)
    assert plan["amount"]["total"] == 30000
    with UnitOfWork(world.engine, readonly=True) as uow:
        used = uow.conn.execute(
            select(campaign_quotas.c.used).where(campaign_quotas.c.customer_id == RISKY)
        ).scalar_one()
    assert (effects(plan, "eligibility_restored"), effects(plan, "quota_release")) == ([], [])
    (withheld,) = effects(plan, "eligibility_withheld")
    assert (withheld["campaign_id"], withheld["why"]) == ("FLASH-HV", "frequent_refunder")
    assert used == 1  # the participation stays used
    (told,) = world.inbox_params("eligibility.withheld", RISKY)
    assert told["why"] == "frequent_refunder"


def test_suspended_refund_rights_refuse_new_cases_until_an_agent_lifts_them(
    world: World,
) -> None:
    world.with_process(
        ProcessPolicy(
            review_rules=(),
            express=ExpressPolicy(enabled=False),
            risk_rules=(
                RiskRule(
                    "serial_refunder",
                    "refund_count_30d",
                    ">=",
                    2,
                    "suspend",
                    30,
                    "2 or more refunds in 30 days",
                ),
            ),
        )
    )
    for n in range(1, 5):
        world.ingest(regular_order(f"o-s{n}", price=10000))
    for order_id in ("o-s1", "o-s2"):
        journey(world, req(order_id, "R", reason="not_received", kind="refund_only"))
        world.advance(days=1)
    third = open_case(
        world.desk,
        actor=CUSTOMER,
        request=req("o-s3", "R", reason="not_received", kind="refund_only"),
        now=world.now(),
    )
    assert (third.state, third.review["rule"]) == ("rejected", "risk.suspend")
    world.drain()
    assert world.templates()[-3:] == [
        "case.received",
        "risk.refund_rights_suspended",
        "case.rejected",
    ]
    fourth = req("o-s4", "R", reason="quality_issue")
    with pytest.raises(Forbidden) as err:
        open_case(world.desk, actor=CUSTOMER, request=fourth, now=world.now())
    assert err.value.code == "case.refund_rights_suspended"
    # The refunds leave the 30-day window; a suspension has no end of its own.
    world.advance(days=40)
    with pytest.raises(Forbidden) as err:
        open_case(world.desk, actor=CUSTOMER, request=fourth, now=world.now())
    assert err.value.code == "case.refund_rights_suspended"
    lift_suspension(
        world.engine, customer_id=ex.CUSTOMER, actor="agent:li", reason="verified", now=world.now()
    )
    world.drain()
    assert world.templates()[-1] == "risk.refund_rights_restored"
    opened = journey(world, fourth)
    assert applied_plan(world, opened.case_id)["amount"]["total"] == 10000
    # The rejected case gave its units back: they can be asked for again.
    again = journey(world, req("o-s3", "R", reason="not_received", kind="refund_only"))
    assert world.state(again.case_id) == "completed"
    assert world.refunded() == {
        "ali-o-s1": 10000,
        "ali-o-s2": 10000,
        "ali-o-s3": 10000,
        "ali-o-s4": 10000,
    }
    world.assert_told_everywhere()
    world.assert_sound()


def test_clock_is_the_worked_examples_now() -> None:
    assert datetime.fromisoformat(ex.NOW).astimezone(UTC) == START


# == beyond the five: 极速退款, timers, a refused refund ======================================


def test_trusted_customer_gets_the_money_before_the_goods_come_back(world: World) -> None:
    world.with_process(ProcessPolicy(review_rules=()))  # 极速退款 on, by default
    world.ingest(KR_ORDER)
    opened = open_and_approve(world, req("o-kr", "B", reason="quality_issue"))
    row = world.case(opened.case_id)
    assert (row.state, row.express, row.refund_id is not None) == ("awaiting_return", True, True)
    world.settle_money()
    assert world.refunded() == {"ali-o-kr": 10000}  # before the parcel left
    assert world.state(opened.case_id) == "awaiting_return"
    send_back_and_inspect_express(world, opened.case_id)
    world.drain()
    assert world.state(opened.case_id) == "refunded"
    world.complete()
    assert world.timeline(opened.case_id) == [
        "open",
        "review",
        "approve",
        "issue_return",
        "ship",
        "receive",
        "inspect",
        "settle",
        "confirm",
        "complete",
    ]
    assert world.refunded() == {"ali-o-kr": 10000}  # once
    assert world.assert_told_everywhere() == [
        "case.received",
        "case.approved",
        "case.return_label_issued",
        "refund.sent",
        "refund.refunded",
        "case.return_received",
        "case.inspection_passed",
        "case.completed",
    ]
    world.assert_sound()


def send_back_and_inspect_express(world: World, case_id: str) -> None:
    world.advance(days=1)
    ship(world.desk, case_id, actor=CUSTOMER, now=world.now(), tracking_number="SF7654321")
    world.advance(days=2)
    receive(world.desk, case_id, actor=MERCHANT, now=world.now())
    world.advance(hours=1)
    inspect(world.desk, case_id, actor=MERCHANT, now=world.now(), result="pass")


def test_timers_approve_a_silent_review_and_refund_an_uninspected_return(world: World) -> None:
    world.ingest(KR_ORDER)
    opened = open_case(
        world.desk,
        actor=CUSTOMER,
        request=req("o-kr", "A", reason="quality_issue"),
        now=world.now(),
    )
    world.advance(hours=48)
    world.complete()  # the sweep: merchant silent for 48 h → approved by policy
    row = world.case(opened.case_id)
    assert (row.state, json.loads(row.review)["rule"]) == (
        "awaiting_return",
        "timer.merchant_silent",
    )
    world.advance(days=1)
    ship(world.desk, opened.case_id, actor=CUSTOMER, now=world.now(), tracking_number="YT100")
    world.advance(days=2)
    receive(world.desk, opened.case_id, actor=MERCHANT, now=world.now())
    world.advance(hours=71)
    world.complete()
    assert world.state(opened.case_id) == "received"
    world.advance(hours=1)
    world.complete()  # received, not inspected within 72 h → refunded as asked
    assert world.state(opened.case_id) == "refunding"
    world.settle_money()
    world.complete()
    assert world.state(opened.case_id) == "completed"
    assert world.timeline(opened.case_id) == [
        "open",
        "review",
        "approve",
        "issue_return",
        "ship",
        "receive",
        "refund",
        "confirm",
        "complete",
    ]
    assert world.refunded() == {"ali-o-kr": 30000}
    assert world.assert_told_everywhere() == [
        "case.received",
        "case.approved",
        "case.return_label_issued",
        "case.return_received",
        "refund.sent",
        "refund.refunded",
        "case.completed",
    ]
    world.assert_sound()


def test_unshipped_return_is_closed_by_the_timer_and_its_units_freed(world: World) -> None:
    world.ingest(KR_ORDER)
    opened = open_and_approve(world, req("o-kr", "A"))
    world.advance(days=7)
    world.complete()
    assert world.state(opened.case_id) == "closed"
    assert world.templates()[-1] == "case.closed"
    again = journey(world, req("o-kr", "A", reason="wrong_item"))
    assert applied_plan(world, again.case_id)["amount"]["total"] == 30000
    world.assert_told_everywhere()
    world.assert_sound()


@pytest.mark.parametrize("remedy", ["retry", "wallet"])
def test_refund_refused_by_the_card_issuer_is_retried_or_sent_to_the_wallet(
    world: World, remedy: str
) -> None:
    world.ingest(KR_ORDER)
    world.gateway.set_card_state("ali-o-kr", "closed")
    opened = open_and_approve(world, req("o-kr", "A", reason="not_received", kind="refund_only"))
    world.settle_money()
    assert world.state(opened.case_id) == "refund_failed"
    assert world.templates()[-1] == "refund.refund_failed"
    refund_id = world.case(opened.case_id).refund_id
    if remedy == "retry":
        world.gateway.set_card_state("ali-o-kr", "open")  # the customer's new card
        key = retry_failed_refund(
            world.engine,
            refund_id=refund_id,
            tender_id="T1",
            actor=Actor("agent", "li"),
            now=world.now(),
            reason="card reissued",
        )
        assert key == f"{refund_id}:T1:a2"
        assert world.state(opened.case_id) == "refunding"
        world.settle_money()
        assert world.refunded() == {"ali-o-kr": 30000}
        assert world.balances() == {"points": 0, "wallet": 0}
    else:
        refund_to_wallet(
            world.engine,
            refund_id=refund_id,
            tender_id="T1",
            actor=Actor("agent", "li"),
            now=world.now(),
            reason="card closed",
            gateway=world.gateway,
        )
        world.drain()
        assert world.refunded() == {}
        assert world.balances() == {"points": 0, "wallet": 30000}
    assert world.state(opened.case_id) == "refunded"
    world.complete()
    assert world.state(opened.case_id) == "completed"
    told = world.assert_told_everywhere()
    assert told[told.index("refund.refund_failed") :] == [
        "refund.refund_failed",
        *(["refund.refunding"] if remedy == "retry" else []),
        "refund.refunded",
        "case.completed",
    ]
    assert world.stream_types() == [
        "case.requested",
        "case.under_review",
        "case.approved",
        "refund.applied",
        "case.refunding",
        "case.refund_failed",
        "refund.refund_failed",
        "case.refunding" if remedy == "retry" else "case.refunded",
        *(["refund.refunding", "case.refunded"] if remedy == "retry" else []),
        "refund.refunded",
        "case.completed",
    ]
    world.assert_sound()


# == more of the process: the whole-basket assets, a gift kept at inspection, cancellation ===

# A 200.00 (a 20.00 coupon on it) + B 100.00, shipping 10.00; paid 200.00 by Alipay, 50.00
# from the wallet and 4000 points; earned 280 points and 280 growth (silver); a first-purchase
# deal, a flash-sale participation on B and a free-shipping pass.
ASSETS = ex.order(
    "o-assets",
    [ex.line("A", 20000), ex.line("B", 10000)],
    20000,
    shipping_fee=1000,
    adjustments=[
        {
            "id": "ADJ-CP",
            "kind": "coupon",
            "amount": 2000,
            "lines": ["A"],
            "source": {"type": "coupon", "id": "CP-V"},
        }
    ],
    points_earned={"points": 280, "status": "granted"},
    growth_value=280,
    campaigns=[
        {"id": "FP-1", "kind": "first_purchase"},
        {"id": "FLASH-1", "kind": "participation_quota", "quota_per_customer": 1, "lines": ["B"]},
    ],
    benefits=[{"id": "FS-PASS", "kind": "free_shipping_pass", "lines": []}],
)
ASSETS["tenders"] += [
    {"id": "T2", "kind": "wallet", "amount": 5000},
    {"id": "T3", "kind": "points", "amount": 4000, "points": 4000},
]
ASSETS_CUSTOMER = {
    "locale": "en",
    "points_balance": 5000,
    "wallet_balance": 5000,
    "growth_value": 800,
    "tier_table": [{"name": "regular", "min_growth": 0}, {"name": "silver", "min_growth": 1000}],
    "coupons": [{"id": "CP-V", "value": 2000, "valid_until": "2027-01-01T00:00:00+08:00"}],
    "entitlements": [
        {"id": "FS-PASS", "kind": "free_shipping_pass", "valid_until": "2027-01-01T00:00:00+08:00"}
    ],
}


def test_full_return_gives_every_asset_back(world: World) -> None:
    world.ingest(ASSETS, ASSETS_CUSTOMER)
    assert world.balances() == {"points": 5000 - 4000 + 280, "wallet": 0}
    opened = journey(world, req("o-assets", "A", "B", reason="quality_issue"))
    plan = applied_plan(world, opened.case_id)
    assert plan["amount"]["total"] == 29000  # 280.00 goods + 10.00 shipping (merchant fault)
    assert [(t["tender_id"], t["amount"], t["points"]) for t in plan["tenders"]] == [
        ("T1", 20000, 0),
        ("T2", 5000, 0),
        ("T3", 4000, 4000),
    ]
    assert world.refunded() == {"ali-o-assets": 20000}
    assert world.balances() == {"points": 5000, "wallet": 5000}  # as before the order
    with UnitOfWork(world.engine, readonly=True) as uow:
        assert balance(uow.conn, "growth", ex.CUSTOMER) == 800
        assert uow.conn.execute(select(customers.c.tier)).scalar_one() == "regular"
        quotas = dict(
            uow.conn.execute(select(campaign_quotas.c.campaign_id, campaign_quotas.c.used)).all()
        )
    assert quotas == {"FP-1": 0, "FLASH-1": 0}
    held = world.entitlements()
    assert {k: (v.state, v.order_id) for k, v in held.items()} == {
        "CP-V": ("available", None),
        "FS-PASS": ("available", None),
    }
    assert world.assert_told_everywhere() == [
        "case.received",
        "case.approved",
        "case.return_label_issued",
        "case.return_received",
        "case.inspection_passed",
        "refund.sent",
        "shipping.refunded",
        "points.reversed",
        "points.returned",
        "coupon.returned",
        "entitlement.reactivated",
        "eligibility.first_purchase_restored",
        "eligibility.restored",
        "tier.changed",
        "refund.refunded",
        "case.completed",
    ]
    sent = [m for m in world.mail_to(ex.CUSTOMER) if m["Subject"] == "Your refund is on its way"]
    assert [m.get_content().strip() for m in sent] == [
        "Your refund of CNY 290.00 for order o-assets is on its way back to the payment "
        "method(s) you used."
    ]
    world.assert_sound()


def test_gift_not_sent_back_is_kept_at_inspection_and_its_value_deducted(world: World) -> None:
    world.ingest(ex.GIFT)
    opened = open_and_approve(world, req("o-gift", "Y", "G"))
    assert opened.plan["amount"]["total"] == 20000  # asked with the gift: nothing deducted
    world.advance(days=1)
    ship(world.desk, opened.case_id, actor=CUSTOMER, now=world.now(), tracking_number="ZT1")
    receive(world.desk, opened.case_id, actor=MERCHANT, now=world.now())
    row = inspect(
        world.desk,
        opened.case_id,
        actor=MERCHANT,
        now=world.now(),
        result="partial",
        accepted={"Y": 1},
        reason="the gift scarf was not in the parcel",
    )
    assert row.state == "refunding"
    world.settle_money()
    world.complete()
    plan = applied_plan(world, opened.case_id)
    assert plan["amount"]["total"] == 17000
    assert [(d["kind"], d["ref"], d["amount"]) for d in plan["deductions"]] == [
        ("kept_gift", "G", 3000)
    ]
    assert world.refunded() == {"ali-o-gift": 17000}
    assert world.assert_told_everywhere() == [
        "case.received",
        "case.approved",
        "case.return_label_issued",
        "case.return_received",
        "case.inspection_partial",
        "refund.sent",
        "gift.kept_deducted",
        "refund.refunded",
        "case.completed",
    ]
    world.assert_sound()


def test_customer_cancels_under_review_and_the_units_are_free_again(world: World) -> None:
    world.ingest(KR_ORDER)
    opened = open_case(world.desk, actor=CUSTOMER, request=req("o-kr", "A"), now=world.now())
    cancel(world.desk, opened.case_id, actor=CUSTOMER, now=world.now())
    world.drain()
    assert world.state(opened.case_id) == "cancelled"
    assert world.templates() == ["case.received", "case.cancelled"]
    assert world.stream_types() == ["case.requested", "case.under_review", "case.cancelled"]
    again = journey(world, req("o-kr", "A", reason="wrong_item", kind="refund_only"))
    assert applied_plan(world, again.case_id)["amount"]["total"] == 30000
    world.assert_told_everywhere()
    world.assert_sound()


def test_cancelled_return_is_not_booked_nor_labelled(world: World) -> None:
    world.ingest(KR_ORDER)
    opened = open_case(
        world.desk,
        actor=CUSTOMER,
        request=req("o-kr", "A", method="prepaid_label"),
        now=world.now(),
    )
    approve(world.desk, opened.case_id, actor=AGENT, now=world.now())
    cancel(world.desk, opened.case_id, actor=CUSTOMER, now=world.now())
    world.drain()
    assert world.state(opened.case_id) == "cancelled"
    assert world.templates() == ["case.received", "case.approved", "case.cancelled"]
    assert world.logistics.bookings == ()
    assert json.loads(world.case(opened.case_id).shipment)["status"] != "booked"


# == risk asks for a code =====================================================================


def _refund_only_history(world: World, *, orders: int) -> None:
    """``orders`` small orders; four of them refunded through refund_only cases."""
    for n in range(orders):
        world.ingest(regular_order(f"o-q{n}", price=5000))
    for n in range(4):
        journey(world, req(f"o-q{n}", "R", reason="not_received", kind="refund_only"))
        world.advance(hours=1)


def test_refund_only_pattern_needs_the_code_and_an_agent(world: World) -> None:
    _refund_only_history(world, orders=9)  # 4 of 9 refunded: 44%, below frequent_refunder
    request = req("o-q8", "R", reason="not_received", kind="refund_only")
    with pytest.raises(Unprocessable) as err:
        open_case(world.desk, actor=CUSTOMER, request=request, now=world.now())
    assert err.value.code == "identity.code_required"
    opened = open_case(
        world.desk, actor=CUSTOMER, request=request, now=world.now(), otp=_code(world)
    )
    assert opened.state == "needs_manual_review"
    assert json.loads(world.case(opened.case_id).risk)["decision"] == "manual_review"
    approve(world.desk, opened.case_id, actor=AGENT, now=world.now(), comment="called the customer")
    world.settle_money()
    world.complete()
    assert world.state(opened.case_id) == "completed"
    world.drain()
    assert world.templates()[-6:] == [
        "case.received",
        "case.needs_review",
        "case.approved",
        "refund.sent",
        "refund.refunded",
        "case.completed",
    ]
    world.assert_told_everywhere()
    world.assert_sound()


def test_a_worse_risk_record_does_not_skip_the_code_risk_asks_for(world: World) -> None:
    _refund_only_history(world, orders=5)  # 4 of 5 refunded: 80%, a frequent refunder too
    request = req("o-q4", "R", reason="not_received", kind="refund_only")
    with pytest.raises(Unprocessable) as err:
        open_case(world.desk, actor=CUSTOMER, request=request, now=world.now())
    assert err.value.code == "identity.code_required"
