"""A worker process for the crash tests: runs a script of applies and relay rounds.

    python -m tests.services.crash_worker <db_url> <gateway_url> <script.json> <events.jsonl>

Every step is safe to run again after a crash: applies carry fixed idempotency keys, the relay
re-delivers what it had not recorded. With REFUNDRY_FAULT=<point> it dies (SIGKILL) at that point.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from refundry.adapters.clock import utc_now
from refundry.adapters.gateway_http import HttpGateway
from refundry.adapters.inbox import InboxNotifier
from refundry.domain.policy import Policy
from refundry.services import faults
from refundry.services.outbox.relay import Relay
from refundry.services.refunds.apply import apply_refund
from refundry.store.engine import make_engine


class FilePublisher:
    """Appends each published event to a JSON-lines file (survives the worker's death)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def publish(self, event: dict[str, Any], *, key: str) -> None:
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps({"key": key, "event": event}, sort_keys=True) + "\n")


def main(db_url: str, gateway_url: str, script: Path, events: Path) -> None:
    # The test harness's switch, armed here: production code never reads the environment.
    faults.arm(os.environ.get("REFUNDRY_FAULT"), log=os.environ.get("REFUNDRY_FAULT_LOG"))
    engine = make_engine(db_url)
    relay = Relay(
        engine=engine,
        gateway=HttpGateway(gateway_url, timeout=5.0),
        notifier=InboxNotifier(engine),
        publisher=FilePublisher(events),
        clock=utc_now,
        worker="crash-worker",
        lease=timedelta(0),
    )
    for step in json.loads(script.read_text(encoding="utf-8")):
        if step["op"] == "apply":
            apply_refund(
                engine,
                order_id=step["order_id"],
                request=step["request"],
                expected_plan_hash=step["plan_hash"],
                idempotency_key=step["key"],
                actor="crash-worker",
                now=utc_now(),
                policy=Policy(),
                previewed_at=datetime.fromisoformat(step["previewed_at"]),
            )
        else:
            relay.drain()
    engine.dispose()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]))
