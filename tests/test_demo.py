from __future__ import annotations

import io

from rich.console import Console

from refundry.demo import run


def test_demo_walks_every_worked_example_and_matches_spec() -> None:
    out = io.StringIO()
    plans = run(Console(file=out, width=120))
    assert [p["amount"]["total"] for p in plans] == [
        49620,
        27000,
        10000,
        40000,
        20000,
        80000,
        70000,
        100000,
        17000,
    ]
    assert "All worked examples match SPEC §3" in out.getvalue()
