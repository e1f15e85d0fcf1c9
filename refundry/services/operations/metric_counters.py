"""The business figures of /metrics, maintained as counters instead of scanned at each scrape.

Every fact the figures count is already announced by a domain event in the outbox, written in
the transaction that made it true: ``order.ingested``, ``case.<state>`` (the case opened or
moved, with who moved it, since when it was in the state it left and when it was opened) and
``refund.applied`` (its reason, currency, deductions per kind and the merchants whose units it
returned). ``fold`` reads the events not counted yet (``outbox.counted`` false: a partial index
holds exactly those), adds them to ``metric_counters`` and marks them counted, in one
transaction: each event counts once. It selects by the flag, not by "ids above the last one
seen", because on PostgreSQL a transaction can commit a lower id after a higher one was read
(tests/services/test_metric_counters.py commits them in that order).

A scrape folds what arrived since the previous one, then reads the counters: its cost follows
the traffic since the last scrape, not the size of the history. ``rebuild`` sets the counters
from a full scan (metrics_figures.scan_figures): migration 0008 runs it once, and the tests
check that folding a workload's events gives exactly the scanned figures.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from datetime import datetime
from fractions import Fraction
from typing import Any

from sqlalchemy import Connection, Engine, delete, false, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from refundry.domain.case import CaseState
from refundry.services import access
from refundry.services.access import Actor
from refundry.services.operations.metrics_figures import (
    AUTO_REVIEWER,
    BUCKETS,
    Clawback,
    Figures,
    RefundSeconds,
    StageSeconds,
    scan_figures,
)
from refundry.services.uow import UnitOfWork
from refundry.store.tables import metric_counters, outbox, refunds

__all__ = ["counted_figures", "fold", "metrics_figures", "rebuild"]

FOLD_BATCH = 500

_Key = tuple[str, str]  # (counter name, label)


def _epoch(text: str | datetime) -> int:
    """Whole seconds since 1970, as the scan computes them (floor of each time)."""
    when = datetime.fromisoformat(text) if isinstance(text, str) else text
    return int(when.timestamp() // 1)


def _fold_case(event: Mapping[str, Any], at: datetime, out: Counter[_Key]) -> None:
    before, after = event.get("from"), event["to"]
    out["cases", after] += 1
    if before is None:
        return  # the case was opened
    out["cases", before] -= 1
    if "since" in event:
        out["stage_seconds", before] += _epoch(at) - _epoch(event["since"])
        out["stage_count", before] += 1
    if event.get("action") == "approve" and event.get("actor") == AUTO_REVIEWER:
        out["auto_approved", ""] += 1
    if after == CaseState.REFUNDED and "opened_at" in event:
        seconds = _epoch(at) - _epoch(event["opened_at"])
        for bound in BUCKETS:
            if seconds <= bound:
                out["refund_seconds_le", str(bound)] += 1
        out["refund_seconds_sum", ""] += seconds
        out["refund_seconds_count", ""] += 1


def _fold_refund(event: Mapping[str, Any], out: Counter[_Key]) -> None:
    out["refunds_by_reason", event["reason"]] += 1
    for merchant in event["merchants"]:
        out["refunds_by_merchant", merchant] += 1
    for kind, amount in event["deductions"].items():
        out["clawback", f"{event['currency']}:{kind}"] += amount


def _fold_one(event: Mapping[str, Any], at: datetime, out: Counter[_Key]) -> None:
    kind = event.get("type", "")
    if kind == "order.ingested":
        out["orders", ""] += 1
    elif kind == "refund.applied" and "reason" in event:
        _fold_refund(event, out)
    elif kind.startswith("case.") and "to" in event:
        _fold_case(event, at, out)


def _add(conn: Connection, deltas: Mapping[_Key, int]) -> None:
    """Add each delta to its counter (created at its first delta, even a zero one: the scan
    lists a claw-back kind whose amounts sum to zero)."""
    if not deltas:
        return
    rows = [{"name": n, "label": label, "value": v} for (n, label), v in sorted(deltas.items())]
    make = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    stmt = make(metric_counters)
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["name", "label"],
            set_={"value": metric_counters.c.value + stmt.excluded.value},
        ),
        rows,
    )


def fold(conn: Connection, *, batch: int = FOLD_BATCH) -> int:
    """Fold every domain event not counted yet into the counters, in the caller's transaction;
    returns how many messages it marked. Messages another transaction is folding now are
    skipped (PostgreSQL ``SKIP LOCKED``); the next fold takes them."""
    total = 0
    o = outbox.c
    while True:
        query = select(o.id, o.payload, o.created_at).where(o.counted == false())
        query = query.order_by(o.id).limit(batch)
        if conn.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        rows = conn.execute(query).all()
        if not rows:
            return total
        deltas: Counter[_Key] = Counter()
        for row in rows:
            _fold_one(json.loads(row.payload), row.created_at, deltas)
        _add(conn, deltas)
        conn.execute(update(outbox).where(o.id.in_([r.id for r in rows])).values(counted=True))
        total += len(rows)
        if len(rows) < batch:
            return total


def rebuild(conn: Connection) -> None:
    """Set every counter from a full scan of what is stored, and mark every message counted
    (the scan saw what they announce). For migration 0008, or an operator repairing by hand."""
    figures = scan_figures(conn)
    conn.execute(delete(metric_counters))
    conn.execute(update(outbox).where(outbox.c.counted == false()).values(counted=True))
    rows: list[dict[str, Any]] = [{"name": "orders", "label": "", "value": figures.orders}]
    rows += [{"name": "cases", "label": s, "value": n} for s, n in figures.cases.items() if n]
    for stage in figures.stages:
        rows.append({"name": "stage_seconds", "label": stage.stage, "value": stage.total_seconds})
        rows.append({"name": "stage_count", "label": stage.stage, "value": stage.count})
    auto = figures.auto_approval_ratio * sum(figures.cases.values())
    rows.append({"name": "auto_approved", "label": "", "value": int(auto)})
    seconds = figures.refund_seconds
    for bound, count in seconds.at_most.items():
        rows.append({"name": "refund_seconds_le", "label": str(bound), "value": count})
    rows.append({"name": "refund_seconds_sum", "label": "", "value": seconds.total_seconds})
    rows.append({"name": "refund_seconds_count", "label": "", "value": seconds.count})
    for c in figures.clawbacks:
        rows.append({"name": "clawback", "label": f"{c.currency}:{c.kind}", "value": c.total})
    for reason, n in conn.execute(
        select(refunds.c.reason, func.count()).group_by(refunds.c.reason)
    ):
        rows.append({"name": "refunds_by_reason", "label": str(reason), "value": int(n)})
    for merchant, n in figures.refunds_by_merchant.items():
        rows.append({"name": "refunds_by_merchant", "label": merchant, "value": n})
    conn.execute(insert(metric_counters), rows)


def counted_figures(conn: Connection) -> Figures:
    """The figures from the counters (call ``fold`` first in the same transaction to include
    the latest events)."""
    values: dict[_Key, int] = {
        (str(name), str(label)): int(value)
        for name, label, value in conn.execute(
            select(metric_counters.c.name, metric_counters.c.label, metric_counters.c.value)
        )
    }

    def named(name: str) -> dict[str, int]:
        return {label: v for (n, label), v in sorted(values.items()) if n == name}

    cases = named("cases")
    total_cases = sum(cases.values())
    orders = values.get(("orders", ""), 0)
    stage_count = named("stage_count")
    clawbacks = []
    for label, total in named("clawback").items():
        currency, kind = label.split(":", 1)
        clawbacks.append(Clawback(kind=kind, currency=currency, total=total))
    auto = values.get(("auto_approved", ""), 0)
    le = named("refund_seconds_le")
    return Figures(
        cases={state.value: cases.get(state.value, 0) for state in CaseState},
        refund_seconds=RefundSeconds(
            at_most={bound: le.get(str(bound), 0) for bound in BUCKETS},
            total_seconds=values.get(("refund_seconds_sum", ""), 0),
            count=values.get(("refund_seconds_count", ""), 0),
        ),
        stages=tuple(
            StageSeconds(stage, total, stage_count.get(stage, 0))
            for stage, total in named("stage_seconds").items()
        ),
        auto_approval_ratio=Fraction(auto, total_cases) if total_cases else Fraction(0),
        clawbacks=tuple(sorted(clawbacks, key=lambda c: (c.kind, c.currency))),
        orders=orders,
        refund_rate={
            reason: Fraction(n, orders) if orders else Fraction(0)
            for reason, n in named("refunds_by_reason").items()
        },
        refunds_by_merchant=named("refunds_by_merchant"),
    )


def metrics_figures(engine: Engine, actor: Actor) -> Figures:
    """The figures for an admin: the events since the last scrape folded in, then the
    counters read, in one transaction."""
    access.require(actor, "metrics.read")
    with UnitOfWork(engine) as uow:
        fold(uow.conn)
        figures = counted_figures(uow.conn)
        uow.commit()
    return figures
