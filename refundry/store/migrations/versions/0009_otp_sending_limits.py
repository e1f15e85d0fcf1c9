"""one-time codes: the number each was texted to, for the per-customer and per-number limits

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 00:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("otp_codes") as batch:
        batch.add_column(sa.Column("phone", sa.String(length=32), nullable=True))
    op.create_index("ix_otp_codes_customer_sent", "otp_codes", ["customer_id", "created_at"])
    op.create_index("ix_otp_codes_phone_sent", "otp_codes", ["phone", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_otp_codes_phone_sent", table_name="otp_codes")
    op.drop_index("ix_otp_codes_customer_sent", table_name="otp_codes")
    with op.batch_alter_table("otp_codes") as batch:
        batch.drop_column("phone")
