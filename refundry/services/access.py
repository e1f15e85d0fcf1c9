"""Who may see or do what: every access decision of refundry, for every front end.

The read models and the use cases ask these functions; the API's routes and the pages never
decide access themselves, so an endpoint and a page cannot disagree. Two refusals, kept apart
on purpose:

- an object the actor may not see is *not found* (``order.not_found``, ``case.not_found``),
  exactly as if it did not exist, so ids cannot be probed;
- an object the actor sees but may not act on, or an area its role does not reach, is
  *forbidden*: ``auth.forbidden``, or ``case.not_your_lines`` for a merchant on a case that
  also asks for other merchants' lines.

======================================  ==========  ===============  =====  =====  ======
object: action                          customer    merchant         agent  admin  system
======================================  ==========  ===============  =====  =====  ======
order: see lines, tenders, cases        own         its lines (1)    all    all    no
order: ingest                           no          no               no     yes    no
order: update its status                no          no               no     yes    no
order: preview a refund                 own         no               all    all    no
order: list own (the pages)             own         no               no     no     no
order audit: see entries                own         its entries (2)  all    all    no
case: see                               own         its lines (3)    all    all    all
case: open                              own order   no               all    all    no
case: approve, reject                   no          own case (4)     all    all    no
case: cancel                            own (5)     no               all    all    no
case: ship the return                   own         no               all    all    all
case: receive, inspect                  no          own case (4)     all    all    no
case: resolve a manual review           no          no               all    all    no
case: rate                              own (6)     no               no     no     no
case: escalate                          no          own case (9)     all    all    no
case: note, claim, assign               no          no               all    all    no
case: retry its failed refund, wallet   no          no               all    all    no
case: recover, write off its debt       no          no               all    all    no
case photos: see                        own         its lines (3)    all    all    all
case photos: add (11)                   own         own case (4)     all    all    no
case risk: see                          no          no               all    all    no
case messages: see how they fared       no          no               all    all    no
refund: see                             own         its lines (10)   all    all    no
refund: apply for an order              no          no               all    all    no
refunds in bulk: start, progress        no          no               no     yes    no
coupons, points, eligibility, inbox     own         no               no     no     no
one-time code: request                  own         no               no     no     no
agent queue: see                        no          no               yes    yes    no
refund rights: suspend, lift            no          no               yes    yes    no
customer history: see                   no          no               yes    yes    no
agents: list them (to assign a case)    no          no               yes    yes    no
metrics figures: see                    no          no               no     yes    no
bearer token: revoke                    no          no               no     yes    no
customer: update, see profile           no          no               no     yes    no
customer: adjust points, wallet         no          no               no     yes    no
page session from a sign-in link        yes         no               no     no     no
desk session from a password (7)        no          yes              yes    yes    no
desk session from a passkey (7)         no          yes              yes    yes    no
passkeys: register, list, remove own    yes         yes              yes    yes    no
failed refund: retry, to the wallet     no          no               yes    yes    no
merchant desk: see its returns          no          yes (8)          no     no     no
operations dashboard: see               no          no               yes    yes    no
webhook endpoints: manage, log, replay  no          no               no     yes    no
======================================  ==========  ===============  =====  =====  ======

(1) an order holding one of its lines: its own lines only, no tenders (the payment is the
    customer's), no amount on a case that also asks for other merchants' lines.
(2) on an order shared with other merchants, only the entries that name one of its own lines
    and none of the others' (fail closed: any value equal to another merchant's line id hides
    the entry).
    Every role but the desk sees an entry as its other views show it (``redact_audit_entry``):
    no tender for a merchant, no risk decision for a customer or merchant.
(3) a case asking for one of its lines: its own lines only, no amount when others' are in it.
(4) every line of the case is its own (else ``case.not_your_lines``), and the case is not held
    for manual review (held cases are the agents' to decide).
(5) until money went back for the case (极速退款): ``case.already_refunded``.
(6) once, after completion.
(7) a staff account (services/staff/accounts.py); a merchant's acts as its merchant id.
(8) the pages of ``/merchant``: the cases it sees (3), received and inspected there (4).
(9) every line of the case is its own: a merchant that cannot decide hands the case to the
    platform (平台介入); under review, approved or inspected (the state table's ``escalate``).
(10) a refund of one of its lines, as its order shows (1): no tenders, its own lines' effects
    only, no amount when the refund also returns other merchants' lines.
(11) a customer's photos are the customer's evidence (kind ``customer``); a merchant's or an
    agent's are the inspection's (kind ``inspection``): ``photo_kind``. Every photo of a case
    is seen by whoever sees the case: a failed inspection's photos are the customer's to see.

The desk's acts on a case (services/cases/handling.py, services/cases/debts.py and the case's
failed refund, services/refunds/failed_refunds.py) are the agents' and admins': notes are
internal, so customers and merchants never see them in the case's timeline either.

``system`` is refundry acting on its own (the review rules, the timers, the carrier's tracking
events); it never comes from a token. A role outside the table sees nothing and may do nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Connection, exists, select

from refundry.domain.case import CaseState, can
from refundry.services.cases.record import Case
from refundry.services.errors import Forbidden, NotFound
from refundry.store.tables import order_lines, orders, refunds

__all__ = [
    "Actor",
    "Area",
    "CaseAction",
    "audit_entry_filter",
    "case_actions_for",
    "case_list_scope",
    "check_case_opening",
    "may",
    "may_see_case",
    "may_see_order",
    "may_see_refund",
    "order_not_found",
    "photo_kind",
    "redact_audit_entry",
    "refund_line_owners",
    "refund_merchants",
    "require",
    "require_case_action",
    "require_case_actor",
    "require_role",
    "sees_desk_entries",
    "sees_only_own_lines",
    "sees_risk",
    "sees_tenders",
    "strings_in",
    "visible_order",
]


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts: ``role`` is customer | merchant | agent | admin | system."""

    role: str
    id: str

    @property
    def tag(self) -> str:
        return f"{self.role}:{self.id}"

    @property
    def is_staff(self) -> bool:
        return self.role in ("agent", "admin", "system")

    @property
    def customer_id(self) -> str | None:
        """The customer acting, or None (staff, merchants, the system): whose audit chain
        an act about the actor itself goes to (a passkey added)."""
        return self.id if self.role == "customer" else None


