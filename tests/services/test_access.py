"""services/access.py: the table in its docstring is what its functions decide.

Every row of the role × object × action table is checked against the function that decides
it, for each role, on the object the role is most entitled to (the customer's own case, a case
whose lines are all the merchant's own): a cell that says ``no`` must refuse, any other cell
must let the role through to the object rules. Then the object rules themselves, with the
refusal codes and messages the API's tests rely on.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import pytest

from refundry.domain.case import CaseState, can
from refundry.services import access
from refundry.services.access import Actor
from refundry.services.errors import Forbidden, NotFound

ROLES = ("customer", "merchant", "agent", "admin", "system")


@dataclass(frozen=True)
class FakeCase:
    """The columns of a cases row the access rules read."""

    customer_id: str = "c-1"
    merchant_ids: str = json.dumps(["m-1"])
    state: str = CaseState.UNDER_REVIEW.value
    refund_id: str | None = None
    rating: int | None = None
    debt: int = 0
    assignee: str | None = None


def _actor(role: str) -> Actor:
    return Actor(role, {"customer": "c-1", "merchant": "m-1"}.get(role, f"{role}-1"))


def _table() -> dict[str, dict[str, str]]:
    """The docstring's table: object: action -> role -> cell."""
    doc = access.__doc__ or ""
    lines = doc.splitlines()
    rules = [i for i, line in enumerate(lines) if line.startswith("=====")]
    header = lines[rules[0] + 1].split()
    assert header[-5:] == list(ROLES)
    rows: dict[str, dict[str, str]] = {}
    for line in lines[rules[1] + 1 : rules[2]]:
        name, *cells = re.split(r"\s{2,}", line.strip())  # cells hold single spaces only
        rows[name] = dict(zip(ROLES, cells, strict=True))
    return rows


def _allowed(decide: Any) -> bool:
    try:
        decide()
    except (Forbidden, NotFound):
        return False
    return True


# Table rows decided by a whole-role area check.
AREAS: dict[str, access.Area] = {
    "order: ingest": "order.ingest",
    "order: update its status": "order.update_status",
    "order: preview a refund": "order.preview_refund",
    "case: open": "case.open",
    "coupons, points, eligibility, inbox": "customer.assets",
    "one-time code: request": "identity.request_code",
    "agent queue: see": "agent.queue",
    "refund rights: suspend, lift": "customer.suspension",
    "customer history: see": "customer.history",
    "agents: list them (to assign a case)": "staff.agents",
    "metrics figures: see": "metrics.read",
    "bearer token: revoke": "token.revoke",
    "customer: update, see profile": "customer.update",
    "refund: apply for an order": "refund.apply",
    "customer: adjust points, wallet": "customer.adjust",
    "order: list own (the pages)": "order.list_own",
    "page session from a sign-in link": "session.sign_in_link",
    "desk session from a password (7)": "session.sign_in_password",
    "desk session from a passkey (7)": "session.sign_in_passkey",
    "passkeys: register, list, remove own": "identity.passkeys",
    "case messages: see how they fared": "case.messages",
    "failed refund: retry, to the wallet": "refund.resolve_failed",
    "merchant desk: see its returns": "merchant.desk",
    "operations dashboard: see": "operations.dashboard",
    "webhook endpoints: manage, log, replay": "webhook.manage",
    "refunds in bulk: start, progress": "refund.bulk",
}
# Table rows decided per case, on a case the role is most entitled to.
CASE_ACTIONS: dict[str, tuple[access.CaseAction, ...]] = {
    "case: approve, reject": ("approve", "reject"),
    "case: cancel": ("cancel",),
    "case: ship the return": ("ship",),
    "case: receive, inspect": ("receive", "inspect"),
    "case: resolve a manual review": ("resolve",),
    "case: rate": ("rate",),
    "case: escalate": ("escalate",),
    "case: note, claim, assign": ("note", "claim", "assign"),
    "case: retry its failed refund, wallet": ("retry_refund", "refund_to_wallet"),
    "case: recover, write off its debt": ("recover_debt", "write_off_debt"),
    "case photos: add (11)": ("photos",),
}
# The actions offered by the state table's transition of the same name.
_TRANSITIONS = ("approve", "reject", "cancel", "ship", "receive", "inspect", "resolve", "escalate")


def test_the_table_names_every_row_these_tests_check() -> None:
    checked = {
        *AREAS,
        *CASE_ACTIONS,
        "order: see lines, tenders, cases",
        "order audit: see entries",
        "case: see",
        "case photos: see",  # read through load_case: who sees the case
        "case risk: see",
        "refund: see",
    }
    assert set(_table()) == checked


@pytest.mark.parametrize("row", sorted(AREAS))
def test_area_rows_are_what_require_decides(row: str) -> None:
    for role, cell in _table()[row].items():
        decided = _allowed(lambda role=role: access.require(_actor(role), AREAS[row]))
        assert decided == (cell != "no"), f"{row} for {role}: the table says {cell!r}"


@pytest.mark.parametrize("row", sorted(CASE_ACTIONS))
def test_case_action_rows_are_what_require_case_action_decides(row: str) -> None:
    for role, cell in _table()[row].items():
        for action in CASE_ACTIONS[row]:
            decided = _allowed(
                lambda role=role, action=action: access.require_case_action(
                    FakeCase(), _actor(role), action
                )
            )
            assert decided == (cell != "no"), f"{action} for {role}: the table says {cell!r}"


