"""The ``Idempotency-Key`` claim of the request being served, seen by its units of work.

The API's middleware claims a key (services/idempotency_keys.py) with a random ``token`` and a
short lease, then runs the request with :data:`CURRENT` set to that claim. Every writing unit
of work of the request (services/uow.py) then marks the key ``committed`` **in its own
transaction**, fenced by the token: the use case's rows and the mark commit together or not at
all. After a crash the key therefore says which it was — ``in_flight``: nothing committed, the
request may run again; ``committed``: the use case committed and the answer was lost, it is
rebuilt, never run twice. A use case that creates an object names it with :func:`note_outcome`
before committing (the new case's id), so the answer can be rebuilt from it.

When the lease ran out and another request with the key took it over (a new token), the mark
finds no row with this token: the unit raises :class:`LeaseLost` and rolls back, so the two
requests cannot both commit.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass

from sqlalchemy import Connection, update

from refundry.services.errors import Conflict
from refundry.store.tables import api_idempotency

__all__ = ["CURRENT", "Claim", "LeaseLost", "mark_committed", "note_outcome"]


@dataclass(slots=True)
class Claim:
    """A request's hold on its key: ``token`` fences it, ``outcome`` names what it made."""

    key: str
    token: str
    outcome: str | None = None


CURRENT: ContextVar[Claim | None] = ContextVar("refundry_idempotency_claim", default=None)


class LeaseLost(Conflict):
    """This request's key was taken over by a retry after its lease ran out."""

    code = "idempotency.lease_lost"


def note_outcome(object_id: str) -> None:
    """Name the object this request creates (call before the unit of work commits)."""
    claim = CURRENT.get()
    if claim is not None:
        claim.outcome = object_id


def mark_committed(conn: Connection, claim: Claim) -> None:
    """In the unit of work's transaction: the key's request has committed (fenced by token)."""
    k = api_idempotency.c
    values: dict[str, str] = {"state": "committed"}
    if claim.outcome is not None:
        values["outcome"] = claim.outcome
    done = conn.execute(
        update(api_idempotency)
        .where(k.key == claim.key, k.token == claim.token, k.state != "done")
        .values(**values)
    )
    if done.rowcount != 1:
        raise LeaseLost(
            "this request's Idempotency-Key lease ran out and a retry took the key over; "
            "nothing was written: the retry's answer stands",
            field="Idempotency-Key",
        )
