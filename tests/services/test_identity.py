"""One-time codes end to end: SMS, expiry, single use, attempts and lock, nothing leaked."""

from __future__ import annotations

import hmac
import json
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, insert, select

from refundry.adapters.sms import SandboxSms, SentSms
from refundry.demo import worked_examples as ex
from refundry.domain.json_text import instant
from refundry.domain.policy import Policy
from refundry.domain.process_policy import IdentityPolicy
from refundry.services.customers.identity import request_code, verify_code
from refundry.services.errors import Conflict, RateLimited, Unprocessable
from refundry.services.orders.ingest import ingest_order
from refundry.services.uow import UnitOfWork
from refundry.store.tables import audit_log, customer_contacts, metadata, otp_codes, otp_locks

NOW = datetime(2026, 11, 24, 4, 0, tzinfo=UTC)
CUSTOMER = ex.CUSTOMER
PHONE = "+8613800138000"
SECRET = b"identity-test-secret"
POLICY = IdentityPolicy()  # 6 digits, 300 s, 5 attempts, 30 minutes
PURPOSE = "case.submit"
CODE = "739184"


class FixedSource:
    def __init__(self, *values: int) -> None:
        self.values = list(values)

    def randbelow(self, exclusive_upper_bound: int, /) -> int:
        assert exclusive_upper_bound == 10**6
        return self.values.pop(0)


@pytest.fixture()
def shop(engine: Engine) -> Engine:
    with UnitOfWork(engine) as uow:
        ingest_order(uow.conn, ex.THRESHOLD, policy=Policy(), now=NOW)
        uow.conn.execute(insert(customer_contacts).values(customer_id=CUSTOMER, phone=PHONE))
        uow.commit()
    return engine


def ask(engine: Engine, sms: SandboxSms, *, at: datetime = NOW, code: int = int(CODE)) -> str:
    return request_code(
        engine,
        customer_id=CUSTOMER,
        purpose=PURPOSE,
        now=at,
        policy=POLICY,
        sms=sms,
        secret=SECRET,
        rng=FixedSource(code),
    )


def verify(
    engine: Engine, code_id: str, code: str, *, at: datetime, purpose: str = PURPOSE
) -> None:
    verify_code(
        engine,
        customer_id=CUSTOMER,
        purpose=purpose,
        code_id=code_id,
        code=code,
        now=at,
        policy=POLICY,
        secret=SECRET,
    )


