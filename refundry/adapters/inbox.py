"""The in-app inbox channel: notifications land in the customer's inbox table, once per key."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, insert, select
from sqlalchemy.exc import IntegrityError

from refundry.store.tables import inbox_messages

__all__ = ["InboxNotifier"]


class InboxNotifier:
    """Writes each notification to ``inbox_messages``; a repeated key is a no-op."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def send(self, message: dict[str, Any], *, key: str) -> None:
        with self._engine.begin() as conn:
            if conn.execute(select(inbox_messages.c.id).where(inbox_messages.c.key == key)).first():
                return
            try:
                conn.execute(
                    insert(inbox_messages).values(
                        key=key,
                        customer_id=message["customer_id"],
                        order_id=message.get("order_id"),
                        refund_id=message.get("refund_id"),
                        template=message["template"],
                        locale=message.get("locale", "zh-CN"),
                        created_at=datetime.now(UTC),
                        params=json.dumps(
                            message.get("params", {}), ensure_ascii=False, sort_keys=True
                        ),
                    )
                )
            except IntegrityError:
                return  # a concurrent delivery of the same key won
