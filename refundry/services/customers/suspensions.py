"""An agent suspends or restores a customer's refund rights by hand (SPEC §5).

A suspension is recorded as a manual agent rule (rule ``agent``, the agent's reason as its
explanation) through the risk service, so the restriction row, the customer's notification
and the audit entry (the agent as actor) are written in one transaction exactly as a risk
rule's would be. It lasts until an agent lifts it (``lift_suspension``, which refuses with
``risk.not_suspended`` when none is in force). While suspended, opening a case is refused
with ``case.refund_rights_suspended``. The desk only (services/access.py). Both say why: a
reason of 1 to ``REASON_LIMIT`` characters of text (``risk.reason_invalid`` otherwise, nothing
written; the API's body checks the same before it gets here).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine

from refundry.domain.errors import InvalidInput
from refundry.domain.reader import text_problem
from refundry.domain.risk import RiskDecision, RuleMatch
from refundry.services import access
from refundry.services.access import Actor
from refundry.services.audit.chain import AuditTrail
from refundry.services.customers.risk import lift_suspension, record_restriction
from refundry.services.uow import UnitOfWork

__all__ = ["AGENT_RULE", "REASON_LIMIT", "Suspension", "lift", "suspend"]

AGENT_RULE = "agent"  # the rule name of a suspension an agent decided by hand
REASON_LIMIT = 500  # characters, as the API's Reason field


def _reason(text: str) -> str:
    why = text.strip()
    if not why or text_problem(why, max_length=REASON_LIMIT, multiline=True) is not None:
        raise InvalidInput(
            f"a suspension or its lifting says why: 1 to {REASON_LIMIT} characters of text",
            code="risk.reason_invalid",
            field="reason",
        )
    return why


@dataclass(frozen=True, slots=True)
class Suspension:
    customer_id: str
    suspended: bool
    created: bool  # False: a suspension was already in force, nothing was written
    restriction_ids: tuple[int, ...]  # the rows written (suspend) or lifted (lift)
    at: datetime


def suspend(
    engine: Engine, *, actor: Actor, customer_id: str, reason: str, now: datetime
) -> Suspension:
    """Suspend the customer's refund rights until an agent lifts them; nothing is written
    when a suspension is already in force (``created`` False)."""
    access.require(actor, "customer.suspension")
    why = _reason(reason)
    decision = RiskDecision("suspend", (RuleMatch(AGENT_RULE, "suspend", 0, why),))
    with UnitOfWork(engine) as uow:
        trail = AuditTrail(actor=actor.tag, at=now, customer_id=customer_id)
        ids = record_restriction(uow.conn, customer_id, decision=decision, now=now, trail=trail)
        trail.flush(uow.conn)
        uow.commit()
    return Suspension(
        customer_id=customer_id,
        suspended=True,
        created=bool(ids),
        restriction_ids=tuple(ids),
        at=now,
    )


def lift(
    engine: Engine, *, actor: Actor, customer_id: str, reason: str, now: datetime
) -> Suspension:
    """Restore the customer's refund rights (``risk.not_suspended`` if none is in force)."""
    access.require(actor, "customer.suspension")
    ids = lift_suspension(
        engine, customer_id=customer_id, actor=actor.tag, reason=_reason(reason), now=now
    )
    return Suspension(
        customer_id=customer_id,
        suspended=False,
        created=False,
        restriction_ids=tuple(ids),
        at=now,
    )
