"""Operational metrics for Prometheus: ``GET /metrics`` (text exposition format 0.0.4).

Computed from the database at each scrape with aggregate queries, so every process behind a
load balancer answers the same figures and nothing is lost on restart. The figures are
business data (refund rates per merchant), so the endpoint takes an **admin** bearer token:
``refundry token admin prometheus --days 365`` and, in the scrape config,
``authorization: {credentials: <token>}``.

    refundry_cases{state}                          gauge: cases per state (every state listed)
    refundry_case_refund_seconds                   histogram: case opened → refunded
    refundry_case_stage_seconds{stage}             summary (sum, count): time spent per state
    refundry_auto_approval_ratio                   gauge: cases approved by the review rules
                                                   ÷ all cases
    refundry_clawback_minor_units_total{kind,currency}
                                                   counter: plan deductions of applied refunds
    refundry_orders                                gauge: orders ingested
    refundry_refund_rate{reason}                   gauge: refunds with the reason ÷ orders
    refundry_refunds_by_merchant{merchant}         gauge: refunds that returned units of the
                                                   merchant's lines

The figures are services/metrics_figures.py's (durations from the case timeline in whole
seconds, ratios exact); this module only writes them as Prometheus text.
"""

from __future__ import annotations

from fractions import Fraction

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

from refundry.api.deps import ActorDep, ContextDep
from refundry.api.schemas_cases import problems
from refundry.services.metrics_figures import BUCKETS, Figures, metrics_figures

__all__ = ["BUCKETS", "exposition", "router"]

router = APIRouter(tags=["operations"])

MEDIA = "text/plain; version=0.0.4; charset=utf-8"


def _label(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: int | Fraction) -> str:
    if isinstance(value, Fraction):
        return (
            repr(value.numerator / value.denominator)
            if value.denominator != 1
            else (f"{value.numerator}.0")
        )
    return str(value)


class _Text:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str) -> None:
        self.lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]

    def sample(self, name: str, value: int | Fraction, **labels: object) -> None:
        inner = ",".join(f'{k}="{_label(v)}"' for k, v in labels.items())
        self.lines.append(
            f"{name}{{{inner}}} {_number(value)}" if inner else f"{name} {_number(value)}"
        )

    def render(self) -> str:
        return "\n".join(self.lines) + "\n"


def exposition(figures: Figures) -> str:
    """The figures in the text exposition format 0.0.4, in the order of the list above."""
    out = _Text()
    out.family("refundry_cases", "gauge", "Cases per state.")
    for state, count in figures.cases.items():
        out.sample("refundry_cases", count, state=state)
    name = "refundry_case_refund_seconds"
    hist = figures.refund_seconds
    out.family(name, "histogram", "Seconds from opening a case to its refund being confirmed.")
    for bound, count in hist.at_most.items():
        out.sample(f"{name}_bucket", count, le=f"{bound}.0")
    out.sample(f"{name}_bucket", hist.count, le="+Inf")
    out.sample(f"{name}_sum", hist.total_seconds)
    out.sample(f"{name}_count", hist.count)
    name = "refundry_case_stage_seconds"
    out.family(name, "summary", "Seconds cases spent in each state before leaving it.")
    for stage in figures.stages:
        out.sample(f"{name}_sum", stage.total_seconds, stage=stage.stage)
        out.sample(f"{name}_count", stage.count, stage=stage.stage)
    out.family(
        "refundry_auto_approval_ratio", "gauge", "Cases approved by the review rules / all cases."
    )
    out.sample("refundry_auto_approval_ratio", figures.auto_approval_ratio)
    name = "refundry_clawback_minor_units_total"
    out.family(name, "counter", "Deductions taken from refunds, per kind, in minor units.")
    for claw in figures.clawbacks:
        out.sample(name, claw.total, kind=claw.kind, currency=claw.currency)
    out.family("refundry_orders", "gauge", "Orders ingested.")
    out.sample("refundry_orders", figures.orders)
    out.family("refundry_refund_rate", "gauge", "Refunds with the reason / orders ingested.")
    for reason, rate in figures.refund_rate.items():
        out.sample("refundry_refund_rate", rate, reason=reason)
    out.family(
        "refundry_refunds_by_merchant", "gauge", "Refunds that returned units of the merchant."
    )
    for merchant, count in figures.refunds_by_merchant.items():
        out.sample("refundry_refunds_by_merchant", count, merchant=merchant)
    return out.render()


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    responses={
        200: {"content": {MEDIA: {}}, "description": "Prometheus text format 0.0.4"},
        **problems(401, 403),
    },
)
def metrics(actor: ActorDep, ctx: ContextDep) -> PlainTextResponse:
    """Prometheus metrics (admin token)."""
    body = exposition(metrics_figures(ctx.engine, actor))
    return PlainTextResponse(body, media_type=MEDIA)
