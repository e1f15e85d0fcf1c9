"""Operational figures of the shop's after-sales: what they are, and how a full scan of the
store computes them (``scan_figures``).

/metrics does not run the scan: it reads counters maintained from the outbox's domain events
(metric_counters.py), which equal the scan (tests/services/test_metric_counters.py); the scan
sets those counters once (migration 0008, ``metric_counters.rebuild``). They are business data
(refund rates per merchant): admins only (services/access.py, area ``metrics.read``). Durations
come from the case timeline (``case_events``) in whole seconds; ratios are exact fractions, for
the front end to format. The API serves them as Prometheus text
(refundry/api/routes/metrics.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from sqlalchemy import Connection, Integer, cast, distinct, extract, func, select, text
from sqlalchemy import case as sql_case
from sqlalchemy.sql.elements import ColumnElement

from refundry.domain.case import CaseState
from refundry.store.tables import case_events, cases, orders, refunds

__all__ = [
    "AUTO_REVIEWER",
    "BUCKETS",
    "Clawback",
    "Figures",
    "RefundSeconds",
    "StageSeconds",
    "scan_figures",
]

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


@dataclass(frozen=True, slots=True)
class RefundSeconds:
    """Cases from opening to their refund being confirmed, as a cumulative histogram."""

    at_most: Mapping[int, int]  # bucket bound in seconds -> cases refunded within it
    total_seconds: int
    count: int  # every refunded case (the +Inf bucket)


@dataclass(frozen=True, slots=True)
class StageSeconds:
    """Seconds cases spent in one state before leaving it."""

    stage: str
    total_seconds: int
    count: int


@dataclass(frozen=True, slots=True)
class Clawback:
    """Plan deductions of applied refunds, per kind and currency, in minor units."""

    kind: str
    currency: str
    total: int


@dataclass(frozen=True, slots=True)
class Figures:
    cases: Mapping[str, int]  # every state of the case process, in its order
    refund_seconds: RefundSeconds
    stages: tuple[StageSeconds, ...]  # by stage name
    auto_approval_ratio: Fraction  # cases approved by the review rules / all cases
    clawbacks: tuple[Clawback, ...]  # by kind, then currency
    orders: int  # orders ingested
    refund_rate: Mapping[str, Fraction]  # reason -> refunds with the reason / orders
    refunds_by_merchant: Mapping[str, int]  # refunds that returned units of the merchant


def _epoch(conn: Connection, column: Any) -> ColumnElement[int]:
    """Whole seconds since 1970 of a stored UTC time, on either backend."""
    if conn.dialect.name == "sqlite":
        return cast(func.strftime("%s", column), Integer)
    return cast(func.floor(extract("epoch", column)), Integer)


def _when(condition: Any, then: Any, otherwise: Any = None) -> Any:
    return sql_case((condition, then), else_=otherwise)


def _rows(conn: Connection, queries: dict[str, str]) -> Iterable[Any]:
    return conn.execute(text(queries[conn.dialect.name])).all()


def _refund_seconds(conn: Connection) -> RefundSeconds:
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
    return RefundSeconds(
        at_most={
            bound: int(count) for bound, count in zip(BUCKETS, row[: len(BUCKETS)], strict=True)
        },
        total_seconds=int(row[-2]),
        count=int(row[-1]),
    )


def _stages(conn: Connection) -> tuple[StageSeconds, ...]:
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
    return tuple(StageSeconds(str(stage), int(total), int(count)) for stage, total, count in rows)


def scan_figures(conn: Connection) -> Figures:
    """Every figure, by scanning the store in the caller's transaction (one snapshot)."""
    counts: dict[str, int] = {
        str(state): int(n)
        for state, n in conn.execute(select(cases.c.state, func.count()).group_by(cases.c.state))
    }
    total_cases = sum(counts.values())
    e = case_events.c
    auto = conn.execute(
        select(func.count(distinct(e.case_id))).where(
            e.action == "approve", e.actor == AUTO_REVIEWER
        )
    ).scalar_one()
    order_count = int(conn.execute(select(func.count()).select_from(orders)).scalar_one())
    rates = conn.execute(
        select(refunds.c.reason, func.count()).group_by(refunds.c.reason).order_by(refunds.c.reason)
    )
    return Figures(
        cases={state.value: counts.get(state.value, 0) for state in CaseState},
        refund_seconds=_refund_seconds(conn),
        stages=_stages(conn),
        auto_approval_ratio=Fraction(int(auto), total_cases) if total_cases else Fraction(0),
        clawbacks=tuple(
            Clawback(kind=kind, currency=currency, total=int(total))
            for currency, kind, total in _rows(conn, _CLAWBACKS)
        ),
        orders=order_count,
        refund_rate={
            str(reason): Fraction(int(count), order_count) if order_count else Fraction(0)
            for reason, count in rates
        },
        refunds_by_merchant={
            str(merchant): int(count) for merchant, count in _rows(conn, _BY_MERCHANT)
        },
    )
