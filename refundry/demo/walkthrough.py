"""`make demo`: SPEC §3's worked examples, then a seeded shop on SQLite with real refunds.

Part one computes the plan of every worked example and checks it against SPEC's figures. Part
two (refundry/demo/shop.py) seeds a shop in ./refundry-demo.sqlite and applies refunds through
the store, the outbox relay, the sandbox gateway and its webhooks. Part three
(refundry/demo/cases.py) runs after-sales cases end to end in ./refundry-demo-cases.sqlite.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.rule import Rule

from refundry.demo import worked_examples as ex
from refundry.domain.json_io import plan_from_json
from refundry.domain.plan_doc import PlanDoc
from refundry.render import format_minor, plan_panel

Json = dict[str, Any]


def run(console: Console | None = None) -> list[PlanDoc]:
    console = console or Console()
    shown: list[PlanDoc] = []
    cases: list[tuple[str, Json, Json, list[tuple[str, ...]], list[int]]] = [
        (
            "Points earned and granted, balance 120: full refund",
            ex.POINTS,
            ex.POINTS_SNAPSHOT,
            [("A",)],
            [49620],
        ),
        (
            "Coupon expired since purchase: full refund",
            ex.COUPON,
            ex.COUPON_SNAPSHOT,
            [("A",)],
            [27000],
        ),
        (
            "满500减100 on X 400 + Y 200: refund Y, then X",
            ex.THRESHOLD,
            ex.snapshot(),
            [("Y",), ("X",)],
            [10000, 40000],
        ),
        (
            "满1000返200 granted on 1200: refund the 200 item",
            ex.CASHBACK,
            ex.snapshot(),
            [("B",)],
            [20000],
        ),
        (
            "满1000返200 granted on 1200: refund the 1000 item",
            ex.CASHBACK,
            ex.snapshot(),
            [("A",)],
            [80000],
        ),
        (
            "Tiers 满1000返200 / 满2000返500 on A 1200 + B 1000: refund B, then A",
            ex.TIERED,
            ex.snapshot(),
            [("B",), ("A",)],
            [70000, 100000],
        ),
        (
            "满500赠 G (declared 30) on X 400 + Y 200: refund Y, gift kept",
            ex.GIFT,
            ex.snapshot(),
            [("Y",)],
            [17000],
        ),
    ]
    for title, order, snapshot, steps, expected in cases:
        console.print(Rule(title))
        history: list[PlanDoc] = []
        for i, (line_ids, want) in enumerate(zip(steps, expected, strict=True), start=1):
            plan = plan_from_json(
                order=order,
                snapshot=snapshot,
                now=ex.NOW,
                history=history,
                request=ex.request(order["id"], *line_ids),
            )
            got = plan["amount"]["total"]
            verdict = "matches SPEC" if got == want else f"SPEC says {format_minor(want, 'CNY')}"
            console.print(
                plan_panel(
                    plan,
                    title=f"Step {i}: refund {', '.join(line_ids)} "
                    f"→ {format_minor(got, 'CNY')} ({verdict})",
                )
            )
            if got != want:
                raise SystemExit(f"demo: {title} step {i} moved {got}, SPEC says {want}")
            history.append(plan)
            shown.append(plan)
    console.print(Rule("All worked examples match SPEC §3"))
    return shown


def main() -> None:
    console = Console()
    run(console)
    from refundry.demo.shop import run_shop

    console.print(Rule("A shop on the embedded SQLite store: real refund cases"))
    run_shop(console)
    from refundry.demo.cases import run_cases

    console.print(Rule("After-sales cases: request, review, return, inspection, refund"))
    run_cases(console)
