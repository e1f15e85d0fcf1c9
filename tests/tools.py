"""Outside programs some tests run, found on PATH or where `make test` unpacks them (.tools/).

A missing tool skips its test with a line saying how to get it; under CI=true it fails the run,
like a missing database server (tests/conftest.py).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

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
