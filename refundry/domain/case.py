"""The after-sales case (售后单) as a state machine: every state in one place, one transition table.

A case asks to refund some units of one order, for one reason, as ``refund_only`` or
``return_and_refund``. The services move it from state to state only through ``transition``,
which answers from ``TRANSITIONS``; an action that is not allowed in the current state raises
``IllegalTransition`` naming the state and the actions it allows.
"""

from __future__ import annotations

from enum import StrEnum

from refundry.domain.errors import RefundryError

__all__ = [
    "ACTIONS",
    "FINAL_STATES",
    "TRANSITIONS",
    "CaseState",
    "IllegalTransition",
    "allowed_actions",
    "can",
    "state_diagram",
    "transition",
]


class CaseState(StrEnum):
    REQUESTED = "requested"  # the customer asked; nothing decided yet
    UNDER_REVIEW = "under_review"  # rules or an agent (or the merchant) are deciding
    APPROVED = "approved"  # accepted; refund_only goes on to refunding, returns to a label
    REJECTED = "rejected"  # refused at review (final)
    AWAITING_RETURN = "awaiting_return"  # RMA, address and label issued; goods not shipped
    RETURN_IN_TRANSIT = "return_in_transit"  # the customer gave a tracking number
    RECEIVED = "received"  # the merchant has the goods back
    INSPECTED = "inspected"  # inspection recorded: pass, partial or fail
    REJECTED_AFTER_INSPECTION = "rejected_after_inspection"  # failed: goods go back (final)
    REFUNDING = "refunding"  # plan applied, money on its way through the gateway
    REFUNDED = "refunded"  # every tender confirmed
    COMPLETED = "completed"  # closed after the refund; the customer may rate it (final)
    # side states
    NEEDS_MANUAL_REVIEW = "needs_manual_review"  # a plan that cannot apply alone, or risk
    REFUND_FAILED = "refund_failed"  # the gateway refused; an agent retries or uses the wallet
    CANCELLED = "cancelled"  # withdrawn by the customer before the return shipped (final)
    CLOSED = "closed"  # closed by a timer (final)


S = CaseState

# (state, action) -> next state. The only place the process is defined.
TRANSITIONS: dict[tuple[CaseState, str], CaseState] = {
    (S.REQUESTED, "review"): S.UNDER_REVIEW,
    (S.REQUESTED, "cancel"): S.CANCELLED,
    (S.UNDER_REVIEW, "approve"): S.APPROVED,
    (S.UNDER_REVIEW, "reject"): S.REJECTED,
    (S.UNDER_REVIEW, "escalate"): S.NEEDS_MANUAL_REVIEW,
    (S.UNDER_REVIEW, "cancel"): S.CANCELLED,
    (S.APPROVED, "issue_return"): S.AWAITING_RETURN,
    (S.APPROVED, "refund"): S.REFUNDING,
    (S.APPROVED, "escalate"): S.NEEDS_MANUAL_REVIEW,
    (S.APPROVED, "cancel"): S.CANCELLED,
    (S.AWAITING_RETURN, "ship"): S.RETURN_IN_TRANSIT,
    (S.AWAITING_RETURN, "cancel"): S.CANCELLED,
    (S.AWAITING_RETURN, "expire"): S.CLOSED,
    (S.RETURN_IN_TRANSIT, "receive"): S.RECEIVED,
    (S.RECEIVED, "inspect"): S.INSPECTED,
    (S.RECEIVED, "refund"): S.REFUNDING,  # timer: not inspected in time, refunded as asked
    (S.INSPECTED, "refund"): S.REFUNDING,
    (S.INSPECTED, "reject_goods"): S.REJECTED_AFTER_INSPECTION,
    (S.INSPECTED, "escalate"): S.NEEDS_MANUAL_REVIEW,
    (S.INSPECTED, "settle"): S.REFUNDING,  # 极速退款: the money left at approval
    (S.REFUNDING, "confirm"): S.REFUNDED,
    (S.REFUNDING, "fail"): S.REFUND_FAILED,
    (S.REFUND_FAILED, "retry"): S.REFUNDING,
    (S.REFUND_FAILED, "refund_to_wallet"): S.REFUNDED,
    (S.NEEDS_MANUAL_REVIEW, "approve"): S.APPROVED,
    (S.NEEDS_MANUAL_REVIEW, "resolve"): S.REFUNDING,  # waiver or wallet debit, then refund
    (S.NEEDS_MANUAL_REVIEW, "reject"): S.REJECTED,
    (S.REFUNDED, "complete"): S.COMPLETED,
}

ACTIONS = frozenset(action for _, action in TRANSITIONS)
FINAL_STATES = frozenset(
    {S.REJECTED, S.REJECTED_AFTER_INSPECTION, S.COMPLETED, S.CANCELLED, S.CLOSED}
)


class IllegalTransition(RefundryError):
    code = "case.illegal_transition"

    def __init__(self, state: CaseState, action: str) -> None:
        allowed = allowed_actions(state)
        listed = ", ".join(allowed) if allowed else "none (the case is closed)"
        super().__init__(f"cannot {action} a case that is {state.value}; allowed: {listed}")
        self.state = state
        self.action = action
        self.allowed = allowed


def allowed_actions(state: CaseState) -> tuple[str, ...]:
    return tuple(sorted(action for (s, action) in TRANSITIONS if s == state))


def can(state: CaseState, action: str) -> bool:
    return (state, action) in TRANSITIONS


def transition(state: CaseState, action: str) -> CaseState:
    """The state after ``action``; raises IllegalTransition when the table does not allow it."""
    nxt = TRANSITIONS.get((state, action))
    if nxt is None:
        raise IllegalTransition(state, action)
    return nxt


def state_diagram() -> str:
    """The process as a Mermaid state diagram, written from ``TRANSITIONS`` (docs/case-process.md
    shows it; a test keeps the two the same)."""
    lines = ["stateDiagram-v2", f"    [*] --> {S.REQUESTED.value}"]
    for (state, action), after in TRANSITIONS.items():
        lines.append(f"    {state.value} --> {after.value}: {action}")
    for state in sorted(FINAL_STATES):
        lines.append(f"    {state.value} --> [*]")
    return "\n".join(lines)