# The people at the service desk: they see every order and case (system sees cases only).
_DESK = ("agent", "admin")

# What a whole role may or may not do, whatever the object: the table's rows without a
# per-object answer. Object rules (own orders, own lines) are the functions below.
Area = Literal[
    "order.ingest",
    "order.update_status",
    "order.preview_refund",
    "case.open",
    "customer.assets",
    "identity.request_code",
    "agent.queue",
    "customer.suspension",
    "customer.history",
    "staff.agents",
    "metrics.read",
    "token.revoke",
    "refund.apply",
    "customer.update",
    "customer.adjust",
    "order.list_own",
    "session.sign_in_link",
    "session.sign_in_password",
    "session.sign_in_passkey",
    "identity.passkeys",
    "case.messages",
    "refund.resolve_failed",
    "merchant.desk",
    "operations.dashboard",
    "webhook.manage",
    "refund.bulk",
]
_ROLES_FOR: Mapping[Area, tuple[str, ...]] = {
    "order.ingest": ("admin",),  # the shop's back end holds an admin token
    "order.update_status": ("admin",),  # shipped, delivered, completed, cancelled
    "order.preview_refund": ("customer", "agent", "admin"),
    "case.open": ("customer", "agent", "admin"),
    "customer.assets": ("customer",),  # /me: read for the token's subject only
    "identity.request_code": ("customer",),
    "agent.queue": _DESK,
    "customer.suspension": _DESK,
    # the case page's customer history (services/customers/history.py): the desk's view
    "customer.history": _DESK,
    "staff.agents": _DESK,  # the agents' names a case can be assigned to
    "metrics.read": ("admin",),  # business figures (refund rates per merchant)
    "token.revoke": ("admin",),
    "refund.apply": _DESK,  # the shop's back end and agents, straight from a preview
    "customer.update": ("admin",),  # account creation time, contacts: the shop's back end
    "customer.adjust": ("admin",),  # points / wallet adjustments: the shop's back end
    "order.list_own": ("customer",),  # the pages' order list: the caller's orders
    # the shop's sign-in link opens a page session for a customer; staff sign in otherwise
    "session.sign_in_link": ("customer",),
    # staff accounts sign in to the desk with a password (services/staff/accounts.py)
    "session.sign_in_password": ("agent", "merchant", "admin"),
    # … or with a passkey they registered at the desk (services/passkeys.py)
    "session.sign_in_passkey": ("agent", "merchant", "admin"),
    # one's own passkeys: a customer's confirm case submissions, staff's sign in to the desk
    "identity.passkeys": ("customer", "agent", "merchant", "admin"),
    # the customer's notifications of a case and their delivery (SMS refused, retries …)
    "case.messages": _DESK,
    "refund.resolve_failed": _DESK,  # retry a refused refund, or move it to the wallet
    "merchant.desk": ("merchant",),  # /merchant: the merchant's returns
    # /desk/dashboard: the figures of /metrics, for the people who run the after-sales desk
    "operations.dashboard": _DESK,
    # the shop's webhook endpoints, their delivery log and replays: the shop's back end
    "webhook.manage": ("admin",),
    "refund.bulk": ("admin",),  # bulk refund jobs: start (or dry-run), progress, report
}


