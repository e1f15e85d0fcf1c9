"""An express-refund debt, settled by the desk: recovered, or written off.

极速退款 paid before the goods came back; goods the inspection refused leave the case a debt
(``cases.debt``, services/cases/actions.py). An agent settles it in parts, each one transaction
on the locked case with its audit entry, its desk entry (``case_notes``) and its domain event:

- ``recover_debt`` ``wallet``: the part is debited from the customer's wallet (a ledger
  posting; ``ledger.insufficient_funds`` when the wallet holds less, nothing changes);
  ``external``: the customer paid it back outside refundry (the shop's own reference is
  required, ``case.debt_reference_required``);
- ``write_off_debt``: the shop gives the part up (a comment says why).

What is still owed never goes below zero (domain/express.py, ``debt_after``:
``case.debt_amount_invalid`` for a part that is not 1 to what is owed); a case with nothing
owed answers ``case.no_debt``. The case's state does not change: a debt can be settled in any
state, final ones included (``rejected_after_inspection``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select

from refundry.domain.errors import CurrencyMismatch, InvalidInput
from refundry.domain.express import debt_after
from refundry.services.access import Actor, CaseAction, require_case_action
from refundry.services.audit.chain import AuditTrail
from refundry.services.cases.actions import act_on_case
from refundry.services.cases.handling import NOTE_LIMIT, record_desk_entry
from refundry.services.cases.opening import CaseDesk
from refundry.services.cases.process import Case, change_case, current_case
from refundry.services.errors import Conflict
from refundry.services.refunds.ledger import debit_wallet
from refundry.store.tables import case_notes, orders

__all__ = ["RECOVERY_METHODS", "recover_debt", "write_off_debt"]

RECOVERY_METHODS = ("wallet", "external")


def _settle(
    conn: Connection,
    row: Case,
    trail: AuditTrail,
    *,
    kind: str,
    amount: int,
    currency: str,
    actor: Actor,
    at: datetime,
    comment: str,
    method: str | None = None,
    reference: str = "",
) -> Case:
    if row.debt <= 0:
        raise Conflict(f"case {row.id} has no debt left to settle", code="case.no_debt")
    owed_in = conn.execute(
        select(orders.c.currency).where(orders.c.id == row.order_id)
    ).scalar_one()
    if currency != owed_in:
        raise CurrencyMismatch(
            f"the debt is owed in {owed_in}, not {currency}", field="amount.currency"
        )
    left = debt_after(int(row.debt), amount)
    if method == "wallet":
        done = conn.execute(
            select(func.count()).where(case_notes.c.case_id == row.id, case_notes.c.kind == kind)
        ).scalar_one()
        debit_wallet(
            conn,
            journal_id=f"case:{row.id}:debt:{int(done) + 1}",
            customer_id=row.customer_id,
            amount=amount,
            at=at,
            order_id=row.order_id,
            memo="express refund debt recovered from the wallet",
            what="the part to recover",
            otherwise="recover less from it, or record a payment made outside refundry",
        )
    change_case(conn, row, at=at, values={"debt": left})
    detail: dict[str, Any] = {
        "amount": amount,
        "currency": currency,
        "debt_before": int(row.debt),
        "debt": left,
    }
    if method is not None:
        detail |= {"method": method, "reference": reference}
    record_desk_entry(conn, row, kind, actor=actor, at=at, text=comment, data=detail)
    trail.record(f"case.{kind}", order_id=row.order_id, case_id=row.id, comment=comment, **detail)
    return current_case(conn, row.id)


def _comment(text: str) -> str:
    if len(text) > NOTE_LIMIT:
        raise InvalidInput(
            f"a comment of at most {NOTE_LIMIT} characters",
            code="case.note_invalid",
            field="comment",
        )
    return text.strip()


def recover_debt(
    desk: CaseDesk,
    case_id: str,
    *,
    actor: Actor,
    now: datetime,
    amount: int,
    currency: str,
    method: str,
    reference: str = "",
    comment: str = "",
) -> Case:
    """Record ``amount`` (minor units of ``currency``, the order's) of the case's debt as
    recovered by ``method``."""
    if method not in RECOVERY_METHODS:
        raise InvalidInput(
            "method must be wallet or external", code="case.debt_method_invalid", field="method"
        )
    ref = reference.strip()
    if method == "external" and not ref:
        raise InvalidInput(
            "a debt paid back outside refundry needs the shop's reference",
            code="case.debt_reference_required",
            field="reference",
        )
    return _settle_case(
        desk,
        case_id,
        actor,
        now,
        "recover_debt",
        kind="debt_recovered",
        amount=amount,
        currency=currency,
        comment=_comment(comment),
        method=method,
        reference=ref,
    )


def write_off_debt(
    desk: CaseDesk,
    case_id: str,
    *,
    actor: Actor,
    now: datetime,
    amount: int,
    currency: str,
    comment: str,
) -> Case:
    """Give up ``amount`` (minor units of ``currency``, the order's) of the case's debt, saying
    why."""
    note = _comment(comment)
    if not note:
        raise InvalidInput("a write-off says why", code="case.comment_required", field="comment")

    return _settle_case(
        desk,
        case_id,
        actor,
        now,
        "write_off_debt",
        kind="debt_written_off",
        amount=amount,
        currency=currency,
        comment=note,
    )


def _settle_case(
    desk: CaseDesk, case_id: str, actor: Actor, now: datetime, action: CaseAction, **settle: Any
) -> Case:
    def body(conn: Connection, row: Case, trail: AuditTrail) -> Case:
        require_case_action(row, actor, action)
        return _settle(conn, row, trail, actor=actor, at=now, **settle)

    return act_on_case(desk, case_id, actor, now, body)
