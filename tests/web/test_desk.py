"""The agent desk over HTTP (TestClient), on SQLite and PostgreSQL: staff sign-in with a
password (argon2id, one refusal, a per-account limit), the queue with its filters, a case
with its plan and history, the agents' actions as form posts, and who is kept out.
tests/web/test_browser.py drives the same pages in Chromium."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from refundry.cli import app as cli
from refundry.demo import worked_examples as ex
from refundry.domain.policy import Policy
from refundry.services.access import Actor
from refundry.services.cases.opening import open_case
from refundry.services.cases.views import read_case
from refundry.services.orders.ingest import ingest_order
from refundry.services.refunds.ledger import balance
from refundry.services.staff.accounts import MAX_FAILED_ATTEMPTS, add_staff
from refundry.services.uow import UnitOfWork
from refundry.store.tables import staff_accounts
from tests.web.conftest import CUSTOMER, MUGS, NOW, THRESHOLD, Shop, csrf_of, signed_in

AGENT, PASSWORD = "ann", "correct horse battery"
DESK = Actor("agent", AGENT)


def add_agent(shop: Shop, name: str = AGENT, role: str = "agent", **kw: Any) -> None:
    add_staff(shop.engine, role=role, name=name, password=PASSWORD, now=NOW, **kw)


def open_under_review(
    shop: Shop, order: str = MUGS, line: str = "M", qty: int = 2, kind: str = "return_and_refund"
) -> str:
    """A return of ``qty`` units for a wrong item, over the rules' ¥100: an agent decides."""
    opened = open_case(
        shop.app.state.ctx.desk,
        actor=DESK,
        request={
            "order_id": order,
            "lines": [{"line_id": line, "quantity": qty}],
            "reason": "wrong_item",
            "kind": kind,
        },
        now=NOW,
        description="<script>alert(1)</script> the wrong colour",
    )
    assert read_case(shop.engine, opened.case_id, DESK).state == "under_review"
    return opened.case_id


def desk_sign_in(client: TestClient, name: str = AGENT, password: str = PASSWORD) -> Any:
    page = client.get("/desk/signin")
    return client.post(
        "/desk/signin",
        data={"name": name, "password": password, "csrf_token": csrf_of(page.text)},
        follow_redirects=False,
    )


def test_an_agent_signs_in_and_gets_a_session_cookie(shop: Shop) -> None:
    add_agent(shop)
    client = shop.client()
    assert client.get("/desk", follow_redirects=False).headers["location"] == "/desk/signin"
    done = desk_sign_in(client)
    assert (done.status_code, done.headers["location"]) == (303, "/desk")
    cookie = next(c for c in done.headers.get_list("set-cookie") if c.startswith("rf_session="))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie
    queue = client.get("/desk")
    assert queue.status_code == 200 and "Work queue" in queue.text


def test_the_cookie_is_secure_under_tls(shop: Shop) -> None:
    add_agent(shop)
    client = TestClient(shop.app, base_url="https://testserver")
    done = desk_sign_in(client)
    cookie = next(c for c in done.headers.get_list("set-cookie") if c.startswith("rf_session="))
    assert "Secure" in cookie


def test_a_wrong_password_and_an_unknown_name_get_the_same_answer(shop: Shop) -> None:
    add_agent(shop)
    client = shop.client()
    wrong = desk_sign_in(client, password="not the password")
    unknown = desk_sign_in(client, name="nobody")
    for answer in (wrong, unknown):
        assert answer.status_code == 401
        assert "rf_session=" not in answer.headers.get("set-cookie", "")
        assert "The name or password is not right" in answer.text
    assert client.get("/desk", follow_redirects=False).status_code == 303