def may(actor: Actor, area: Area) -> bool:
    """Whether the actor's role reaches ``area`` (a page shows or hides by it)."""
    return actor.role in _ROLES_FOR[area]


def require(actor: Actor, area: Area) -> None:
    """``auth.forbidden`` unless the actor's role reaches ``area``."""
    require_role(actor, *_ROLES_FOR[area])


def require_role(actor: Actor, *roles: str) -> None:
    if actor.role not in roles:
        raise Forbidden(f"a {actor.role} cannot do this", code="auth.forbidden")


# -- orders ----------------------------------------------------------------------------------


def order_not_found(order_id: str) -> NotFound:
    return NotFound(f"no order {order_id!r}", code="order.not_found")


def may_see_order(actor: Actor, *, customer_id: str, merchant_ids: Collection[str]) -> bool:
    """The order of ``customer_id`` whose lines are the merchants' ``merchant_ids``."""
    if actor.role in _DESK:
        return True
    if actor.role == "customer":
        return customer_id == actor.id
    if actor.role == "merchant":
        return actor.id in merchant_ids
    return False


def visible_order(conn: Connection, order_id: str, actor: Actor) -> Any:
    """The order's row if ``actor`` may see it, else ``order.not_found``."""
    row = conn.execute(select(orders).where(orders.c.id == order_id)).first()
    if row is None:
        raise order_not_found(order_id)
    merchants: Collection[str] = ()
    if actor.role == "merchant":
        mine = exists().where(
            order_lines.c.order_id == order_id, order_lines.c.merchant_id == actor.id
        )
        merchants = (actor.id,) if conn.execute(select(mine)).scalar() else ()
    if not may_see_order(actor, customer_id=row.customer_id, merchant_ids=merchants):
        raise order_not_found(order_id)
    return row


def may_see_refund(actor: Actor, customer_id: str, merchant_ids: Collection[str] = ()) -> bool:
    """A refund of an order of ``customer_id`` for lines of ``merchant_ids``: its customer, the
    desk, and a merchant one of whose lines it refunds (redacted: ``sees_tenders``,
    ``sees_only_own_lines_of``)."""
    if actor.role in _DESK:
        return True
    if actor.role == "merchant":
        return actor.id in merchant_ids
    return actor.role == "customer" and customer_id == actor.id


def refund_line_owners(conn: Connection, refund_id: str) -> dict[str, str]:
    """The merchant of each line the refund ``refund_id`` refunds (its plan's units)."""
    found = conn.execute(
        select(refunds.c.order_id, refunds.c.plan).where(refunds.c.id == refund_id)
    ).first()
    if found is None:
        return {}
    lines = {unit["line_id"] for unit in json.loads(found.plan).get("units", ())}
    return dict(
        conn.execute(
            select(order_lines.c.line_id, order_lines.c.merchant_id).where(
                order_lines.c.order_id == found.order_id, order_lines.c.line_id.in_(lines)
            )
        ).all()
    )


def refund_merchants(conn: Connection, refund_id: str) -> frozenset[str]:
    """The merchants whose lines the refund ``refund_id`` refunds."""
    return frozenset(refund_line_owners(conn, refund_id).values())


def sees_tenders(actor: Actor) -> bool:
    """A merchant sees no tenders: how the customer paid is not the merchant's."""
    return actor.role != "merchant"


# -- cases -----------------------------------------------------------------------------------


