"""What the customer asks for, and what earlier refunds of the same order already did."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["PriorRefund", "RefundRequest", "RequestedUnits"]


@dataclass(frozen=True, slots=True)
class RequestedUnits:
    line_id: str
    quantity: int


@dataclass(frozen=True, slots=True)
class RefundRequest:
    order_id: str
    lines: tuple[RequestedUnits, ...]
    reason: str
    kind: str = "return_and_refund"  # "refund_only" | "return_and_refund"
    return_method: str = "self_ship"  # "self_ship" | "prepaid_label" | "pickup" | "none"

    @property
    def uses_label(self) -> bool:
        return self.kind == "return_and_refund" and self.return_method in (
            "prepaid_label",
            "pickup",
        )


@dataclass(frozen=True, slots=True)
class PriorRefund:
    """The parts of an applied plan that later plans depend on.

    Everything that is a function of which units are refunded is recomputed; what depended on
    the moment (the points balance, a reward's status, the money actually moved) is read here.
    """

    reason: str
    units: dict[str, int]
    moved: dict[str, int]  # minor units per tender id
    path_deductions: int  # reward claw-backs + points shortfall + return label of that step
    reward_reductions: dict[str, int] = field(default_factory=dict)  # reward id -> amount
    shipping_refunded: bool = False
