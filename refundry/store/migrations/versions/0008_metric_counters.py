"""metric counters: /metrics' business figures maintained from the outbox's domain events

The counters start from what is stored now: this migration computes every figure once from
refunds, case_events, cases and orders (the scan /metrics used to run at each scrape), and
marks every message already in the outbox as counted; from here on each new domain event is
folded in once (services/operations/metric_counters.py). Run with the service stopped, as
every upgrade (``refundry serve`` refuses an older schema).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "metric_counters",
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("value", sa.BigInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("name", "label", name=op.f("pk_metric_counters")),
    )
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("counted", sa.Boolean(), server_default="1", nullable=False))
    op.create_index(
        "ix_outbox_uncounted",
        "outbox",
        ["id"],
        sqlite_where=sa.text("NOT counted"),
        postgresql_where=sa.text("NOT counted"),
    )
    # The figures as stored now (one scan, here instead of at every scrape).
    from refundry.services.operations.metric_counters import rebuild

    rebuild(op.get_bind())


def downgrade() -> None:
    op.drop_index("ix_outbox_uncounted", table_name="outbox")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("counted")
    op.drop_table("metric_counters")
