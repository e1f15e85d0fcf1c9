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

Durations come from the case timeline (``case_events``) in whole seconds.
"""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction
from typing import Any

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse
from sqlalchemy import (
    Connection,
    Integer,
    cast,
    distinct,
    extract,
    func,
    select,
    text,
)
from sqlalchemy import (
    case as sql_case,
)
from sqlalchemy.sql.elements import ColumnElement

from refundry.api.deps import ActorDep, ContextDep, require_roles
from refundry.api.schemas_cases import problems
from refundry.domain.case import CaseState
from refundry.services.uow import UnitOfWork
from refundry.store.tables import case_events, cases, orders, refunds

__all__ = ["BUCKETS", "router"]

router = APIRouter(tags=["operations"])

MEDIA = "text/plain; version=0.0.4; charset=utf-8"
# Seconds from opening to refund: a minute, 5 and 30 minutes, 1 and 6 hours, 1, 3, 7, 14 days.
BUCKETS = (60, 300, 1800, 3600, 21600, 86400, 259200, 604800, 1209600)
AUTO_REVIEWER = "system:review"  # the actor of approvals decided by the review rules

# Deductions and refunded units live in the applied plan (JSON text): unnest them in SQL.
_CLAWBACKS = {
    "sqlite": """
        SELECT json_extract(r.plan, '$.currency') AS currency,
               json_extract(d.value, '$.kind') AS kind,
               SUM(json_extract(d.value, '$.amount')) AS total
        FROM refunds r, json_each(r.plan, '$.deductions') d
        GROUP BY 1, 2 ORDER BY 2, 1""",
    "postgresql": """
        SELECT r.plan::jsonb ->> 'currency' AS currency, d ->> 'kind' AS kind,
               SUM((d ->> 'amount')::bigint) AS total
        FROM refunds r, jsonb_array_elements(r.plan::jsonb -> 'deductions') d
        GROUP BY 1, 2 ORDER BY 2, 1""",
}
_BY_MERCHANT = {
    "sqlite": """
        SELECT l.merchant_id, COUNT(DISTINCT r.id)
        FROM refunds r, json_each(r.plan, '$.units') u
        JOIN order_lines l
          ON l.order_id = r.order_id AND l.line_id = json_extract(u.value, '$.line_id')
        WHERE json_extract(u.value, '$.quantity') > 0
        GROUP BY 1 ORDER BY 1""",
    "postgresql": """
        SELECT l.merchant_id, COUNT(DISTINCT r.id)
        FROM refunds r
        CROSS JOIN LATERAL jsonb_array_elements(r.plan::jsonb -> 'units') u
        JOIN order_lines l ON l.order_id = r.order_id AND l.line_id = u ->> 'line_id'
        WHERE (u ->> 'quantity')::int > 0
        GROUP BY 1 ORDER BY 1""",
}


def _epoch(conn: Connection, column: Any) -> ColumnElement[int]:
    """Whole seconds since 1970 of a stored UTC time, on either backend."""
    if conn.dialect.name == "sqlite":
        return cast(func.strftime("%s", column), Integer)
    return cast(func.floor(extract("epoch", column)), Integer)


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


def _case_states(conn: Connection, out: _Text) -> int:
    counts: dict[str, int] = {
        str(state): int(n)
        for state, n in conn.execute(select(cases.c.state, func.count()).group_by(cases.c.state))
    }
    out.family("refundry_cases", "gauge", "Cases per state.")
    for state in CaseState:
        out.sample("refundry_cases", counts.get(state.value, 0), state=state.value)
    return sum(counts.values())


def _refund_seconds(conn: Connection, out: _Text) -> None:
    e = case_events.c
    at = _epoch(conn, e.at)
    per_case = (
        select(
            func.min(_when(e.action == "open", at)).label("opened"),
            func.min(_when(e.to_state == "refunded", at)).label("refunded"),
        )
        .group_by(e.case_id)
        .subquery()
    )
    seconds = per_case.c.refunded - per_case.c.opened
    done = per_case.c.refunded.is_not(None) & per_case.c.opened.is_not(None)
    row = conn.execute(
        select(
            *[func.coalesce(func.sum(_when(seconds <= b, 1, 0)), 0) for b in BUCKETS],
            func.coalesce(func.sum(seconds), 0),
            func.count(),
        ).where(done)
    ).one()
    name = "refundry_case_refund_seconds"
    out.family(name, "histogram", "Seconds from opening a case to its refund being confirmed.")
    for bound, count in zip(BUCKETS, row[: len(BUCKETS)], strict=True):
        out.sample(f"{name}_bucket", int(count), le=f"{bound}.0")
    out.sample(f"{name}_bucket", int(row[-1]), le="+Inf")
    out.sample(f"{name}_sum", int(row[-2]))
    out.sample(f"{name}_count", int(row[-1]))


def _when(condition: Any, then: Any, otherwise: Any = None) -> Any:
    return sql_case((condition, then), else_=otherwise)


def _stage_seconds(conn: Connection, out: _Text) -> None:
    e = case_events.c
    at = _epoch(conn, e.at)
    steps = select(
        e.from_state.label("stage"),
        (at - func.lag(at).over(partition_by=e.case_id, order_by=e.id)).label("seconds"),
    ).subquery()
    rows = conn.execute(
        select(steps.c.stage, func.sum(steps.c.seconds), func.count())
        .where(steps.c.stage.is_not(None), steps.c.seconds.is_not(None))
        .group_by(steps.c.stage)
        .order_by(steps.c.stage)
    ).all()
    name = "refundry_case_stage_seconds"
    out.family(name, "summary", "Seconds cases spent in each state before leaving it.")
    for stage, total, count in rows:
        out.sample(f"{name}_sum", int(total), stage=stage)
        out.sample(f"{name}_count", int(count), stage=stage)


def _auto_approval(conn: Connection, out: _Text, total_cases: int) -> None:
    e = case_events.c
    auto = conn.execute(
        select(func.count(distinct(e.case_id))).where(
            e.action == "approve", e.actor == AUTO_REVIEWER
        )
    ).scalar_one()
    out.family(
        "refundry_auto_approval_ratio", "gauge", "Cases approved by the review rules / all cases."
    )
    ratio = Fraction(int(auto), total_cases) if total_cases else Fraction(0)
    out.sample("refundry_auto_approval_ratio", ratio)


def _rows(conn: Connection, queries: dict[str, str]) -> Iterable[Any]:
    return conn.execute(text(queries[conn.dialect.name])).all()


def _money_and_rates(conn: Connection, out: _Text) -> None:
    name = "refundry_clawback_minor_units_total"
    out.family(name, "counter", "Deductions taken from refunds, per kind, in minor units.")
    for currency, kind, total in _rows(conn, _CLAWBACKS):
        out.sample(name, int(total), kind=kind, currency=currency)
    order_count = int(conn.execute(select(func.count()).select_from(orders)).scalar_one())
    out.family("refundry_orders", "gauge", "Orders ingested.")
    out.sample("refundry_orders", order_count)
    out.family("refundry_refund_rate", "gauge", "Refunds with the reason / orders ingested.")
    for reason, count in conn.execute(
        select(refunds.c.reason, func.count()).group_by(refunds.c.reason).order_by(refunds.c.reason)
    ):
        rate = Fraction(int(count), order_count) if order_count else Fraction(0)
        out.sample("refundry_refund_rate", rate, reason=reason)
    out.family(
        "refundry_refunds_by_merchant", "gauge", "Refunds that returned units of the merchant."
    )
    for merchant, count in _rows(conn, _BY_MERCHANT):
        out.sample("refundry_refunds_by_merchant", int(count), merchant=merchant)


def exposition(conn: Connection) -> str:
    out = _Text()
    total = _case_states(conn, out)
    _refund_seconds(conn, out)
    _stage_seconds(conn, out)
    _auto_approval(conn, out, total)
    _money_and_rates(conn, out)
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
    require_roles(actor, "admin")
    with UnitOfWork(ctx.engine, readonly=True) as uow:
        body = exposition(uow.conn)
    return PlainTextResponse(body, media_type=MEDIA)
