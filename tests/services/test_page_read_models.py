"""The read models the pages added (services/orders/lists.py, orders/assets.py,
cases/timeline.py), on SQLite and PostgreSQL: what each holds, and whom it refuses."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from refundry.services.access import Actor
from refundry.services.cases.opening import open_case
from refundry.services.cases.timeline import case_timeline
from refundry.services.errors import Forbidden, NotFound
from refundry.services.orders.assets import order_assets
from refundry.services.orders.lists import customer_orders
from refundry.services.refunds.views import case_refund
from tests.web.conftest import (
    COUPON,
    CUSTOMER,
    FOREIGN,
    MUGS,
    NOW,
    OTHER,
    THRESHOLD,
    Shop,
    make_shop,
)

ME = Actor("customer", CUSTOMER)


@pytest.fixture()
def shop(db_url: str) -> Iterator[Shop]:
    made = make_shop(db_url)  # tests/web's shop: the same orders the pages show
    try:
        yield made
    finally:
        made.engine.dispose()


def test_customer_orders_lists_the_callers_orders_only(shop: Shop) -> None:
    mine = customer_orders(shop.engine, ME)
    assert {o.id for o in mine} == {THRESHOLD, MUGS, COUPON}
    mugs = next(o for o in mine if o.id == MUGS)
    assert (mugs.paid, mugs.refunded, mugs.units, mugs.titles) == (29000, 0, 3, ("Blue mug",))
    assert [o.id for o in customer_orders(shop.engine, Actor("customer", OTHER))] == [FOREIGN]
    for role in ("merchant", "agent", "admin"):
        with pytest.raises(Forbidden):
            customer_orders(shop.engine, Actor(role, "m-1"))


def test_order_assets_splits_each_line_by_unit_and_lists_the_coupon(shop: Shop) -> None:
    assets = order_assets(shop.engine, MUGS, ME)
    assert assets.unit_paid == {"M": (9666, 9667, 9667)}
    assert sum(assets.unit_paid["M"]) == 29000
    (coupon,) = assets.adjustments
    assert (coupon.kind, coupon.amount, coupon.source_id) == ("coupon", 1000, "CP-10")
    threshold = order_assets(shop.engine, THRESHOLD, ME)
    assert threshold.unit_paid == {"X": (33333,), "Y": (16667,)}
    with pytest.raises(NotFound):
        order_assets(shop.engine, FOREIGN, ME)
    merchant = order_assets(shop.engine, MUGS, Actor("merchant", "m-1"))
    assert merchant.adjustments == () and merchant.unit_paid == {"M": (9666, 9667, 9667)}
    with pytest.raises(NotFound):
        order_assets(shop.engine, MUGS, Actor("merchant", "m-9"))


def test_case_timeline_lists_each_transition_for_the_cases_customer_only(shop: Shop) -> None:
    desk = shop.app.state.ctx.desk
    request = {
        "order_id": THRESHOLD,
        "reason": "changed_mind",
        "kind": "refund_only",
        "lines": [{"line_id": "Y", "quantity": 1}],
    }
    opened = open_case(desk, actor=ME, request=request, now=NOW)
    events = case_timeline(shop.engine, opened.case_id, ME)
    assert [(e.from_state, e.to_state) for e in events][:2] == [
        (None, "requested"),
        ("requested", "under_review"),
    ]
    assert events[-1].to_state == opened.state
    assert {e.by for e in events} <= {"customer", "system"}
    with pytest.raises(NotFound):
        case_timeline(shop.engine, opened.case_id, Actor("customer", OTHER))


def test_case_refund_holds_each_tender_with_its_state_and_the_coupon_reissue(shop: Shop) -> None:
    desk = shop.app.state.ctx.desk
    request = {
        "order_id": COUPON,
        "reason": "quality_issue",
        "kind": "refund_only",
        "lines": [{"line_id": "A", "quantity": 1}],
    }
    opened = open_case(desk, actor=Actor("agent", "li"), request=request, now=NOW)
    refund = case_refund(shop.engine, opened.case_id, ME)
    assert refund is not None
    assert [(t.tender_id, t.method, t.amount, t.status) for t in refund.tenders] == [
        ("T1", "alipay", 27000, "pending")  # the worker has not sent it yet
    ]
    assert "coupon_reissue" in [e.type for e in refund.effects]
    assert "refund_to_tender" not in [e.type for e in refund.effects]
    assert case_refund(shop.engine, opened.case_id, Actor("merchant", "m-1")) is None
    with pytest.raises(NotFound):
        case_refund(shop.engine, opened.case_id, Actor("customer", OTHER))
