"""Errors the services raise, beside the domain's (refundry.domain.errors).

RefundryError
├── SignInRefused            auth.sign_in_failed (the desk's password sign-in, one answer)
├── NotFound                 order.not_found, refund.not_found
├── RateLimited              rate.limited (carries retry_after seconds)
├── Conflict                 the state moved under the caller; retrying may succeed
│     codes: plan.stale, refund.concurrent, idempotency.in_flight, order.conflict,
│            idempotency.lease_lost (services/claims.py)
└── Unprocessable            the request can never succeed as sent
      codes: idempotency.key_reused, plan.needs_manual_review, refund.not_failed,
             ledger.insufficient_funds
"""

from __future__ import annotations

from refundry.domain.errors import RefundryError
from refundry.domain.plan_doc import PlanDoc

__all__ = [
    "Conflict",
    "Forbidden",
    "NotFound",
    "PlanStale",
    "RateLimited",
    "SignInRefused",
    "Unprocessable",
]


class NotFound(RefundryError):
    code = "service.not_found"


class Forbidden(RefundryError):
    """The actor may see the object but not do this to it (a merchant on another's lines)."""

    code = "auth.forbidden"


class SignInRefused(RefundryError):
    """A staff sign-in refused: no such name, a wrong password or a locked account, told
    apart to nobody (services/staff/accounts.py)."""

    code = "auth.sign_in_failed"


class Conflict(RefundryError):
    code = "service.conflict"


class Unprocessable(RefundryError):
    code = "service.unprocessable"


class RateLimited(RefundryError):
    """Too many of something in a window: cases opened by one customer (``rate.limited``),
    one-time codes sent (``identity.resend_too_soon`` …); HTTP 429 with Retry-After."""

    code = "rate.limited"

    def __init__(self, message: str, *, retry_after: int, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class PlanStale(Conflict):
    """The plan computed now differs from the one the caller previewed; here is the new one
    (None when the request can no longer be planned at all, e.g. its units were refunded)."""

    code = "plan.stale"

    def __init__(self, message: str, *, plan: PlanDoc | None):
        super().__init__(message)
        self.plan = plan
