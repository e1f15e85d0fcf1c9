"""The error tree of refundry, all of it (each class lives beside the code that raises it).
Every error has a stable, dotted ``code``; HTTP maps them to problem+json in one place
(refundry/api/problems.py), the CLI prints ``refundry: <code>: <message>`` and exits 2.

    RefundryError  refundry.error      base; ``code``, ``message``, ``field`` (path of bad input)
    ├── InvalidInput  input.invalid    a document does not have the shape we need (422)
    │     codes: order.invalid, snapshot.invalid, request.invalid, history.invalid,
    │            policy.invalid, case.*_invalid, auth.token_without_id …
    ├── CurrencyMismatch               money.currency_mismatch (422)
    ├── OrderRejected  order.rejected  the order is well-formed but cannot be accepted (422)
    │     codes: order.line_below_zero, order.tenders_mismatch, order.unknown_line,
    │            order.unknown_campaign, order.duplicate_id, order.points_tender_mismatch,
    │            order.adjustment_without_base
    ├── RefundRefused  refund.refused  the request cannot be planned on this order (422)
    │     codes: order.not_refundable, request.order_mismatch, refund.empty_request,
    │            refund.invalid_quantity, refund.duplicate_line, refund.unknown_line,
    │            refund.units_exhausted, refund.quantity_exceeds_remaining
    ├── IllegalTransition              case.illegal_transition (409; domain/case.py)
    ├── services/errors.py
    │   ├── NotFound  service.not_found          *.not_found (404)
    │   ├── Forbidden  auth.forbidden            case.not_your_lines … (403)
    │   ├── Conflict  service.conflict           plan.stale (PlanStale), refund.concurrent,
    │   │                                        idempotency.in_flight, order.conflict … (409)
    │   ├── Unprocessable  service.unprocessable idempotency.key_reused, plan.needs_manual_review
    │   │                                        … (422)
    │   └── RateLimited                          rate.limited, identity.resend_too_soon,
    │                                            identity.customer_code_limit,
    │                                            identity.phone_code_limit (429, Retry-After)
    ├── Unauthorized (api/auth.py)               auth.unauthorized, auth.token_expired,
    │                                            auth.token_revoked (401)
    ├── SettingsError (settings.py)              settings.invalid
    ├── StartupError (bootstrap.py)              startup.refused
    ├── TracingUnavailable (tracing.py)          startup.refused (tracing without its extra)
    ├── GatewayError (adapters/errors.py)        gateway.error: gateway.timeout,
    │                                            gateway.unavailable, … (the relay's to handle)
    ├── LogisticsError (adapters/logistics.py)   logistics.error: logistics.timeout, …
    ├── SmsError (adapters/sms_twilio.py)        sms.error: sms.rejected, sms.unavailable, …
    ├── TemplateError (notifications/templates)  notification.template_error:
    │                                            notification.unknown_template, …
    └── DeliveryFailed (notifications/channels)  notification.delivery_failed

docs/errors.md lists every code; tests/test_error_codes.py fails when a code raised in
refundry/ is not listed there, or is not dotted. Codes are part of the public contract;
messages are for people and may change.
"""

from __future__ import annotations

__all__ = [
    "CurrencyMismatch",
    "InvalidInput",
    "OrderRejected",
    "RefundRefused",
    "RefundryError",
]


class RefundryError(Exception):
    """Base of every error refundry raises on purpose."""

    code: str = "refundry.error"

    def __init__(self, message: str, *, code: str | None = None, field: str | None = None):
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message = message
        self.field = field

    def __str__(self) -> str:
        where = f" (at {self.field})" if self.field else ""
        return f"{self.code}: {self.message}{where}"


class InvalidInput(RefundryError):
    code = "input.invalid"


class CurrencyMismatch(RefundryError):
    code = "money.currency_mismatch"


class OrderRejected(RefundryError):
    code = "order.rejected"


class RefundRefused(RefundryError):
    code = "refund.refused"
