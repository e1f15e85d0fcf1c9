"""Operational metrics for Prometheus: ``GET /metrics``, written by prometheus-client.

Business figures (services/operations/metric_counters.py, maintained from domain events) and the
relay's health (services/operations/operations_figures.py) are read from the database at each
scrape by a custom collector, so every process behind a load balancer answers the same figures
and nothing is lost on restart; the HTTP figures are the server's: under ``refundry serve
--workers N`` every worker writes them to a directory of the run (prometheus-client's
multiprocess mode) and a scrape answers their sum, whichever worker it reaches (sum over
instances, i.e. servers, in the query). The figures are business data
(refund rates per merchant), so the endpoint takes an **admin** bearer token: ``refundry token
admin prometheus --days 365`` and, in the scrape config, ``authorization: {credentials:
<token>}``.

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
    refundry_outbox_due{topic}                     gauge: messages due, not yet delivered
    refundry_outbox_lag_seconds{topic}             gauge: how long the oldest due one waited
    refundry_outbox_dead{topic}                    gauge: dead letters for an operator
    refundry_gateway_errors_total{outcome}         counter: gateway calls without an answer
    refundry_worker_heartbeat_age_seconds{worker}  gauge: seconds since the worker's last round
    refundry_webhook_deliveries{status}            gauge: the shop's webhooks pending, failed
    refundry_webhook_endpoints_disabled            gauge: endpoints nothing is sent to
    refundry_http_request_duration_seconds{method,route}   histogram (every worker's)
    refundry_http_requests_total{method,route,status}      counter (every worker's)
    process_*, python_*                            prometheus-client's own (one worker:
                                                   left out under --workers N)
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector

from refundry.api.deps import ActorDep, ContextDep
from refundry.api.routing import OneHopRoute
from refundry.api.schemas_cases import problems
from refundry.services.operations.metric_counters import metrics_figures
from refundry.services.operations.metrics_figures import BUCKETS, Figures
from refundry.services.operations.operations_figures import OperationsFigures, operations_figures

__all__ = ["BUCKETS", "MEDIA", "business_metrics", "operations_metrics", "router"]

router = APIRouter(tags=["operations"], route_class=OneHopRoute)

MEDIA = "text/plain; version=0.0.4; charset=utf-8"


def business_metrics(figures: Figures) -> Iterator[Metric]:
    cases = GaugeMetricFamily("refundry_cases", "Cases per state.", labels=["state"])
    for state, count in figures.cases.items():
        cases.add_metric([state], count)
    yield cases
    hist = figures.refund_seconds
    yield HistogramMetricFamily(
        "refundry_case_refund_seconds",
        "Seconds from opening a case to its refund being confirmed.",
        buckets=[*((f"{b}.0", n) for b, n in hist.at_most.items()), ("+Inf", hist.count)],
        sum_value=hist.total_seconds,
    )
    stages = SummaryMetricFamily(
        "refundry_case_stage_seconds",
        "Seconds cases spent in each state before leaving it.",
        labels=["stage"],
    )
    for stage in figures.stages:
        stages.add_metric([stage.stage], count_value=stage.count, sum_value=stage.total_seconds)
    yield stages
    yield GaugeMetricFamily(
        "refundry_auto_approval_ratio",
        "Cases approved by the review rules / all cases.",
        value=float(figures.auto_approval_ratio),
    )
    claws = CounterMetricFamily(
        "refundry_clawback_minor_units",
        "Deductions taken from refunds, per kind, in minor units.",
        labels=["kind", "currency"],
    )
    for claw in figures.clawbacks:
        claws.add_metric([claw.kind, claw.currency], claw.total)
    yield claws
    yield GaugeMetricFamily("refundry_orders", "Orders ingested.", value=figures.orders)
    rates = GaugeMetricFamily(
        "refundry_refund_rate", "Refunds with the reason / orders ingested.", labels=["reason"]
    )
    for reason, rate in figures.refund_rate.items():
        rates.add_metric([reason], float(rate))
    yield rates
    merchants = GaugeMetricFamily(
        "refundry_refunds_by_merchant",
        "Refunds that returned units of the merchant.",
        labels=["merchant"],
    )
    for merchant, count in figures.refunds_by_merchant.items():
        merchants.add_metric([merchant], count)
    yield merchants


def operations_metrics(ops: OperationsFigures) -> Iterator[Metric]:
    families = (
        ("refundry_outbox_due", "Outbox messages due now, not yet delivered.", ops.due),
        (
            "refundry_outbox_lag_seconds",
            "Seconds the oldest due outbox message has waited.",
            ops.lag_seconds,
        ),
        ("refundry_outbox_dead", "Dead letters waiting for an operator.", ops.dead),
    )
    for name, help_text, values in families:
        family = GaugeMetricFamily(name, help_text, labels=["topic"])
        for topic, value in values.items():
            family.add_metric([topic], value)
        yield family
    errors = CounterMetricFamily(
        "refundry_gateway_errors", "Gateway calls without an answer.", labels=["outcome"]
    )
    for outcome, n in ops.gateway_errors.items():
        errors.add_metric([outcome], n)
    yield errors
    beats = GaugeMetricFamily(
        "refundry_worker_heartbeat_age_seconds",
        "Seconds since the worker last finished a round.",
        labels=["worker"],
    )
    for worker, age in ops.heartbeat_age_seconds.items():
        beats.add_metric([worker], age)
    yield beats
    hooks = GaugeMetricFamily(
        "refundry_webhook_deliveries",
        "Webhooks to the shop waiting to be sent (pending) or given up (failed).",
        labels=["status"],
    )
    for status, n in ops.webhook_deliveries.items():
        hooks.add_metric([status], n)
    yield hooks
    yield GaugeMetricFamily(
        "refundry_webhook_endpoints_disabled",
        "The shop's webhook endpoints disabled (by an admin or their failures).",
        value=ops.webhook_endpoints_disabled,
    )


class _Scrape(Collector):
    """The figures of one scrape, read from the database before it is written."""

    def __init__(self, figures: Figures, ops: OperationsFigures) -> None:
        self.figures, self.ops = figures, ops

    def collect(self) -> Iterator[Metric]:
        yield from business_metrics(self.figures)
        yield from operations_metrics(self.ops)


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {MEDIA: {}}, "description": "Prometheus text format 0.0.4"},
        **problems(401, 403),
    },
)
def metrics(actor: ActorDep, ctx: ContextDep) -> Response:
    """Prometheus metrics (admin token)."""
    figures = metrics_figures(ctx.engine, actor)  # refuses a non-admin first
    ops = operations_figures(ctx.engine, actor, now=ctx.now())
    scrape = CollectorRegistry(auto_describe=False)
    scrape.register(_Scrape(figures, ops))
    return Response(generate_latest(scrape) + _http_metrics(), media_type=MEDIA)


def _http_metrics() -> bytes:
    """This process's HTTP metrics; under ``refundry serve --workers N`` (prometheus-client's
    multiprocess mode, refundry/api/serve.py) the sum over every worker of the server."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return bytes(generate_latest(REGISTRY))
    shared = CollectorRegistry()
    multiprocess.MultiProcessCollector(shared)  # type: ignore[no-untyped-call]
    return bytes(generate_latest(shared))
