"""audit_log: one chain per customer; audit_heads: a head per chain; audit_checkpoints

The one chain written so far becomes the chain "~legacy", entries and hashes untouched: it
verifies exactly as before (signed without a chain name; unkeyed up to
``audit_unkeyed_through``) and its head row moves to ``audit_heads``. New entries go to their
customer's chain, or to "~system" (services/audit/chain.py, docs/audit.md).

The downgrade drops the entries of the other chains, as every downgrade drops what its upgrade
added: the one-chain form cannot hold them without re-signing every entry, which the database
never can (it has no key). Keep a backup from before a downgrade.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07 06:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from refundry.store.types import UTCDateTime

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

LEGACY = "~legacy"


def upgrade() -> None:
    op.create_table(
        "audit_heads",
        sa.Column("chain", sa.String(length=80), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("chain", name=op.f("pk_audit_heads")),
    )
    op.execute(
        sa.text(
            "INSERT INTO audit_heads (chain, seq, hash) SELECT :legacy, seq, hash FROM audit_head"
        ).bindparams(legacy=LEGACY)
    )
    op.drop_table("audit_head")
    with op.batch_alter_table("audit_log") as batch:
        batch.add_column(sa.Column("chain", sa.String(length=80), nullable=True))
    op.execute(sa.text("UPDATE audit_log SET chain = :legacy").bindparams(legacy=LEGACY))
    with op.batch_alter_table("audit_log", recreate="always") as batch:
        batch.alter_column("chain", existing_type=sa.String(length=80), nullable=False)
        batch.drop_constraint("pk_audit_log", type_="primary")
        batch.create_primary_key("pk_audit_log", ["chain", "seq"])
    op.create_table(
        "audit_checkpoints",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("heads", sa.Text(), nullable=False),
        sa.Column("prev_digest", sa.String(length=64), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_checkpoints")),
    )


def downgrade() -> None:
    op.execute(sa.text("DELETE FROM audit_log WHERE chain <> :legacy").bindparams(legacy=LEGACY))
    op.drop_table("audit_checkpoints")
    with op.batch_alter_table("audit_log", recreate="always") as batch:
        batch.drop_constraint("pk_audit_log", type_="primary")
        batch.create_primary_key("pk_audit_log", ["seq"])
        batch.drop_column("chain")
    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_audit_head_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_head")),
    )
    op.execute(
        sa.text(
            "INSERT INTO audit_head (id, seq, hash) SELECT 1, seq, hash FROM audit_heads "
            "WHERE chain = :legacy"
        ).bindparams(legacy=LEGACY)
    )
    op.drop_table("audit_heads")
