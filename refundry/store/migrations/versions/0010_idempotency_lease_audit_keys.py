"""api_idempotency: a claim's token, lease and outcome; audit_log: the signing key's id

Rows claimed before this revision have no token and no lease: a retry with such a key takes it
over at once (their requests were served by a process that has since been upgraded away).
Audit entries written before it have no key id and keep verifying unkeyed, up to the setting
``audit_unkeyed_through`` (docs/audit.md: set it once to the last of them).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 23:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from refundry.store.types import UTCDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_idempotency") as batch:
        batch.add_column(sa.Column("token", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("lease_until", UTCDateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("outcome", sa.String(length=200), nullable=True))
    with op.batch_alter_table("audit_log") as batch:
        batch.add_column(sa.Column("key_id", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_column("key_id")
    with op.batch_alter_table("api_idempotency") as batch:
        batch.drop_column("outcome")
        batch.drop_column("lease_until")
        batch.drop_column("token")