def test_too_many_wrong_passwords_lock_the_account(shop: Shop) -> None:
    add_agent(shop)
    client = shop.client()
    for _ in range(MAX_FAILED_ATTEMPTS):
        assert desk_sign_in(client, password="guess guess guess").status_code == 401
    locked = desk_sign_in(client)  # the right password, refused while locked
    assert locked.status_code == 401
    with UnitOfWork(shop.engine, readonly=True) as uow:
        until = uow.conn.execute(
            select(staff_accounts.c.locked_until).where(staff_accounts.c.name == AGENT)
        ).scalar_one()
    assert until == NOW + timedelta(minutes=15)


def test_a_sign_in_without_the_form_token_is_refused(shop: Shop) -> None:
    add_agent(shop)
    client = shop.client()
    client.get("/desk/signin")
    done = client.post("/desk/signin", data={"name": AGENT, "password": PASSWORD})
    assert done.status_code == 403
    assert "rf_session=" not in done.headers.get("set-cookie", "")


def test_a_customer_session_cannot_reach_the_desk(shop: Shop) -> None:
    case_id = open_under_review(shop)
    client = signed_in(shop.client())
    for path in ("/desk", f"/desk/cases/{case_id}"):
        answer = client.get(path, follow_redirects=False)
        assert (answer.status_code, answer.headers["location"]) == (303, "/desk/signin")
    token = csrf_of(client.get("/orders").text)
    post = client.post(
        f"/desk/cases/{case_id}/approve", data={"csrf_token": token}, follow_redirects=False
    )
    assert post.headers["location"] == "/desk/signin"
    assert read_case(shop.engine, case_id, DESK).state == "under_review"


def test_a_merchant_account_acts_as_its_merchant_and_is_not_at_the_agent_desk(
    shop: Shop,
) -> None:
    add_agent(shop, name="shop-staff", role="merchant", merchant_id="m-1")
    client = shop.client()
    assert desk_sign_in(client, name="shop-staff").status_code == 303
    assert client.get("/desk", follow_redirects=False).headers["location"] == "/desk/signin"


def test_the_queue_shows_each_case_with_why_it_waits_and_filters(shop: Shop) -> None:
    add_agent(shop)
    case_id = open_under_review(shop)
    client = shop.client()
    desk_sign_in(client)
    page = client.get("/desk").text
    assert case_id in page and "No review rule decided" in page
    assert case_id in client.get("/desk", params={"reason": "wrong_item"}).text
    assert case_id not in client.get("/desk", params={"reason": "quality_issue"}).text
    assert case_id in client.get("/desk", params={"state": "under_review"}).text
    assert case_id not in client.get("/desk", params={"state": "refund_failed"}).text
    assert case_id not in client.get("/desk", params={"merchant": "m-elsewhere"}).text


def test_the_case_page_shows_the_plan_and_history_and_escapes_free_text(shop: Shop) -> None:
    add_agent(shop)
    first = open_under_review(shop, order=THRESHOLD, line="X", qty=1)
    case_id = open_under_review(shop)
    client = shop.client()
    desk_sign_in(client)
    page = client.get(f"/desk/cases/{case_id}").text
    assert "What would apply now" in page and "CN¥193.33" in page
    assert first in page  # the customer's other case
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page
    assert 'action="/desk/cases/' + case_id + '/approve"' in page


def test_an_agent_approves_a_case_with_a_form_post(shop: Shop) -> None:
    add_agent(shop)
    case_id = open_under_review(shop)
    client = shop.client()
    desk_sign_in(client)
    token = csrf_of(client.get(f"/desk/cases/{case_id}").text)
    done = client.post(
        f"/desk/cases/{case_id}/approve",
        data={"comment": "wrong colour confirmed", "csrf_token": token},
        follow_redirects=False,
    )
    assert done.headers["location"] == f"/desk/cases/{case_id}?done=approve"
    case = read_case(shop.engine, case_id, DESK)
    assert case.state == "awaiting_return"
    assert case.review is not None and case.review.by == "agent:ann"
    # the timeline says what each step was, in words: not the action's code
    page = re.sub(r"\s+", " ", client.get(f"/desk/cases/{case_id}").text)
    assert "(Approved, You (ann))" in page and "(approve, agent:ann)" not in page
    zh = re.sub(
        r"\s+", " ", client.get(f"/desk/cases/{case_id}", headers={"Accept-Language": "zh-CN"}).text
    )
    assert "(已同意, " in zh


