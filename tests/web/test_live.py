"""The live case page, the rating form, the desk's feedback list and the inbox over HTTP
(TestClient), on SQLite and PostgreSQL. tests/web/test_live_browser.py drives them in
Chromium."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import ExitStack, closing
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from refundry.services.access import Actor
from refundry.services.cases import actions as case_actions
from refundry.services.cases.feedback import feedback_list
from refundry.services.cases.opening import open_case
from refundry.services.cases.timeline import case_version
from refundry.services.cases.timers import run_timers
from refundry.services.cases.views import read_case
from refundry.services.errors import Forbidden
from refundry.web.routes import cases as case_routes
from tests.web.browser import Live, serving
from tests.web.conftest import (
    COUPON,
    CUSTOMER,
    MUGS,
    NOW,
    OTHER,
    THRESHOLD,
    Shop,
    csrf_of,
    link_token,
    signed_in,
)
from tests.web.test_desk import DESK, add_agent, desk_sign_in, open_under_review

SCRIPT = "<script>alert(1)</script> quick and kind"
ME = Actor("customer", CUSTOMER)


def refunded_by_the_rules(
    shop: Shop, order: str = THRESHOLD, line: str = "Y", by: Actor = ME
) -> str:
    """One unit of ``line`` (Y of the 满减 order), refund only for a quality problem: the
    rules approve it, the relay pays it. Opened by the desk, it needs no one-time code."""
    case_id = open_case(
        shop.app.state.ctx.desk,
        actor=by,
        request={
            "order_id": order,
            "lines": [{"line_id": line, "quantity": 1}],
            "reason": "quality_issue",
            "kind": "refund_only",
        },
        now=NOW,
    ).case_id
    shop.app.state.ctx.runtime.relay().drain()
    return case_id


def completed_case(shop: Shop, order: str = THRESHOLD, line: str = "Y") -> str:
    """A case refunded by the rules, then completed by the timers: it may be rated."""
    by = ME if order == THRESHOLD else DESK
    case_id = refunded_by_the_rules(shop, order, line, by)
    run_timers(shop.app.state.ctx.desk, now=NOW)
    assert read_case(shop.engine, case_id, DESK).state == "completed"
    return case_id


def _events(client: TestClient, url: str) -> list[dict[str, Any]]:
    """The server-sent events of ``url`` until the stream ends: name, id, data."""
    found: list[dict[str, Any]] = []
    event: dict[str, Any] = {"data": []}
    with client.stream("GET", url) as answer:
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/event-stream")
        assert "script-src 'self'" in answer.headers["content-security-policy"]
        for line in answer.iter_lines():
            if line == "":
                if event.get("event"):
                    found.append({**event, "data": "\n".join(event["data"])})
                event = {"data": []}
            elif line.startswith("data: "):
                event["data"].append(line[6:])
            elif line.startswith(("event: ", "id: ")):
                key, _, value = line.partition(": ")
                event[key] = value
    return found


def _rate(client: TestClient, case_id: str, **data: str) -> Any:
    token = csrf_of(client.get(f"/cases/{case_id}").text)
    return client.post(
        f"/cases/{case_id}/rating", data={**data, "csrf_token": token}, follow_redirects=False
    )


def test_the_case_page_shows_the_next_deadline_with_its_countdown(shop: Shop) -> None:
    case_id = open_under_review(shop, kind="refund_only")
    page = signed_in(shop.client()).get(f"/cases/{case_id}")
    text = re.sub(r"\s+", " ", page.text)
    assert "If the shop does not decide, your request is approved" in text
    # 48 hours after it entered review (policy timers.merchant_silent_hours), counted on the server
    assert 'role="timer" data-seconds="172800"' in text and ">2 days</span>" in text
    assert '<script src="/static/live.js"></script>' in text
    assert f'data-events="/cases/{case_id}/events?since=' in text
    zh = signed_in(shop.client(**{"Accept-Language": "zh-CN"})).get(f"/cases/{case_id}")
    assert "商家未处理时，申请将自动同意" in zh.text and ">2天</span>" in zh.text


def test_the_stream_sends_the_fragment_when_the_case_moves_and_nothing_before(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(case_routes, "STREAM_SECONDS", 0.0)  # one look, then the stream ends
    case_id = open_under_review(shop, kind="refund_only")
    client = signed_in(shop.client())
    seen = case_version(shop.engine, case_id, Actor("customer", CUSTOMER)).tag
    assert _events(client, f"/cases/{case_id}/events?since={seen}") == []
    case_actions.approve(shop.app.state.ctx.desk, case_id, actor=DESK, now=NOW)
    (moved,) = _events(client, f"/cases/{case_id}/events?since={seen}")
    assert moved["event"] == "case" and moved["id"] != seen
    assert '<dd id="case-state">Refunding</dd>' in moved["data"]
    assert moved["data"].count("<h2>What happened</h2>") == 1
    # a reconnection names the version it saw last: nothing new, nothing sent
    again = client.get(
        f"/cases/{case_id}/events", headers={"Last-Event-ID": moved["id"]}
    ).text.strip()
    assert again == "retry: 3000"


def test_the_stream_of_a_final_case_sends_it_once_and_ends(shop: Shop) -> None:
    case_id = completed_case(shop)
    client = signed_in(shop.client())
    events = _events(client, f"/cases/{case_id}/events")
    assert [e["event"] for e in events] == ["case", "end"]
    assert '<dd id="case-state">Completed</dd>' in events[0]["data"]
    assert "How did we do?" in events[0]["data"]  # the rating form comes with it


def test_a_fragment_that_cannot_be_drawn_ends_the_stream_with_an_error_event(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure while drawing the case is said to the page (which offers a reload) instead of
    breaking the connection mid-stream, which the browser would retry for ever in silence."""
    case_id = completed_case(shop)

    def broken(*_: Any, **__: Any) -> dict[str, Any]:
        raise RuntimeError("a template mistake")

    client = signed_in(shop.client())
    page = client.get(f"/cases/{case_id}").text  # the page carries the notice, hidden
    assert 'id="case-stopped" hidden' in page and "stopped following the case" in page
    monkeypatch.setattr(case_routes, "_live", broken)
    events = _events(client, f"/cases/{case_id}/events")
    assert [(e["event"], e["data"]) for e in events] == [("end", "error")]


