"""A worker process for the bulk refund crash tests: starts (or finds) the job of a selection and
runs it, as `refundry bulk-refund` does, dying at a fault point when armed.

    python -m tests.services.bulk_crash_worker <db_url> <selector.json>

With REFUNDRY_FAULT=<point> it kills itself (SIGKILL) the first time it reaches that point.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from refundry.adapters.clock import utc_now
from refundry.domain.policy import Policy
from refundry.services import faults
from refundry.services.bulk.jobs import start_job
from refundry.services.bulk.running import run_job
from refundry.services.bulk.selection import parse_selector
from refundry.store.engine import make_engine


def main(db_url: str, selector_file: Path) -> None:
    # The test harness's switch, armed here: production code never reads the environment.
    faults.arm(os.environ.get("REFUNDRY_FAULT"), log=os.environ.get("REFUNDRY_FAULT_LOG"))
    engine = make_engine(db_url)
    doc = json.loads(selector_file.read_text(encoding="utf-8"))
    selector, reason = parse_selector(doc["selector"], reason=doc["reason"])
    job = start_job(
        engine,
        selector=selector,
        reason=reason,
        policy=Policy(),
        rate=0,
        actor="crash-worker",
        now=utc_now(),
    ).job
    run_job(engine, job.id, clock=utc_now, batch=doc["batch"])
    engine.dispose()


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