def test_a_refusal_is_shown_with_its_message_and_changes_nothing(shop: Shop) -> None:
    add_agent(shop)
    case_id = open_under_review(shop)
    client = shop.client()
    desk_sign_in(client)
    token = csrf_of(client.get(f"/desk/cases/{case_id}").text)
    empty = client.post(f"/desk/cases/{case_id}/reject", data={"csrf_token": token})
    assert empty.status_code == 422
    assert "a rejection needs a comment the customer will read" in empty.text
    not_held = client.post(
        f"/desk/cases/{case_id}/resolve",
        data={"resolution": "waiver", "csrf_token": token},
    )
    assert not_held.status_code == 409
    no_token = client.post(f"/desk/cases/{case_id}/approve", data={})
    assert no_token.status_code == 403
    assert read_case(shop.engine, case_id, DESK).state == "under_review"


def test_refundry_user_add_reads_the_password_from_stdin(db_url: str, shop: Shop) -> None:
    runner = CliRunner()
    added = runner.invoke(
        cli,
        ["user", "add", "agent", "bo", "--password-stdin", "--url", db_url],
        input=PASSWORD + "\n",
    )
    assert added.exit_code == 0, added.output
    with UnitOfWork(shop.engine, readonly=True) as uow:
        stored = uow.conn.execute(
            select(staff_accounts.c.password_hash).where(staff_accounts.c.name == "bo")
        ).scalar_one()
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    assert desk_sign_in(shop.client(), name="bo").status_code == 303


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["merchant", "mo"], "merchant"),
        (["agent", "al", "--merchant", "m-1"], "merchant"),
        (["boss", "al"], "role"),
    ],
)
def test_refundry_user_add_refuses_in_one_line(
    db_url: str, shop: Shop, args: list[str], field: str
) -> None:
    refused = CliRunner().invoke(
        cli, ["user", "add", *args, "--password-stdin", "--url", db_url], input=PASSWORD + "\n"
    )
    assert refused.exit_code == 2
    assert f"staff.invalid at {field}:" in refused.output


def test_a_short_password_and_a_taken_name_are_refused(db_url: str, shop: Shop) -> None:
    runner = CliRunner()
    short = runner.invoke(
        cli, ["user", "add", "agent", "al", "--password-stdin", "--url", db_url], input="short\n"
    )
    assert short.exit_code == 2 and "staff.invalid at password" in short.output
    add_agent(shop, name="al")
    again = runner.invoke(
        cli, ["user", "add", "agent", "al", "--password-stdin", "--url", db_url], input=PASSWORD
    )
    assert again.exit_code == 2 and "staff.exists" in again.output


def test_the_customer_pages_still_work_for_a_customer(shop: Shop) -> None:
    client = signed_in(shop.client(), CUSTOMER)
    assert client.get("/orders").status_code == 200


def _held_case(shop: Shop) -> str:
    """SPEC's claw-back beyond the amount: a ¥150 cashback granted on ¥200, one ¥100 unit
    refunded, so the plan is held for manual review."""
    doc = ex.order(
        "o-claw",
        [ex.line("A", 10000), ex.line("B", 10000)],
        20000,
        campaigns=[
            {
                "id": "MF-200",
                "kind": "order_cashback",
                "tiers": [{"threshold": 20000, "reward": 15000}],
            }
        ],
        rewards=[{"id": "RW-9", "campaign_id": "MF-200", "amount": 15000, "status": "granted"}],
    )
    with UnitOfWork(shop.engine) as uow:
        ingest_order(uow.conn, doc, policy=Policy(), now=NOW - timedelta(days=3))
        uow.commit()
    opened = open_case(
        shop.app.state.ctx.desk,
        actor=DESK,
        request={
            "order_id": "o-claw",
            "lines": [{"line_id": "A", "quantity": 1}],
            "reason": "not_received",
            "kind": "refund_only",
        },
        now=NOW,
    )
    assert opened.state == "needs_manual_review"
    return opened.case_id