def test_another_customers_case_stream_is_not_found_and_a_visitor_signs_in(shop: Shop) -> None:
    case_id = completed_case(shop)
    other = signed_in(shop.client(), OTHER)
    for path in (f"/cases/{case_id}", f"/cases/{case_id}/events"):
        refused = other.get(path)
        assert refused.status_code == 404 and "Page not found" in refused.text
        assert "event: case" not in refused.text
    visitor = shop.client().get(f"/cases/{case_id}/events", follow_redirects=False)
    assert (visitor.status_code, visitor.headers["location"]) == (303, "/signin")


def test_a_completed_case_is_rated_once_and_the_desk_reads_the_feedback_escaped(
    shop: Shop,
) -> None:
    case_id = completed_case(shop)
    client = signed_in(shop.client())
    forged = client.post(f"/cases/{case_id}/rating", data={"rating": "1"})
    assert forged.status_code == 403
    assert read_case(shop.engine, case_id, DESK).rating is None
    empty = _rate(client, case_id, feedback="no mark")
    assert empty.status_code == 422 and "Choose a rating from 1 to 5" in empty.text
    assert read_case(shop.engine, case_id, DESK).rating is None
    done = _rate(client, case_id, rating="5", feedback=SCRIPT)
    assert (done.status_code, done.headers["location"]) == (303, f"/cases/{case_id}?rated=1")
    page = client.get(done.headers["location"]).text
    assert "Thank you for your rating." in page and "5 of 5" in page
    assert "How did we do?" not in page and "<script>alert(1)" not in page
    second = _rate(client, case_id, rating="1", feedback="changed my mind")
    assert second.status_code == 422
    assert 'data-code="case.already_rated"' in second.text
    assert "You have rated this case already; your first rating stands." in second.text
    after = read_case(shop.engine, case_id, DESK)
    assert (after.rating, after.feedback) == (5, SCRIPT)

    add_agent(shop)
    desk = shop.client()
    desk_sign_in(desk)
    listed = desk.get("/desk/feedback")
    assert listed.status_code == 200
    row = re.sub(r"\s+", " ", listed.text)
    assert f'<a href="/desk/cases/{case_id}">{case_id}</a>' in row
    assert "<td>5 of 5</td>" in row
    assert "&lt;script&gt;alert(1)&lt;/script&gt; quick and kind" in row
    assert "<script>alert(1)" not in listed.text
    assert "No customer has rated" in desk.get("/desk/feedback?rating=1").text
    assert '<a href="/desk/feedback">Feedback</a>' in listed.text


