from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from refundry.adapters.clock import ManualClock
from refundry.adapters.gateway_sandbox import SandboxGateway

START = datetime(2024, 6, 1, 10, 0, tzinfo=UTC)
CONFIRM = timedelta(minutes=2)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def sandbox(clock: ManualClock) -> SandboxGateway:
    """A well-behaved sandbox with three captures: open, closed and blocked cards."""
    gateway = SandboxGateway(clock=clock, seed=1, confirm_after=CONFIRM)
    gateway.capture("ch_open", 50000, "EUR")
    gateway.capture("ch_closed", 20000, "EUR", card_state="closed")
    gateway.capture("ch_blocked", 9900, "EUR", card_state="blocked")
    return gateway
