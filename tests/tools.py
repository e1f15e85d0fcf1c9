"""Outside programs some tests run, found on PATH or where `make test` unpacks them (.tools/);
and the service tests' runtime, built by the bootstrap (``runtime_for``).

A missing tool skips its test with a line saying how to get it; under CI=true it fails the run,
like a missing database server (tests/conftest.py).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine

from refundry.adapters.events import RecordingPublisher
from refundry.adapters.gateway import PaymentGateway
from refundry.bootstrap import Runtime, build
from refundry.services.ports import EventPublisher
from refundry.settings import Settings

ROOT = Path(__file__).parent.parent
TOOLS = ROOT / ".tools" / "usr" / "bin"


def promtool() -> str:
    """Prometheus's promtool (Debian's `prometheus` package; `make tools` unpacks it)."""
    found = shutil.which("promtool") or (
        str(TOOLS / "promtool") if (TOOLS / "promtool").is_file() else None
    )
    if found is None:
        message = "promtool not found: run `make tools` (unpacks Debian's prometheus package)"
        if os.environ.get("CI") == "true":
            pytest.fail(message + " (CI=true: a missing tool is a failure)")
        pytest.skip(message)
    return found


def runtime_for(
    engine: Engine,
    *,
    clock: Callable[[], datetime],
    gateway: PaymentGateway,
    publisher: EventPublisher | None = None,
) -> Runtime:
    """The service tests' runtime, built by the one bootstrap like serve, worker and the demo:
    dev settings on the test's (already migrated) database, with the test's own sandboxes
    passed in as the bootstrap's keyword adapters (a gateway holding the test's charges, a
    publisher the test reads)."""
    url = engine.url.render_as_string(hide_password=False)
    return build(
        Settings(dev=True, database_url=url),
        clock=clock,
        engine=engine,
        gateway=gateway,
        publisher=publisher or RecordingPublisher(),
    )
