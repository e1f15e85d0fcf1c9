"""The agent desk's queue filters and case acts over HTTP (TestClient), on SQLite and
PostgreSQL (issue 13 point 2): the queue narrowed by how long a case has waited, its risk
decision and who holds it; claim and assign from the queue and the case page; escalate, an
internal note, an express-refund debt recovered or written off, refund rights suspended and
lifted; the customer's history. Each act is the API's service (refundry/web/routes/
desk_acts.py), audited by it; each refusal comes back on the page with its message and
changes nothing; a post without the form token is refused; free text is escaped.
tests/web/test_desk_browser.py drives the same pages in Chromium."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from refundry.demo import worked_examples as ex
from refundry.domain.errors import RefundryError
from refundry.services.access import Actor
from refundry.services.cases.actions import approve, inspect, receive, ship
from refundry.services.cases.opening import open_case
from refundry.services.cases.queue import agent_queue
from refundry.services.cases.views import read_case
from refundry.services.customers.history import customer_history
from refundry.services.orders.ingest import ingest_order
from refundry.services.uow import UnitOfWork
from refundry.store.tables import audit_log, case_notes, cases, risk_restrictions
from tests.web.conftest import CUSTOMER, MUGS, NOW, THRESHOLD, Shop, csrf_of, signed_in
from tests.web.test_desk import DESK, add_agent, desk_sign_in

NEWCOMER, TRUSTED = "c-300", "c-400"


def open_at(shop: Shop, order: str, line: str, qty: int, *, at: datetime = NOW, **kw: Any) -> str:
    """A return for a wrong item opened by the desk at ``at``; its id."""
    return open_case(
        shop.app.state.ctx.desk,
        actor=kw.pop("actor", DESK),
        request={
            "order_id": order,
            "lines": [{"line_id": line, "quantity": qty}],
            "reason": kw.pop("reason", "wrong_item"),
            "kind": kw.pop("kind", "return_and_refund"),
        },
        now=at,
        **kw,
    ).case_id


def _ingest(shop: Shop, customer: str, order: str, *, account_age: timedelta) -> None:
    """An order of ``customer`` (one ¥120 lamp, under the one-time code's ¥150) whose shop
    account is ``account_age`` old, paid a day ago."""
    doc = ex.order(order, [ex.line("L", 12000, title="Lamp")], 12000)
    doc["customer_id"] = customer
    created = (NOW - account_age).isoformat()
    for tender in doc["tenders"]:  # the sandbox gateway holds the payment, as make_shop's
        shop.app.state.ctx.gateway.capture(tender["gateway_txn_id"], tender["amount"], "CNY")
    with UnitOfWork(shop.engine) as uow:
        ingest_order(
            uow.conn,
            {"order": doc, "customer": {"account_created_at": created}},
            policy=shop.app.state.ctx.desk.policy,
            now=NOW - timedelta(days=1),
        )
        uow.commit()


def _desk(shop: Shop, *names: str) -> TestClient:
    """A client signed in as the first of the agents ``names`` (each gets an account)."""
    for name in names or ("ann",):
        add_agent(shop, name=name)
    client = shop.client()
    assert desk_sign_in(client, name=(names or ("ann",))[0]).status_code == 303
    return client


def _post(client: TestClient, case_id: str, act: str, **data: str) -> Any:
    token = csrf_of(client.get(f"/desk/cases/{case_id}").text)
    return client.post(
        f"/desk/cases/{case_id}/{act}",
        data={**data, "csrf_token": token},
        follow_redirects=False,
    )


def _written(shop: Shop) -> dict[str, Any]:
    """What an act writes: the cases, the desk's entries, restrictions and the audit log."""
    with UnitOfWork(shop.engine, readonly=True) as uow:
        conn = uow.conn
        return {
            "cases": sorted(
                (r.id, r.state, r.debt, r.assignee, r.version) for r in conn.execute(select(cases))
            ),
            **{
                t.name: conn.execute(select(func.count()).select_from(t)).scalar_one()
                for t in (case_notes, risk_restrictions, audit_log)
            },
        }


def _audited(shop: Shop, action: str) -> list[dict[str, Any]]:
    with UnitOfWork(shop.engine, readonly=True) as uow:
        return [
            {"actor": r.actor, **json.loads(r.data)}
            for r in uow.conn.execute(
                select(audit_log.c.actor, audit_log.c.data)
                .where(audit_log.c.action == action)
                .order_by(audit_log.c.at, audit_log.c.chain, audit_log.c.seq)
            )
        ]


def _queue(client: TestClient, **params: str) -> str:
    page = client.get("/desk", params=params)
    assert page.status_code == 200
    return page.text


# -- the queue's filters -----------------------------------------------------------------------


def test_the_queue_filters_by_how_long_a_case_has_waited(shop: Shop) -> None:
    old = open_at(shop, THRESHOLD, "X", 1, at=NOW - timedelta(days=2))
    new = open_at(shop, MUGS, "M", 2, at=NOW - timedelta(minutes=30))
    client = _desk(shop)
    assert old in _queue(client) and new in _queue(client)
    for age, shown in (("1h", {old}), ("24h", {old}), ("3d", set()), ("", {old, new})):
        page = _queue(client, age=age)
        assert {c for c in (old, new) if c in page} == shown, age
    assert '<option value="24h" selected>' in _queue(client, age="24h")


def test_the_queue_filters_by_risk_decision(shop: Shop) -> None:
    _ingest(shop, NEWCOMER, "o-new", account_age=timedelta(days=2))
    risky = open_at(shop, "o-new", "L", 1)
    calm = open_at(shop, MUGS, "M", 2)
    with UnitOfWork(shop.engine, readonly=True) as uow:
        stored = uow.conn.execute(select(cases.c.risk).where(cases.c.id == risky)).scalar_one()
    assert json.loads(stored)["decision"] == "manual_review"
    client = _desk(shop)
    for risk, shown in (
        ("flagged", {risky}),
        ("manual_review", {risky}),
        ("approve", {calm}),
        ("suspend", set()),
        ("not-a-decision", {risky, calm}),  # an unknown value filters nothing
    ):
        page = _queue(client, risk=risk)
        assert {c for c in (risky, calm) if c in page} == shown, risk
    assert "the account is less than a week old" in _queue(client, risk="flagged")
    with pytest.raises(RefundryError) as refused:  # the service names what it accepts
        agent_queue(shop.engine, DESK, risk="not-a-decision")
    assert (refused.value.code, refused.value.field) == ("request.invalid", "risk")


def test_an_agent_claims_and_assigns_from_the_queue_and_filters_its_own(shop: Shop) -> None:
    first = open_at(shop, THRESHOLD, "X", 1)
    second = open_at(shop, MUGS, "M", 2)
    client = _desk(shop, "ann", "bo")
    token = csrf_of(_queue(client))
    claimed = client.post(
        f"/desk/cases/{first}/claim",
        data={"csrf_token": token, "back": "/desk?held=nobody"},
        follow_redirects=False,
    )
    assert claimed.headers["location"] == "/desk?held=nobody&done=claim"
    assert read_case(shop.engine, first, DESK).assignee == "agent:ann"
    mine = _queue(client, held="mine")
    assert first in mine and second not in mine
    nobody = _queue(client, held="nobody")
    assert first not in nobody and second in nobody
    assigned = client.post(
        f"/desk/cases/{second}/assign",
        data={"csrf_token": token, "back": "/desk", "agent_id": "bo"},
        follow_redirects=False,
    )
    assert assigned.headers["location"] == "/desk?done=assign"
    assert read_case(shop.engine, second, DESK).assignee == "agent:bo"
    assert second not in _queue(client, held="mine") and second not in _queue(client, held="nobody")
    bo = shop.client()
    desk_sign_in(bo, name="bo")
    assert second in _queue(bo, held="mine") and first not in _queue(bo, held="mine")
    # An address off the desk is not followed: back to the case instead.
    elsewhere = client.post(
        f"/desk/cases/{second}/assign",
        data={"csrf_token": token, "back": "//evil.example/desk", "agent_id": "ann"},
        follow_redirects=False,
    )
    assert elsewhere.headers["location"] == f"/desk/cases/{second}?done=assign"
    assert read_case(shop.engine, second, DESK).assignee == "agent:ann"


def test_claim_and_assign_on_the_case_page_with_their_refusals(shop: Shop) -> None:
    case_id = open_at(shop, THRESHOLD, "X", 1)
    client = _desk(shop, "ann", "bo")
    page = client.get(f"/desk/cases/{case_id}").text
    assert "Claim the case" in page and '<option value="bo">bo</option>' in page
    before = _written(shop)
    unknown = _post(client, case_id, "assign", agent_id="zed")
    assert unknown.status_code == 422
    assert "no agent &#39;zed&#39;" in unknown.text and "case.assignee_unknown" in unknown.text
    assert _written(shop) == before
    assert _post(client, case_id, "assign", agent_id="bo").status_code == 303
    taken = _post(client, case_id, "claim")
    assert taken.status_code == 409 and "case.already_claimed" in taken.text
    assert read_case(shop.engine, case_id, DESK).assignee == "agent:bo"
    page = client.get(f"/desk/cases/{case_id}").text
    assert 'id="case-assignee">bo<' in page and "Held by bo" in page
    assert [e["assignee"] for e in _audited(shop, "case.assigned")] == ["agent:bo"]


# -- escalate and internal notes ---------------------------------------------------------------


def test_an_agent_escalates_and_writes_an_internal_note_the_customer_never_sees(
    shop: Shop,
) -> None:
    case_id = open_at(shop, MUGS, "M", 2)
    client = _desk(shop)
    before = _written(shop)
    why = _post(client, case_id, "escalate", comment="  ")
    assert why.status_code == 422 and "case.comment_required" in why.text
    assert _written(shop) == before
    done = _post(client, case_id, "escalate", comment="photos disagree with the description")
    assert done.headers["location"] == f"/desk/cases/{case_id}?done=escalate"
    assert read_case(shop.engine, case_id, DESK).state == "needs_manual_review"

    note = "<script>alert(2)</script> called the customer: the mugs are blue"
    assert _post(client, case_id, "note", text=note).status_code == 303
    page = client.get(f"/desk/cases/{case_id}").text
    assert "&lt;script&gt;alert(2)&lt;/script&gt; called the customer" in page
    assert "<script>alert(2)</script>" not in page and "Internal note" in page
    [entry] = _audited(shop, "case.note_added")
    assert entry["actor"] == "agent:ann" and entry["case_id"] == case_id

    customer = signed_in(shop.client())
    theirs = customer.get(f"/cases/{case_id}")
    assert theirs.status_code == 200 and "called the customer" not in theirs.text

    before = _written(shop)
    token = csrf_of(customer.get("/orders").text)  # a customer's session is not at the desk
    kept_out = customer.post(
        f"/desk/cases/{case_id}/note",
        data={"text": "a customer's note", "csrf_token": token},
        follow_redirects=False,
    )
    assert kept_out.headers["location"] == "/desk/signin"
    too_long = _post(client, case_id, "note", text="x" * 2001)
    assert too_long.status_code == 422 and "case.note_invalid" in too_long.text
    no_token = client.post(f"/desk/cases/{case_id}/note", data={"text": "no token"})
    assert no_token.status_code == 403
    assert _written(shop) == before


# -- an express-refund debt --------------------------------------------------------------------


def with_debt(shop: Shop) -> str:
    """极速退款 of the trusted customer's ¥120 lamp, then the goods failed inspection: the case
    owes ¥120."""
    _ingest(shop, TRUSTED, "o-trusted", account_age=timedelta(days=400))
    desk = shop.app.state.ctx.desk
    customer = Actor("customer", TRUSTED)
    case_id = open_at(shop, "o-trusted", "L", 1, actor=customer, reason="quality_issue")
    if read_case(shop.engine, case_id, DESK).state == "under_review":
        approve(desk, case_id, actor=DESK, now=NOW)
    ship(desk, case_id, actor=customer, now=NOW, tracking_number="SF100")
    receive(desk, case_id, actor=DESK, now=NOW)
    inspect(desk, case_id, actor=DESK, now=NOW, result="fail", reason="used")
    case = read_case(shop.engine, case_id, DESK)
    assert (case.state, case.debt) == ("rejected_after_inspection", 12000)
    return case_id


def test_an_agent_records_a_debt_recovered_then_writes_the_rest_off(shop: Shop) -> None:
    case_id = with_debt(shop)
    client = _desk(shop)
    page = client.get(f"/desk/cases/{case_id}").text
    assert "Express-refund debt: CN¥120.00 owed" in page and 'value="120.00"' in page

    before = _written(shop)
    for data, status, code in (
        ({"amount": "12.345", "method": "external", "reference": "r"}, 422, "debt_amount_invalid"),
        ({"amount": "abc", "method": "external", "reference": "r"}, 422, "debt_amount_invalid"),
        ({"amount": "120.01", "method": "external", "reference": "r"}, 422, "debt_amount_invalid"),
        ({"amount": "50", "method": "external"}, 422, "debt_reference_required"),
        ({"amount": "50", "method": "wallet"}, 422, "ledger.insufficient_funds"),
    ):
        refused = _post(client, case_id, "recover-debt", **data)
        assert (refused.status_code, code in refused.text) == (status, True), data
    assert _written(shop) == before

    done = _post(
        client, case_id, "recover-debt", amount="50", method="external", reference="BANK-7"
    )
    assert done.headers["location"] == f"/desk/cases/{case_id}?done=recover-debt"
    assert read_case(shop.engine, case_id, DESK).debt == 7000
    no_why = _post(client, case_id, "write-off-debt", amount="70.00")
    assert no_why.status_code == 422 and "case.comment_required" in no_why.text
    off = _post(client, case_id, "write-off-debt", amount="70.00", comment="goodwill")
    assert off.status_code == 303
    assert read_case(shop.engine, case_id, DESK).debt == 0

    page = client.get(f"/desk/cases/{case_id}").text
    assert "Debt recovered: CN¥50.00, CN¥70.00 still owed" in page and "BANK-7" in page
    assert "Debt written off: CN¥70.00, CN¥0.00 still owed" in page
    assert "Express-refund debt" not in page  # nothing owed: no form
    assert [(e["amount"], e["debt"]) for e in _audited(shop, "case.debt_recovered")] == [
        (5000, 7000)
    ]
    assert [e["actor"] for e in _audited(shop, "case.debt_written_off")] == ["agent:ann"]


# -- refund rights ---------------------------------------------------------------------------


def test_an_agent_suspends_and_lifts_the_customers_refund_rights(shop: Shop) -> None:
    case_id = open_at(shop, THRESHOLD, "X", 1)
    client = _desk(shop)
    assert "Suspend refund rights" in client.get(f"/desk/cases/{case_id}").text
    before = _written(shop)
    blank = _post(client, case_id, "suspend", reason=" ")
    assert blank.status_code == 422 and "risk.reason_invalid" in blank.text
    assert _written(shop) == before

    assert (
        _post(client, case_id, "suspend", reason="<b>chargebacks</b> on 3 orders").status_code
        == 303
    )
    page = client.get(f"/desk/cases/{case_id}").text
    assert "Suspended: the customer cannot open a case" in page
    assert "&lt;b&gt;chargebacks&lt;/b&gt; on 3 orders" in page and "Lift the suspension" in page
    with pytest.raises(RefundryError) as refused:
        open_at(shop, MUGS, "M", 1, actor=Actor("customer", CUSTOMER))
    assert refused.value.code == "case.refund_rights_suspended"
    [suspended] = _audited(shop, "risk.suspend")
    assert suspended["actor"] == "agent:ann"

    assert _post(client, case_id, "lift", reason="the bank cleared them").status_code == 303
    history = customer_history(shop.engine, DESK, CUSTOMER, now=NOW)
    assert not history.suspended
    [lifted] = history.restrictions
    assert (lifted.kind, lifted.rule, lifted.in_force) == ("suspend", "agent", False)
    assert (lifted.lifted_by, lifted.lift_reason) == ("agent:ann", "the bank cleared them")
    page = client.get(f"/desk/cases/{case_id}").text
    assert "Not suspended" in page and "Lifted" in page and "the bank cleared them" in page
    again = _post(client, case_id, "lift", reason="twice")
    assert again.status_code == 409 and "risk.not_suspended" in again.text


# -- the customer's history ------------------------------------------------------------------


def test_the_case_page_shows_the_customers_orders_cases_and_refunds(shop: Shop) -> None:
    small = open_at(shop, MUGS, "M", 1, actor=Actor("customer", CUSTOMER), kind="refund_only")
    shop.app.state.ctx.runtime.relay().drain()
    assert read_case(shop.engine, small, DESK).state in ("refunding", "refunded")
    case_id = open_at(shop, THRESHOLD, "X", 1)
    history = customer_history(shop.engine, DESK, CUSTOMER, now=NOW)
    # paid at the same time: newest first, then by id descending
    assert [o.id for o in history.orders] == [MUGS, "o-coupon", THRESHOLD]
    by_id = {o.id: o for o in history.orders}
    assert [c.id for c in by_id[MUGS].cases] == [small]
    assert [c.id for c in by_id[THRESHOLD].cases] == [case_id]
    assert (by_id[MUGS].refunds, by_id[MUGS].refunded) == (1, 9666)
    assert [(t.currency, t.refunds, t.total) for t in history.totals] == [("CNY", 1, 9666)]
    page = _desk(shop).get(f"/desk/cases/{case_id}").text
    assert f'<a href="/desk/cases/{small}">{small}</a>' in page
    assert f"{case_id} (this case)" in page and "CN¥96.66 in 1 refunds" in page
    for actor in (Actor("customer", CUSTOMER), Actor("merchant", "m-1")):
        with pytest.raises(RefundryError) as refused:
            customer_history(shop.engine, actor, CUSTOMER, now=NOW)
        assert refused.value.code == "auth.forbidden"


def test_what_an_act_did_is_said_in_words_in_each_language_and_never_echoed(shop: Shop) -> None:
    case_id = open_at(shop, THRESHOLD, "Y", 1)
    client = _desk(shop)
    page = client.get(f"/desk/cases/{case_id}?done=note")
    assert "Note added." in page.text
    zh = client.get(f"/desk/cases/{case_id}?done=note", headers={"Accept-Language": "zh-CN"})
    assert "已添加备注。" in zh.text
    forged = client.get(f"/desk/cases/{case_id}?done=%3Cb%3Epwned")
    assert "Done." in forged.text and "pwned" not in forged.text
