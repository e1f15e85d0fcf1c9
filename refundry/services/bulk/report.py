"""The CSV report of a bulk refund job: one row per order with its outcome."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import TextIO

from sqlalchemy import Engine, select

from refundry.services.uow import UnitOfWork
from refundry.store.tables import bulk_job_orders

__all__ = ["COLUMNS", "outcome_rows", "write_report"]

COLUMNS = (
    "order_id",
    "customer_id",
    "state",
    "code",
    "message",
    "refund_id",
    "total",
    "currency",
    "held_by_case",
)
_PAGE = 5_000


def outcome_rows(engine: Engine, job_id: str) -> Iterator[tuple[object, ...]]:
    """The job's orders in the order they were selected, a page per read-only transaction."""
    jo = bulk_job_orders.c
    after = -1
    while True:
        with UnitOfWork(engine, readonly=True) as uow:
            page = uow.conn.execute(
                select(jo.position, *(jo[c] for c in COLUMNS))
                .where((jo.job_id == job_id) & (jo.position > after))
                .order_by(jo.position)
                .limit(_PAGE)
            ).all()
        if not page:
            return
        for row in page:
            yield tuple(row)[1:]
        after = page[-1].position


def write_report(engine: Engine, job_id: str, out: TextIO) -> int:
    """Write the report (a header, then a row per order); returns the rows written. Money is
    in minor units, as everywhere in refundry."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    n = 0
    for row in outcome_rows(engine, job_id):
        writer.writerow(["" if v is None else v for v in row])
        n += 1
    return n
