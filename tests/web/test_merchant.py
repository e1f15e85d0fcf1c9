"""The merchant desk over HTTP (TestClient), on SQLite and PostgreSQL: a merchant account signs
in and lands on its returns, receives and inspects a return with form posts, sees only its own
cases (another merchant's is 404, also to a post), and a post without the form token, a bad
inspection or a role that is not a merchant changes nothing. tests/web/test_merchant_browser.py
drives the same pages in Chromium."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from refundry.cli import app as cli
from refundry.services.access import Actor
from refundry.services.cases import actions as case_actions
from refundry.services.cases.views import read_case
from tests.web.conftest import CUSTOMER, NOW, Shop, csrf_of, signed_in
from tests.web.test_desk import DESK, PASSWORD, add_agent, desk_sign_in, open_under_review

MERCHANT_NAME, OTHER_MERCHANT_NAME = "mugs-shop", "lamps-shop"
MERCHANT = Actor("merchant", "m-1")


def add_merchants(shop: Shop) -> None:
    """``mugs-shop`` acts as m-1 (every line of the test shop), ``lamps-shop`` as m-2."""
    add_agent(shop, name=MERCHANT_NAME, role="merchant", merchant_id="m-1")
    add_agent(shop, name=OTHER_MERCHANT_NAME, role="merchant", merchant_id="m-2")


def returned_case(shop: Shop) -> str:
    """Two of the three mugs asked back (wrong item), approved by an agent and shipped by the
    customer: the parcel is on its way to merchant m-1."""
    case_id = open_under_review(shop)
    desk = shop.app.state.ctx.desk
    case_actions.approve(desk, case_id, actor=DESK, now=NOW)
    case_actions.ship(
        desk, case_id, actor=Actor("customer", CUSTOMER), now=NOW, tracking_number="SF1234"
    )
    assert read_case(shop.engine, case_id, DESK).state == "return_in_transit"
    return case_id


def _state(shop: Shop, case_id: str) -> str:
    return read_case(shop.engine, case_id, DESK).state


def _post(client: TestClient, path: str, page: str, **data: Any) -> Any:
    token = csrf_of(client.get(page).text)
    return client.post(path, data={**data, "csrf_token": token}, follow_redirects=False)


def test_a_merchant_signs_in_and_lands_on_its_returns(shop: Shop) -> None:
    add_merchants(shop)
    case_id = returned_case(shop)
    client = shop.client()
    done = desk_sign_in(client, name=MERCHANT_NAME)
    assert (done.status_code, done.headers["location"]) == (303, "/merchant")
    page = client.get("/merchant")
    assert page.status_code == 200 and case_id in page.text
    assert case_id in client.get("/merchant", params={"state": "return_in_transit"}).text
    assert case_id not in client.get("/merchant", params={"state": "received"}).text
    assert client.get("/desk", follow_redirects=False).headers["location"] == "/desk/signin"


def test_a_merchant_receives_and_inspects_a_partial_return(shop: Shop) -> None:
    add_merchants(shop)
    case_id = returned_case(shop)
    client = shop.client()
    desk_sign_in(client, name=MERCHANT_NAME)
    page = f"/merchant/cases/{case_id}"
    got = _post(client, f"{page}/receive", page)
    assert (got.status_code, got.headers["location"]) == (303, f"{page}?done=receive")
    assert _state(shop, case_id) == "received"
    timeline = client.get(page).text.split('<ol class="timeline">')[1]
    assert 'Return on its way <span class="hint">(the customer)' in timeline
    assert 'Return received <span class="hint">(you)' in timeline
    got = _post(
        client,
        f"{page}/inspect",
        page,
        result="partial",
        **{"accepted.M": "1", "disposition.M": "damaged"},
    )
    assert got.status_code == 303, got.text
    case = read_case(shop.engine, case_id, DESK)
    assert case.inspection is not None
    assert (case.inspection.result, case.inspection.accepted[0].quantity) == ("partial", 1)
    assert case.inspection.disposition == {"M": "damaged"}
    assert case.state in ("refunding", "refunded")


def test_a_bad_inspection_is_refused_on_the_page_and_changes_nothing(shop: Shop) -> None:
    add_merchants(shop)
    case_id = returned_case(shop)
    client = shop.client()
    desk_sign_in(client, name=MERCHANT_NAME)
    page = f"/merchant/cases/{case_id}"
    _post(client, f"{page}/receive", page)
    for data in (
        {"result": "partial", "accepted.M": "2", "disposition.M": "resellable"},  # all: pass
        {"result": "partial", "accepted.M": "two"},
        {"result": "pass", "disposition.M": "lost"},
        {"result": "fail", "reason": "  "},
        {},
    ):
        got = _post(client, f"{page}/inspect", page, **data)
        assert got.status_code == 422, data
        assert "This was refused; nothing changed" in got.text
        assert _state(shop, case_id) == "received"


def test_another_merchants_case_is_not_found_and_its_posts_change_nothing(shop: Shop) -> None:
    add_merchants(shop)
    case_id = returned_case(shop)
    client = shop.client()
    desk_sign_in(client, name=OTHER_MERCHANT_NAME)
    assert case_id not in client.get("/merchant").text
    page = client.get(f"/merchant/cases/{case_id}")
    assert page.status_code == 404
    token = csrf_of(client.get("/merchant").text)
    got = client.post(f"/merchant/cases/{case_id}/receive", data={"csrf_token": token})
    assert got.status_code == 404
    assert _state(shop, case_id) == "return_in_transit"


def test_a_post_without_the_form_token_changes_nothing(shop: Shop) -> None:
    add_merchants(shop)
    case_id = returned_case(shop)
    client = shop.client()
    desk_sign_in(client, name=MERCHANT_NAME)
    client.get(f"/merchant/cases/{case_id}")
    got = client.post(f"/merchant/cases/{case_id}/receive", follow_redirects=False)
    assert got.status_code == 403
    forged = client.post(
        f"/merchant/cases/{case_id}/receive", data={"csrf_token": "0" * 64}, follow_redirects=False
    )
    assert forged.status_code == 403
    assert _state(shop, case_id) == "return_in_transit"


def test_only_a_merchant_reaches_the_merchant_desk(shop: Shop) -> None:
    add_agent(shop)
    case_id = returned_case(shop)
    agent = shop.client()
    desk_sign_in(agent)
    customer = signed_in(shop.client())
    for client in (agent, customer, shop.client()):
        for path in ("/merchant", f"/merchant/cases/{case_id}"):
            got = client.get(path, follow_redirects=False)
            assert got.headers["location"] == "/desk/signin", path
    token = csrf_of(agent.get("/desk").text)
    got = agent.post(
        f"/merchant/cases/{case_id}/receive", data={"csrf_token": token}, follow_redirects=False
    )
    assert got.headers["location"] == "/desk/signin"
    assert _state(shop, case_id) == "return_in_transit"


def test_user_add_makes_a_merchant_account_bound_to_its_merchant(db_url: str, shop: Shop) -> None:
    args = ["user", "add", "merchant", "tea-shop", "--merchant", "m-1", "--password-stdin"]
    made = CliRunner().invoke(
        cli,
        [*args, "--url", db_url],
        input=f"{PASSWORD}\n",
    )
    assert made.exit_code == 0, made.output
    assert desk_sign_in(shop.client(), name="tea-shop").headers["location"] == "/merchant"