def test_the_feedback_list_is_the_desks_only(shop: Shop) -> None:
    completed_case(shop)
    for client in (shop.client(), signed_in(shop.client())):
        sent = client.get("/desk/feedback", follow_redirects=False)
        assert (sent.status_code, sent.headers["location"]) == (303, "/desk/signin")


def test_the_inbox_lists_the_messages_and_marks_one_read(shop: Shop) -> None:
    completed_case(shop)
    client = signed_in(shop.client())
    orders = client.get("/orders").text
    assert '<a href="/inbox">Messages</a>' in orders
    page = client.get("/inbox")
    assert page.status_code == 200
    unread = int(re.search(r"Unread: (\d+)", page.text).group(1))  # type: ignore[union-attr]
    assert unread >= 3  # received, approved, refund sent, refunded, completed …
    assert page.text.count('<span class="badge">New</span>') == unread
    assert f'<a href="/orders/{THRESHOLD}">Order {THRESHOLD}</a>' in page.text
    first = re.search(r'action="/inbox/(\d+)/read"', page.text)
    assert first is not None
    forged = client.post(f"/inbox/{first.group(1)}/read")
    assert forged.status_code == 403
    done = client.post(
        f"/inbox/{first.group(1)}/read",
        data={"csrf_token": csrf_of(page.text)},
        follow_redirects=False,
    )
    assert done.status_code == 303
    again = client.get("/inbox").text
    assert f"Unread: {unread - 1}" in again
    other = signed_in(shop.client(), OTHER)
    assert "No messages yet." in other.get("/inbox").text
    stolen = other.post(
        f"/inbox/{first.group(1)}/read", data={"csrf_token": csrf_of(other.get("/inbox").text)}
    )
    assert stolen.status_code == 404
    zh = signed_in(shop.client(**{"Accept-Language": "zh-CN,zh;q=0.9"})).get("/inbox")
    assert "<h1>消息</h1>" in zh.text


@pytest.mark.parametrize("method", ["prepaid_label", "pickup"])
def test_the_case_page_shows_the_return_label_or_the_pickup_with_tracking(
    shop: Shop, method: str
) -> None:
    desk = shop.app.state.ctx.desk
    case_id = open_case(
        desk,
        actor=DESK,
        request={
            "order_id": MUGS,
            "lines": [{"line_id": "M", "quantity": 2}],
            "reason": "wrong_item",
            "kind": "return_and_refund",
            "return_method": method,
        },
        now=NOW,
    ).case_id
    case_actions.approve(desk, case_id, actor=DESK, now=NOW)
    shop.app.state.ctx.runtime.relay().drain()  # the carrier books it
    shipment = read_case(shop.engine, case_id, DESK).shipment
    assert shipment is not None and shipment.tracking_number and shipment.label
    text = re.sub(r"\s+", " ", signed_in(shop.client()).get(f"/cases/{case_id}").text)
    assert "<h2>Your return parcel</h2>" in text
    assert f"<dt>Tracking number</dt><dd>{shipment.tracking_number}</dd>" in text
    assert "<dt>Parcel</dt><dd>Booked</dd>" in text
    if method == "prepaid_label":
        assert "<dd>Prepaid return label</dd>" in text
        assert f'<a href="{shipment.label["url"]}">Print the return label</a>' in text
        assert f"<dt>Drop-off code</dt><dd>{shipment.label['drop_off_code']}</dd>" in text
    else:
        # the sandbox's slot: 09:00 to 13:00 UTC the next day, in the shop's zone
        assert "<dd>Pickup from your address</dd>" in text
        assert '<dt>Pickup</dt><dd><time datetime="2026-11-25T09:00:00+00:00">' in text
        assert "Nov 25, 2026, 5:00:00 PM</time> – <time" in text  # a space: \s+ above


