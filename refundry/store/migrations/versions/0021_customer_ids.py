"""customer_id on every table that grows with traffic (issue #15 point 5, docs/scaling.md)

Each of these tables was found through its order, case or refund; it now carries its
customer's id itself, written by the use case that writes the row (which knows it), so that a
row can be placed by its customer (the distribution column of docs/scaling.md) without a join.
Rows already there are backfilled from their owner:

* ``order_lines``, ``order_tenders``, ``order_adjustments``, ``order_entitlements``,
  ``refunds``, ``refund_tenders``, ``refund_reversals``, ``case_units``: the order's customer;
* ``refund_effects``, ``gateway_calls``: the refund's order's; ``case_events``, ``case_notes``,
  ``shipments``: the case's; ``shipment_events``: the shipment's case's.
  Every such row has its owner (a NOT NULL reference): the column is NOT NULL.
* ``ledger_postings``: the journal's customer, on both legs (the shop's counter-account leg
  too), else its order's;
* ``outbox``: the payload's ``customer_id``, else its order's, case's or refund's;
  ``notification_deliveries``: its outbox message's; ``webhook_events``: the body's
  ``data.customer_id``, else its order's or case's; ``idempotency_keys``: its answer's refund's.
  These may belong to no customer (a system act's message, a journal of the shop alone): the
  column is nullable.

The correlated subqueries run on SQLite and PostgreSQL alike; JSON is read with each one's own
functions (``json_extract``; ``::jsonb #>>``).

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-08 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

_ORDER = "(SELECT o.customer_id FROM orders o WHERE o.id = {t}.order_id)"
_CASE = "(SELECT c.customer_id FROM cases c WHERE c.id = {t}.case_id)"
_REFUND = (
    "(SELECT o.customer_id FROM refunds r JOIN orders o ON o.id = r.order_id "
    "WHERE r.id = {t}.refund_id)"
)

# table → how its rows find their customer (NOT NULL: every row has one)
OWNED: dict[str, str] = {
    "order_lines": _ORDER,
    "order_tenders": _ORDER,
    "order_adjustments": _ORDER,
    "order_entitlements": _ORDER,
    "refunds": _ORDER,
    "refund_tenders": _ORDER,
    "refund_reversals": _ORDER,
    "case_units": _ORDER,
    "refund_effects": _REFUND,
    "gateway_calls": _REFUND,
    "case_events": _CASE,
    "case_notes": _CASE,
    "shipments": _CASE,
    "shipment_events": (
        "(SELECT c.customer_id FROM shipments s JOIN cases c ON c.id = s.case_id "
        "WHERE s.id = {t}.shipment_id)"
    ),
}
# tables whose rows may belong to no customer (nullable), in the order they are backfilled
# (notification_deliveries reads the outbox's)
MAYBE_OWNED = (
    "ledger_postings",
    "outbox",
    "notification_deliveries",
    "webhook_events",
    "idempotency_keys",
)
INDEXED = {"refunds": ("ix_refunds_customer", ["customer_id", "created_at"])}


def _json(column: str, *path: str) -> str:
    """SQL for the text at ``path`` in the JSON text ``column`` (NULL when absent)."""
    if op.get_bind().dialect.name == "postgresql":
        return f"({column}::jsonb #>> '{{{','.join(path)}}}')"
    return f"json_extract({column}, '$.{'.'.join(path)}')"


def _first_of(table: str, *sources: str) -> None:
    """Fill ``table.customer_id`` from the first source that names a customer."""
    for source in sources:
        op.execute(sa.text(f"UPDATE {table} SET customer_id = {source} WHERE customer_id IS NULL"))


def _backfill_maybe_owned() -> None:
    by_key = "(SELECT m.customer_id FROM outbox m WHERE m.key = {t}.key)"
    journal = (
        "(SELECT MIN(a.customer_id) FROM ledger_postings p JOIN ledger_accounts a "
        "ON a.id = p.account_id WHERE p.journal_id = ledger_postings.journal_id)"
    )
    _first_of("ledger_postings", journal, _ORDER.format(t="ledger_postings"))
    payload = _json("outbox.payload", "customer_id")
    _first_of("outbox", payload, *_by_json("outbox.payload"))
    _first_of("notification_deliveries", by_key.format(t="notification_deliveries"))
    _first_of(
        "webhook_events",
        _json("webhook_events.body", "data", "customer_id"),
        *_by_json("webhook_events.body", "data"),
    )
    refund = _json("idempotency_keys.response", "refund_id")
    _first_of(
        "idempotency_keys",
        "(SELECT o.customer_id FROM refunds r JOIN orders o ON o.id = r.order_id "
        f"WHERE r.id = {refund})",
    )


def _by_json(column: str, *prefix: str) -> tuple[str, ...]:
    """The owner lookups by the order, case and refund ids a JSON document names."""
    order, case, refund = (_json(column, *prefix, k) for k in ("order_id", "case_id", "refund_id"))
    return (
        f"(SELECT o.customer_id FROM orders o WHERE o.id = {order})",
        f"(SELECT c.customer_id FROM cases c WHERE c.id = {case})",
        f"(SELECT o.customer_id FROM refunds r JOIN orders o ON o.id = r.order_id "
        f"WHERE r.id = {refund})",
    )


def upgrade() -> None:
    for table in (*OWNED, *MAYBE_OWNED):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("customer_id", sa.String(length=64), nullable=True))
    for table, source in OWNED.items():
        op.execute(sa.text(f"UPDATE {table} SET customer_id = {source.format(t=table)}"))
    _backfill_maybe_owned()
    for table in OWNED:
        with op.batch_alter_table(table) as batch:
            batch.alter_column("customer_id", existing_type=sa.String(length=64), nullable=False)
    for table, (name, columns) in INDEXED.items():
        op.create_index(name, table, columns)


def downgrade() -> None:
    for table, (name, _columns) in INDEXED.items():
        op.drop_index(name, table_name=table)
    for table in (*OWNED, *MAYBE_OWNED):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("customer_id")
