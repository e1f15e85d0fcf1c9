"""order_entitlements: the coupons and entitlements each order used

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25 01:00:00

Backfills the table from the stored order documents (coupon and entitlement adjustments, and
benefits), exactly as ingest records them for new orders.
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def _used(document: str) -> set[str]:
    doc = json.loads(document)
    used = {
        a["source"]["id"]
        for a in doc.get("adjustments", [])
        if a.get("source", {}).get("type") in ("coupon", "entitlement")
    }
    used.update(b["id"] for b in doc.get("benefits", []))
    return used


def upgrade() -> None:
    table = op.create_table(
        "order_entitlements",
        sa.Column("order_id", sa.String(length=64), nullable=False),
        sa.Column("entitlement_id", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["entitlement_id"],
            ["entitlements.id"],
            name=op.f("fk_order_entitlements_entitlement_id_entitlements"),
        ),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.id"], name=op.f("fk_order_entitlements_order_id_orders")
        ),
        sa.PrimaryKeyConstraint("order_id", "entitlement_id", name=op.f("pk_order_entitlements")),
    )
    conn = op.get_bind()
    rows: list[dict[str, str]] = []
    for order_id, document in conn.execute(sa.text("SELECT id, document FROM orders")):
        rows.extend(
            {"order_id": order_id, "entitlement_id": item} for item in sorted(_used(document))
        )
        if len(rows) >= 5000:
            op.bulk_insert(table, rows)
            rows = []
    if rows:
        op.bulk_insert(table, rows)


def downgrade() -> None:
    op.drop_table("order_entitlements")
