"""The values a plan is made of: immutable named tuples (a plan builds dozens of them, and a
tuple is the cheapest immutable value Python constructs), and the frozen Plan that holds them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from refundry.domain.request import RefundRequest

__all__ = ["Amount", "Deduction", "Effect", "Notice", "Plan", "TenderRefund", "UnitRefund"]

Scalar = int | str | bool | None


class UnitRefund(NamedTuple):
    line_id: str
    sku: str
    quantity: int
    gift: bool
    refunded_before: int
    refunded_after: int
    of: int
    list: int  # list price of the units in this step
    paid: int  # their apportioned paid amount (cumulative rounding)


class Deduction(NamedTuple):
    """Money held back from (or, in ``give_backs``, added to) a step, and why."""

    kind: str
    ref: str
    amount: int
    reason: str
    rule: str


class Effect(NamedTuple):
    type: str
    data: dict[str, Scalar]
    reason: str
    rule: str


class Notice(NamedTuple):
    """A message to the customer: a template key and its parameters."""

    template: str
    params: dict[str, Scalar]


class TenderRefund(NamedTuple):
    tender_id: str
    kind: str
    amount: int  # minor units
    points: int  # whole points, for a points tender
    refunded_after: int
    paid: int


class Amount(NamedTuple):
    goods: int
    give_backs: int
    shipping: int
    deductions: int
    carry: int
    rounding: int
    total: int


@dataclass(frozen=True, slots=True)
class Plan:
    order_id: str
    currency: str
    now: datetime
    input_hash: str
    request: RefundRequest
    status: str  # "ready" | "needs_manual_review"
    manual_review: dict[str, Scalar] | None
    units: tuple[UnitRefund, ...]
    amount: Amount
    tenders: tuple[TenderRefund, ...]
    deductions: tuple[Deduction, ...]
    give_backs: tuple[Deduction, ...]
    effects: tuple[Effect, ...]
    notices: tuple[Notice, ...] = ()

    @property
    def needs_manual_review(self) -> bool:
        return self.status == "needs_manual_review"