def may_see_case(row: Case, actor: Actor) -> bool:
    if actor.is_staff:
        return True
    if actor.role == "customer":
        return bool(row.customer_id == actor.id)
    if actor.role == "merchant":
        return actor.id in json.loads(row.merchant_ids)
    return False


def case_list_scope(actor: Actor) -> Literal["own", "own_lines", "all", "none"]:
    """Which cases a list may hold for ``actor``, for the store to narrow its query by:
    ``own`` the customer's, ``own_lines`` those asking for the merchant's lines, ``none``
    for a role that lists nothing (system acts on cases by id, it does not browse them)."""
    if actor.role == "customer":
        return "own"
    if actor.role == "merchant":
        return "own_lines"
    return "all" if actor.role in _DESK else "none"


def sees_only_own_lines(row: Case, actor: Actor) -> bool:
    """A merchant on a case that also asks for other merchants' lines: it sees its own lines
    only, and no total (the total would tell the others' amounts)."""
    return actor.role == "merchant" and json.loads(row.merchant_ids) != [actor.id]


def sees_risk(actor: Actor) -> bool:
    """The risk decision and its reasons are for the desk only."""
    return actor.role in _DESK


def sees_desk_entries(actor: Actor) -> bool:
    """The desk's own record of a case — internal notes, who holds it, what each step
    recorded, who acted by name — is for the desk only."""
    return actor.role in _DESK


def check_case_opening(actor: Actor, *, order_id: str, customer_id: str | None) -> str:
    """May ``actor`` open a case on the order of ``customer_id`` (None: no such order)?
    Returns the customer the case is for."""
    if customer_id is None or (actor.role == "customer" and customer_id != actor.id):
        raise order_not_found(order_id)
    if actor.role not in ("customer", *_DESK):
        raise Forbidden("only the customer or an agent opens a case", code="auth.forbidden")
    return customer_id


def require_case_actor(row: Case, actor: Actor, *roles: str) -> None:
    """``actor`` must have one of ``roles`` (an admin may do what an agent may); a merchant
    acts only on a case whose lines are all its own."""
    if actor.role not in roles and not (actor.role == "admin" and "agent" in roles):
        raise Forbidden(f"a {actor.role} cannot do this", code="auth.forbidden")
    if actor.role == "merchant" and json.loads(row.merchant_ids) != [actor.id]:
        raise Forbidden(
            "this case asks for lines of other merchants too", code="case.not_your_lines"
        )


# Who may take each action on a case they see; require_case_actor adds the merchant's
# own-lines rule, require_case_action the agents' hold on a case under manual review.
CaseAction = Literal[
    "approve",
    "reject",
    "cancel",
    "ship",
    "receive",
    "inspect",
    "resolve",
    "rate",
    "escalate",
    "note",
    "claim",
    "assign",
    "retry_refund",
    "refund_to_wallet",
    "recover_debt",
    "write_off_debt",
    "photos",
]
_CASE_ROLES: Mapping[CaseAction, tuple[str, ...]] = {
    "approve": ("agent", "merchant"),
    "reject": ("agent", "merchant"),
    "cancel": ("customer", "agent"),
    "ship": ("customer", "agent", "system"),  # system: refundry on the carrier's tracking
    "receive": ("merchant", "agent"),
    "inspect": ("merchant", "agent"),
    "resolve": ("agent",),
    "rate": ("customer",),
    "escalate": ("agent", "merchant"),  # a merchant: to the platform (平台介入)
    "note": ("agent",),  # the desk's own: internal notes
    "claim": ("agent",),
    "assign": ("agent",),
    "retry_refund": ("agent",),
    "refund_to_wallet": ("agent",),
    "recover_debt": ("agent",),
    "write_off_debt": ("agent",),
    "photos": ("customer", "merchant", "agent"),  # (11) add photos: POST …/photos
}


def require_case_action(row: Any, actor: Actor, action: CaseAction) -> None:
    """``auth.forbidden`` (or ``case.not_your_lines``) unless ``actor``, who sees the case,
    may take ``action`` on it; the state machine answers separately whether it may be taken
    now."""
    require_case_actor(row, actor, *_CASE_ROLES[action])
    if action in ("approve", "reject") and row.state == CaseState.NEEDS_MANUAL_REVIEW:
        require_case_actor(row, actor, "agent")  # held cases are the agents' to decide


