"""outbox: the relay's claim walks the pending messages in written order — the gateway
refunds by (status, topic, id), the other messages by (status, id, available_at) — instead of
reading every due message through (status, available_at) and sorting them: with a 100,000-
refund recall queued (900,000 messages) each claim read them all, and the relay slowed from
~400 to ~85 refunds/s on SQLite

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-08 01:45:00
"""

from __future__ import annotations

from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_outbox_claim", "outbox", ["status", "topic", "id"])
    op.create_index("ix_outbox_pending", "outbox", ["status", "id", "available_at"])
    op.drop_index("ix_outbox_due", table_name="outbox")


def downgrade() -> None:
    op.create_index("ix_outbox_due", "outbox", ["status", "available_at"])
    op.drop_index("ix_outbox_pending", table_name="outbox")
    op.drop_index("ix_outbox_claim", table_name="outbox")
