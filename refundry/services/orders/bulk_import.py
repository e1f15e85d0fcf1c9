"""`refundry import`: ingest JSON lines in batches, keep the good rows, report the bad ones.

Each line is ingested inside a SAVEPOINT of a batch transaction, so one bad line rolls back
alone and a batch costs one commit (one fsync) instead of one per order.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from refundry.domain.errors import RefundryError
from refundry.domain.policy import Policy
from refundry.services.orders.ingest import ingest_order
from refundry.services.uow import UnitOfWork

__all__ = ["BadLine", "ImportReport", "import_lines"]


@dataclass(frozen=True, slots=True)
class BadLine:
    line: int
    code: str
    message: str


@dataclass(slots=True)
class ImportReport:
    ingested: int = 0
    already_present: int = 0
    bad: list[BadLine] = field(default_factory=list)


def import_lines(
    engine: Engine,
    lines: Iterable[str],
    *,
    policy: Policy,
    now: datetime,
    batch: int = 500,
    on_line: Callable[[int], None] | None = None,
) -> ImportReport:
    report = ImportReport()
    pending: list[tuple[int, str]] = []

    def flush() -> None:
        with UnitOfWork(engine) as uow:
            for number, text in pending:
                savepoint = uow.conn.begin_nested()
                try:
                    result = ingest_order(uow.conn, json.loads(text), policy=policy, now=now)
                except json.JSONDecodeError as exc:
                    savepoint.rollback()
                    report.bad.append(
                        BadLine(
                            number,
                            "input.not_json",
                            f"not valid JSON at column {exc.colno}: {exc.msg}",
                        )
                    )
                    continue
                except RefundryError as exc:
                    savepoint.rollback()
                    where = f" at {exc.field}" if exc.field else ""
                    report.bad.append(BadLine(number, exc.code, f"{exc.message}{where}"))
                    continue
                except IntegrityError as exc:
                    # e.g. a wallet tender larger than the wallet's opening balance
                    savepoint.rollback()
                    first = str(exc.orig).splitlines()[0] if exc.orig else str(exc)
                    report.bad.append(BadLine(number, "store.constraint_violated", first))
                    continue
                savepoint.commit()
                if result.created:
                    report.ingested += 1
                else:
                    report.already_present += 1
            uow.commit()
        pending.clear()

    for number, text in enumerate(lines, start=1):
        if text.strip():
            pending.append((number, text))
        if len(pending) >= batch:
            flush()
        if on_line is not None:
            on_line(number)
    if pending:
        flush()
    return report
