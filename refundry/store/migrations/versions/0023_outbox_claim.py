"""outbox: the relay's claim walks the pending messages in written order through partial indexes
— the pending gateway refunds (``ix_outbox_money``), every pending message
(``ix_outbox_pending``) — instead of reading every due message through (status, available_at)
and sorting them: with a 100,000-refund recall queued (900,000 messages) each claim read them
all, and the relay slowed from ~400 to ~85 refunds/s on SQLite. A (status, topic, id) index
was not enough on PostgreSQL: its planner walked the primary key instead (the pending rows
are the newest, which its statistics cannot tell), 212,594 rows for 100 gateway refunds,
94 ms a claim. Dead letters per topic (/metrics) get ``ix_outbox_dead``. The done messages,
nearly all of the table, are in none of them.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-08 01:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None

MONEY = "status = 'pending' AND topic = 'gateway.refund'"
PENDING = "status = 'pending'"
DEAD = "status = 'dead'"


def _partial(name: str, columns: list[str], where: str) -> None:
    op.create_index(
        name,
        "outbox",
        columns,
        sqlite_where=sa.text(where),
        postgresql_where=sa.text(where),
    )


def upgrade() -> None:
    _partial("ix_outbox_money", ["id"], MONEY)
    _partial("ix_outbox_pending", ["id", "available_at"], PENDING)
    _partial("ix_outbox_dead", ["topic"], DEAD)
    op.drop_index("ix_outbox_due", table_name="outbox")


def downgrade() -> None:
    op.create_index("ix_outbox_due", "outbox", ["status", "available_at"])
    for name in ("ix_outbox_dead", "ix_outbox_pending", "ix_outbox_money"):
        op.drop_index(name, table_name="outbox")