def photo_kind(actor: Actor) -> str:
    """The kind of the photos ``actor`` adds to a case (11): the customer's evidence, or the
    inspection's (a merchant, an agent)."""
    return "customer" if actor.role == "customer" else "inspection"


def case_actions_for(row: Case, actor: Actor) -> list[str]:
    """What ``actor`` may do to the case now: the transition table and the role rules the
    case services enforce (services/cases/actions.py), for every front end to show."""
    state = CaseState(row.state)
    desk = actor.role in _DESK
    customer = actor.role == "customer" and row.customer_id == actor.id
    own_lines = actor.role == "merchant" and json.loads(row.merchant_ids) == [actor.id]
    held = state == CaseState.NEEDS_MANUAL_REVIEW  # held cases are the agents' to decide
    checks = [
        ("approve", can(state, "approve") and (desk or (own_lines and not held))),
        ("reject", can(state, "reject") and (desk or (own_lines and not held))),
        ("cancel", can(state, "cancel") and not row.refund_id and (customer or desk)),
        ("ship", can(state, "ship") and (customer or desk)),
        ("receive", can(state, "receive") and (desk or own_lines)),
        ("inspect", can(state, "inspect") and (desk or own_lines)),
        ("resolve", can(state, "resolve") and desk),
        ("rate", state == CaseState.COMPLETED and row.rating is None and customer),
        ("escalate", can(state, "escalate") and (desk or own_lines)),
        ("note", desk),
        ("claim", desk and row.assignee != actor.tag),
        ("assign", desk),
        ("retry_refund", state == CaseState.REFUND_FAILED and desk),
        ("refund_to_wallet", state == CaseState.REFUND_FAILED and desk),
        ("recover_debt", row.debt > 0 and desk),
        ("write_off_debt", row.debt > 0 and desk),
    ]
    return [action for action, ok in checks if ok]


# -- audit entries ---------------------------------------------------------------------------


def strings_in(value: Any) -> Iterator[str]:
    """Every string in a JSON value, keys included (tender and line ids can be keys)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from strings_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings_in(item)


def audit_entry_filter(
    actor: Actor, line_owners: Mapping[str, str]
) -> Callable[[Any], bool] | None:
    """Which audit entries of an order ``actor`` sees, given the merchant of each of the
    order's lines: a predicate on an entry's data, or None when it sees them all."""
    if actor.role != "merchant":
        return None
    own = {line for line, owner in line_owners.items() if owner == actor.id}
    others = {line for line, owner in line_owners.items() if owner != actor.id}
    if not others:
        return None
    own_only = own - others

    def visible(data: Any) -> bool:
        seen = set(strings_in(data))
        return not (seen & others) and bool(seen & own_only)

    return visible


# What the other views hide, hidden in the audit too: a merchant sees no tender (how the
# customer paid is not the merchant's), a customer or merchant no risk decision.
_TENDER_ACTIONS = ("refund.tender", "refund.to_wallet", "effect.refund_to_tender", "gateway.")
_TENDER_KEYS = frozenset(
    {"tender_id", "tenders", "gateway_txn_id", "transaction_id", "gateway_refund_id"}
)
_RISK_KEYS = frozenset({"risk"})
# The desk's own entries: internal notes and who holds a case.
_DESK_ONLY_ACTIONS = ("case.note_added", "case.assigned")


def redact_audit_entry(actor: Actor, action: str, data: Any) -> Any | None:
    """An audit entry's data as ``actor`` may see it, or None when the whole entry is not for
    it: the redaction of the order and case views (``sees_tenders``, ``sees_risk``)."""
    hidden: frozenset[str] = frozenset()
    if not sees_desk_entries(actor) and action.startswith(_DESK_ONLY_ACTIONS):
        return None
    if not sees_tenders(actor):
        if action.startswith(_TENDER_ACTIONS):
            return None
        hidden |= _TENDER_KEYS
    if not sees_risk(actor):
        if action.startswith("risk."):
            return None
        hidden |= _RISK_KEYS
    return _without(data, hidden) if hidden else data


def _without(value: Any, keys: frozenset[str]) -> Any:
    if isinstance(value, dict):
        return {k: _without(v, keys) for k, v in value.items() if k not in keys}
    if isinstance(value, list):
        return [_without(v, keys) for v in value]
    return value
