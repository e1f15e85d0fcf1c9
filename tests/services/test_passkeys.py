"""Passkeys in the services (issue 14 point 1), with a software passkey making the answers
(tests/soft_authenticator.py), on both backends: a case submission confirmed by a passkey
instead of a code, and each wrong answer refused with its own code, changing nothing; the
challenge is spent in the transaction that opens the case; the desk's sign-in."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from refundry.demo import worked_examples as ex
from refundry.domain.policy import Policy
from refundry.domain.process_policy import ExpressPolicy, IdentityPolicy, ProcessPolicy
from refundry.services.access import Actor
from refundry.services.cases.opening import CaseDesk, OpenedCase, open_case
from refundry.services.errors import Conflict, Forbidden, NotFound, Unprocessable
from refundry.services.orders.ingest import ingest_order
from refundry.services.passkeys import (
    CHALLENGE_TTL,
    RelyingParty,
    assertion_options,
    list_passkeys,
    register_passkey,
    registration_options,
    remove_passkey,
    submission_binding,
)
from refundry.services.staff.accounts import sign_in_with_passkey
from refundry.services.uow import UnitOfWork
from refundry.store.tables import audit_log, cases, passkey_challenges, passkeys
from tests.soft_authenticator import SoftPasskey

NOW = datetime(2026, 11, 24, 4, 0, tzinfo=UTC)
CUSTOMER = Actor("customer", ex.CUSTOMER)
ORIGIN = "https://shop.example"
RP = RelyingParty("shop.example", "Example shop", (ORIGIN,))
PROCESS = ProcessPolicy(
    identity=IdentityPolicy(otp_above_amount=0),  # every case needs the check
    review_rules=(),
    express=ExpressPolicy(enabled=False),
)


LAMPS = ex.order("o-lamps", [ex.line("L", 20000, quantity=2)], 40000)


def request(
    line: str = "X", reason: str = "quality_issue", order: str = "o-500-100"
) -> dict[str, Any]:
    return {
        "order_id": order,
        "reason": reason,
        "kind": "refund_only",
        "lines": [{"line_id": line, "quantity": 1}],
    }


@pytest.fixture()
def desk(engine: Engine) -> CaseDesk:
    with UnitOfWork(engine) as uow:
        for doc in (ex.THRESHOLD, LAMPS):
            ingest_order(uow.conn, doc, policy=Policy(), now=NOW - timedelta(days=300))
        uow.commit()
    return CaseDesk(engine, Policy(), PROCESS, identity_secret=b"s", relying_party=RP)


def registered(engine: Engine, actor: Actor = CUSTOMER) -> SoftPasskey:
    key = SoftPasskey(rp_id=RP.id, origin=ORIGIN)
    options = json.loads(registration_options(engine, RP, actor=actor, now=NOW))
    register_passkey(engine, RP, actor=actor, credential=key.create(options), name="p", now=NOW)
    return key


def options_for(engine: Engine, doc: dict[str, Any], at: datetime = NOW) -> dict[str, Any]:
    text = assertion_options(
        engine,
        RP,
        purpose="case.submit",
        actor=CUSTOMER,
        bound_to=submission_binding(doc),
        now=at,
    )
    found: dict[str, Any] = json.loads(text)
    return found


def submit(desk: CaseDesk, doc: dict[str, Any], answer: Any, at: datetime = NOW) -> OpenedCase:
    return open_case(desk, actor=CUSTOMER, request=doc, now=at, passkey=answer)


def state(engine: Engine) -> tuple[Any, ...]:
    with engine.connect() as conn:
        return (
            conn.execute(select(func.count()).select_from(cases)).scalar_one(),
            tuple(conn.execute(select(passkeys).order_by(passkeys.c.id))),
            tuple(
                conn.execute(select(passkey_challenges.c.challenge, passkey_challenges.c.used_at))
            ),
            conn.execute(select(func.count()).select_from(audit_log)).scalar_one(),
        )


def refused(desk: CaseDesk, doc: dict[str, Any], answer: Any, code: str, **kw: Any) -> None:
    before = state(desk.engine)
    with pytest.raises(Unprocessable) as caught:
        submit(desk, doc, answer, **kw)
    assert caught.value.code == code
    assert state(desk.engine) == before


def test_a_passkey_answer_opens_the_case_instead_of_a_code(desk: CaseDesk) -> None:
    key = registered(desk.engine)
    doc = request()
    opened = submit(desk, doc, key.get(options_for(desk.engine, doc)))
    assert opened.state == "under_review"
    (mine,) = list_passkeys(desk.engine, CUSTOMER)
    assert mine.last_used_at == NOW
    with desk.engine.connect() as conn:
        assert conn.execute(select(passkeys.c.sign_count)).scalar_one() == 1
        actions = [a for (a,) in conn.execute(select(audit_log.c.action))]
    assert "identity.passkey_verified" in actions and "identity.passkey_added" in actions


def test_without_a_code_or_a_passkey_the_case_is_refused(desk: CaseDesk) -> None:
    registered(desk.engine)
    with pytest.raises(Unprocessable) as caught:
        open_case(desk, actor=CUSTOMER, request=request(), now=NOW)
    assert caught.value.code == "identity.code_required"


def test_a_replayed_answer_is_refused(desk: CaseDesk) -> None:
    key = registered(desk.engine)
    doc = request("L", order="o-lamps")
    answer = key.get(options_for(desk.engine, doc))
    submit(desk, doc, answer)
    # the same answer again, for the same request (of the other lamp): the challenge is spent
    refused(desk, doc, answer, "identity.passkey_challenge_used")


def test_an_answer_for_another_submission_is_refused(desk: CaseDesk) -> None:
    key = registered(desk.engine)
    answer = key.get(options_for(desk.engine, request("X")))
    refused(desk, request("Y"), answer, "identity.passkey_challenge_mismatch")
    refused(desk, request("X", reason="wrong_item"), answer, "identity.passkey_challenge_mismatch")
    submit(desk, request("X"), answer)  # still good for the submission it was asked for


def test_an_answer_made_on_another_origin_is_refused(desk: CaseDesk) -> None:
    key = registered(desk.engine)
    doc = request()
    answer = key.get(options_for(desk.engine, doc), origin="https://evil.example")
    refused(desk, doc, answer, "identity.passkey_origin")


def test_an_answer_for_another_relying_party_is_refused(desk: CaseDesk) -> None:
    key = registered(desk.engine)
    key.rp_id = "evil.example"  # signed for another site, sent with this site's origin
    doc = request()
    refused(desk, doc, key.get(options_for(desk.engine, doc)), "identity.passkey_invalid")


def test_a_removed_passkey_is_refused(desk: CaseDesk) -> None:
    key = registered(desk.engine)
    doc = request()
    options = options_for(desk.engine, doc)
    remove_passkey(desk.engine, actor=CUSTOMER, passkey_id=key.id, now=NOW)
    refused(desk, doc, key.get(options), "identity.passkey_unknown")
    with pytest.raises(NotFound) as caught:
        remove_passkey(desk.engine, actor=CUSTOMER, passkey_id=key.id, now=NOW)
    assert caught.value.code == "identity.passkey_not_found"


def test_an_unregistered_passkey_is_refused(desk: CaseDesk) -> None:
    registered(desk.engine)
    stranger = SoftPasskey(rp_id=RP.id, origin=ORIGIN)
    doc = request()
    refused(desk, doc, stranger.get(options_for(desk.engine, doc)), "identity.passkey_unknown")


def test_an_answer_without_user_verification_is_refused(desk: CaseDesk) -> None:
    key = registered(desk.engine)
    doc = request()
    answer = key.get(options_for(desk.engine, doc), verified=False)
    refused(desk, doc, answer, "identity.passkey_invalid")


def test_a_counter_that_does_not_move_forward_is_refused(desk: CaseDesk) -> None:
    key = registered(desk.engine)
    submit(desk, request("X"), key.get(options_for(desk.engine, request("X"))))
    doc = request("Y")
    answer = key.get(options_for(desk.engine, doc), step=0)  # a copy of the authenticator
    refused(desk, doc, answer, "identity.passkey_counter")


def test_a_late_answer_is_refused(desk: CaseDesk) -> None:
    key = registered(desk.engine)
    doc = request()
    answer = key.get(options_for(desk.engine, doc))
    refused(desk, doc, answer, "identity.passkey_challenge_expired", at=NOW + CHALLENGE_TTL)


def test_an_answer_to_no_challenge_of_ours_is_refused(desk: CaseDesk) -> None:
    key = registered(desk.engine)
    doc = request()
    made_up = key.get({"challenge": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"})
    refused(desk, doc, made_up, "identity.passkey_challenge_unknown")
    refused(desk, doc, "{not json", "identity.passkey_invalid")


def test_a_submission_refused_for_another_reason_leaves_the_challenge_usable(
    desk: CaseDesk,
) -> None:
    key = registered(desk.engine)
    submit(desk, request("X"), key.get(options_for(desk.engine, request("X"))))
    doc = request("X")  # X is held by the case just opened
    answer = key.get(options_for(desk.engine, doc))
    with pytest.raises(Conflict) as caught:
        submit(desk, doc, answer)
    assert caught.value.code == "case.units_unavailable"
    with desk.engine.connect() as conn:
        spent = conn.execute(
            select(func.count())
            .select_from(passkey_challenges)
            .where(passkey_challenges.c.used_at.is_not(None))
        ).scalar_one()
    assert spent == 2  # the registration's and the first case's, not this one's


def test_a_second_registration_of_the_same_passkey_is_refused(desk: CaseDesk) -> None:
    key = registered(desk.engine)
    options = json.loads(registration_options(desk.engine, RP, actor=CUSTOMER, now=NOW))
    assert [c["id"] for c in options["excludeCredentials"]] == [key.id]
    with pytest.raises(Conflict) as caught:
        register_passkey(
            desk.engine, RP, actor=CUSTOMER, credential=key.create(options), name="x", now=NOW
        )
    assert caught.value.code == "identity.passkey_exists"


def test_registration_on_another_origin_is_refused(desk: CaseDesk) -> None:
    key = SoftPasskey(rp_id=RP.id, origin=ORIGIN)
    options = json.loads(registration_options(desk.engine, RP, actor=CUSTOMER, now=NOW))
    with pytest.raises(Unprocessable) as caught:
        register_passkey(
            desk.engine,
            RP,
            actor=CUSTOMER,
            credential=key.create(options, origin="https://evil.example"),
            name="x",
            now=NOW,
        )
    assert caught.value.code == "identity.passkey_origin"
    assert list_passkeys(desk.engine, CUSTOMER) == []


def test_staff_sign_in_with_a_passkey_and_a_customers_is_refused(desk: CaseDesk) -> None:
    agent = Actor("agent", "ana")
    staff_key = registered(desk.engine, agent)
    options = json.loads(assertion_options(desk.engine, RP, purpose="desk.signin", now=NOW))
    assert options["allowCredentials"] == []  # discoverable: the passkey names its owner
    assert sign_in_with_passkey(desk.engine, RP, assertion=staff_key.get(options), now=NOW) == agent

    customer_key = registered(desk.engine)
    options = json.loads(assertion_options(desk.engine, RP, purpose="desk.signin", now=NOW))
    before = state(desk.engine)
    with pytest.raises(Forbidden):
        sign_in_with_passkey(desk.engine, RP, assertion=customer_key.get(options), now=NOW)
    assert state(desk.engine) == before
    # a case submission's challenge does not sign anyone in
    case_options = options_for(desk.engine, request())
    with pytest.raises(Unprocessable) as caught:
        sign_in_with_passkey(desk.engine, RP, assertion=staff_key.get(case_options), now=NOW)
    assert caught.value.code == "identity.passkey_challenge_unknown"
