"""Request and response models of the orders, cases and identity routes.

Request bodies forbid unknown fields (``request.unknown_field``) and carry no amount, status or
points: the server computes every amount. Responses are typed so the OpenAPI document is exact;
errors are problem+json (refundry/api/problems.py), documented per route with ``problems()``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from refundry.api.fields import (
    EvidenceRef,
    FreeText,
    Id,
    NonBlankText,
    OneLine,
    OtpCode,
    Quantity,
    TrackingNumber,
)
from refundry.api.money import MoneyInput, MoneyOut
from refundry.api.schemas_passkeys import PasskeyAssertion
from refundry.domain.case import CaseState
from refundry.domain.errors import InvalidInput
from refundry.services.access import CaseAction

__all__ = [
    "AssertionOptionsRequest",
    "AssignBody",
    "CaseAction",
    "CaseCreate",
    "CaseDetail",
    "CaseList",
    "CaseView",
    "CodeIssued",
    "CodeRequest",
    "Comment",
    "DebtRecovery",
    "DebtWriteOff",
    "Empty",
    "Escalation",
    "InspectionBody",
    "Kind",
    "NoteBody",
    "OrderIngest",
    "OrderView",
    "PlanView",
    "Problem",
    "RatingBody",
    "Reason",
    "Rejection",
    "Resolution",
    "ShipBody",
    "TenderAction",
    "problems",
]

Reason = Literal["quality_issue", "wrong_item", "not_received", "merchant_breach", "changed_mind"]
Kind = Literal["refund_only", "return_and_refund"]
ReturnMethod = Literal["self_ship", "prepaid_label", "pickup", "none"]
# What an actor can do to a case over HTTP: one POST /v1/cases/{id}/<action> each (the
# action's name with ``-`` for ``_``: retry_refund is POST /v1/cases/{id}/retry-refund); the
# list is services/access.py's.


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- problems ------------------------------------------------------------------------------------


class Problem(BaseModel):
    """RFC 9457 problem details with the stable ``code`` of the error tree (docs/errors.md)."""

    model_config = ConfigDict(extra="allow")
    type: str
    title: str
    status: int
    detail: str
    code: str
    field: str | None = None


_WHEN = {
    401: "no valid bearer token (auth.unauthorized, auth.token_expired)",
    403: "the role may not do this (auth.forbidden, case.not_your_lines, …)",
    404: "no such object, or not the caller's (order.not_found, case.not_found)",
    409: "the state does not allow it (case.illegal_transition, order.conflict, …)",
    422: (
        "the request is invalid or refused (request.invalid, request.invalid_text, "
        "request.not_utf8, request.unknown_field, …)"
    ),
    429: "too many requests (rate.limited); see Retry-After",
    413: (
        "the body is larger than the limit, however it is sent (request.too_large), or a "
        "photo is larger than photo_max_bytes (photo.too_large)"
    ),
    415: "the photo is not JPEG, PNG or WebP, read from its bytes (photo.unsupported_type)",
    431: "too many header fields, or too many header bytes (request.headers_too_large)",
}
# Any request may be refused by refundry/api/limits.py before it reaches its route.
_ANY_ROUTE = (413, 431)


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for the problem+json answers a route may give (and the limits' own);
    the schema is the one ``Problem`` component (refundry/api/openapi.py declares it)."""
    schema = {"$ref": "#/components/schemas/Problem"}
    return {
        status: {
            "description": _WHEN[status],
            "content": {"application/problem+json": {"schema": schema}},
        }
        for status in (*statuses, *_ANY_ROUTE)
    }


# -- orders --------------------------------------------------------------------------------------


class OrderIngest(Body):
    order: dict[str, Any] = Field(description="the order document of docs/plan-json.md")
    customer: dict[str, Any] | None = Field(
        default=None, description="opening state of a customer seen for the first time"
    )


class OrderLineView(BaseModel):
    line_id: str
    sku: str
    title: str
    merchant_id: str
    quantity: int
    unit_price: MoneyOut
    paid: MoneyOut  # apportioned paid amount of the whole line
    gift_of: str | None
    refunded_qty: int  # not counting refunds that failed
    refund_failed_qty: int  # units of refunds the gateway refused (an agent retries them)


class OrderTenderView(BaseModel):
    tender_id: str
    kind: str
    method: str | None
    amount: MoneyOut
    points: int
    refunded: MoneyOut  # not counting money the gateway refused
    refund_failed: MoneyOut


class OrderCaseView(BaseModel):
    id: str
    state: CaseState
    kind: str
    reason: str
    amount: MoneyOut | None  # null for a merchant when the case has other merchants' lines
    created_at: datetime


