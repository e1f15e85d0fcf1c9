"""Rows a transaction appends — refunds, their tenders and effects, ledger postings, outbox
messages — written together at the end.

One multi-row INSERT per table instead of one per row: a refund appends a dozen of them, and on
the apply path the per-statement cost is most of the time (bench/apply_bench.py). A bulk batch
keeps one RowBatch for all its refunds (services/bulk/jobs.py): a table's rows of 500 refunds
go in one statement.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, insert

from refundry.store.prepared import Prepared
from refundry.store.tables import ledger_postings, outbox, refund_effects, refund_tenders, refunds

__all__ = [
    "INSERT_MESSAGES",
    "INSERT_POSTINGS",
    "INSERT_REFUNDS",
    "INSERT_REFUND_EFFECTS",
    "INSERT_REFUND_TENDERS",
    "RowBatch",
]

# Built once: their cache keys and compiled forms are reused (also by ledger.post and
# outbox.enqueue when they write a row at once instead of through a batch).
INSERT_REFUNDS = Prepared(insert(refunds))
INSERT_REFUND_TENDERS = Prepared(insert(refund_tenders))
INSERT_REFUND_EFFECTS = Prepared(insert(refund_effects))
INSERT_POSTINGS = Prepared(insert(ledger_postings))
INSERT_MESSAGES = Prepared(insert(outbox))


@dataclass(slots=True)
class RowBatch:
    refunds: list[dict[str, Any]] = field(default_factory=list)
    tenders: list[dict[str, Any]] = field(default_factory=list)  # refund_tenders
    effects: list[dict[str, Any]] = field(default_factory=list)  # refund_effects
    postings: list[dict[str, Any]] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)

    def flush(self, conn: Connection) -> None:
        """Parents first: refund_tenders and refund_effects rows name their refund."""
        for rows, statement in (
            (self.refunds, INSERT_REFUNDS),
            (self.tenders, INSERT_REFUND_TENDERS),
            (self.effects, INSERT_REFUND_EFFECTS),
            (self.postings, INSERT_POSTINGS),
            (self.messages, INSERT_MESSAGES),
        ):
            if rows:
                statement.run_many(conn, rows)
                rows.clear()
