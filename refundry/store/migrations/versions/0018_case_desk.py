"""the agents' desk on a case: who holds it, internal notes and debt records; the Location of
an Idempotency-Key's first answer

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07 03:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from refundry.store.types import UTCDateTime

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("cases", sa.Column("assignee", sa.String(length=140), nullable=True))
    op.add_column("api_idempotency", sa.Column("location", sa.String(length=2000), nullable=True))
    op.create_table(
        "case_notes",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("case_id", sa.String(length=64), sa.ForeignKey("cases.id"), nullable=False),
        sa.Column("at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("text", sa.Text(), nullable=False, server_default=""),
        sa.Column("data", sa.Text(), nullable=False, server_default="{}"),
    )
    op.create_index("ix_case_notes_case", "case_notes", ["case_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_case_notes_case", table_name="case_notes")
    op.drop_table("case_notes")
    # In place (SQLite 3.35+, PostgreSQL): batch mode would copy the tables, which other
    # tables' foreign keys refuse.
    op.execute("ALTER TABLE api_idempotency DROP COLUMN location")
    op.execute("ALTER TABLE cases DROP COLUMN assignee")
