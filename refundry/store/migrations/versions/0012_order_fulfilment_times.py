"""orders: shipped_at, delivered_at, completed_at, cancelled_at (the shop's status updates);
delivered_at is filled from the ingested documents that carry it

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 00:00:00
"""

from __future__ import annotations

import json
from datetime import datetime

import sqlalchemy as sa
from alembic import op

from refundry.store.types import UTCDateTime

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

COLUMNS = ("shipped_at", "delivered_at", "completed_at", "cancelled_at")


def upgrade() -> None:
    for name in COLUMNS:
        op.add_column("orders", sa.Column(name, UTCDateTime(timezone=True)))
    orders = sa.table(
        "orders",
        sa.column("id", sa.String()),
        sa.column("document", sa.Text()),
        sa.column("delivered_at", UTCDateTime(timezone=True)),
    )
    conn = op.get_bind()
    for order_id, document in conn.execute(sa.select(orders.c.id, orders.c.document)).all():
        delivered = json.loads(document).get("delivered_at")
        if delivered:
            conn.execute(
                orders.update()
                .where(orders.c.id == order_id)
                .values(delivered_at=datetime.fromisoformat(delivered))
            )


def downgrade() -> None:
    # In place (SQLite 3.35+, PostgreSQL): batch mode would copy the orders table, which other
    # tables' foreign keys refuse.
    for name in reversed(COLUMNS):
        op.execute(f"ALTER TABLE orders DROP COLUMN {name}")
