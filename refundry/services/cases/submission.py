"""A person submits a case from a front end: who may, the early rate answer, then opening it.

``open_case`` (services/cases/opening.py) counts a customer's cases in the window under the
customer's lock, so requests arriving together cannot all pass at the limit; the early count
here, read before anything else is done, answers ``rate.limited`` before a one-time code is
spent on a request that would be refused anyway.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from refundry.domain.photos import PhotoFile
from refundry.services import access
from refundry.services.access import Actor
from refundry.services.cases.opening import (
    CaseDesk,
    CaseRate,
    OpenedCase,
    check_case_rate,
    open_case,
)
from refundry.services.uow import UnitOfWork

__all__ = ["submit_case"]


def submit_case(
    desk: CaseDesk,
    *,
    actor: Actor,
    request: dict[str, Any],
    now: datetime,
    rate: CaseRate,
    description: str = "",
    evidence: list[str] | None = None,
    otp: tuple[str, str] | None = None,
    passkey: str | dict[str, Any] | None = None,
    photos: Sequence[PhotoFile] = (),
) -> OpenedCase:
    """Open a case (the customer, or an agent for it) and run the automatic review; a
    customer's cases are held to ``rate`` (agents open cases for customers unmetered)."""
    access.require(actor, "case.open")
    metered = actor.role == "customer"
    if metered:
        with UnitOfWork(desk.engine, readonly=True) as uow:
            check_case_rate(uow.conn, actor.id, now, rate)
    return open_case(
        desk,
        actor=actor,
        request=request,
        now=now,
        description=description,
        evidence=evidence,
        otp=otp,
        passkey=passkey,
        rate=rate if metered else None,
        photos=photos,
    )