def _post_on(client: TestClient, case_id: str, action: str, **data: str) -> Any:
    token = csrf_of(client.get(f"/desk/cases/{case_id}").text)
    return client.post(
        f"/desk/cases/{case_id}/{action}",
        data={**data, "csrf_token": token},
        follow_redirects=False,
    )


def test_an_agent_resolves_a_manual_review_by_a_waiver_after_a_refused_debit(shop: Shop) -> None:
    add_agent(shop)
    case_id = _held_case(shop)
    client = shop.client()
    desk_sign_in(client)
    page = client.get("/desk", params={"state": "needs_manual_review"}).text
    assert case_id in page and "Held for manual review" in page
    assert "Resolve the manual review" in client.get(f"/desk/cases/{case_id}").text
    unknown = _post_on(client, case_id, "resolve", resolution="forgive")
    assert (
        unknown.status_code == 422 and "resolution must be waiver or wallet_debit" in unknown.text
    )
    # The wallet is empty: a debit of the ¥50 excess is refused with its reason (it was a
    # database error, an HTTP 500, before resolve_manual_review checked the balance).
    debit = _post_on(client, case_id, "resolve", resolution="wallet_debit", comment="agreed")
    assert debit.status_code == 422
    assert "wallet holds 0, less than the excess 5000" in debit.text
    assert read_case(shop.engine, case_id, DESK).state == "needs_manual_review"
    done = _post_on(client, case_id, "resolve", resolution="waiver", comment="goodwill")
    assert done.headers["location"] == f"/desk/cases/{case_id}?done=resolve"
    assert read_case(shop.engine, case_id, DESK).state == "refunded"
    with UnitOfWork(shop.engine, readonly=True) as uow:
        assert balance(uow.conn, "wallet", CUSTOMER) == 0


def _failed_case(shop: Shop, client: TestClient) -> str:
    """Two mugs, refund only, approved at the desk; the card is blocked, so the gateway
    refuses the refund at once and the case is refund_failed."""
    shop.app.state.ctx.gateway.set_card_state(f"ali-{MUGS}", "blocked")
    case_id = open_under_review(shop, kind="refund_only")
    assert _post_on(client, case_id, "approve").status_code == 303
    shop.app.state.ctx.runtime.relay().drain()
    assert read_case(shop.engine, case_id, DESK).state == "refund_failed"
    return case_id


def test_an_agent_retries_a_failed_refund_then_moves_it_to_the_wallet(shop: Shop) -> None:
    add_agent(shop)
    client = shop.client()
    desk_sign_in(client)
    case_id = _failed_case(shop, client)
    assert case_id in client.get("/desk", params={"state": "refund_failed"}).text
    assert "Retry T1" in client.get(f"/desk/cases/{case_id}").text
    unknown = _post_on(client, case_id, "retry", tender_id="T9")
    assert unknown.status_code == 404 and "has no tender T9" in unknown.text
    retried = _post_on(client, case_id, "retry", tender_id="T1", comment="card unblocked?")
    assert retried.headers["location"] == f"/desk/cases/{case_id}?done=retry"
    assert read_case(shop.engine, case_id, DESK).state == "refunding"
    again = _post_on(client, case_id, "retry", tender_id="T1")  # not failed now
    assert again.status_code == 409 and "not failed" in again.text
    shop.app.state.ctx.runtime.relay().drain()  # the card is still blocked
    assert read_case(shop.engine, case_id, DESK).state == "refund_failed"
    moved = _post_on(client, case_id, "wallet", tender_id="T1", comment="card closed")
    assert moved.headers["location"] == f"/desk/cases/{case_id}?done=wallet"
    assert read_case(shop.engine, case_id, DESK).state == "refunded"
    with UnitOfWork(shop.engine, readonly=True) as uow:
        assert balance(uow.conn, "wallet", CUSTOMER) == 19333
