from __future__ import annotations

import io

from rich.console import Console

from refundry.demo.walkthrough import run


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


def test_shop_demo_applies_real_cases_on_sqlite(tmp_path: object) -> None:
    from pathlib import Path

    from refundry.demo.shop import run_shop

    out = io.StringIO()
    result = run_shop(Console(file=out, width=160), path=Path(str(tmp_path)) / "demo.sqlite")
    assert [row[3] for row in result["rows"]] == [
        "refunded",
        "refunded",
        "refunded",
        "refunded",
        "refund_failed",
        "refunded",
        "refunded",
    ]
    assert [row[1] for row in result["rows"]] == [
        "111.64 CNY",
        "1,592.36 CNY",
        "2,347.00 CNY",
        "replayed",
        "248.99 CNY",
        "241.41 CNY",
        "22.36 CNY",
    ]
    assert (result["audit_entries"], result["inbox"]) == (191, 33)


def test_case_demo_runs_three_journeys_and_tells_the_customer(tmp_path: object) -> None:
    from pathlib import Path

    from refundry.demo.cases import run_cases

    out = io.StringIO()
    result = run_cases(Console(file=out, width=160), path=Path(str(tmp_path)) / "cases.sqlite")
    assert result["needed"] == "identity.code_required"
    assert (result["inbox"], result["sms"], result["emails"], result["audit"]) == (19, 20, 19, 49)
    text = out.getvalue()
    assert "部分验货通过" in text and "completed" in text and "rejected" in text
