"""photos: the cases' photos (the customer's evidence, the inspection's), their bytes kept by
the photo storage under their SHA-256

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07 15:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from refundry.store.types import UTCDateTime

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "photos",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("case_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("content_type", sa.String(length=32), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=140), nullable=False),
        sa.CheckConstraint("kind IN ('customer', 'inspection')", name=op.f("ck_photos_kind")),
        sa.CheckConstraint("size > 0", name=op.f("ck_photos_size")),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name=op.f("fk_photos_case_id_cases")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_photos")),
    )
    op.create_index("ix_photos_case", "photos", ["case_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_photos_case", table_name="photos")
    op.drop_table("photos")
