"""The error tree of refundry. Every error has a stable, dotted ``code``.

    RefundryError                      base; ``code``, ``message``, ``field`` (path of bad input)
    ├── InvalidInput                   a document does not have the shape we need
    │     codes: order.invalid, snapshot.invalid, request.invalid, history.invalid,
    │            policy.invalid
    ├── CurrencyMismatch               money.currency_mismatch
    ├── OrderRejected                  the order is well-formed but cannot be accepted
    │     codes: order.line_below_zero, order.tenders_mismatch, order.unknown_line,
    │            order.unknown_campaign, order.duplicate_id, order.points_tender_mismatch,
    │            order.adjustment_without_base
    └── RefundRefused                  the request cannot be planned on this order
          codes: order.not_refundable, request.order_mismatch, refund.empty_request,
                 refund.invalid_quantity, refund.duplicate_line, refund.unknown_line,
                 refund.units_exhausted, refund.quantity_exceeds_remaining

Codes are part of the public contract (HTTP maps them to problem+json in one place); messages
are for people and may change.
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
