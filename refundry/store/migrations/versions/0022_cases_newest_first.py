"""cases: an index on (created_at, id) for the newest-first case list (GET /v1/cases, the
desk's and a merchant's lists), which read and sorted every case per page without it

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-07 22:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_cases_created", "cases", ["created_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_cases_created", table_name="cases")
