"""The errors adapters raise. All are ``RefundryError`` with a stable dotted ``code``.

    RefundryError
    └── GatewayError                   gateway.error; something went wrong talking to a gateway
          ├── GatewayTimeout           gateway.timeout: the request may have reached the gateway
          │                            and the outcome is unknown (no answer in time, or the
          │                            connection broke once connected). Ask ``lookup`` or retry
          │                            with the same idempotency key; never with a new one.
          ├── GatewayUnavailable       gateway.unavailable: the gateway could not be reached, or
          │                            said it could not work now (5xx, 429). Retry later with
          │                            the same key (a 5xx may still have done the work).
          ├── GatewayIdempotencyConflict
          │                            gateway.idempotency_conflict: the key was already used
          │                            with other parameters. A bug on our side; never retry.
          ├── GatewayProtocolError     gateway.protocol: an answer we do not understand, or one
          │                            refusing our credentials (gateway.unauthorized).
          └── WebhookRejected          a webhook we must not act on
                codes: gateway.webhook_invalid (body), gateway.webhook_signature (signature
                missing, wrong or outside the tolerance)

A refusal of the refund itself (closed card, amount beyond the capture) is not an exception: it
is a ``GatewayAnswer`` with status ``"refused"`` and the gateway's own code.
"""

from __future__ import annotations

from refundry.domain.errors import RefundryError

__all__ = [
    "GatewayError",
    "GatewayIdempotencyConflict",
    "GatewayProtocolError",
    "GatewayTimeout",
    "GatewayUnavailable",
    "WebhookRejected",
]


class GatewayError(RefundryError):
    code = "gateway.error"


class GatewayTimeout(GatewayError):
    code = "gateway.timeout"


class GatewayUnavailable(GatewayError):
    code = "gateway.unavailable"


class GatewayIdempotencyConflict(GatewayError):
    code = "gateway.idempotency_conflict"


class GatewayProtocolError(GatewayError):
    code = "gateway.protocol"


class WebhookRejected(GatewayError):
    code = "gateway.webhook_invalid"
