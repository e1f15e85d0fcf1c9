"""Bulk refund jobs as a resource (the admin API): start one or dry-run it, read its progress,
its report. Only an admin reaches them (services/access.py, ``refund.bulk``); the job itself
runs in `refundry worker` (services/bulk/running.py's BulkRunner) or `refundry bulk-refund
--resume`."""

from __future__ import annotations

import io
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from refundry.domain.policy import Policy, policy_from_mapping
from refundry.services.access import Actor, require
from refundry.services.bulk.dry_run import DryRun, dry_run
from refundry.services.bulk.jobs import Job, JobStart, read_job, start_job
from refundry.services.bulk.report import write_report
from refundry.services.bulk.selection import parse_selector

__all__ = ["job_report", "job_status", "start_or_dry_run"]


def start_or_dry_run(
    engine: Engine,
    *,
    actor: Actor,
    selector: Any,
    reason: Any,
    policy: dict[str, Any] | None,
    base_policy: Policy,
    rate: int,
    dry: bool,
    now: datetime,
) -> JobStart | DryRun:
    """The dry run's sums, or the job of this selection (found if it exists). ``policy``
    overrides settings of the server's policy for this job (``policy.invalid`` names a bad
    one)."""
    require(actor, "refund.bulk")
    sel, why = parse_selector(selector, reason=reason)
    pol = base_policy
    if policy:
        pol = policy_from_mapping({**base_policy.as_dict(), **policy}, where="policy")
    if dry:
        return dry_run(engine, selector=sel, reason=why, policy=pol, now=now)
    return start_job(
        engine, selector=sel, reason=why, policy=pol, rate=rate, actor=actor.tag, now=now
    )


def job_status(engine: Engine, *, actor: Actor, job_id: str) -> Job:
    require(actor, "refund.bulk")
    return read_job(engine, job_id)


def job_report(engine: Engine, *, actor: Actor, job_id: str) -> str:
    """The CSV report as it stands (pending orders say so)."""
    require(actor, "refund.bulk")
    read_job(engine, job_id)  # bulk.job_not_found
    out = io.StringIO()
    write_report(engine, job_id, out)
    return out.getvalue()
