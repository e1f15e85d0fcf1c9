"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel
from sqlalchemy import text

from refundry.api.deps import ContextDep

router = APIRouter(tags=["operations"])


class Health(BaseModel):
    status: str
    database: str


@router.get("/healthz", response_model=Health)
def healthz(ctx: ContextDep) -> Health:
    """200 when the database answers."""
    with ctx.engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    return Health(status="ok", database=ctx.engine.dialect.name)
