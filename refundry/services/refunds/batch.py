"""Rows a transaction appends — ledger postings, outbox messages — written together at the end.

One multi-row INSERT per table instead of one per row: a refund appends a dozen of them, and on
the apply path the per-statement cost is most of the time (bench/apply_bench.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, insert

from refundry.store.prepared import Prepared
from refundry.store.tables import ledger_postings, outbox

__all__ = ["INSERT_MESSAGES", "INSERT_POSTINGS", "RowBatch"]

# Built once: their cache keys and compiled forms are reused (also by ledger.post and
# outbox.enqueue when they write a row at once instead of through a batch).
INSERT_POSTINGS = Prepared(insert(ledger_postings))
INSERT_MESSAGES = Prepared(insert(outbox))


@dataclass(slots=True)
class RowBatch:
    postings: list[dict[str, Any]] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)

    def flush(self, conn: Connection) -> None:
        if self.postings:
            INSERT_POSTINGS.run_many(conn, self.postings)
            self.postings.clear()
        if self.messages:
            INSERT_MESSAGES.run_many(conn, self.messages)
            self.messages.clear()
