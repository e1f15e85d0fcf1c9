"""The Twilio SMS adapter against a local HTTP server that checks each request the way Twilio's
Messages API does (path, Basic credentials, form fields, E.164 number) and answers as Twilio
documents it: 201 with the Message resource, or ``{"code", "message", "more_info", "status"}``."""

from __future__ import annotations

import base64
import json
import re
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import pytest
from sqlalchemy import Engine, insert, select

from refundry.adapters.sms_twilio import (
    SmsAuthFailed,
    SmsRejected,
    SmsThrottled,
    SmsUnavailable,
    TwilioSms,
)
from refundry.bootstrap import StartupError, build
from refundry.demo import worked_examples as ex
from refundry.domain.policy import Policy
from refundry.domain.process_policy import IdentityPolicy
from refundry.services.customers.identity import request_code
from refundry.services.orders.ingest import ingest_order
from refundry.services.uow import UnitOfWork
from refundry.settings import Settings
from refundry.store.tables import customer_contacts, otp_codes

SID = "AC" + "0" * 32
TOKEN = "twilio-test-token"
E164 = re.compile(r"^\+[1-9]\d{1,14}$")


@dataclass
class FakeTwilio:
    """What Twilio's Messages API checks and answers (its documented error codes)."""

    url: str = ""
    received: list[dict[str, str]] = field(default_factory=list)
    answer_status: int | None = None  # force an outage (500) or throttling (429)


def _twilio_error(status: int, code: int, message: str) -> dict[str, Any]:
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


@pytest.fixture()
def twilio() -> Iterator[FakeTwilio]:
    state = FakeTwilio()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            status, doc = self._answer(form)
            body = json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _answer(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
            expected = "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()
            if self.headers.get("Authorization") != expected:
                return 401, _twilio_error(401, 20003, "Authenticate")
            if self.path != f"/2010-04-01/Accounts/{SID}/Messages.json":
                return 404, _twilio_error(404, 20404, "The requested resource was not found")
            if self.headers.get("Content-Type") != "application/x-www-form-urlencoded":
                return 400, _twilio_error(400, 21600, "Unsupported content type")
            if state.answer_status == 429:
                return 429, _twilio_error(429, 20429, "Too Many Requests")
            if state.answer_status is not None:
                return state.answer_status, _twilio_error(state.answer_status, 20500, "Error")
            if not E164.match(form.get("To", "")):
                return 400, _twilio_error(
                    400, 21211, f"The 'To' number {form.get('To')} is not a valid phone number."
                )
            if not (form.get("From") or form.get("MessagingServiceSid")):
                return 400, _twilio_error(400, 21603, "A 'From' phone number is required.")
            if not form.get("Body"):
                return 400, _twilio_error(400, 21602, "Message body is required.")
            state.received.append(form)
            return 201, {
                "sid": "SM" + uuid.uuid4().hex,
                "account_sid": SID,
                "to": form["To"],
                "body": form["Body"],
                "status": "queued",
                "error_code": None,
            }

        def log_message(self, *_: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_port}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield state
    finally:
        server.shutdown()


def sender(twilio: FakeTwilio, *, token: str = TOKEN, sender_id: str = "+15005550006") -> Any:
    return TwilioSms(account_sid=SID, auth_token=token, sender=sender_id, api_url=twilio.url)


def test_a_message_reaches_twilio_as_its_api_wants_it(twilio: FakeTwilio) -> None:
    sender(twilio).send(phone="+8613800138000", text="您的验证码为123456", key="otp-1")
    assert twilio.received == [
        {"To": "+8613800138000", "From": "+15005550006", "Body": "您的验证码为123456"}
    ]
    sender(twilio, sender_id="MG" + "1" * 32).send(phone="+8613800138000", text="x", key="k")
    assert twilio.received[-1]["MessagingServiceSid"] == "MG" + "1" * 32
    assert "From" not in twilio.received[-1]


@pytest.mark.parametrize(
    ("setup", "error", "code"),
    [
        ({"token": "wrong"}, SmsAuthFailed, "sms.auth_failed"),
        ({"phone": "13800138000"}, SmsRejected, "sms.rejected"),  # not E.164: Twilio 21211
        ({"status": 429}, SmsThrottled, "sms.throttled"),
        ({"status": 503}, SmsUnavailable, "sms.unavailable"),
    ],
)
def test_twilio_refusals_become_their_own_errors(
    twilio: FakeTwilio, setup: dict[str, Any], error: type[Exception], code: str
) -> None:
    twilio.answer_status = setup.get("status")
    with pytest.raises(error) as refused:
        sender(twilio, token=setup.get("token", TOKEN)).send(
            phone=setup.get("phone", "+8613800138000"), text="hi", key="k"
        )
    assert getattr(refused.value, "code", None) == code
    assert twilio.received == []


def test_nobody_listening_is_unavailable() -> None:
    with pytest.raises(SmsUnavailable):
        TwilioSms(
            account_sid=SID, auth_token=TOKEN, sender="+1500", api_url="http://127.0.0.1:9"
        ).send(phone="+8613800138000", text="hi", key="k")


def test_the_bootstrap_builds_twilio_from_settings_and_refuses_missing_credentials(
    twilio: FakeTwilio, db_url: str
) -> None:
    with pytest.raises(StartupError) as refused:
        build(Settings(dev=True, database_url=db_url, sms="twilio", twilio_account_sid=SID))
    assert "twilio_auth_token (REFUNDRY_TWILIO_AUTH_TOKEN)" in refused.value.message
    assert "twilio_sender (REFUNDRY_TWILIO_SENDER)" in refused.value.message
    runtime = build(
        Settings(
            dev=True,
            database_url=db_url,
            sms="twilio",
            twilio_account_sid=SID,
            twilio_auth_token=TOKEN,  # type: ignore[arg-type]  # pydantic makes it a SecretStr
            twilio_sender="+15005550006",
            twilio_api_url=twilio.url,
        )
    )
    assert isinstance(runtime.sms, TwilioSms)
    runtime.sms.send(phone="+8613800138000", text="hello", key="k")
    assert twilio.received[-1]["Body"] == "hello"
    runtime.dispose()


class Digits:
    def randbelow(self, _bound: int, /) -> int:
        return 739184


def test_a_code_twilio_refused_is_withdrawn_and_the_customer_may_ask_again(
    twilio: FakeTwilio, engine: Engine
) -> None:
    now = datetime(2026, 11, 24, 4, 0, tzinfo=UTC)
    with UnitOfWork(engine) as uow:
        ingest_order(uow.conn, ex.THRESHOLD, policy=Policy(), now=now)
        uow.conn.execute(
            insert(customer_contacts).values(customer_id=ex.CUSTOMER, phone="+8613800138000")
        )
        uow.commit()

    def ask(at: datetime) -> str:
        return request_code(
            engine,
            customer_id=ex.CUSTOMER,
            purpose="case.submit",
            now=at,
            policy=IdentityPolicy(),
            sms=sender(twilio),
            secret=b"s",
            rng=Digits(),
        )

    twilio.answer_status = 503
    with pytest.raises(SmsUnavailable):
        ask(now)
    with UnitOfWork(engine, readonly=True) as uow:
        assert uow.conn.execute(select(otp_codes.c.id)).all() == []  # not texted: not kept
    twilio.answer_status = None
    code_id = ask(now + timedelta(seconds=1))  # no cooldown: nothing was sent before
    assert code_id.startswith("otp-")
    assert twilio.received[-1]["Body"] == "您的验证码为739184，5分钟内有效，请勿告诉他人。"
