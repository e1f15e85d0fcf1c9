"""The desk's hold on a case: escalate it, write an internal note, claim it, assign it.

Each is one transaction on the locked case with its audit entry and its domain event (outbox
topic ``event``); who may do it is services/access.py's (``require_case_action``). Notes,
claims and assignments are rows of ``case_notes`` (``record_desk_entry``, which the debt
records of services/cases/debts.py share): the case's timeline shows them to the desk only.

- ``escalate``: an agent, or the merchant whose lines these all are, hands a case under review,
  approved or inspected to manual review (the state table's ``escalate``), with a comment;
- ``add_note``: an internal note (1 to 2000 characters), never shown to the customer or the
  merchant, nor in their audit entries;
- ``claim``: the caller takes the case (``case.already_claimed`` while another agent holds it:
  an ``assign`` moves it); ``assign``: the desk gives the case to an agent by id, one with a
  staff account of role agent (``case.assignee_unknown`` otherwise: a case is never handed to a
  name nobody signs in as).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select

from refundry.domain.errors import InvalidInput
from refundry.domain.reader import ID_LENGTH, text_problem
from refundry.services.access import Actor, require_case_action
from refundry.services.audit.chain import AuditTrail
from refundry.services.cases.actions import act_on_case
from refundry.services.cases.opening import CaseDesk
from refundry.services.cases.process import Case, change_case, current_case, move
from refundry.services.errors import Conflict
from refundry.services.outbox.messages import enqueue
from refundry.store.tables import case_notes, staff_accounts

__all__ = ["NOTE_LIMIT", "add_note", "assign", "claim", "escalate", "record_desk_entry"]

NOTE_LIMIT = 2000  # characters of one internal note or comment (the API's free text)


def _text(
    value: str, *, field: str, code: str, what: str, limit: int, multiline: bool = True
) -> str:
    """``value`` stripped, if it is text refundry accepts (domain/reader.py's one rule) of 1 to
    ``limit`` characters."""
    text = value.strip()
    if not text or text_problem(text, max_length=limit, multiline=multiline) is not None:
        raise InvalidInput(f"{what}: 1 to {limit} characters of text", code=code, field=field)
    return text


def record_desk_entry(
    conn: Connection,
    row: Case,
    kind: str,
    *,
    actor: Actor,
    at: datetime,
    text: str = "",
    data: dict[str, Any] | None = None,
) -> int:
    """One row of the case's desk entries (``kind``: note_added, assigned, debt_recovered,
    debt_written_off) and its domain event ``case.<kind>``; returns the entry's id."""
    detail = data or {}
    written = conn.execute(
        insert(case_notes).values(
            case_id=row.id,
            customer_id=row.customer_id,
            at=at,
            actor=actor.tag,
            kind=kind,
            text=text,
            data=json.dumps(detail, ensure_ascii=False, sort_keys=True),
        )
    )
    key = written.inserted_primary_key
    if key is None:  # an insert into a table with a primary key always has one
        raise RuntimeError("case_notes: no id for the entry written")
    entry_id = int(key[0])
    enqueue(
        conn,
        topic="event",
        key=f"event:case_entry:{row.id}:{entry_id}",
        at=at,
        payload={
            "type": f"case.{kind}",
            "case_id": row.id,
            "order_id": row.order_id,
            "customer_id": row.customer_id,
            "entry_id": entry_id,
            "actor": actor.tag,
            "text": text,
            **detail,
        },
    )
    return entry_id


def escalate(desk: CaseDesk, case_id: str, *, actor: Actor, now: datetime, comment: str) -> Case:
    """Hand the case to manual review (an agent decides it there: approve, reject, resolve)."""
    why = _text(
        comment,
        field="comment",
        code="case.comment_required",
        what="an escalation says why",
        limit=NOTE_LIMIT,
    )

    def body(conn: Connection, row: Case, trail: AuditTrail) -> Case:
        require_case_action(row, actor, "escalate")
        return move(
            conn,
            row,
            "escalate",
            actor=actor,
            at=now,
            trail=trail,
            data={"why": "escalated", "comment": why, "excess": 0},
            notify="case.needs_review",
        )

    return act_on_case(desk, case_id, actor, now, body)


def add_note(desk: CaseDesk, case_id: str, *, actor: Actor, now: datetime, text: str) -> Case:
    """An internal note on the case, for the desk only."""
    note = _text(text, field="text", code="case.note_invalid", what="a note", limit=NOTE_LIMIT)

    def body(conn: Connection, row: Case, trail: AuditTrail) -> Case:
        require_case_action(row, actor, "note")
        entry = record_desk_entry(conn, row, "note_added", actor=actor, at=now, text=note)
        trail.record("case.note_added", order_id=row.order_id, case_id=row.id, note_id=entry)
        return row

    return act_on_case(desk, case_id, actor, now, body)


def _hold(
    conn: Connection, row: Case, trail: AuditTrail, *, actor: Actor, at: datetime, to: str
) -> Case:
    """Give the case to ``to`` (an actor tag), under the case's version check."""
    change_case(conn, row, at=at, values={"assignee": to})
    detail = {"assignee": to, "before": row.assignee}
    record_desk_entry(conn, row, "assigned", actor=actor, at=at, data=detail)
    trail.record("case.assigned", order_id=row.order_id, case_id=row.id, **detail)
    return current_case(conn, row.id)


def claim(desk: CaseDesk, case_id: str, *, actor: Actor, now: datetime) -> Case:
    """The caller takes the case; claiming one's own case again changes nothing."""

    def body(conn: Connection, row: Case, trail: AuditTrail) -> Case:
        require_case_action(row, actor, "claim")
        if row.assignee == actor.tag:
            return row
        if row.assignee is not None:
            raise Conflict(
                f"{row.assignee} holds this case; an assign gives it to someone else",
                code="case.already_claimed",
            )
        return _hold(conn, row, trail, actor=actor, at=now, to=actor.tag)

    return act_on_case(desk, case_id, actor, now, body)


def assign(desk: CaseDesk, case_id: str, *, actor: Actor, now: datetime, agent_id: str) -> Case:
    """The desk gives the case to the agent ``agent_id`` (from whoever held it)."""
    who = _text(
        agent_id,
        field="agent_id",
        code="case.assignee_invalid",
        what="the agent's id",
        limit=ID_LENGTH,
        multiline=False,
    )

    def body(conn: Connection, row: Case, trail: AuditTrail) -> Case:
        require_case_action(row, actor, "assign")
        to = Actor("agent", who).tag
        if row.assignee == to:
            return row
        role = conn.execute(
            select(staff_accounts.c.role).where(staff_accounts.c.name == who)
        ).scalar()
        if role != "agent":
            raise InvalidInput(
                f"no agent {who!r}: a case is assigned to an agent's staff account "
                "(refundry user add --role agent)",
                code="case.assignee_unknown",
                field="agent_id",
            )
        return _hold(conn, row, trail, actor=actor, at=now, to=to)

    return act_on_case(desk, case_id, actor, now, body)
