"""Bulk refunds (admins): start a job or dry-run it, follow its progress, read its CSV report.
Parsing the selector, access and the job are services/bulk's; the job runs in `refundry
worker`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from refundry.api.deps import ActorDep, ContextDep
from refundry.api.fields import Id
from refundry.api.routing import OneHopRoute
from refundry.api.schemas_cases import problems
from refundry.services.bulk import resource
from refundry.services.bulk.dry_run import DryRun
from refundry.services.bulk.jobs import Job
from refundry.services.bulk.selection import Selector

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["bulk refunds"], route_class=OneHopRoute)

JobId = Annotated[Id, Path()]


class BulkRefundBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    selector: dict[str, Any] = Field(
        description="campaign, sku, merchant, paid_from, paid_until (ISO 8601 with offset), "
        "order_ids; every criterion given must hold (docs/bulk-refunds.md)"
    )
    reason: str = Field(description="quality_issue, wrong_item, not_received, merchant_breach…")
    policy: dict[str, Any] | None = Field(
        default=None, description="policy settings overriding the server's for this job"
    )
    rate: int = Field(default=0, ge=0, le=100_000, description="refunds/s; 0: no cap")
    dry_run: bool = Field(default=False, description="answer what would move; write nothing")


class BulkJobView(BaseModel):
    id: str
    state: str  # running | finished
    selector: dict[str, Any]
    reason: str
    rate: int
    total: int  # orders selected
    done: int  # orders with an outcome
    pending: int
    refunded: int
    refused: int
    manual_review: int
    skipped: int
    actor: str
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None

    @field_validator("selector", mode="before")
    @classmethod
    def _shown(cls, value: Any) -> Any:
        """A job's Selector as its JSON, order ids counted rather than listed."""
        if not isinstance(value, Selector):
            return value
        shown = value.as_dict()
        if "order_ids" in shown:
            shown["order_ids"] = len(value.order_ids)
        return shown


def _view(job: Job) -> BulkJobView:
    return BulkJobView.model_validate(job, from_attributes=True)


@router.post(
    "/bulk-refunds",
    status_code=202,
    responses={
        200: {"description": "the dry run's sums, or the job this selection already has"},
        202: {"model": BulkJobView, "description": "the job, stored; the worker runs it"},
        **problems(401, 403, 422),
    },
)
def start_bulk_refund(
    body: BulkRefundBody, actor: ActorDep, ctx: ContextDep, response: Response
) -> dict[str, Any]:
    """Start a bulk refund job (202, ``Location`` its progress), or with ``dry_run`` answer
    what it would move (200). The same selection, reason and policy answer the job they
    already have (200)."""
    found = resource.start_or_dry_run(
        ctx.engine,
        actor=actor,
        selector=body.selector,
        reason=body.reason,
        policy=body.policy,
        base_policy=ctx.desk.policy,
        rate=body.rate,
        dry=body.dry_run,
        now=ctx.now(),
    )
    if isinstance(found, DryRun):
        response.status_code = 200
        return {"dry_run": found.as_dict()}
    if not found.created:
        response.status_code = 200
    response.headers["Location"] = f"/v1/bulk-refunds/{found.job.id}"
    return _view(found.job).model_dump(mode="json")


@router.get(
    "/bulk-refunds/{job_id}", response_model=BulkJobView, responses=problems(401, 403, 404, 422)
)
def get_bulk_refund(job_id: JobId, actor: ActorDep, ctx: ContextDep) -> BulkJobView:
    """The job's progress: orders done and pending, and how many of each outcome."""
    return _view(resource.job_status(ctx.engine, actor=actor, job_id=job_id))


@router.get(
    "/bulk-refunds/{job_id}/report",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}}, **problems(401, 403, 404, 422)},
)
def get_bulk_refund_report(job_id: JobId, actor: ActorDep, ctx: ContextDep) -> Response:
    """The CSV report: one row per order with its outcome (pending until its batch ran)."""
    text = resource.job_report(ctx.engine, actor=actor, job_id=job_id)
    return Response(text, media_type="text/csv; charset=utf-8")
