"""One racer of tests/services/test_races.py: a single ``apply_refund`` released at a barrier.

Threads call :func:`race` with an engine of their own. Processes are started with the
multiprocessing "spawn" context and run :func:`serve`: for every job they open their OWN engine
(never one inherited from the parent), connect, wait at the shared barrier, apply once and put
the outcome on the results queue. An outcome is a plain dict:

    {"outcome": "ok", "refund_id": ..., "status": ..., "replayed": bool}
    {"outcome": "error", "code": ..., "error_type": ..., "conflict": bool, "message": ...}
    {"outcome": "crash", "error_type": ..., "message": ...}   # not a RefundryError: a bug

A job (a picklable dict) names the database, the order, the request, the previewed plan hash,
this racer's idempotency key, the time and whether the test-only naive apply is switched on
(``refundry.services.refunds.apply.use_naive_apply``, a test-only switch the harness sets).
"""

from __future__ import annotations

import os
import threading
import traceback
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from refundry.domain.errors import RefundryError
from refundry.domain.policy import Policy
from refundry.services.errors import Conflict
from refundry.services.refunds.apply import apply_refund, use_naive_apply
from refundry.store.engine import make_engine

__all__ = ["BARRIER_TIMEOUT", "attempt", "race", "serve"]

BARRIER_TIMEOUT = 90.0  # seconds; a racer that never arrives breaks the barrier, not the run

Outcome = dict[str, Any]


def attempt(engine: Engine, job: dict[str, Any]) -> Outcome:
    """Apply the job's refund once and describe what happened (never raises)."""
    try:
        result = apply_refund(
            engine,
            order_id=job["order_id"],
            request=job["request"],
            expected_plan_hash=job["plan_hash"],
            idempotency_key=job["key"],
            actor=f"agent:racer-{job['key']}",
            now=datetime.fromisoformat(job["now"]),
            policy=Policy(),
        )
    except RefundryError as exc:
        return {
            "outcome": "error",
            "code": exc.code,
            "error_type": f"{type(exc).__module__}.{type(exc).__qualname__}",
            "conflict": isinstance(exc, Conflict),
            "message": exc.message,
        }
    except Exception as exc:
        return {
            "outcome": "crash",
            "error_type": f"{type(exc).__module__}.{type(exc).__qualname__}",
            "message": "".join(traceback.format_exception_only(exc)).strip()[:2000],
        }
    return {
        "outcome": "ok",
        "refund_id": result.refund_id,
        "status": result.status,
        "replayed": result.replayed,
    }


def race(engine: Engine, job: dict[str, Any], barrier: Any) -> Outcome:
    """Connect first (so the race is about the refund, not about connecting), wait, apply."""
    try:
        with engine.connect():
            pass  # PostgreSQL: the pool keeps this connection for apply_refund
        barrier.wait(BARRIER_TIMEOUT)
    except threading.BrokenBarrierError:
        return {"outcome": "crash", "error_type": "BrokenBarrierError", "message": "barrier"}
    except Exception as exc:
        return {"outcome": "crash", "error_type": type(exc).__name__, "message": str(exc)}
    return attempt(engine, job)


def serve(jobs: Any, results: Any, barrier: Any) -> None:
    """Process body (spawn context): one fresh engine per job until the job ``None`` arrives."""
    while (job := jobs.get()) is not None:
        use_naive_apply(bool(job.get("naive")))
        engine = make_engine(job["db_url"])
        try:
            outcome = race(engine, job, barrier)
        finally:
            engine.dispose()
        outcome["pid"] = os.getpid()
        outcome["key"] = job["key"]
        results.put(outcome)
