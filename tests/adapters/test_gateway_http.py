"""HttpGateway against the sandbox served over real HTTP on loopback."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from refundry.adapters.clock import ManualClock
from refundry.adapters.errors import (
    GatewayIdempotencyConflict,
    GatewayProtocolError,
    GatewayTimeout,
    GatewayUnavailable,
)
from refundry.adapters.gateway import GatewayAnswer, PaymentGateway
from refundry.adapters.gateway_http import HttpGateway
from refundry.adapters.gateway_http_sandbox import (
    SandboxHttpServer,
    WebhookDeliveryFailed,
    serve_sandbox_http,
)
from refundry.adapters.gateway_sandbox import SandboxGateway

from .conftest import CONFIRM, START
from .webhook_receiver import Receiver, webhook_receiver

SECRET = "whsec_http_test"
TIMEOUT = 0.3


@pytest.fixture
def receiver(clock: ManualClock) -> Iterator[Receiver]:
    with webhook_receiver(SECRET, clock) as r:
        yield r


@pytest.fixture
def served(sandbox: SandboxGateway, receiver: Receiver) -> Iterator[SandboxHttpServer]:
    with serve_sandbox_http(
        sandbox, webhook_url=receiver.url, webhook_secret=SECRET, stall_limit=5.0
    ) as server:
        yield server


@pytest.fixture
def gateway(served: SandboxHttpServer) -> HttpGateway:
    return HttpGateway(served.url, timeout=TIMEOUT)


def refund(gateway: PaymentGateway, key: str, transaction_id: str, amount: int) -> GatewayAnswer:
    return gateway.refund(
        idempotency_key=key, transaction_id=transaction_id, amount=amount, currency="EUR"
    )


def test_http_gateway_implements_the_protocol(gateway: HttpGateway) -> None:
    assert isinstance(gateway, PaymentGateway)


def test_an_accepted_refund_reads_the_same_over_http_as_in_process(
    gateway: HttpGateway, sandbox: SandboxGateway
) -> None:
    answer = refund(gateway, "out-1", "ch_open", 12345)
    assert answer == sandbox.lookup(idempotency_key="out-1")
    assert (answer.status, answer.gateway_refund_id, answer.message) == (
        "accepted",
        "re_000001",
        "refund re_000001 pending",
    )
    assert answer.raw["created"] == "2024-06-01T10:00:00+00:00"


def test_idempotent_retries_over_http_return_the_same_refund_and_move_money_once(
    gateway: HttpGateway, sandbox: SandboxGateway, clock: ManualClock
) -> None:
    ids = {refund(gateway, "out-1", "ch_open", 30000).gateway_refund_id for _ in range(5)}
    assert ids == {"re_000001"}
    clock.advance(CONFIRM)
    assert refund(gateway, "out-1", "ch_open", 30000).status == "succeeded"
    ledger = sandbox.ledger
    assert (len(ledger.refunds), ledger.refunded["ch_open"]) == (1, 30000)
    assert Counter(s.outcome for s in ledger.requests) == {"created": 1, "replayed": 5}


@pytest.mark.parametrize(
    ("transaction_id", "amount", "code"),
    [
        ("ch_open", 50001, "amount_exceeds_captured"),
        ("ch_blocked", 100, "card_blocked"),
        ("ch_nope", 100, "transaction_unknown"),
    ],
)
def test_refusals_arrive_as_refused_answers_with_the_code(
    gateway: HttpGateway, sandbox: SandboxGateway, transaction_id: str, amount: int, code: str
) -> None:
    answer = refund(gateway, "k", transaction_id, amount)
    assert (answer.status, answer.gateway_refund_id, answer.code) == ("refused", None, code)
    assert gateway.lookup(idempotency_key="k") == answer
    assert sandbox.ledger.refunds == ()


def test_lookup_of_an_unknown_key_is_none_over_http(gateway: HttpGateway) -> None:
    assert gateway.lookup(idempotency_key="never/sent?&") is None


def test_a_timeout_raises_within_the_client_timeout_and_records_nothing(
    gateway: HttpGateway, sandbox: SandboxGateway
) -> None:
    sandbox.inject("timeout")
    began = time.monotonic()
    with pytest.raises(GatewayTimeout) as err:
        refund(gateway, "k", "ch_open", 700)
    assert time.monotonic() - began < TIMEOUT + 1.0
    assert err.value.message == f"no answer within {TIMEOUT}s"
    assert gateway.lookup(idempotency_key="k") is None
    assert refund(gateway, "k", "ch_open", 700).gateway_refund_id == "re_000001"


def test_accept_then_time_out_over_http_is_resolved_by_lookup(
    gateway: HttpGateway, sandbox: SandboxGateway, clock: ManualClock
) -> None:
    sandbox.inject("accept_then_time_out")
    with pytest.raises(GatewayTimeout):
        refund(gateway, "k", "ch_open", 700)
    found = gateway.lookup(idempotency_key="k")
    assert found is not None
    assert (found.status, found.gateway_refund_id) == ("accepted", "re_000001")
    assert refund(gateway, "k", "ch_open", 700).gateway_refund_id == "re_000001"
    clock.advance(CONFIRM)
    assert sandbox.ledger.refunded["ch_open"] == 700
    assert len(sandbox.ledger.refunds) == 1


def test_a_dropped_connection_after_sending_is_an_unknown_outcome(
    sandbox: SandboxGateway,
) -> None:
    sandbox.inject("accept_then_time_out")
    with serve_sandbox_http(sandbox, stall_limit=0.1) as server:
        patient = HttpGateway(server.url, timeout=5.0)
        with pytest.raises(GatewayTimeout) as err:
            refund(patient, "k", "ch_open", 700)
    assert err.value.message.startswith("connection broke before the answer: RemoteProtocolError")
    assert len(sandbox.ledger.refunds) == 1


def test_nothing_listening_is_unavailable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(GatewayUnavailable) as err:
        refund(HttpGateway(f"http://127.0.0.1:{port}", timeout=TIMEOUT), "k", "ch_open", 1)
    assert err.value.code == "gateway.unavailable"


def test_a_503_is_unavailable_and_records_nothing(
    gateway: HttpGateway, sandbox: SandboxGateway
) -> None:
    sandbox.inject("unavailable")
    with pytest.raises(GatewayUnavailable) as err:
        refund(gateway, "k", "ch_open", 1)
    assert err.value.message == "HTTP 503: sandbox: connection refused"
    assert sandbox.ledger.requests == ()


def test_reusing_a_key_with_other_parameters_is_a_409_conflict(gateway: HttpGateway) -> None:
    refund(gateway, "k", "ch_open", 100)
    with pytest.raises(GatewayIdempotencyConflict):
        refund(gateway, "k", "ch_open", 101)


def test_api_key_is_required_when_the_server_has_one(sandbox: SandboxGateway) -> None:
    with serve_sandbox_http(sandbox, api_key="sk_test_1") as server:
        with pytest.raises(GatewayProtocolError) as err:
            refund(HttpGateway(server.url, api_key="sk_wrong"), "k", "ch_open", 100)
        assert err.value.code == "gateway.unauthorized"
        ok = refund(HttpGateway(server.url, api_key="sk_test_1"), "k", "ch_open", 100)
    assert ok.gateway_refund_id == "re_000001"


def raw_post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, object]:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        conn.request("POST", "/v1/refunds", body=body, headers=headers)
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def test_the_server_takes_form_bodies_like_stripe(served: SandboxHttpServer) -> None:
    status, doc = raw_post(
        served.url,
        b"charge=ch_open&amount=250&currency=EUR",
        {"Idempotency-Key": "f1", "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert status == 200
    assert isinstance(doc, dict)
    assert (doc["id"], doc["amount"], doc["status"]) == ("re_000001", 250, "pending")


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (b'{"charge": "ch_open", "amount": 250, "currency": "EUR"}', {}),
        (b'{"charge": "ch_open", "amount": 2.5, "currency": "EUR"}', {"Idempotency-Key": "a"}),
        (b'{"charge": "ch_open", "amount": "250", "currency": "EUR"}', {"Idempotency-Key": "a"}),
        (b"[]", {"Idempotency-Key": "a"}),
    ],
)
def test_the_server_answers_400_to_malformed_requests_and_moves_nothing(
    served: SandboxHttpServer, body: bytes, headers: dict[str, str]
) -> None:
    status, doc = raw_post(served.url, body, {"Content-Type": "application/json", **headers})
    assert status == 400
    assert isinstance(doc, dict)
    assert doc["error"]["code"] == "parameter_invalid"
    assert served.sandbox.ledger.requests == ()


def test_an_answer_that_is_not_json_is_a_protocol_error() -> None:
    class Html(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "13")
            self.end_headers()
            self.wfile.write(b"<html></html>")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Html)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        with pytest.raises(GatewayProtocolError) as err:
            refund(HttpGateway(f"http://127.0.0.1:{server.server_address[1]}"), "k", "ch", 1)
    finally:
        server.shutdown()
        server.server_close()
    assert err.value.message == "HTTP 200 with a body that is not JSON: b'<html></html>'"


def test_many_threads_over_http_never_exceed_the_capture(
    gateway: HttpGateway, sandbox: SandboxGateway, clock: ManualClock
) -> None:
    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(lambda i: refund(gateway, f"k{i}", "ch_open", 4000), range(32)))
    assert Counter(a.status for a in answers) == {"accepted": 12, "refused": 20}
    clock.advance(CONFIRM)
    assert sandbox.ledger.refunded["ch_open"] == 48000


def test_webhooks_are_posted_signed_and_verified_by_the_receiver(
    gateway: HttpGateway, served: SandboxHttpServer, receiver: Receiver, clock: ManualClock
) -> None:
    refund(gateway, "a", "ch_open", 100)
    refund(gateway, "b", "ch_closed", 200)
    assert served.deliver_webhooks() == 0
    clock.advance(CONFIRM)
    assert served.deliver_webhooks() == 2
    assert [(e.idempotency_key, e.type, e.code) for e in receiver.events] == [
        ("a", "refund.succeeded", None),
        ("b", "refund.failed", "card_closed"),
    ]
    assert receiver.events[0].occurred_at == START + CONFIRM
    assert receiver.rejected == []


def test_a_webhook_the_receiver_refuses_stays_queued_and_is_redelivered(
    gateway: HttpGateway, served: SandboxHttpServer, receiver: Receiver, clock: ManualClock
) -> None:
    refund(gateway, "a", "ch_open", 100)
    clock.advance(CONFIRM)
    receiver.fail_next = 1
    with pytest.raises(WebhookDeliveryFailed):
        served.deliver_webhooks()
    assert receiver.events == []
    assert served.deliver_webhooks() == 1
    assert [e.event_id for e in receiver.events] == ["evt_000001"]


def test_a_receiver_with_another_secret_rejects_every_webhook(
    sandbox: SandboxGateway, receiver: Receiver, clock: ManualClock
) -> None:
    with serve_sandbox_http(sandbox, webhook_url=receiver.url, webhook_secret="wrong") as server:
        refund(HttpGateway(server.url), "a", "ch_open", 100)
        clock.advance(CONFIRM)
        with pytest.raises(WebhookDeliveryFailed):
            server.deliver_webhooks()
    assert receiver.rejected == ["signature does not match the body"]
    assert receiver.events == []


def test_duplicate_webhooks_reach_the_receiver_twice_with_one_event_id(
    clock: ManualClock, receiver: Receiver
) -> None:
    sandbox = SandboxGateway(clock=clock, seed=3, duplicate_webhook_rate=1.0, confirm_after=CONFIRM)
    sandbox.capture("ch", 1000, "EUR")
    with serve_sandbox_http(sandbox, webhook_url=receiver.url, webhook_secret=SECRET) as server:
        refund(HttpGateway(server.url), "a", "ch", 1000)
        clock.advance(CONFIRM)
        assert server.deliver_webhooks() == 2
    assert [e.event_id for e in receiver.events] == ["evt_000001", "evt_000001"]


def test_the_pump_delivers_webhooks_in_the_background(
    sandbox: SandboxGateway, receiver: Receiver, clock: ManualClock
) -> None:
    with serve_sandbox_http(
        sandbox, webhook_url=receiver.url, webhook_secret=SECRET, webhook_interval=0.02
    ) as server:
        refund(HttpGateway(server.url), "a", "ch_open", 100)
        clock.advance(CONFIRM)
        deadline = time.monotonic() + 5
        while not receiver.events and time.monotonic() < deadline:
            time.sleep(0.01)
    assert [e.idempotency_key for e in receiver.events] == ["a"]


def test_base_url_must_be_http() -> None:
    with pytest.raises(ValueError):
        HttpGateway("ftp://gateway.example")
    with pytest.raises(ValueError):
        HttpGateway("http://127.0.0.1:1", timeout=0)
