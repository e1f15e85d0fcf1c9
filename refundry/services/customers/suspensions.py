"""An agent suspends or restores a customer's refund rights by hand (SPEC §5).

A suspension is recorded as a manual agent rule (rule ``agent``, the agent's reason as its
explanation) through the risk service, so the restriction row, the customer's notification
and the audit entry (the agent as actor) are written in one transaction exactly as a risk
rule's would be. It lasts until an agent lifts it (``lift_suspension``, which refuses with
``risk.not_suspended`` when none is in force). While suspended, opening a case is refused
with ``case.refund_rights_suspended``. The desk only (services/access.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine

from refundry.domain.risk import RiskDecision, RuleMatch
from refundry.services import access
from refundry.services.access import Actor
from refundry.services.audit.chain import AuditTrail
from refundry.services.customers.risk import lift_suspension, record_restriction
from refundry.services.uow import UnitOfWork

__all__ = ["AGENT_RULE", "Suspension", "lift", "suspend"]

AGENT_RULE = "agent"  # the rule name of a suspension an agent decided by hand


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
    decision = RiskDecision("suspend", (RuleMatch(AGENT_RULE, "suspend", 0, reason.strip()),))
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
        engine, customer_id=customer_id, actor=actor.tag, reason=reason.strip(), now=now
    )
    return Suspension(
        customer_id=customer_id,
        suspended=False,
        created=False,
        restriction_ids=tuple(ids),
        at=now,
    )