def refused(call: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises((Unprocessable, Conflict)) as err:
        call(*args, **kwargs)
    return str(err.value.code)


def lock_row(engine: Engine) -> tuple[int, datetime | None]:
    with UnitOfWork(engine, readonly=True) as uow:
        row = uow.conn.execute(select(otp_locks).where(otp_locks.c.customer_id == CUSTOMER)).first()
    return (int(row.failures), row.locked_until) if row else (0, None)


def audit_actions(engine: Engine) -> list[tuple[str, str, dict[str, Any]]]:
    with UnitOfWork(engine, readonly=True) as uow:
        rows = uow.conn.execute(
            select(audit_log.c.actor, audit_log.c.action, audit_log.c.data)
            .where(audit_log.c.action.like("identity.%"))
            .order_by(audit_log.c.seq)
        ).all()
    return [(r.actor, r.action, json.loads(r.data)) for r in rows]


def test_code_is_texted_to_the_customers_phone_and_accepted_once(shop: Engine) -> None:
    sms = SandboxSms()
    code_id = ask(shop, sms)
    assert sms.sent == [SentSms(PHONE, f"您的验证码为{CODE}，5分钟内有效，请勿告诉他人。", code_id)]
    verify(shop, code_id, CODE, at=NOW + timedelta(seconds=299))
    with UnitOfWork(shop, readonly=True) as uow:
        row = uow.conn.execute(select(otp_codes)).one()
    assert (row.id, row.customer_id, row.purpose) == (code_id, CUSTOMER, PURPOSE)
    assert (row.created_at, row.expires_at) == (NOW, NOW + timedelta(seconds=300))
    assert row.used_at == NOW + timedelta(seconds=299)
    assert refused(verify, shop, code_id, CODE, at=NOW + timedelta(seconds=10)) == (
        "identity.code_used"
    )
    assert [a[:2] for a in audit_actions(shop)] == [
        (f"customer:{CUSTOMER}", "identity.code_requested"),
        (f"customer:{CUSTOMER}", "identity.verified"),
    ]


def test_code_expires_after_its_ttl(shop: Engine) -> None:
    code_id = ask(shop, SandboxSms())
    at_expiry = NOW + timedelta(seconds=300)
    assert refused(verify, shop, code_id, CODE, at=at_expiry) == "identity.code_expired"
    assert refused(verify, shop, code_id, "000000", at=at_expiry) == "identity.code_expired"
    assert lock_row(shop) == (0, None)  # an expired code is not a guess


def test_wrong_code_is_counted_and_committed(shop: Engine) -> None:
    code_id = ask(shop, SandboxSms())
    with pytest.raises(Unprocessable) as err:
        verify(shop, code_id, "000000", at=NOW)
    assert (err.value.code, err.value.message) == (
        "identity.code_invalid",
        "wrong code (4 attempts left)",
    )
    assert lock_row(shop) == (1, None)


def test_code_for_another_purpose_or_unknown_id_is_a_wrong_code(shop: Engine) -> None:
    code_id = ask(shop, SandboxSms())
    assert refused(verify, shop, code_id, CODE, at=NOW, purpose="payout") == "identity.code_invalid"
    assert refused(verify, shop, "otp-nope", CODE, at=NOW) == "identity.code_invalid"
    assert lock_row(shop) == (2, None)
    verify(shop, code_id, CODE, at=NOW)  # still good for its own purpose


def test_five_wrong_codes_lock_for_thirty_minutes_then_the_lock_ends(shop: Engine) -> None:
    sms = SandboxSms()
    code_id = ask(shop, sms)
    t = NOW + timedelta(seconds=5)
    for _ in range(4):
        assert refused(verify, shop, code_id, "111111", at=t) == "identity.code_invalid"
    assert refused(verify, shop, code_id, "111111", at=t) == "identity.locked"
    until = t + timedelta(minutes=30)
    assert lock_row(shop) == (5, until)
    assert audit_actions(shop)[-1] == (
        f"customer:{CUSTOMER}",
        "identity.locked",
        {
            "customer_id": CUSTOMER,
            "code_id": code_id,
            "failures": 5,
            "locked_until": instant(until),
        },
    )
    # Locked: the right code is refused, and so is a new one.
    assert refused(verify, shop, code_id, CODE, at=t) == "identity.locked"
    assert refused(ask, shop, sms, at=until - timedelta(seconds=1)) == "identity.locked"
    assert len(sms.sent) == 1
    # The lock voided the code that was out.
    with UnitOfWork(shop, readonly=True) as uow:
        assert uow.conn.execute(select(otp_codes.c.expires_at)).scalar_one() == t
    # At the end of the lock a new code works, and counting starts afresh.
    fresh = ask(shop, sms, at=until, code=246810)
    assert refused(verify, shop, fresh, "111111", at=until) == "identity.code_invalid"
    assert lock_row(shop) == (1, None)
    verify(shop, fresh, "246810", at=until)
    assert lock_row(shop) == (0, None)


def test_success_resets_the_failure_count(shop: Engine) -> None:
    sms = SandboxSms()
    first = ask(shop, sms)
    for _ in range(4):
        refused(verify, shop, first, "111111", at=NOW)
    verify(shop, first, CODE, at=NOW)
    assert lock_row(shop) == (0, None)
    later = NOW + timedelta(seconds=POLICY.resend_cooldown_seconds)
    second = ask(shop, sms, code=5, at=later)
    for _ in range(4):
        assert refused(verify, shop, second, "111111", at=later) == "identity.code_invalid"
    verify(shop, second, "000005", at=later)


def test_no_phone_no_code(engine: Engine) -> None:
    with UnitOfWork(engine) as uow:
        ingest_order(uow.conn, ex.THRESHOLD, policy=Policy(), now=NOW)
        uow.commit()
    sms = SandboxSms()
    assert refused(ask, engine, sms) == "identity.no_phone"
    assert sms.attempts == 0
    with UnitOfWork(engine, readonly=True) as uow:
        assert uow.conn.execute(select(otp_codes)).all() == []


def test_verification_compares_in_constant_time(
    shop: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    code_id = ask(shop, SandboxSms())
    seen: list[int] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        seen.append(len(a))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    refused(verify, shop, code_id, "111111", at=NOW)
    verify(shop, code_id, CODE, at=NOW)
    assert seen == [64, 64]


def test_the_code_is_never_stored_audited_or_logged(
    shop: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="sqlalchemy.engine")  # statements and parameters
    sms = SandboxSms()
    code_id = ask(shop, sms)
    for _ in range(5):
        refused(verify, shop, code_id, "111111", at=NOW)
    fresh = ask(shop, sms, at=NOW + timedelta(hours=1), code=int(CODE))
    verify(shop, fresh, CODE, at=NOW + timedelta(hours=1))
    assert CODE in sms.sent[-1].text  # it did go out, by SMS only
    dump: list[str] = []
    with UnitOfWork(shop, readonly=True) as uow:
        for table in metadata.sorted_tables:
            for row in uow.conn.execute(select(table)):
                dump.extend(str(value) for value in row)
    text = "\n".join(dump)
    assert code_id in text and fresh in text  # the rows are there…
    assert CODE not in text  # …the code is not (audit_log included)
    assert f"one-time code {code_id} sent" in caplog.text
    assert "locked out" in caplog.text
    assert "INSERT INTO otp_codes" in caplog.text
    assert CODE not in caplog.text


def test_concurrent_wrong_codes_are_all_counted(shop: Engine) -> None:
    code_id = ask(shop, SandboxSms())
    start = threading.Barrier(8)

    def attempt() -> str:
        start.wait()
        return refused(verify, shop, code_id, "111111", at=NOW)

    with ThreadPoolExecutor(max_workers=8) as pool:
        codes = sorted(pool.map(lambda _: attempt(), range(8)))
    assert codes == ["identity.code_invalid"] * 4 + ["identity.locked"] * 4
    assert lock_row(shop) == (5, NOW + timedelta(minutes=30))


def test_sms_speaks_the_customers_language(engine: Engine) -> None:
    with UnitOfWork(engine) as uow:
        doc = {"order": ex.THRESHOLD, "customer": {"locale": "en"}}
        ingest_order(uow.conn, doc, policy=Policy(), now=NOW)
        uow.conn.execute(insert(customer_contacts).values(customer_id=CUSTOMER, phone=PHONE))
        uow.commit()
    sms = SandboxSms()
    ask(engine, sms, code=42)
    assert sms.sent[0].text == (
        "Your verification code is 000042. It expires in 5 minutes. Do not share it with anyone."
    )


# -- sending limits (SMS pumping) -----------------------------------------------------------


def limited(engine: Engine, *, at: datetime, customer: str = CUSTOMER) -> tuple[str, int]:
    with pytest.raises(RateLimited) as err:
        request_code(
            engine,
            customer_id=customer,
            purpose=PURPOSE,
            now=at,
            policy=POLICY,
            sms=SandboxSms(),
            secret=SECRET,
            rng=FixedSource(1),
        )
    return str(err.value.code), err.value.retry_after


def test_a_second_code_within_the_cooldown_is_refused_with_the_seconds_to_wait(
    shop: Engine,
) -> None:
    sms = SandboxSms()
    ask(shop, sms)
    assert limited(shop, at=NOW + timedelta(seconds=45)) == ("identity.resend_too_soon", 15)
    assert len(sms.sent) == 1  # nothing texted, nothing stored
    ask(shop, sms, at=NOW + timedelta(seconds=60))
    assert len(sms.sent) == 2


def test_the_sixth_code_in_an_hour_waits_for_the_first_to_leave_the_hour(shop: Engine) -> None:
    sms = SandboxSms()
    for i in range(POLICY.codes_per_hour):
        ask(shop, sms, at=NOW + timedelta(minutes=2 * i))
    code, wait = limited(shop, at=NOW + timedelta(minutes=20))
    assert (code, wait) == ("identity.customer_code_limit", 40 * 60)
    with UnitOfWork(shop, readonly=True) as uow:
        assert len(uow.conn.execute(select(otp_codes.c.id)).all()) == POLICY.codes_per_hour
    ask(shop, sms, at=NOW + timedelta(hours=1, seconds=1))  # the first left the hour


def test_one_phone_number_shared_by_many_customers_is_capped(shop: Engine) -> None:
    """SMS pumping: accounts made to text a number the attacker is paid for."""
    customers = [f"pump-{i}" for i in range(POLICY.codes_per_phone_per_hour + 1)]
    with UnitOfWork(shop) as uow:
        for i, customer in enumerate(customers):
            doc = ex.order(f"o-pump-{i}", [ex.line("A", 1000)], 1000, customer_id=customer)
            ingest_order(uow.conn, doc, policy=Policy(), now=NOW)
            uow.conn.execute(insert(customer_contacts).values(customer_id=customer, phone=PHONE))
        uow.commit()
    sms = SandboxSms()
    for i, customer in enumerate(customers[:-1]):
        request_code(
            shop,
            customer_id=customer,
            purpose=PURPOSE,
            now=NOW + timedelta(minutes=i),
            policy=POLICY,
            sms=sms,
            secret=SECRET,
            rng=FixedSource(i),
        )
    code, wait = limited(shop, at=NOW + timedelta(minutes=30), customer=customers[-1])
    assert (code, wait) == ("identity.phone_code_limit", 30 * 60)
    assert len(sms.sent) == POLICY.codes_per_phone_per_hour