def _browser_session(live: Live) -> httpx.Client:
    """An HTTP client signed in as the customer on the real server."""
    client = httpx.Client(base_url=live.base, timeout=30, follow_redirects=True)
    page = client.get("/signin", params={"token": link_token(CUSTOMER)})
    done = client.post(
        "/signin", data={"token": link_token(CUSTOMER), "csrf_token": csrf_of(page.text)}
    )
    assert done.status_code == 200 and "/orders" in str(done.url)
    return client


def _next_event(lines: Iterator[str]) -> dict[str, str]:
    event: dict[str, str] = {}
    for line in lines:
        if line == "" and "event" in event:
            return event
        key, _, value = line.partition(": ")
        if key in ("event", "id"):
            event[key] = value
        elif key == "data":
            event["data"] = event.get("data", "") + value + "\n"
    raise AssertionError(f"the stream ended first: {event}")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_open_streams_hold_no_worker_and_each_hears_the_move(shop: Shop) -> None:
    """Forty-five streams of one case open on the real server, more than the thread pool's
    40 threads (a stream waits on the event loop, holding none): the pages still answer, and
    every stream gets the fragment once the case moves."""
    case_id = open_under_review(shop, kind="refund_only")
    seen = case_version(shop.engine, case_id, ME).tag
    with serving(shop) as live, ExitStack() as streams:
        client = streams.enter_context(closing(_browser_session(live)))
        opened = [
            streams.enter_context(client.stream("GET", f"/cases/{case_id}/events?since={seen}"))
            for _ in range(45)
        ]
        lines = [answer.iter_lines() for answer in opened]
        assert {next(each) for each in lines} == {"retry: 3000"}
        assert client.get("/orders").status_code == 200
        assert client.get(f"/cases/{case_id}").status_code == 200
        case_actions.approve(shop.app.state.ctx.desk, case_id, actor=DESK, now=NOW)
        for each in lines:
            event = _next_event(each)
            assert event["event"] == "case" and event["id"] != seen


def test_the_feedback_list_pages_newest_first_and_refuses_customers(shop: Shop) -> None:
    desk = shop.app.state.ctx.desk
    first, second = completed_case(shop), completed_case(shop, COUPON, "A")
    case_actions.rate(desk, first, actor=ME, now=NOW, rating=4, feedback="ok")
    case_actions.rate(desk, second, actor=ME, now=NOW + timedelta(minutes=1), rating=1)
    page = feedback_list(shop.engine, DESK, limit=1)
    assert [(f.case_id, f.rating, f.feedback) for f in page.items] == [(second, 1, "")]
    assert page.next_cursor is not None
    rest = feedback_list(shop.engine, DESK, limit=1, cursor=page.next_cursor)
    assert [(f.case_id, f.rating, f.feedback) for f in rest.items] == [(first, 4, "ok")]
    assert rest.next_cursor is None
    assert [f.case_id for f in feedback_list(shop.engine, DESK, rating=4).items] == [first]
    with pytest.raises(Forbidden):
        feedback_list(shop.engine, ME)
