"""The customer's ship form on the case page over HTTP, on SQLite and PostgreSQL: shown while
the return is awaited and only then; the tracking number posted with the form token moves the
case on by the same service as POST /v1/cases/{id}/ship (422 like the API for a blank
number); each refusal (no number, one too long, no form token, another customer's case, a
case already shipped) changes nothing. tests/web/test_journeys_browser.py drives it in
Chromium."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from refundry.api.auth import issue_token
from refundry.services.cases import actions as case_actions
from refundry.services.cases.views import read_case
from tests.web.conftest import CUSTOMER, NOW, OTHER, SECRET, Shop, csrf_of, signed_in
from tests.web.test_desk import DESK, open_under_review

SCRIPT = "<script>alert(1)</script>SF-9"


def _awaiting(shop: Shop) -> str:
    case_id = open_under_review(shop)
    case_actions.approve(shop.app.state.ctx.desk, case_id, actor=DESK, now=NOW)
    assert read_case(shop.engine, case_id, DESK).state == "awaiting_return"
    return case_id


def _ship(client: TestClient, case_id: str, **data: str) -> Any:
    token = csrf_of(client.get(f"/cases/{case_id}").text)
    return client.post(
        f"/cases/{case_id}/ship", data={**data, "csrf_token": token}, follow_redirects=False
    )


def _state(shop: Shop, case_id: str) -> tuple[str, str | None]:
    case = read_case(shop.engine, case_id, DESK)
    return case.state, case.tracking_number


def test_the_form_shows_while_the_return_is_awaited_and_moves_the_case_on(shop: Shop) -> None:
    under_review = open_under_review(shop, order="o-500-100", line="X", qty=1)
    case_id = _awaiting(shop)
    client = signed_in(shop.client())
    assert (
        'action="/cases/' + under_review + '/ship"' not in client.get(f"/cases/{under_review}").text
    )
    page = client.get(f"/cases/{case_id}").text
    assert f'action="/cases/{case_id}/ship"' in page and "Tracking number of your parcel" in page

    done = _ship(client, case_id, tracking_number=f"  {SCRIPT}  ")
    assert (done.status_code, done.headers["location"]) == (303, f"/cases/{case_id}?shipped=1")
    assert _state(shop, case_id) == ("return_in_transit", SCRIPT)
    shown = client.get(done.headers["location"]).text
    assert "Thank you: your return is on its way." in shown
    assert "&lt;script&gt;alert(1)&lt;/script&gt;SF-9" in shown and SCRIPT not in shown
    assert f'action="/cases/{case_id}/ship"' not in shown

    again = client.post(
        f"/cases/{case_id}/ship",
        data={"tracking_number": "SF-10", "csrf_token": csrf_of(shown)},
        follow_redirects=False,
    )
    assert again.status_code == 409, again.text
    assert _state(shop, case_id) == ("return_in_transit", SCRIPT)


def test_a_bad_tracking_number_is_refused_on_the_page_as_the_api_refuses_it(shop: Shop) -> None:
    case_id = _awaiting(shop)
    client = signed_in(shop.client())
    for number in ("", "   ", "S" * 101):
        refused = _ship(client, case_id, tracking_number=number)
        assert refused.status_code == 422
        assert 'data-code="case.tracking_number_invalid"' in refused.text
        assert "Enter the tracking number the carrier gave you" in refused.text
        assert _state(shop, case_id) == ("awaiting_return", None)
    token = issue_token(SECRET.encode(), role="customer", subject=CUSTOMER, now=NOW)
    api = shop.client(Authorization=f"Bearer {token}").post(
        f"/v1/cases/{case_id}/ship", json={"tracking_number": "   "}
    )
    assert api.status_code == 422  # the API's schema refuses it before the service
    assert _state(shop, case_id) == ("awaiting_return", None)


def test_a_post_without_the_token_or_on_another_customers_case_changes_nothing(
    shop: Shop,
) -> None:
    case_id = _awaiting(shop)
    client = signed_in(shop.client())
    forged = client.post(
        f"/cases/{case_id}/ship", data={"tracking_number": "SF-1"}, follow_redirects=False
    )
    assert forged.status_code == 403
    other = signed_in(shop.client(), OTHER)
    token = csrf_of(other.get("/orders").text)
    foreign = other.post(
        f"/cases/{case_id}/ship",
        data={"tracking_number": "SF-1", "csrf_token": token},
        follow_redirects=False,
    )
    assert foreign.status_code == 404 and "Page not found" in foreign.text
    assert _state(shop, case_id) == ("awaiting_return", None)
