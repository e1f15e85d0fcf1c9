"""Writing to the outbox: messages committed with the change that caused them, sent after."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert

from refundry.services.batch import RowBatch
from refundry.store.tables import outbox

__all__ = ["enqueue"]

_INSERT = insert(outbox)  # built once: its cache key and compiled form are reused


def enqueue(
    conn: Connection,
    *,
    topic: str,
    key: str,
    payload: dict[str, Any],
    at: datetime,
    batch: RowBatch | None = None,
) -> None:
    """Queue one message; ``key`` is unique and is the receiver's idempotency key. With
    ``batch`` the row is written at the batch's flush, in the same transaction."""
    row = {
        "topic": topic,
        "key": key,
        "status": "pending",
        "attempts": 0,
        "available_at": at,
        "created_at": at,
        "payload": json.dumps(payload, ensure_ascii=False, sort_keys=True),
    }
    if batch is not None:
        batch.messages.append(row)
    else:
        conn.execute(_INSERT, row)
