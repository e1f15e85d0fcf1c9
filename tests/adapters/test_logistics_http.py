"""HttpLogistics against the logistics sandbox served over real HTTP on loopback, and the signed
tracking webhooks it POSTs to a real receiver."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from refundry.adapters.clock import ManualClock
from refundry.adapters.logistics import (
    LogisticsIdempotencyConflict,
    LogisticsProtocolError,
    LogisticsProvider,
    LogisticsRefused,
    LogisticsTimeout,
    LogisticsUnavailable,
    ReturnBooking,
    TrackingEvent,
    TrackingWebhookRejected,
    receive_tracking_webhook,
)
from refundry.adapters.logistics_http import HttpLogistics
from refundry.adapters.logistics_http_sandbox import (
    LogisticsHttpServer,
    WebhookDeliveryFailed,
    serve_logistics_http,
)
from refundry.adapters.logistics_sandbox import SandboxLogistics

from .conftest import START
from .webhook_receiver import Receiver, webhook_receiver

SECRET = "whsec_logistics_http"
TIMEOUT = 0.3
PICKUP = timedelta(hours=4)
TRANSIT = timedelta(days=2)
HOME = "12 Rue des Lilas, 75011 Paris"
WAREHOUSE = "Returns dock 3, 69007 Lyon"
FIRST = "RR295390834ZZ"  # seed 1's first tracking number


# -- a real receiver of tracking webhooks ----------------------------------------------------


def tracking_receiver(secret: str, clock: ManualClock) -> AbstractContextManager[Receiver]:
    """``rejected`` holds (code, message) of each refused webhook."""
    return webhook_receiver(
        secret,
        clock,
        receive=lambda key, header, body, now: receive_tracking_webhook(key, header, body, now=now),
        refused=TrackingWebhookRejected,
        rejection=lambda exc: (exc.code, exc.message),
        path="/hooks/tracking",
    )


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture
def sandbox(clock: ManualClock) -> SandboxLogistics:
    return SandboxLogistics(clock, 1, pickup_after=PICKUP, transit_time=TRANSIT)


@pytest.fixture
def receiver(clock: ManualClock) -> Iterator[Receiver]:
    with tracking_receiver(SECRET, clock) as r:
        yield r


@pytest.fixture
def served(sandbox: SandboxLogistics, receiver: Receiver) -> Iterator[LogisticsHttpServer]:
    with serve_logistics_http(
        sandbox, webhook_url=receiver.url, webhook_secret=SECRET, stall_limit=5.0
    ) as server:
        yield server


@pytest.fixture
def client(served: LogisticsHttpServer) -> HttpLogistics:
    return HttpLogistics(served.url, timeout=TIMEOUT)


def book(
    logistics: LogisticsProvider,
    key: str,
    *,
    rma: str = "RMA-1",
    service: str = "prepaid_label",
    from_address: str = HOME,
) -> ReturnBooking:
    return logistics.book_return(
        rma=rma, service=service, from_address=from_address, to_address=WAREHOUSE, key=key
    )


def raw(
    url: str, method: str, path: str, body: bytes | None, headers: dict[str, str]
) -> tuple[int, Any]:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


# -- booking ---------------------------------------------------------------------------------


def test_the_http_client_implements_the_protocol(client: HttpLogistics) -> None:
    assert isinstance(client, LogisticsProvider)


def test_a_booking_reads_the_same_over_http_as_in_process(
    client: HttpLogistics, sandbox: SandboxLogistics
) -> None:
    booked = book(client, "k1", service="pickup")
    assert booked == ReturnBooking(
        carrier="sandbox-post",
        service="pickup",
        tracking_number=FIRST,
        cost=1500,
        label={
            "kind": "pickup",
            "rma": "RMA-1",
            "slot_start": "2024-06-02T09:00:00+00:00",
            "slot_end": "2024-06-02T13:00:00+00:00",
        },
    )
    assert book(sandbox, "k1", service="pickup") == booked


def test_retries_with_the_same_key_over_http_book_once(
    client: HttpLogistics, sandbox: SandboxLogistics
) -> None:
    assert {book(client, "k1").tracking_number for _ in range(5)} == {FIRST}
    assert len(sandbox.bookings) == 1
    assert Counter(r.outcome for r in sandbox.requests) == {"created": 1, "replayed": 4}


def test_a_refusal_arrives_as_a_422_with_the_carriers_reason_and_parameter(
    client: HttpLogistics, sandbox: SandboxLogistics
) -> None:
    with pytest.raises(LogisticsRefused) as over_http:
        book(client, "k1", from_address="Farm 9, UNSERVED valley")
    with pytest.raises(LogisticsRefused) as in_process:
        book(sandbox, "k1", from_address="Farm 9, UNSERVED valley")
    for refused in (over_http.value, in_process.value):
        assert (refused.code, refused.reason, refused.field, refused.message) == (
            "logistics.refused",
            "address_not_served",
            "from_address",
            "sandbox-post does not serve 'Farm 9, UNSERVED valley'",
        )
    assert sandbox.bookings == ()


def test_a_timeout_raises_within_the_client_timeout_and_books_nothing(
    client: HttpLogistics, sandbox: SandboxLogistics
) -> None:
    sandbox.inject("timeout")
    began = time.monotonic()
    with pytest.raises(LogisticsTimeout) as err:
        book(client, "k1")
    assert time.monotonic() - began < TIMEOUT + 1.0
    assert (err.value.code, err.value.message) == (
        "logistics.timeout",
        f"no answer within {TIMEOUT}s",
    )
    assert sandbox.bookings == ()
    assert book(client, "k1").tracking_number == FIRST


def test_a_lost_answer_over_http_is_resolved_by_retrying_the_key(
    client: HttpLogistics, sandbox: SandboxLogistics
) -> None:
    sandbox.inject("book_then_time_out")
    with pytest.raises(LogisticsTimeout):
        book(client, "k1")
    assert [b.tracking_number for b in sandbox.bookings] == [FIRST]
    assert book(client, "k1").tracking_number == FIRST
    assert len(sandbox.bookings) == 1


def test_a_dropped_connection_after_sending_is_an_unknown_outcome(
    sandbox: SandboxLogistics,
) -> None:
    sandbox.inject("book_then_time_out")
    with (
        serve_logistics_http(sandbox, stall_limit=0.1) as server,
        pytest.raises(LogisticsTimeout) as err,
    ):
        book(HttpLogistics(server.url, timeout=5.0), "k1")
    assert err.value.message.startswith("connection broke before the answer: RemoteProtocolError")
    assert len(sandbox.bookings) == 1


def test_nothing_listening_is_unavailable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(LogisticsUnavailable) as err:
        book(HttpLogistics(f"http://127.0.0.1:{port}", timeout=TIMEOUT), "k1")
    assert err.value.code == "logistics.unavailable"


def test_a_503_is_unavailable_and_books_nothing(
    client: HttpLogistics, sandbox: SandboxLogistics
) -> None:
    sandbox.inject("unavailable")
    with pytest.raises(LogisticsUnavailable) as err:
        book(client, "k1")
    assert err.value.message == "HTTP 503: sandbox: connection refused"
    assert sandbox.requests == ()


def test_reusing_a_key_with_other_parameters_is_a_409_conflict(client: HttpLogistics) -> None:
    book(client, "k1")
    with pytest.raises(LogisticsIdempotencyConflict) as err:
        book(client, "k1", rma="RMA-2")
    assert err.value.code == "logistics.idempotency_conflict"


def test_the_api_key_is_required_when_the_server_has_one(sandbox: SandboxLogistics) -> None:
    with serve_logistics_http(sandbox, api_key="lk_test_1") as server:
        with pytest.raises(LogisticsProtocolError) as err:
            book(HttpLogistics(server.url, api_key="lk_wrong"), "k1")
        assert err.value.code == "logistics.unauthorized"
        assert book(HttpLogistics(server.url, api_key="lk_test_1"), "k1").tracking_number == FIRST


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (b'{"rma": "R", "service": "pickup", "from_address": "A", "to_address": "B"}', {}),
        (b'{"rma": "R", "service": "pickup", "from_address": "A"}', {"Idempotency-Key": "a"}),
        (b'{"rma": 7, "service": "pickup", "from_address": "A", "to_address": "B"}',
         {"Idempotency-Key": "a"}),
        (b"[]", {"Idempotency-Key": "a"}),
        (b"{", {"Idempotency-Key": "a"}),
    ],
)  # fmt: skip
def test_the_server_answers_400_to_malformed_requests_and_books_nothing(
    served: LogisticsHttpServer, body: bytes, headers: dict[str, str]
) -> None:
    status, doc = raw(served.url, "POST", "/v1/returns", body, headers)
    assert status == 400
    assert doc["error"]["code"] == "parameter_invalid"
    assert served.sandbox.requests == ()


def test_an_answer_for_another_key_is_a_protocol_error() -> None:
    class Liar(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            payload = json.dumps(
                {
                    "object": "return",
                    "tracking_number": "RR1",
                    "carrier": "c",
                    "service": "pickup",
                    "cost": 1,
                    "label": {},
                    "rma": "RMA-1",
                    "idempotency_key": "someone-else",
                }
            ).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Liar)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        with pytest.raises(LogisticsProtocolError) as err:
            book(HttpLogistics(f"http://127.0.0.1:{server.server_address[1]}"), "k1")
    finally:
        server.shutdown()
        server.server_close()
    assert err.value.message == (
        "asked under key 'k1' for 'RMA-1', answered for key 'someone-else' and 'RMA-1'"
    )


def test_base_url_and_timeouts_are_checked() -> None:
    with pytest.raises(ValueError):
        HttpLogistics("ftp://carrier.example")
    with pytest.raises(ValueError):
        HttpLogistics("http://127.0.0.1:1", timeout=0)


# -- tracking --------------------------------------------------------------------------------


def test_tracking_over_http_shows_the_scans_so_far(
    client: HttpLogistics, sandbox: SandboxLogistics, clock: ManualClock
) -> None:
    number = book(client, "k1").tracking_number
    sandbox.customer_ships(number)
    clock.advance(PICKUP)
    tracking = client.track(number)
    assert tracking == sandbox.track(number)
    assert tracking is not None
    assert (tracking.rma, tracking.status) == ("RMA-1", "picked_up")
    assert tracking.events == (
        TrackingEvent("tev_000001", number, "label_created", START, None),
        TrackingEvent("tev_000002", number, "picked_up", START + PICKUP, HOME),
    )


def test_tracking_an_unknown_number_is_none(client: HttpLogistics) -> None:
    assert client.track("RR000000000ZZ") is None
    assert client.track("no/such number?") is None


# -- webhooks --------------------------------------------------------------------------------


def test_tracking_webhooks_are_posted_signed_and_verified_by_the_receiver(
    client: HttpLogistics,
    served: LogisticsHttpServer,
    sandbox: SandboxLogistics,
    receiver: Receiver,
    clock: ManualClock,
) -> None:
    number = book(client, "k1").tracking_number
    assert served.deliver_webhooks() == 1
    sandbox.customer_ships(number)
    assert served.deliver_webhooks() == 0
    clock.advance(PICKUP + TRANSIT)
    assert served.deliver_webhooks() == 3
    assert receiver.events == [
        TrackingEvent("tev_000001", number, "label_created", START, None),
        TrackingEvent("tev_000002", number, "picked_up", START + PICKUP, HOME),
        TrackingEvent(
            "tev_000003",
            number,
            "in_transit",
            START + PICKUP + TRANSIT / 2,
            "sandbox-post sorting centre",
        ),
        TrackingEvent("tev_000004", number, "delivered", START + PICKUP + TRANSIT, WAREHOUSE),
    ]
    assert receiver.rejected == []


def test_a_webhook_the_receiver_refuses_stays_queued_and_is_redelivered(
    client: HttpLogistics, served: LogisticsHttpServer, receiver: Receiver
) -> None:
    book(client, "k1")
    receiver.fail_next = 1
    with pytest.raises(WebhookDeliveryFailed):
        served.deliver_webhooks()
    assert receiver.events == []
    assert served.deliver_webhooks() == 1
    assert [e.event_id for e in receiver.events] == ["tev_000001"]


def test_a_receiver_with_another_secret_rejects_every_webhook(
    sandbox: SandboxLogistics, receiver: Receiver
) -> None:
    with serve_logistics_http(sandbox, webhook_url=receiver.url, webhook_secret="wrong") as server:
        book(HttpLogistics(server.url), "k1")
        with pytest.raises(WebhookDeliveryFailed):
            server.deliver_webhooks()
    assert receiver.rejected == [
        ("logistics.webhook_signature", "signature does not match the body")
    ]
    assert receiver.events == []
    assert len(sandbox.pending_events()) == 1


def test_duplicated_and_reordered_webhooks_reach_the_receiver_as_the_sandbox_queued_them(
    clock: ManualClock, receiver: Receiver
) -> None:
    sandbox = SandboxLogistics(
        clock,
        3,
        pickup_after=PICKUP,
        transit_time=TRANSIT,
        duplicate_event_rate=0.5,
        reorder_events=True,
    )
    with serve_logistics_http(sandbox, webhook_url=receiver.url, webhook_secret=SECRET) as server:
        client = HttpLogistics(server.url)
        for i in range(3):
            sandbox.customer_ships(book(client, f"k{i}", rma=f"RMA-{i}").tracking_number)
        clock.advance(PICKUP + TRANSIT)
        queued = sandbox.pending_events()
        assert server.deliver_webhooks() == len(queued) == 18
    assert receiver.events == list(queued)
    assert [e.event_id[-2:] for e in receiver.events] == [
        "12", "04", "11", "07", "07", "01", "10", "11", "06",
        "01", "08", "03", "06", "02", "04", "09", "05", "02",
    ]  # fmt: skip
    assert {e.event_id for e in receiver.events} == {f"tev_{n:06d}" for n in range(1, 13)}


def test_the_pump_delivers_webhooks_in_the_background(
    sandbox: SandboxLogistics, receiver: Receiver
) -> None:
    with serve_logistics_http(
        sandbox, webhook_url=receiver.url, webhook_secret=SECRET, webhook_interval=0.02
    ) as server:
        book(HttpLogistics(server.url), "k1")
        deadline = time.monotonic() + 5
        while not receiver.events and time.monotonic() < deadline:
            time.sleep(0.01)
    assert [(e.tracking_number, e.status) for e in receiver.events] == [(FIRST, "label_created")]


# -- threads ---------------------------------------------------------------------------------


def test_many_threads_over_http_book_each_key_once(
    client: HttpLogistics, sandbox: SandboxLogistics
) -> None:
    def one(i: int) -> str:
        return book(client, f"k{i % 8}", rma=f"RMA-{i % 8}").tracking_number

    with ThreadPoolExecutor(max_workers=16) as pool:
        numbers = list(pool.map(one, range(48)))
    assert len(set(numbers)) == 8
    assert {b.tracking_number for b in sandbox.bookings} == set(numbers)
    assert Counter(r.outcome for r in sandbox.requests) == {"created": 8, "replayed": 40}
    for i in range(8):
        assert len({numbers[j] for j in range(i, 48, 8)}) == 1