def test_seeing_rows_are_what_the_may_see_functions_decide() -> None:
    table = _table()
    for role in ROLES:
        actor = _actor(role)
        order = access.may_see_order(actor, customer_id="c-1", merchant_ids={"m-1", "m-2"})
        assert order == (table["order: see lines, tenders, cases"][role] != "no"), role
        assert order == (table["order audit: see entries"][role] != "no"), role
        assert access.may_see_case(FakeCase(), actor) == (table["case: see"][role] != "no"), role
        assert table["case photos: see"][role] == table["case: see"][role], role
        assert access.sees_risk(actor) == (table["case risk: see"][role] != "no"), role
        refund = access.may_see_refund(actor, "c-1", {"m-1", "m-2"})
        assert refund == (table["refund: see"][role] != "no"), role
        # a refund of other merchants' lines only is not the merchant's to see
        assert not access.may_see_refund(Actor("merchant", "m-1"), "c-1", {"m-2"})


def test_another_customers_or_merchants_objects_are_not_seen() -> None:
    stranger, other_merchant = Actor("customer", "c-2"), Actor("merchant", "m-9")
    for actor in (stranger, other_merchant):
        assert not access.may_see_case(FakeCase(), actor)
        assert not access.may_see_order(actor, customer_id="c-1", merchant_ids={"m-1"})
    assert not access.may_see_order(Actor("support", "x"), customer_id="c-1", merchant_ids=())


def test_refusals_keep_their_codes_and_messages() -> None:
    with pytest.raises(Forbidden) as role:
        access.require(Actor("merchant", "m-1"), "order.ingest")
    assert (role.value.code, role.value.message) == ("auth.forbidden", "a merchant cannot do this")
    shared = FakeCase(merchant_ids=json.dumps(["m-1", "m-2"]))
    with pytest.raises(Forbidden) as lines:
        access.require_case_action(shared, Actor("merchant", "m-1"), "receive")
    assert (lines.value.code, lines.value.message) == (
        "case.not_your_lines",
        "this case asks for lines of other merchants too",
    )
    held = FakeCase(state=CaseState.NEEDS_MANUAL_REVIEW.value)
    with pytest.raises(Forbidden) as hold:
        access.require_case_action(held, Actor("merchant", "m-1"), "approve")
    assert (hold.value.code, hold.value.message) == ("auth.forbidden", "a merchant cannot do this")
    with pytest.raises(NotFound) as missing:
        access.check_case_opening(Actor("customer", "c-2"), order_id="o-1", customer_id="c-1")
    assert (missing.value.code, missing.value.message) == ("order.not_found", "no order 'o-1'")
    with pytest.raises(Forbidden) as opener:
        access.check_case_opening(Actor("merchant", "m-1"), order_id="o-1", customer_id="c-1")
    assert opener.value.message == "only the customer or an agent opens a case"


@pytest.mark.parametrize("state", list(CaseState))
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("merchants", [["m-1"], ["m-1", "m-2"]])
@pytest.mark.parametrize(("debt", "assignee"), [(0, None), (500, "agent-1"), (500, "agent:x")])
def test_the_actions_offered_are_the_ones_the_services_accept(
    state: CaseState, role: str, merchants: list[str], debt: int, assignee: str | None
) -> None:
    """``case_actions_for`` offers an action exactly when the state machine allows it and
    ``require_case_action`` lets the actor take it (cancel: no money went back yet; rate: a
    completed case not rated yet; the failed refund's two remedies in ``refund_failed``; the
    debt's two while one is owed; claim while someone else holds it). System is offered
    nothing: it acts without a front end."""
    actor = _actor(role)
    held_by = actor.tag if assignee == "agent-1" else assignee
    row = FakeCase(
        state=state.value, merchant_ids=json.dumps(merchants), debt=debt, assignee=held_by
    )
    offered = set(access.case_actions_for(row, actor))
    expected = set()
    if role != "system":
        when = {
            **{action: can(state, action) for action in _TRANSITIONS},
            "rate": state == CaseState.COMPLETED,
            "note": True,
            "assign": True,
            "claim": held_by != actor.tag,
            "retry_refund": state == CaseState.REFUND_FAILED,
            "refund_to_wallet": state == CaseState.REFUND_FAILED,
            "recover_debt": debt > 0,
            "write_off_debt": debt > 0,
        }
        for action, now in when.items():
            if now and _allowed(
                lambda action=action: access.require_case_action(row, actor, action)
            ):
                expected.add(action)
    assert offered == expected


def test_a_merchant_on_a_shared_order_sees_only_entries_naming_its_lines_alone() -> None:
    owners = {"ln-1": "m-1", "ln-2": "m-2"}
    visible = access.audit_entry_filter(Actor("merchant", "m-1"), owners)
    assert visible is not None
    assert visible({"lines": [{"line_id": "ln-1"}]})
    assert not visible({"lines": [{"line_id": "ln-1"}, {"line_id": "ln-2"}]})
    assert not visible({"tenders": {"T1": 100}})  # names none of its lines
    assert not visible({"ln-2": 1})  # a key names the other's line
    assert access.audit_entry_filter(Actor("merchant", "m-1"), {"ln-1": "m-1"}) is None
    assert access.audit_entry_filter(Actor("agent", "a"), owners) is None