class ReversalView(BaseModel):
    """What an inspection undid of a 极速退款 it partly or wholly refused (docs/case-process.md)."""

    refund_id: str
    case_id: str | None
    refused: dict[str, int]  # units per line no longer counted as refunded: refundable again
    debt: MoneyOut  # what the customer owes for units it kept
    points_taken: int  # redeemed points taken back from the balance
    earned_points_back: int  # earned points the step had reversed, given back
    items_restored: list[str]  # coupons and entitlements used by the order again
    items_in_debt: dict[str, int]  # those used or lost since: their value is in the debt
    at: datetime


class OrderView(BaseModel):
    id: str
    customer_id: str
    currency: str
    status: str  # current: the shop's status updates change it
    paid_at: datetime | None
    shipped_at: datetime | None
    delivered_at: datetime | None
    completed_at: datetime | None
    cancelled_at: datetime | None
    ingested_at: datetime
    lines: list[OrderLineView]
    tenders: list[OrderTenderView]  # empty for a merchant: the payment is the customer's
    cases: list[OrderCaseView]
    reversals: list[ReversalView]  # empty for a merchant, like the tenders


class RequestLine(Body):
    line_id: Id
    quantity: int = Field(strict=True, ge=1, le=1_000_000)


class RefundRequestBody(Body):
    """The request document of docs/plan-json.md (``refundry plan``'s request.json), the same
    schema here: ``order_id`` may be given and must then name the order of the path, ``kind``
    defaults to ``return_and_refund`` as it does there."""

    order_id: Id | None = Field(default=None, description="when given: the path's order")
    lines: list[RequestLine] = Field(min_length=1, max_length=200)
    reason: Reason
    kind: Kind = "return_and_refund"
    return_method: ReturnMethod | None = None  # default: none for refund_only, else self_ship

    def request_for(self, order_id: str) -> dict[str, Any]:
        """The request document of docs/plan-json.md for ``order_id``; 422
        ``request.order_mismatch`` when the body names another order."""
        if self.order_id is not None and self.order_id != order_id:
            raise InvalidInput(
                f"names order {self.order_id!r}, but the request is for {order_id!r}",
                code="request.order_mismatch",
                field="order_id",
            )
        doc: dict[str, Any] = {
            "order_id": order_id,
            "lines": [line.model_dump() for line in self.lines],
            "reason": self.reason,
            "kind": self.kind,
        }
        if self.return_method is not None:
            doc["return_method"] = self.return_method
        return doc


class PlanUnit(BaseModel):
    line_id: str
    sku: str
    quantity: int
    gift: bool
    refunded_before: int
    refunded_after: int
    of: int
    list: int
    paid: int


class PlanAmount(BaseModel):
    goods: int
    give_backs: int
    shipping: int
    deductions: int
    carry: int
    rounding: int
    total: int


class PlanTender(BaseModel):
    tender_id: str
    kind: str
    amount: int
    points: int
    refunded_after: int
    paid: int


class PlanView(BaseModel):
    """The refund plan (docs/plan-json.md, "The plan")."""

    model_config = ConfigDict(populate_by_name=True)
    schema_: str = Field(alias="schema")
    order_id: str
    currency: str
    now: str
    input_hash: str
    plan_hash: str
    request: dict[str, Any]
    status: Literal["ready", "needs_manual_review"]
    manual_review: dict[str, Any] | None
    units: list[PlanUnit]
    amount: PlanAmount
    tenders: list[PlanTender]
    deductions: list[dict[str, Any]]
    give_backs: list[dict[str, Any]]
    effects: list[dict[str, Any]]
    notifications: list[dict[str, Any]]


# -- cases ---------------------------------------------------------------------------------------


class OtpProof(Body):
    code_id: Id
    code: OtpCode


class CaseCreate(RefundRequestBody):
    order_id: Id
    description: FreeText = ""
    evidence: list[EvidenceRef] = Field(default_factory=list, max_length=20)  # file references
    otp: OtpProof | None = None
    # instead of otp: a passkey's answer to POST /v1/identity/passkeys/assertion-options
    passkey: PasskeyAssertion | None = None


class AssertionOptionsRequest(RefundRequestBody):
    """The submission a passkey will confirm: the same fields as POST /v1/cases's."""

    order_id: Id


class CaseLine(BaseModel):
    line_id: str
    quantity: int


class ReviewView(BaseModel):
    decision: str
    rule: str | None = None
    explain: str = ""
    by: str = ""


class RiskReason(BaseModel):
    rule: str
    explain: str


