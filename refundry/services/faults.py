"""Named fault points for crash tests.

Code that must survive a crash calls ``fault_point("apply.before_commit")`` at the moments where
a crash is most dangerous. In production this does nothing: nothing here reads the environment.
A crash test's worker process calls :func:`arm` with a point (and optionally a log file) before
it starts working: it then kills itself with SIGKILL when it reaches that point, exactly like a
power cut, and every point reached is appended to the log so the test can prove each one was
hit.
"""

from __future__ import annotations

import os
import signal

__all__ = ["FAULT_POINTS", "arm", "fault_point"]

FAULT_POINTS = (
    "apply.after_plan",  # plan computed and checked, nothing written
    "apply.after_writes",  # every row written, transaction not committed
    "apply.after_commit",  # committed, the caller has not had the answer
    "relay.after_claim",  # an outbox message is claimed, not yet sent
    "relay.after_send",  # the gateway (or notifier) has it, our record of that does not
    "relay.after_record",  # the answer is recorded, the message not yet marked done
    # an inspection that reverses a 极速退款 (services/refunds/reversal.py):
    "reversal.after_writes",  # the reversal's rows written, the inspection not committed
    # a bulk refund's batch (services/bulk/jobs.py):
    "bulk.between_orders",  # an order's refund written in its savepoint, the next not begun
    "bulk.after_batch_writes",  # the batch's refunds and outcomes written, not committed
    "bulk.after_batch_commit",  # the batch committed, the runner has not read it back
    # a POST with an Idempotency-Key (services/claims.py, api/idempotency.py):
    "request.before_commit",  # the use case's rows and the key's mark written, not committed
    "request.after_commit",  # committed, the answer not yet stored under the key
    "request.after_answer",  # the answer stored under the key, not yet sent
)


# Module globals, not a lookup per call: reading configuration at each of a refund's fault
# points cost ~2% of applying it (bench/apply_bench.py).
_FAULT: str | None = None
_LOG: str | None = None


def arm(point: str | None, *, log: str | None = None) -> None:
    """TEST ONLY: die at ``point`` (None: never), logging every point reached to ``log``."""
    global _FAULT, _LOG
    assert point is None or point in FAULT_POINTS, point
    _FAULT, _LOG = point, log


def fault_point(name: str) -> None:
    assert name in FAULT_POINTS, name
    if _LOG:
        with open(_LOG, "a", encoding="utf-8") as f:
            f.write(name + "\n")
    if name == _FAULT:
        os.kill(os.getpid(), signal.SIGKILL)
