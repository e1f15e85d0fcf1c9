"""A one-time code is spent only by the submission that opens a case (issue 14 point 3): a
submission refused for another reason — its units held by another case, the customer's rate,
suspended refund rights — leaves the code usable; a wrong code still counts. Both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func, insert, select

from refundry.adapters.sms import SandboxSms
from refundry.demo import worked_examples as ex
from refundry.domain.policy import Policy
from refundry.domain.process_policy import ExpressPolicy, IdentityPolicy, ProcessPolicy
from refundry.services.cases.opening import CaseDesk, CaseRate, OpenedCase, open_case
from refundry.services.cases.process import Actor
from refundry.services.customers.identity import request_code
from refundry.services.customers.suspensions import suspend
from refundry.services.errors import Conflict, Forbidden, RateLimited, Unprocessable
from refundry.services.orders.ingest import ingest_order
from refundry.services.uow import UnitOfWork
from refundry.store.tables import cases, customer_contacts, otp_codes, otp_locks

NOW = datetime(2026, 11, 24, 4, 0, tzinfo=UTC)
CUSTOMER = Actor("customer", ex.CUSTOMER)
SECRET = b"case-codes-secret"
# Every case needs a code here; no review rule, no 极速退款: the case waits for an agent.
PROCESS = ProcessPolicy(
    identity=IdentityPolicy(otp_above_amount=0),
    review_rules=(),
    express=ExpressPolicy(enabled=False),
)


class Digits:
    def __init__(self, value: int) -> None:
        self.value = value

    def randbelow(self, _bound: int, /) -> int:
        return self.value


@pytest.fixture()
def desk(engine: Engine) -> CaseDesk:
    with UnitOfWork(engine) as uow:
        ingest_order(uow.conn, ex.THRESHOLD, policy=Policy(), now=NOW - timedelta(days=300))
        uow.conn.execute(insert(customer_contacts).values(customer_id=ex.CUSTOMER, phone="+861"))
        uow.commit()
    return CaseDesk(engine, Policy(), PROCESS, identity_secret=SECRET)


def code(desk: CaseDesk, at: datetime, digits: int) -> tuple[str, str]:
    code_id = request_code(
        desk.engine,
        customer_id=ex.CUSTOMER,
        purpose="case.submit",
        now=at,
        policy=PROCESS.identity,
        sms=SandboxSms(),
        secret=SECRET,
        rng=Digits(digits),
    )
    return code_id, f"{digits:06d}"


def submit(
    desk: CaseDesk, line: str, otp: tuple[str, str], at: datetime, **extra: Any
) -> OpenedCase:
    return open_case(
        desk,
        actor=CUSTOMER,
        now=at,
        otp=otp,
        request={
            "order_id": "o-500-100",
            "reason": "quality_issue",
            "kind": "refund_only",
            "lines": [{"line_id": line, "quantity": 1}],
        },
        **extra,
    )


def used(engine: Engine, code_id: str) -> bool:
    with UnitOfWork(engine, readonly=True) as uow:
        at = uow.conn.execute(
            select(otp_codes.c.used_at).where(otp_codes.c.id == code_id)
        ).scalar_one()
    return at is not None


def case_count(engine: Engine) -> int:
    with UnitOfWork(engine, readonly=True) as uow:
        return int(uow.conn.execute(select(func.count()).select_from(cases)).scalar_one())


def test_a_submission_refused_for_held_units_leaves_its_code_usable(desk: CaseDesk) -> None:
    first = code(desk, NOW, 111111)
    assert submit(desk, "Y", first, NOW).state == "under_review"
    later = NOW + timedelta(minutes=2)
    second = code(desk, later, 222222)
    with pytest.raises(Conflict) as held:  # Y is held by the first case
        submit(desk, "Y", second, later)
    assert held.value.code == "case.units_unavailable"
    assert not used(desk.engine, second[0])
    assert submit(desk, "X", second, later).state == "under_review"  # the same code works
    assert used(desk.engine, second[0]) and case_count(desk.engine) == 2


def test_a_submission_over_the_rate_leaves_its_code_usable(desk: CaseDesk) -> None:
    rate = CaseRate(limit=1, window=timedelta(minutes=3))
    submit(desk, "Y", code(desk, NOW, 111111), NOW, rate=rate)
    later = NOW + timedelta(minutes=2)
    second = code(desk, later, 222222)
    with pytest.raises(RateLimited):
        submit(desk, "X", second, later, rate=rate)
    assert not used(desk.engine, second[0])
    # the window has moved on; the code (5 minutes) has not expired
    assert submit(desk, "X", second, NOW + timedelta(minutes=4), rate=rate).state == "under_review"


def test_a_submission_with_suspended_rights_leaves_its_code_usable(desk: CaseDesk) -> None:
    otp = code(desk, NOW, 333333)
    suspend(
        desk.engine,
        actor=Actor("agent", "li"),
        customer_id=ex.CUSTOMER,
        reason="chargebacks",
        now=NOW,
    )
    with pytest.raises(Forbidden) as refused:
        submit(desk, "Y", otp, NOW)
    assert refused.value.code == "case.refund_rights_suspended"
    assert not used(desk.engine, otp[0]) and case_count(desk.engine) == 0


def test_a_wrong_code_opens_nothing_and_still_counts(desk: CaseDesk) -> None:
    code_id, _ = code(desk, NOW, 444444)
    with pytest.raises(Unprocessable) as wrong:
        submit(desk, "Y", (code_id, "999999"), NOW)
    assert wrong.value.code == "identity.code_invalid"
    with UnitOfWork(desk.engine, readonly=True) as uow:
        failures = uow.conn.execute(
            select(otp_locks.c.failures).where(otp_locks.c.customer_id == ex.CUSTOMER)
        ).scalar_one()
    assert failures == 1 and case_count(desk.engine) == 0 and not used(desk.engine, code_id)
    assert submit(desk, "Y", (code_id, "444444"), NOW).state == "under_review"
