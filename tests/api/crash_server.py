"""``refundry serve`` with a crash-test fault point armed (tests/api/test_idempotency_crashes.py).

    python -m tests.api.crash_server <point | -> <log> [serve options ...]

The fault is armed here, by the harness (production code never reads the environment for it),
then ``refundry serve`` runs in this process (one uvicorn worker: the same process), and dies
with SIGKILL when a request reaches the point (refundry/services/faults.py). Every point
reached is appended to ``log``.
"""

from __future__ import annotations

import sys

from refundry import cli
from refundry.services import faults


def main(argv: list[str]) -> None:
    point, log, *serve = argv
    faults.arm(None if point == "-" else point, log=log)
    sys.argv = ["refundry", "serve", *serve]
    cli.main()


if __name__ == "__main__":
    main(sys.argv[1:])
