"""The in-app inbox channel: notifications land in the customer's inbox table, once per key."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.dialects import postgresql, sqlite

from refundry.store.tables import inbox_messages

__all__ = ["InboxNotifier"]


class InboxNotifier:
    """Writes each notification to ``inbox_messages``; a repeated key is a no-op."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def send(self, message: dict[str, Any], *, key: str) -> None:
        self.send_many([(message, key)])

    def send_many(self, messages: list[tuple[dict[str, Any], str]]) -> dict[str, Exception]:
        """Every (message, key) in one transaction; returns the failures by key (none: a
        message is a row, and a key written before is skipped)."""
        with self._engine.begin() as conn:
            self.write(conn, messages)
        return {}

    @staticmethod
    def write(conn: Connection, messages: list[tuple[dict[str, Any], str]]) -> None:
        """The messages' inbox rows, by one statement, in the caller's transaction (a key
        written before, by an earlier attempt or a concurrent one, is left as it is)."""
        if not messages:
            return
        now = datetime.now(UTC)
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        conn.execute(
            dialect.insert(inbox_messages).on_conflict_do_nothing(index_elements=["key"]),
            [
                {
                    "key": key,
                    "customer_id": message["customer_id"],
                    "order_id": message.get("order_id"),
                    "refund_id": message.get("refund_id"),
                    "template": message["template"],
                    "locale": message.get("locale", "zh-CN"),
                    "created_at": now,
                    "params": json.dumps(
                        message.get("params", {}), ensure_ascii=False, sort_keys=True
                    ),
                }
                for message, key in messages
            ],
        )
