"""Liveness (``/healthz``) and readiness (``/readyz``), both public and cheap.

``/healthz`` answers 200 while the process serves requests: it touches nothing else, so a slow
database never gets a healthy process restarted. ``/readyz`` answers 200 only when this process
can do its work: the database answers, its schema is at the newest migration, and a worker
finished a round within ``worker_heartbeat_max_age_seconds`` (else nothing leaves the outbox:
no refund reaches the gateway). Otherwise 503 with each check's result, for a load balancer to
stop routing here and for an operator to read.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from refundry.api.deps import ContextDep
from refundry.api.routing import OneHopRoute
from refundry.services.operations.readiness import readiness

router = APIRouter(tags=["operations"], route_class=OneHopRoute)


class Health(BaseModel):
    status: str
    database: str


class Readiness(BaseModel):
    status: str  # ready | not_ready
    checks: dict[str, str]  # check -> "ok" or what is wrong


@router.get("/healthz", response_model=Health)
def healthz(ctx: ContextDep) -> Health:
    """200 while the process serves requests."""
    return Health(status="ok", database=ctx.engine.dialect.name)


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "a check failed"}},
)
def readyz(ctx: ContextDep) -> JSONResponse:
    """200 when the database answers, the schema is current and a worker beats."""
    checks = readiness(
        ctx.engine,
        now=ctx.now(),
        max_beat_age_seconds=ctx.settings.worker_heartbeat_max_age_seconds,
    )
    ready = all(v == "ok" for v in checks.values())
    body = Readiness(status="ready" if ready else "not_ready", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)
