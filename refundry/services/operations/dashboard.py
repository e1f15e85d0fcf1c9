"""The operations dashboard's read model (the desk's ``/desk/dashboard``).

It shows the business figures of /metrics (metrics_figures.py: what each one means; read from
the counters of metric_counters.py, the events since the last read folded in first), shaped for
charts: the time from request to refund per histogram bucket (the counters are cumulative), the
mean time in each stage, the auto-approval rate, claw-back totals per kind and currency, the
refund rate per reason, and the refund rate per merchant. The last one needs the orders holding
each merchant's lines, which no counter keeps: it is counted from ``order_lines`` in the same
transaction (one grouped scan of an indexed column). Ratios stay exact fractions for the page to
format. The desk (agents and admins) sees it: services/access.py, ``operations.dashboard``.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from sqlalchemy import Engine, distinct, func, select

from refundry.services import access
from refundry.services.access import Actor
from refundry.services.operations.metric_counters import counted_figures, fold
from refundry.services.operations.metrics_figures import BUCKETS, Clawback, Figures
from refundry.services.uow import UnitOfWork
from refundry.store.tables import order_lines

__all__ = [
    "Dashboard",
    "MerchantRate",
    "RefundTimeBucket",
    "StageMean",
    "operations_dashboard",
]


@dataclass(frozen=True, slots=True)
class RefundTimeBucket:
    """Cases refunded more than ``above`` and at most ``at_most`` seconds after they were
    opened (``at_most`` None: longer than the last bound)."""

    above: int
    at_most: int | None
    cases: int


@dataclass(frozen=True, slots=True)
class StageMean:
    stage: str
    mean_seconds: int  # whole seconds, rounded down
    count: int  # how many times a case left the stage


@dataclass(frozen=True, slots=True)
class MerchantRate:
    merchant_id: str
    refunds: int  # refunds that returned units of the merchant's lines
    orders: int  # orders holding one of its lines

    @property
    def rate(self) -> Fraction:
        return Fraction(self.refunds, self.orders) if self.orders else Fraction(0)


@dataclass(frozen=True, slots=True)
class Dashboard:
    figures: Figures  # as /metrics serves them
    cases: int  # every case opened
    refund_time: tuple[RefundTimeBucket, ...]  # the histogram, bucket by bucket
    refunded_cases: int
    mean_refund_seconds: int  # whole seconds; 0 before the first refund
    stages: tuple[StageMean, ...]
    auto_approved: int  # cases approved by the review rules
    clawbacks: tuple[Clawback, ...]
    refund_rate: dict[str, Fraction]  # reason -> refunds with it / orders
    refunds_by_reason: dict[str, int]
    merchants: tuple[MerchantRate, ...]  # by merchant id


def _buckets(figures: Figures) -> tuple[RefundTimeBucket, ...]:
    out, below, cumulative = [], 0, 0
    for bound in BUCKETS:
        within = figures.refund_seconds.at_most[bound]
        out.append(RefundTimeBucket(above=below, at_most=bound, cases=within - cumulative))
        below, cumulative = bound, within
    out.append(
        RefundTimeBucket(above=below, at_most=None, cases=figures.refund_seconds.count - cumulative)
    )
    return tuple(out)


def operations_dashboard(engine: Engine, actor: Actor) -> Dashboard:
    """The figures for the desk's dashboard, in one transaction (the events not counted yet
    are folded in first, as a scrape of /metrics does)."""
    access.require(actor, "operations.dashboard")
    with UnitOfWork(engine) as uow:
        fold(uow.conn)
        figures = counted_figures(uow.conn)
        ol = order_lines.c
        orders_of = {
            str(merchant): int(n)
            for merchant, n in uow.conn.execute(
                select(ol.merchant_id, func.count(distinct(ol.order_id))).group_by(ol.merchant_id)
            )
        }
        uow.commit()
    cases = sum(figures.cases.values())
    seconds = figures.refund_seconds
    return Dashboard(
        figures=figures,
        cases=cases,
        refund_time=_buckets(figures),
        refunded_cases=seconds.count,
        mean_refund_seconds=seconds.total_seconds // seconds.count if seconds.count else 0,
        stages=tuple(
            StageMean(s.stage, s.total_seconds // s.count if s.count else 0, s.count)
            for s in figures.stages
        ),
        auto_approved=int(figures.auto_approval_ratio * cases),
        clawbacks=figures.clawbacks,
        refund_rate=dict(figures.refund_rate),
        refunds_by_reason={
            reason: int(rate * figures.orders) for reason, rate in figures.refund_rate.items()
        },
        merchants=tuple(
            MerchantRate(m, figures.refunds_by_merchant.get(m, 0), int(orders_of.get(m, 0)))
            for m in sorted(set(orders_of) | set(figures.refunds_by_merchant))
        ),
    )
