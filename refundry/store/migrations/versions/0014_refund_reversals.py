"""refund reversals: what a 极速退款 paid for units the inspection refused, undone

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 03:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from refundry.store.types import UTCDateTime

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "refund_reversals",
        sa.Column("refund_id", sa.String(length=64), sa.ForeignKey("refunds.id"), primary_key=True),
        sa.Column("order_id", sa.String(length=64), sa.ForeignKey("orders.id"), nullable=False),
        sa.Column("case_id", sa.String(length=64), nullable=True),
        sa.Column("accepted", sa.Text(), nullable=False),
        sa.Column("refused", sa.Text(), nullable=False),
        sa.Column("plan", sa.Text(), nullable=True),
        sa.Column("history", sa.Text(), nullable=False),
        sa.Column("reversal", sa.Text(), nullable=False),
        sa.Column("debt", sa.BigInteger(), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_refund_reversals_order", "refund_reversals", ["order_id"])


def downgrade() -> None:
    op.drop_index("ix_refund_reversals_order", table_name="refund_reversals")
    op.drop_table("refund_reversals")
