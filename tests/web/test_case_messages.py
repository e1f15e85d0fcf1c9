"""SMS delivery failures are visible to agents on the case (issue 14 point 2), on SQLite and
PostgreSQL: the customer gets case messages by SMS through the Twilio adapter, against a local
server that answers as Twilio does (tests/adapters/test_sms_twilio.py); the relay retries what
Twilio refused. The desk's case page and GET /v1/cases/{id}/messages say, per message, on
which channels it arrived, the provider's error, the tries and whether the relay gave up."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import update

from refundry.adapters.sms_twilio import TwilioSms
from refundry.api.auth import issue_token
from refundry.services.outbox.relay import MAX_ATTEMPTS
from refundry.store.tables import customer_contacts, outbox
from tests.adapters.test_sms_twilio import SID, TOKEN, FakeTwilio, twilio
from tests.web.conftest import CUSTOMER, NOW, SECRET, Shop, make_shop
from tests.web.test_desk import add_agent, desk_sign_in, open_under_review

__all__ = ["twilio"]  # the fixture, used by name


@pytest.fixture()
def sms_shop(db_url: str, twilio: FakeTwilio) -> Iterator[Shop]:
    made = make_shop(
        db_url,
        sms=TwilioSms(account_sid=SID, auth_token=TOKEN, sender="+15005550006", api_url=twilio.url),
    )
    with made.engine.begin() as conn:  # the customer asked for texts as well as the inbox
        conn.execute(
            update(customer_contacts)
            .where(customer_contacts.c.customer_id == CUSTOMER)
            .values(channels='["in_app", "sms"]')
        )
    try:
        yield made
    finally:
        made.engine.dispose()


def relay_round(shop: Shop) -> None:
    """One round of the worker's relay, with every waiting message due (as if its backoff had
    passed: the shop's clock stands still)."""
    with shop.engine.begin() as conn:
        conn.execute(update(outbox).where(outbox.c.status == "pending").values(available_at=NOW))
    shop.app.state.ctx.runtime.relay().run_once()


def messages(shop: Shop, case_id: str, role: str = "agent", subject: str = "ann") -> Any:
    token = issue_token(SECRET.encode(), role=role, subject=subject, now=NOW)
    return shop.client().get(
        f"/v1/cases/{case_id}/messages", headers={"Authorization": f"Bearer {token}"}
    )


def test_an_sms_twilio_refused_shows_on_the_case_with_its_retries(
    sms_shop: Shop, twilio: FakeTwilio
) -> None:
    shop = sms_shop
    add_agent(shop)
    case_id = open_under_review(shop)
    twilio.answer_status = 500  # Twilio is down
    relay_round(shop)

    client = shop.client()
    assert desk_sign_in(client).status_code == 303
    page = client.get(f"/desk/cases/{case_id}").text
    assert "Messages to the customer" in page
    assert "Not delivered yet: tried 1 times" in page
    assert "SmsUnavailable" in page  # the provider's answer, as the relay recorded it
    (received,) = messages(shop, case_id).json()["items"]
    assert received["template"] == "case.received"
    assert (received["status"], received["delivered"], received["attempts"]) == (
        "retrying",
        ["in_app"],
        1,
    )
    assert "sms" in received["error"] and received["next_try_at"] is not None

    twilio.answer_status = None  # back: the next try sends the SMS only
    relay_round(shop)
    (received,) = messages(shop, case_id).json()["items"]
    assert (received["status"], received["delivered"], received["error"]) == (
        "delivered",
        ["in_app", "sms"],
        None,
    )
    assert "Delivered" in client.get(f"/desk/cases/{case_id}").text
    assert len(twilio.received) == 1


def test_an_sms_the_relay_gave_up_on_says_so(sms_shop: Shop, twilio: FakeTwilio) -> None:
    shop = sms_shop
    add_agent(shop)
    case_id = open_under_review(shop)
    twilio.answer_status = 500
    for _ in range(MAX_ATTEMPTS["notify"]):
        relay_round(shop)
    (received,) = messages(shop, case_id).json()["items"]
    assert (received["status"], received["attempts"], received["next_try_at"]) == (
        "failed",
        MAX_ATTEMPTS["notify"],
        None,
    )
    client = shop.client()
    desk_sign_in(client)
    page = client.get(f"/desk/cases/{case_id}").text
    assert f"Not delivered: given up after {MAX_ATTEMPTS['notify']} tries" in page


def test_only_the_desk_sees_how_messages_fared(sms_shop: Shop) -> None:
    case_id = open_under_review(sms_shop)
    mine = messages(sms_shop, case_id, role="customer", subject=CUSTOMER)  # its own case
    assert (mine.status_code, mine.json()["code"]) == (403, "auth.forbidden")
    merchant = messages(sms_shop, case_id, role="merchant", subject="m-1")  # its lines
    assert (merchant.status_code, merchant.json()["code"]) == (403, "auth.forbidden")
    assert messages(sms_shop, "no-such-case").status_code == 404
