"""customers: the shop's account creation time; customer_adjustments (points / wallet posted
by the shop)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 23:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from refundry.store.types import UTCDateTime

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("customers", sa.Column("account_created_at", UTCDateTime(timezone=True)))
    op.create_table(
        "customer_adjustments",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3)),
        sa.Column("source_type", sa.String(length=32), nullable=False),
        sa.Column("source_id", sa.String(length=64), nullable=False),
        sa.Column("memo", sa.String(length=200), server_default="", nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=False),
        sa.Column("request_hash", sa.String(length=80), nullable=False),
        sa.Column("balance_after", sa.BigInteger(), nullable=False),
        sa.Column("actor", sa.String(length=140), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_customer_adjustments_customer_id_customers"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customer_adjustments")),
        sa.UniqueConstraint("customer_id", "idempotency_key", name="uq_customer_adjustments_key"),
    )


def downgrade() -> None:
    op.drop_table("customer_adjustments")
    # Not batch mode: on SQLite that copies the customers table, which other tables' foreign
    # keys refuse; SQLite 3.35+ and PostgreSQL both drop a column in place.
    op.execute("ALTER TABLE customers DROP COLUMN account_created_at")
