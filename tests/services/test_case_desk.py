"""The desk's acts on a case through the services (issue 12 point 2), on SQLite and PostgreSQL:
escalate, internal notes, claim / assign, an express-refund debt recovered or written off, and
a failed refund's remedies deciding their own access. Each act writes its audit entry and its
domain event with it; each refusal changes nothing; the case read by id shows its timeline
(notes for the desk only), its deadlines and all its refunds; the queue suggests only actions
the caller may take."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from refundry.domain.case import IllegalTransition
from refundry.domain.errors import RefundryError
from refundry.services.access import Actor
from refundry.services.audit.verify import verify_chain
from refundry.services.audit.views import order_audit
from refundry.services.cases.actions import approve, inspect, receive, ship
from refundry.services.cases.debts import recover_debt, write_off_debt
from refundry.services.cases.handling import add_note, assign, claim, escalate
from refundry.services.cases.opening import open_case
from refundry.services.cases.queue import agent_queue
from refundry.services.cases.views import read_case_detail
from refundry.services.refunds.failed_refunds import (
    refund_to_wallet,
    retry_case_tender,
    retry_failed_refund,
)
from refundry.services.refunds.ledger import balance, post
from refundry.services.staff.accounts import add_staff
from refundry.services.uow import UnitOfWork
from refundry.store.tables import audit_log, case_notes, cases, ledger_postings, outbox
from tests.services.case_world import (
    AGENT,
    CUSTOMER,
    MERCHANT,
    request,
    settle_money,
    world_for,
)

OTHER_AGENT = Actor("agent", "wang")
STRANGER = Actor("customer", "c-stranger")


@pytest.fixture()
def world(engine: Engine) -> dict[str, Any]:
    return world_for(engine)


def _counts(engine: Engine) -> dict[str, Any]:
    """What any act writes: the case rows, desk entries, audit, outbox and ledger."""
    with UnitOfWork(engine, readonly=True) as uow:
        conn = uow.conn
        return {
            "cases": sorted(
                (r.id, r.state, r.debt, r.assignee, r.version) for r in conn.execute(select(cases))
            ),
            **{
                t.name: conn.execute(select(func.count()).select_from(t)).scalar_one()
                for t in (case_notes, audit_log, outbox, ledger_postings)
            },
        }


PASSWORD = "correct horse battery staple"


def _refused(engine: Engine, code: str, act: Any) -> RefundryError:
    before = _counts(engine)
    with pytest.raises(RefundryError) as err:
        act()
    assert err.value.code == code, err.value
    assert _counts(engine) == before, "a refusal changed something"
    return err.value


def _under_review(world: dict[str, Any]) -> str:
    """A return case waiting for a decision (quality issue on a 100.00 line)."""
    opened = open_case(
        world["desk"],
        actor=CUSTOMER,
        now=world["clock"](),
        request=request("o-1000-200", "B", reason="quality_issue"),
    )
    assert opened.state == "under_review", opened
    return opened.case_id


def _with_debt(world: dict[str, Any]) -> str:
    """极速退款 paid 100.00, then the goods failed inspection: the case owes 100.00."""
    desk, clock = world["desk"], world["clock"]
    opened = open_case(
        desk, actor=CUSTOMER, now=clock(), request=request("o-500-100", "Y", reason="quality_issue")
    )
    if opened.state == "under_review":
        approve(desk, opened.case_id, actor=AGENT, now=clock())
    ship(desk, opened.case_id, actor=CUSTOMER, now=clock(), tracking_number="SF77")
    receive(desk, opened.case_id, actor=MERCHANT, now=clock())
    row = inspect(desk, opened.case_id, actor=MERCHANT, now=clock(), result="fail", reason="used")
    assert (row.state, row.debt) == ("rejected_after_inspection", 10000)
    return opened.case_id


def _entries(engine: Engine, action: str) -> list[dict[str, Any]]:
    with UnitOfWork(engine, readonly=True) as uow:
        return [
            json.loads(d)
            for (d,) in uow.conn.execute(
                select(audit_log.c.data).where(audit_log.c.action == action)
            )
        ]


def _events(engine: Engine, kind: str) -> list[dict[str, Any]]:
    with UnitOfWork(engine, readonly=True) as uow:
        found = [json.loads(p) for (p,) in uow.conn.execute(select(outbox.c.payload))]
    return [p for p in found if p.get("type") == kind]


# -- escalate ----------------------------------------------------------------------------------


def test_an_agent_escalates_to_manual_review_and_a_held_case_is_the_agents(
    world: dict[str, Any], engine: Engine
) -> None:
    desk, clock = world["desk"], world["clock"]
    case_id = _under_review(world)
    _refused(
        engine,
        "auth.forbidden",
        lambda: escalate(desk, case_id, actor=CUSTOMER, now=clock(), comment="please"),
    )
    _refused(
        engine,
        "case.comment_required",
        lambda: escalate(desk, case_id, actor=AGENT, now=clock(), comment="  "),
    )
    row = escalate(desk, case_id, actor=AGENT, now=clock(), comment="photos look staged")
    assert row.state == "needs_manual_review"
    (event,) = [e for e in _events(engine, "case.needs_manual_review") if e["case_id"] == case_id]
    assert (event["action"], event["actor"]) == ("escalate", "agent:li")
    (entry,) = [e for e in _entries(engine, "case.escalate") if e["case_id"] == case_id]
    assert entry["comment"] == "photos look staged"
    # escalated once, it cannot be escalated again from manual review
    with pytest.raises(IllegalTransition):
        escalate(desk, case_id, actor=AGENT, now=clock(), comment="again")
    detail = read_case_detail(desk, case_id, MERCHANT)
    assert "approve" not in detail.allowed_actions  # held: the agents decide it


def test_the_merchant_escalates_a_case_of_its_own_lines_to_the_platform(
    world: dict[str, Any],
) -> None:
    case_id = _under_review(world)
    row = escalate(
        world["desk"], case_id, actor=MERCHANT, now=world["clock"](), comment="cannot tell"
    )
    assert row.state == "needs_manual_review"


# -- notes, claim, assign ---------------------------------------------------------------------


def test_an_internal_note_is_on_the_desks_timeline_only(
    world: dict[str, Any], engine: Engine
) -> None:
    desk, clock = world["desk"], world["clock"]
    case_id = _under_review(world)
    for who in (CUSTOMER, MERCHANT):
        _refused(
            engine,
            "auth.forbidden",
            lambda who=who: add_note(desk, case_id, actor=who, now=clock(), text="hello"),
        )
    _refused(
        engine,
        "case.not_found",
        lambda: add_note(desk, case_id, actor=STRANGER, now=clock(), text="x"),
    )
    _refused(
        engine,
        "case.note_invalid",
        lambda: add_note(desk, case_id, actor=AGENT, now=clock(), text="x" * 2001),
    )
    world["clock"].advance(timedelta(minutes=5))
    add_note(desk, case_id, actor=AGENT, now=clock(), text="customer called: secret-note-7")
    desk_view = read_case_detail(desk, case_id, AGENT)
    (note,) = [e for e in desk_view.timeline if e.kind == "note_added"]
    assert (note.by, note.text) == ("agent:li", "customer called: secret-note-7")
    assert [e.action for e in desk_view.timeline if e.kind == "transition"] == ["open", "review"]
    for who in (CUSTOMER, MERCHANT):
        theirs = read_case_detail(desk, case_id, who)
        assert [e.kind for e in theirs.timeline] == ["transition", "transition"]
        assert all(e.detail is None and e.text is None for e in theirs.timeline)
        assert {e.by for e in theirs.timeline} <= {"customer", "system"}
        audit = order_audit(engine, "o-1000-200", who)
        assert "secret-note-7" not in repr(audit) and "case.note_added" not in repr(audit)
    (event,) = _events(engine, "case.note_added")
    assert (event["case_id"], event["text"]) == (case_id, "customer called: secret-note-7")
    assert [e["case_id"] for e in _entries(engine, "case.note_added")] == [case_id]
    with UnitOfWork(engine, readonly=True) as uow:
        assert verify_chain(uow.conn).ok


def test_claim_then_assign_moves_who_holds_the_case(world: dict[str, Any], engine: Engine) -> None:
    desk, clock = world["desk"], world["clock"]
    case_id = _under_review(world)
    assert "claim" in read_case_detail(desk, case_id, AGENT).allowed_actions
    assert claim(desk, case_id, actor=AGENT, now=clock()).assignee == "agent:li"
    assert claim(desk, case_id, actor=AGENT, now=clock()).assignee == "agent:li"  # no change
    assert "claim" not in read_case_detail(desk, case_id, AGENT).allowed_actions
    _refused(
        engine, "case.already_claimed", lambda: claim(desk, case_id, actor=OTHER_AGENT, now=clock())
    )
    _refused(
        engine,
        "auth.forbidden",
        lambda: assign(desk, case_id, actor=MERCHANT, now=clock(), agent_id="m"),
    )
    _refused(
        engine,
        "case.assignee_invalid",
        lambda: assign(desk, case_id, actor=AGENT, now=clock(), agent_id="two\nlines"),
    )
    add_staff(
        engine, role="merchant", name="m-wang", password=PASSWORD, now=clock(), merchant_id="m"
    )
    for nobody in ("wang", "m-wang"):  # no account yet; a merchant's account
        _refused(
            engine,
            "case.assignee_unknown",
            lambda who=nobody: assign(desk, case_id, actor=AGENT, now=clock(), agent_id=who),
        )
    add_staff(engine, role="agent", name="wang", password=PASSWORD, now=clock())
    row = assign(desk, case_id, actor=Actor("admin", "root"), now=clock(), agent_id="wang")
    assert row.assignee == "agent:wang"
    assert read_case_detail(desk, case_id, AGENT).assignee == "agent:wang"
    assert read_case_detail(desk, case_id, CUSTOMER).assignee is None
    assigned = [e for e in _entries(engine, "case.assigned") if e["case_id"] == case_id]
    assert [(e["before"], e["assignee"]) for e in assigned] == [
        (None, "agent:li"),
        ("agent:li", "agent:wang"),
    ]
    assert [e["assignee"] for e in _events(engine, "case.assigned")] == ["agent:li", "agent:wang"]


# -- the express-refund debt ------------------------------------------------------------------


def test_a_debt_is_recovered_in_parts_then_written_off_never_below_zero(
    world: dict[str, Any], engine: Engine
) -> None:
    desk, clock = world["desk"], world["clock"]
    case_id = _with_debt(world)
    customer = CUSTOMER.id

    def recover(amount: int, method: str, **extra: Any) -> Any:
        return recover_debt(
            desk,
            case_id,
            actor=AGENT,
            now=clock(),
            amount=amount,
            currency=extra.pop("currency", "CNY"),
            method=method,
            **extra,
        )

    _refused(
        engine,
        "auth.forbidden",
        lambda: write_off_debt(
            desk, case_id, actor=CUSTOMER, now=clock(), amount=1, currency="CNY", comment="x"
        ),
    )
    _refused(engine, "case.debt_amount_invalid", lambda: recover(10001, "external", reference="r"))
    _refused(engine, "case.debt_amount_invalid", lambda: recover(0, "external", reference="r"))
    _refused(engine, "case.debt_reference_required", lambda: recover(100, "external"))
    _refused(
        engine,
        "money.currency_mismatch",
        lambda: recover(100, "external", reference="r", currency="USD"),
    )
    _refused(engine, "ledger.insufficient_funds", lambda: recover(2000, "wallet"))
    assert recover(3000, "external", reference="bank-88").debt == 7000
    with UnitOfWork(engine) as uow:  # the customer's wallet holds 20.00 now
        post(
            uow.conn,
            journal_id="t:top-up",
            kind="wallet",
            customer_id=customer,
            amount=2000,
            memo="test",
            at=clock(),
        )
        uow.commit()
    assert recover(2000, "wallet").debt == 5000
    with UnitOfWork(engine, readonly=True) as uow:
        assert balance(uow.conn, "wallet", customer) == 0
    row = write_off_debt(
        desk, case_id, actor=AGENT, now=clock(), amount=5000, currency="CNY", comment="goodwill"
    )
    assert (row.debt, row.state) == (0, "rejected_after_inspection")
    _refused(engine, "case.no_debt", lambda: recover(1, "external", reference="r"))
    detail = read_case_detail(desk, case_id, AGENT)
    records = [
        (e.kind, e.detail["amount"], e.detail["debt"])
        for e in detail.timeline
        if e.kind.startswith("debt_") and e.detail
    ]
    assert records == [
        ("debt_recovered", 3000, 7000),
        ("debt_recovered", 2000, 5000),
        ("debt_written_off", 5000, 0),
    ]
    assert [e["amount"] for e in _entries(engine, "case.debt_recovered")] == [3000, 2000]
    assert [e["amount"] for e in _events(engine, "case.debt_written_off")] == [5000]
    assert not {"recover_debt", "write_off_debt"} & set(detail.allowed_actions)
    with UnitOfWork(engine, readonly=True) as uow:
        assert verify_chain(uow.conn).ok


def test_the_queue_suggests_only_actions_the_caller_may_take(world: dict[str, Any]) -> None:
    waiting = _under_review(world)
    owing = _with_debt(world)
    items = {i.case_id: i for i in agent_queue(world["engine"], AGENT).items}
    assert items[waiting].suggested_actions == ("approve", "reject", "escalate")
    assert items[owing].suggested_actions == ("recover_debt", "write_off_debt")


# -- the case's deadlines and refunds ---------------------------------------------------------


def test_a_case_shows_when_its_timer_fires_and_every_refund_it_had(
    world: dict[str, Any],
) -> None:
    desk, clock = world["desk"], world["clock"]
    case_id = _under_review(world)
    detail = read_case_detail(desk, case_id, CUSTOMER)
    hours = desk.process.timers.merchant_silent_hours
    assert [(d.timer, d.action, d.at) for d in detail.deadlines] == [
        ("merchant_silent", "approve", clock() + timedelta(hours=hours))
    ]
    assert detail.refunds == ()
    approve(desk, case_id, actor=AGENT, now=clock())
    detail = read_case_detail(desk, case_id, CUSTOMER)
    assert detail.state == "awaiting_return"
    days = desk.process.timers.ship_within_days
    assert [(d.timer, d.at) for d in detail.deadlines] == [
        ("ship_within", clock() + timedelta(days=days))
    ]
    owing = _with_debt(world)  # 极速退款: its refund is named by the approval
    refunds = read_case_detail(desk, owing, CUSTOMER).refunds
    assert [(r.status, r.amount) for r in refunds] == [("pending", 10000)]


# -- a failed refund's remedies decide their own access ----------------------------------------


def test_failed_refund_remedies_refuse_anyone_but_the_desk(
    world: dict[str, Any], engine: Engine
) -> None:
    desk, clock, gateway = world["desk"], world["clock"], world["gateway"]
    gateway.set_card_state("ali-o-1000-200", "blocked")
    opened = open_case(
        desk,
        actor=CUSTOMER,
        now=clock(),
        request=request("o-1000-200", "B", kind="refund_only", reason="not_received"),
    )
    if opened.state == "under_review":
        approve(desk, opened.case_id, actor=AGENT, now=clock())
    settle_money(world)
    detail = read_case_detail(desk, opened.case_id, AGENT)
    assert detail.state == "refund_failed"
    assert {"retry_refund", "refund_to_wallet"} <= set(detail.allowed_actions)
    refund_id = str(detail.refund_id)
    for who, code in (
        (CUSTOMER, "auth.forbidden"),
        (STRANGER, "refund.not_found"),
        (MERCHANT, "auth.forbidden"),
        (Actor("merchant", "m-9"), "refund.not_found"),
    ):
        _refused(
            engine,
            code,
            lambda who=who: retry_failed_refund(
                engine, refund_id=refund_id, tender_id="T1", actor=who, now=clock(), reason="x"
            ),
        )
        _refused(
            engine,
            code,
            lambda who=who: refund_to_wallet(
                engine,
                refund_id=refund_id,
                tender_id="T1",
                actor=who,
                now=clock(),
                reason="x",
                gateway=gateway,
            ),
        )
    _refused(
        engine,
        "auth.forbidden",
        lambda: retry_case_tender(
            engine, opened.case_id, tender_id="T1", actor=CUSTOMER, now=clock(), reason="x"
        ),
    )
    gateway.set_card_state("ali-o-1000-200", "open")
    retry_case_tender(engine, opened.case_id, tender_id="T1", actor=AGENT, now=clock(), reason="ok")
    assert read_case_detail(desk, opened.case_id, AGENT).state == "refunding"
