"""bulk refunds: a job and the outcome of each order it selected

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07 03:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from refundry.store.types import UTCDateTime

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bulk_jobs",
        sa.Column("id", sa.String(length=64), primary_key=True),
        sa.Column("selector_hash", sa.String(length=80), nullable=False),
        sa.Column("selector", sa.Text(), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("policy", sa.Text(), nullable=False),
        sa.Column("rate", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("done", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("refunded", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("refused", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("manual_review", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("skipped", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint("done >= 0 AND done <= total", name="done"),
    )
    op.create_index("ix_bulk_jobs_selector", "bulk_jobs", ["selector_hash"])
    op.create_table(
        "bulk_job_orders",
        sa.Column("job_id", sa.String(length=64), sa.ForeignKey("bulk_jobs.id"), primary_key=True),
        sa.Column("order_id", sa.String(length=64), primary_key=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("code", sa.String(length=80), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("refund_id", sa.String(length=64), nullable=True),
        sa.Column("total", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("held_by_case", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("updated_at", UTCDateTime(timezone=True), nullable=True),
    )
    op.create_index(
        "ix_bulk_job_orders_position", "bulk_job_orders", ["job_id", "state", "position"]
    )


def downgrade() -> None:
    op.drop_index("ix_bulk_job_orders_position", table_name="bulk_job_orders")
    op.drop_table("bulk_job_orders")
    op.drop_index("ix_bulk_jobs_selector", table_name="bulk_jobs")
    op.drop_table("bulk_jobs")