class RiskView(BaseModel):
    decision: str
    reasons: list[RiskReason]
    # rules not applied because the feature they read is unknown (the shop sent no account
    # creation time), each with why
    not_applied: list[RiskReason] = []


class ShipmentView(BaseModel):
    service: str | None = None
    payer: str | None = None
    status: str | None = None
    carrier: str | None = None
    tracking_number: str | None = None
    cost: MoneyOut | None = None
    label: dict[str, Any] | None = None


class InspectionView(BaseModel):
    result: str
    accepted: list[CaseLine]
    reason: str
    # where each accepted line's units went: resellable (back on sale) or damaged
    disposition: dict[str, Literal["resellable", "damaged"]]


class CaseRefundView(BaseModel):
    id: str
    status: Literal["pending", "succeeded", "failed"]
    amount: MoneyOut | None  # null where the case's amount is hidden


class CaseView(BaseModel):
    id: str
    order_id: str
    customer_id: str
    state: CaseState
    kind: str
    reason: str
    return_method: str
    lines: list[CaseLine]  # a merchant sees its own lines only
    accepted: list[CaseLine] | None
    # The plan's total when the case was opened; null for a merchant on a case that also asks
    # for other merchants' lines (the total would tell their amounts).
    amount: MoneyOut | None
    currency: str
    description: str
    evidence: list[str]
    review: ReviewView | None
    risk: RiskView | None  # agents and admins only
    rma: str | None
    return_address: str | None
    shipment: ShipmentView | None
    tracking_number: str | None
    inspection: InspectionView | None
    express: bool
    refund_id: str | None
    debt: MoneyOut
    reversal: ReversalView | None  # what the inspection undid of the case's 极速退款
    rating: int | None
    feedback: str | None
    created_at: datetime
    updated_at: datetime
    allowed_actions: list[CaseAction]  # services.access.case_actions_for
    assignee: str | None  # agents and admins only: the agent holding the case
    refunds: list[CaseRefundView]  # every refund applied for the case, oldest first


class TimelineEntryView(BaseModel):
    at: datetime
    # transition | note_added | assigned | debt_recovered | debt_written_off
    kind: str
    by: str  # agents and admins: the actor (role:id); others: the role that acted
    action: str | None  # a transition's action
    from_state: CaseState | None
    to_state: CaseState | None
    text: str | None  # a note's or a debt record's words (agents and admins)
    detail: dict[str, Any] | None  # what the entry recorded (agents and admins)


class DeadlineView(BaseModel):
    timer: Literal["merchant_silent", "ship_within", "inspect_within", "complete_after"]
    action: str  # what the timer then does: approve, expire, refund, complete
    at: datetime


class CaseDetail(CaseView):
    """One case: the view, its timeline (oldest first) and when its running timers fire."""

    timeline: list[TimelineEntryView]
    deadlines: list[DeadlineView]


class CaseList(BaseModel):
    items: list[CaseView]
    next_cursor: str | None


class Empty(Body):
    pass


class Comment(Body):
    comment: FreeText = ""


class Rejection(Body):
    comment: NonBlankText


class ShipBody(Body):
    tracking_number: TrackingNumber


class InspectionBody(Body):
    result: Literal["pass", "partial", "fail"]
    accepted: dict[Id, Quantity] | None = None  # partial
    reason: FreeText = ""
    # per accepted line: resellable (the default) or damaged
    disposition: dict[Id, Literal["resellable", "damaged"]] | None = None


class Resolution(Body):
    resolution: Literal["waiver", "wallet_debit"]
    comment: NonBlankText


class Escalation(Body):
    comment: NonBlankText  # why the case goes to manual review


class NoteBody(Body):
    text: NonBlankText  # internal: agents and admins only


class AssignBody(Body):
    agent_id: Id  # the agent who takes the case over


class TenderAction(Body):
    tender_id: Id  # a failed tender of the case's refund (GET /v1/refunds/{id})
    reason: FreeText = ""


class DebtRecovery(Body):
    amount: MoneyInput  # in the order's currency, at most what is owed
    method: Literal["wallet", "external"]  # from the customer's wallet, or paid back outside
    reference: Annotated[OneLine, Field(max_length=200)] = ""  # the shop's, for external
    comment: FreeText = ""


class DebtWriteOff(Body):
    amount: MoneyInput
    comment: NonBlankText  # why the shop gives it up


class RatingBody(Body):
    rating: int = Field(strict=True, ge=1, le=5)
    feedback: FreeText = ""


# -- identity ------------------------------------------------------------------------------------


class CodeRequest(Body):
    purpose: Literal["case.submit"]


class CodeIssued(BaseModel):
    code_id: str
    expires_in_seconds: int
