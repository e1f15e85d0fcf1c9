"""The operations dashboard over HTTP (TestClient), on SQLite and PostgreSQL: after a day of
cases (one refunded by the rules, one partial return inspected by the merchant, one waiting for
an agent) every chart's table shows the figures a full scan of the store computes
(metrics_figures.scan_figures, the other path from the counters the page reads), each chart is
inline SVG with a title and a description, and only the desk sees it."""

from __future__ import annotations

import re

import pytest

from refundry.services.access import Actor
from refundry.services.cases import actions as case_actions
from refundry.services.cases.views import read_case
from refundry.services.errors import Forbidden
from refundry.services.operations.dashboard import operations_dashboard
from refundry.services.operations.metrics_figures import Figures, scan_figures
from refundry.services.uow import UnitOfWork
from refundry.web.formats import duration, percent
from tests.web.conftest import CUSTOMER, NOW, Shop, signed_in
from tests.web.test_desk import DESK, add_agent, desk_sign_in, open_under_review
from tests.web.test_live import refunded_by_the_rules
from tests.web.test_merchant import MERCHANT, MERCHANT_NAME, add_merchants, returned_case

REASONS = {"quality_issue": "Quality problem", "wrong_item": "Wrong item sent"}


def a_day_of_cases(shop: Shop) -> dict[str, str]:
    """A refund-only case for a quality problem (approved by the rules, refunded by the relay),
    a return of which the merchant accepts 1 of 2 mugs (refunded), and one under review."""
    desk = shop.app.state.ctx.desk
    auto = refunded_by_the_rules(shop)
    returned = returned_case(shop)
    case_actions.receive(desk, returned, actor=MERCHANT, now=NOW)
    case_actions.inspect(
        desk, returned, actor=MERCHANT, now=NOW, result="partial", accepted={"M": 1}
    )
    shop.app.state.ctx.runtime.relay().drain()
    waiting = open_under_review(shop, order="o-coupon", line="A", qty=1)
    for case_id, state in ((auto, "refunded"), (returned, "refunded"), (waiting, "under_review")):
        assert read_case(shop.engine, case_id, DESK).state == state
    return {"auto": auto, "returned": returned, "waiting": waiting}


def _scan(shop: Shop) -> Figures:
    with UnitOfWork(shop.engine, readonly=True) as uow:
        return scan_figures(uow.conn)


def _rows(html: str, table: str) -> list[tuple[str, ...]]:
    body = re.search(rf'<table id="{table}-table">(.*?)</table>', html, re.S)
    assert body, f"no table {table}"
    return [
        tuple(
            re.sub(r"<[^>]+>", "", cell).strip()
            for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)
        )
        for row in re.findall(r"<tr>(.*?)</tr>", body.group(1).split("<tbody>")[1], re.S)
    ]


def test_the_dashboard_shows_the_figures_of_a_full_scan(shop: Shop) -> None:
    a_day_of_cases(shop)
    add_agent(shop)
    client = shop.client()
    desk_sign_in(client)
    page = client.get("/desk/dashboard")
    assert page.status_code == 200
    html, scan = page.text, _scan(shop)

    assert scan.orders == 4 and sum(scan.cases.values()) == 3
    assert scan.refund_rate == {"quality_issue": 0.25, "wrong_item": 0.25}
    assert _rows(html, "reasons") == [
        (REASONS[r], percent(rate, "en"), str(int(rate * scan.orders)))
        for r, rate in scan.refund_rate.items()
    ]
    assert _rows(html, "reasons") == [
        ("Quality problem", "25.0%", "1"),
        ("Wrong item sent", "25.0%", "1"),
    ]
    assert _rows(html, "merchants") == [
        ("m-1", "50.0%", f"{scan.refunds_by_merchant['m-1']} of 4 orders")
    ]
    auto = int(scan.auto_approval_ratio * 3)
    assert auto == 1
    assert _rows(html, "auto")[0] == ("Approved by the review rules", "1", "33.3%")
    assert _rows(html, "auto")[1][1] == "2"
    refunded = [row for row in _rows(html, "refund-time") if row[1] != "0"]
    assert refunded == [(f"up to {duration(60, 'en')}", str(scan.refund_seconds.count))]
    assert scan.refund_seconds.count == 2
    assert [row[0] for row in _rows(html, "clawbacks")] == [
        f"{label} ({c.currency})"
        for c, label in zip(
            scan.clawbacks, [_deduction_words(c.kind) for c in scan.clawbacks], strict=True
        )
    ]
    assert [row[2] for row in _rows(html, "stages")] == [str(s.count) for s in scan.stages]
    for chart in ("refund-time", "stages", "auto", "clawbacks", "reasons", "merchants"):
        svg = re.search(rf'<svg role="img" aria-labelledby="{chart}-title {chart}-desc"', html)
        assert svg, chart
        assert f'<title id="{chart}-title">' in html and f'<desc id="{chart}-desc">' in html


def _deduction_words(kind: str) -> str:
    return {
        "discount_clawback": "Discount you no longer qualify for",
        "return_label": "Return shipping label",
    }.get(kind, kind)


def test_the_dashboard_is_the_desks_only(shop: Shop) -> None:
    add_merchants(shop)
    merchant = shop.client()
    desk_sign_in(merchant, name=MERCHANT_NAME)
    customer = signed_in(shop.client())
    for client in (merchant, customer, shop.client()):
        got = client.get("/desk/dashboard", follow_redirects=False)
        assert (got.status_code, got.headers["location"]) == (303, "/desk/signin")


def test_an_empty_store_shows_no_bars(shop: Shop) -> None:
    add_agent(shop)
    client = shop.client()
    desk_sign_in(client)
    html = client.get("/desk/dashboard").text
    assert html.count("Nothing to show yet.") == 3  # stages, claw-backs, reasons
    assert _rows(html, "merchants") == [("m-1", "0.0%", "0 of 4 orders")]
    assert {row[1] for row in _rows(html, "refund-time")} == {"0"}


def test_the_read_model_refuses_anyone_but_the_desk(shop: Shop) -> None:
    """services/operations/dashboard.py decides it, not the page: auth.forbidden."""
    for actor in (MERCHANT, Actor("customer", CUSTOMER), Actor("system", "timers")):
        with pytest.raises(Forbidden) as refused:
            operations_dashboard(shop.engine, actor)
        assert refused.value.code == "auth.forbidden"
    assert operations_dashboard(shop.engine, Actor("admin", "root")).figures.orders == 4
