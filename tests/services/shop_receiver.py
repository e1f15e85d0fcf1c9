"""A shop's webhook endpoint on loopback: a real HTTP server (a thread) that verifies every
delivery with the ``standardwebhooks`` library, as docs/webhooks.md tells shops to, and mirrors
what refundry changed, tolerating duplicates (the same ``webhook-id`` again) and any order.

Outbound webhooks to the shop; tests/adapters/webhook_receiver.py is the gateway's side.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


@dataclass
class ShopMirror:
    """What the shop keeps: each case at its highest version, the coupons refundry reissued,
    points reversed, rewards clawed, restocks; and what arrived (``received``: every verified
    delivery's id, duplicates included)."""

    url: str = ""
    secrets: list[str] = field(default_factory=list)
    received: list[str] = field(default_factory=list)
    attempts: list[tuple[str, str]] = field(default_factory=list)  # (webhook-id, type), all
    applied: dict[str, dict[str, Any]] = field(default_factory=dict)  # webhook-id -> body
    rejected: list[str] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    cases: dict[str, tuple[int, str]] = field(default_factory=dict)  # id -> (version, state)
    coupons: dict[str, dict[str, Any]] = field(default_factory=dict)
    refunds: dict[str, str] = field(default_factory=dict)  # refund id -> latest status event
    fail: Counter[str] = field(default_factory=Counter)  # event type -> 500s still to answer
    fail_everything: bool = False

    @property
    def duplicates(self) -> int:
        return len(self.received) - len(set(self.received))

    def of_type(self, name: str) -> list[dict[str, Any]]:
        return [b for b in self.applied.values() if b["type"] == name]

    def take(self, body: bytes, headers: dict[str, str]) -> int:
        """The shop's handler: verify, answer 500 when told to, apply once per webhook-id."""
        doc = None
        for secret in self.secrets:  # the shop's current secret (either, mid-rotation)
            try:
                doc = Webhook(secret).verify(body, headers)
                break
            except WebhookVerificationError as exc:
                error = str(exc)
        if doc is None:
            self.rejected.append(error)
            return 400
        self.attempts.append((headers["webhook-id"], doc["type"]))
        if self.fail_everything or self.fail[doc["type"]] > 0:
            self.fail[doc["type"]] -= 1
            return 500
        msg_id = headers["webhook-id"]
        self.received.append(msg_id)
        self.headers.append(headers)
        if msg_id in self.applied:
            return 200  # a duplicate: already applied, nothing changes
        self.applied[msg_id] = doc
        self._mirror(doc["type"], doc["data"])
        return 200

    def _mirror(self, kind: str, data: dict[str, Any]) -> None:
        if kind.startswith("case."):
            seen = self.cases.get(data["case_id"])
            if seen is None or seen[0] < data["version"]:  # an older event changes nothing
                self.cases[data["case_id"]] = (data["version"], data["to"])
        elif kind == "effect.coupon_reissue":
            self.coupons[data["replacement_id"]] = {
                "replaces": data["coupon_id"],
                "value": data["value"],
                "valid_until": data["valid_until"],
            }
        elif kind.startswith("refund.") and kind != "refund.applied":
            self.refunds[data["refund_id"]] = data["to"]


@contextmanager
def shop_endpoint(path: str = "/refundry/webhooks") -> Iterator[ShopMirror]:
    mirror = ShopMirror()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            headers = {k.lower(): v for k, v in self.headers.items()}
            with lock:
                status = mirror.take(body, headers)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    mirror.url = f"http://127.0.0.1:{server.server_address[1]}{path}"
    try:
        yield mirror
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
