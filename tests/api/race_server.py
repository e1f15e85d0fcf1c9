"""The app factory of ``refundry serve``, with the test-only naive apply switched on in each
worker process (tests/api/test_http_races.py proves with it that the HTTP race catches an
over-refund). Production code never reads a switch for it: the harness sets it here.

    python -m uvicorn --factory tests.api.race_server:naive_app_factory --workers 2 ...
"""

from __future__ import annotations

from fastapi import FastAPI

from refundry.api.serve import app_factory
from refundry.services.refunds.apply import use_naive_apply


def naive_app_factory() -> FastAPI:
    use_naive_apply(True)
    return app_factory()
