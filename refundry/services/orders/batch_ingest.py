"""Ingesting a batch of new paid orders at once: the rows ``ingest_order`` would write for each,
one order after the other, written with one statement (``executemany``) per table.

The batch's reads are made once, up front (which customers, accounts, coupons, campaigns, spend
and quota rows, contacts exist), the orders are then followed one by one in Python — exactly the
decisions ``ingest_order`` makes, from the same row builders (services/orders/ingest.py) — and
the rows are written table by table: the stored state is the one the orders ingested one by one
in the batch's order leave (tests/services/test_bulk_import_batched.py compares them on both
databases). Audit entries are appended to each customer's chain in the batch's order, the heads
locked once (in chain order) for the batch.

The caller passes only orders that are not stored yet and are valid (bulk_import pre-validates
each line). A write the database refuses (a wallet paid beyond its balance, an id taken by
another row) raises ``IntegrityError``, as a refusal found in Python before writing raises
``BatchRefused``: the caller rolls the transaction back and ingests the batch line by line,
which names the line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, bindparam, insert, select, update

from refundry.domain.customer import CustomerSnapshot
from refundry.domain.order import Order
from refundry.services.audit.chain import AuditTrail
from refundry.services.orders.ingest import (
    adjustment_rows,
    campaign_counts,
    campaign_row,
    consumed,
    customer_row,
    ingested_entry,
    ingested_event,
    line_rows,
    movements,
    opened_entry,
    opening_moves,
    order_row,
    reward_rows,
    tender_rows,
)
from refundry.services.outbox.messages import enqueue
from refundry.services.refunds.batch import RowBatch
from refundry.services.refunds.ledger import account_id, shop_account_id
from refundry.store.prepared import Prepared
from refundry.store.tables import (
    campaign_quotas,
    campaign_rewards,
    campaign_spend,
    campaigns,
    customer_contacts,
    customers,
    entitlements,
    ledger_accounts,
    order_adjustments,
    order_entitlements,
    order_lines,
    order_tenders,
    orders,
)

__all__ = ["BatchRefused", "NewOrder", "ingest_new_orders"]


class BatchRefused(Exception):
    """A write of the batch would be refused by the database: ingest it line by line."""


@dataclass(frozen=True, slots=True)
class NewOrder:
    """A valid import line whose order is not stored yet, parsed."""

    order: Order
    document: Any
    digest: str
    opening: CustomerSnapshot | None
    contact: dict[str, Any] | None
    opened: datetime | None


_INSERT = {
    t.name: Prepared(insert(t))
    for t in (
        customers,
        customer_contacts,
        ledger_accounts,
        campaigns,
        orders,
        order_lines,
        order_adjustments,
        order_tenders,
        entitlements,
        order_entitlements,
        campaign_rewards,
        campaign_spend,
        campaign_quotas,
    )
}
_c = customer_contacts.c
_SET_CONTACT = Prepared(
    update(customer_contacts)
    .where(_c.customer_id == bindparam("b_id"))
    .values(phone=bindparam("b_phone"), email=bindparam("b_email"), channels=bindparam("b_ch"))
)
_SET_OPENED = Prepared(
    update(customers)
    .where(customers.c.id == bindparam("b_id"))
    .values(account_created_at=bindparam("b_at"))
)
_a = ledger_accounts.c
_MOVE = Prepared(
    update(ledger_accounts)
    .where(_a.id == bindparam("b_id"))
    .values(balance=_a.balance + bindparam("b_delta"))
)
_e = entitlements.c
_USE = Prepared(
    update(entitlements)
    .where(_e.id == bindparam("b_id"))
    .values(state="used", order_id=bindparam("b_order"), updated_at=bindparam("b_at"))
)
_ADD = {
    t.name: Prepared(
        update(t)
        .where((t.c.customer_id == bindparam("b_cid")) & (t.c.campaign_id == bindparam("b_camp")))
        .values({col: t.c[col] + bindparam("b_n")})
    )
    for t, col in ((campaign_spend, "spend"), (campaign_quotas, "used"))
}
_COUNTED = {campaign_spend.name: "spend", campaign_quotas.name: "used"}


def _present(conn: Connection, column: Any, values: set[str]) -> set[str]:
    """Those of ``values`` stored in ``column``."""
    if not values:
        return set()
    return {str(r[0]) for r in conn.execute(select(column).where(column.in_(sorted(values))))}


def ingest_new_orders(
    conn: Connection, batch: list[NewOrder], *, now: datetime, actor: str = "import"
) -> None:
    """Record the batch's orders in the caller's transaction, as ``ingest_order`` one after the
    other would. Raises ``BatchRefused`` or ``IntegrityError`` (the caller rolls back)."""
    cids = {n.order.customer_id for n in batch}
    known = _present(conn, customers.c.id, cids)
    held: set[str] = set()
    for n in batch:
        held |= {item_id for _cat, item_id, _amount in consumed(n.order)}
        if n.opening is not None:
            held |= set(n.opening.coupons) | set(n.opening.entitlements)
    ent_stored = _present(conn, _e.id, held)
    reward_ids = {r.id for n in batch if n.opening for r in n.opening.campaign_rewards}
    reward_ids |= {r.id for n in batch for r in n.order.rewards}
    rewards_known = _present(conn, campaign_rewards.c.id, reward_ids)
    camps_known = _present(conn, campaigns.c.id, {c.id for n in batch for c in n.order.campaigns})
    contacts_stored = _present(
        conn, _c.customer_id, {n.order.customer_id for n in batch if n.contact is not None}
    )
    counted_stored: set[tuple[str, str, str]] = set()
    if known:
        for table in (campaign_spend, campaign_quotas):
            found = conn.execute(
                select(table.c.customer_id, table.c.campaign_id).where(
                    table.c.customer_id.in_(sorted(known))
                )
            )
            counted_stored |= {(table.name, str(r[0]), str(r[1])) for r in found}

    new_customers: dict[str, dict[str, Any]] = {}
    set_opened: dict[str, datetime] = {}
    new_contacts: dict[str, dict[str, Any]] = {}
    set_contacts: dict[str, dict[str, Any]] = {}
    deltas: dict[str, int] = {}
    kinds: dict[str, tuple[str, str]] = {}
    new_ents: dict[str, dict[str, Any]] = {}
    use_stored: dict[str, dict[str, Any]] = {}
    new_rewards: list[dict[str, Any]] = []
    new_camps: dict[str, dict[str, Any]] = {}
    new_counts: dict[tuple[str, str, str], int] = {}
    add_counts: dict[tuple[str, str, str], int] = {}
    rows: dict[str, list[dict[str, Any]]] = {
        t.name: [] for t in (orders, order_lines, order_adjustments, order_tenders)
    }
    order_ents: list[dict[str, Any]] = []
    out = RowBatch()
    trail = AuditTrail(actor=actor, at=now, customer_id=None)

    postings = out.postings
    shop = {kind: shop_account_id(kind) for kind in ("points", "wallet", "growth")}

    def move(journal: str, kind: str, cid: str, amount: int, memo: str, oid: str | None) -> None:
        """ledger.post's two postings (the account moved at the end, by the batch's total)."""
        if not amount:
            return
        acc = account_id(kind, cid)
        deltas[acc] = deltas.get(acc, 0) + amount
        kinds[acc] = (kind, cid)
        postings.append(
            {
                "journal_id": journal,
                "customer_id": cid,
                "account_id": acc,
                "amount": amount,
                "order_id": oid,
                "refund_id": None,
                "memo": memo,
                "created_at": now,
            }
        )
        postings.append(
            {
                "journal_id": journal,
                "customer_id": cid,  # the journal's customer: both legs on the customer's node
                "account_id": shop[kind],
                "amount": -amount,
                "order_id": oid,
                "refund_id": None,
                "memo": memo,
                "created_at": now,
            }
        )

    def count(table: str, cid: str, campaign_id: str, amount: int, *, opening: bool) -> None:
        key = (table, cid, campaign_id)
        if key in new_counts:
            if opening:  # the opening's INSERT would meet the row: let the database say so
                raise BatchRefused(key)
            new_counts[key] += amount
        elif key in counted_stored:
            if opening:
                raise BatchRefused(key)
            add_counts[key] = add_counts.get(key, 0) + amount
        else:
            new_counts[key] = amount

    for n in batch:
        order, cid = n.order, n.order.customer_id
        trail.customer_id = cid  # the entries below go to its chain
        if cid not in known and cid not in new_customers:
            snap = n.opening or CustomerSnapshot(customer_id=cid)
            new_customers[cid] = {**customer_row(cid, snap, now), "account_created_at": None}
            for kind, amount in opening_moves(snap):
                move(f"opening:{cid}", kind, cid, amount, "opening balance", None)
            for campaign_id, spend in snap.campaign_spend.items():
                count(campaign_spend.name, cid, campaign_id, spend, opening=True)
            for campaign_id, taken in snap.quotas_used.items():
                count(campaign_quotas.name, cid, campaign_id, taken, opening=True)
            trail.record("customer.opened", **opened_entry(snap))
        if n.opening is not None:
            for category, items in (
                ("coupon", n.opening.coupons),
                ("entitlement", n.opening.entitlements),
            ):
                for item in items.values():
                    if item.id in ent_stored or item.id in new_ents:
                        continue
                    new_ents[item.id] = {
                        "id": item.id,
                        "customer_id": cid,
                        "category": category,
                        "kind": item.kind,
                        "value": item.value,
                        "valid_until": item.valid_until,
                        "state": "available",
                        "order_id": None,
                        "updated_at": now,
                    }
            for reward in n.opening.campaign_rewards:
                if reward.id in rewards_known:
                    continue
                rewards_known.add(reward.id)
                new_rewards.append(
                    {
                        "id": reward.id,
                        "customer_id": cid,
                        "campaign_id": reward.campaign_id,
                        "order_id": None,
                        "threshold": reward.threshold,
                        "amount": reward.amount,
                        "reduced": 0,
                        "status": reward.status,
                    }
                )
        if n.contact is not None:
            values = {**n.contact, "channels": _json_list(n.contact["channels"])}
            if cid in new_contacts:
                new_contacts[cid].update(values)
            elif cid in contacts_stored:
                set_contacts[cid] = values
            else:
                new_contacts[cid] = {"customer_id": cid, **values}
        if n.opened is not None:
            if cid in new_customers:
                new_customers[cid]["account_created_at"] = n.opened
            else:
                set_opened[cid] = n.opened
        rows[orders.name].append(order_row(order, n.document, n.digest, now))
        rows[order_lines.name].extend(line_rows(order))
        rows[order_adjustments.name].extend(adjustment_rows(order))
        rows[order_tenders.name].extend(tender_rows(order))
        for c in order.campaigns:
            if c.id not in camps_known and c.id not in new_camps:
                new_camps[c.id] = {
                    "id": c.id,
                    "kind": c.kind.value,
                    "high_value": c.high_value,
                    "ends_at": c.ends_at,
                    **campaign_row(n.document, c.id),
                }
        for row in reward_rows(order):
            if row["id"] in rewards_known:  # the database refuses the second
                raise BatchRefused(row["id"])
            rewards_known.add(row["id"])
            new_rewards.append(row)
        used = consumed(order)
        for category, item_id, amount in used:
            if item_id in new_ents:
                new_ents[item_id].update(state="used", order_id=order.id, updated_at=now)
            elif item_id in ent_stored:
                use_stored[item_id] = {"b_id": item_id, "b_order": order.id, "b_at": now}
            else:
                new_ents[item_id] = {
                    "id": item_id,
                    "customer_id": cid,
                    "category": category,
                    "kind": "coupon" if category == "coupon" else "entitlement",
                    "value": amount,
                    "valid_until": None,
                    "state": "used",
                    "order_id": order.id,
                    "updated_at": now,
                }
        order_ents.extend(
            {"order_id": order.id, "customer_id": cid, "entitlement_id": i}
            for i in sorted({u[1] for u in used})
        )
        for table, campaign_id, amount in campaign_counts(order):
            count(table.name, cid, campaign_id, amount, opening=False)
        for kind, amount, memo in movements(order):
            move(f"order:{order.id}", kind, cid, amount, memo, order.id)
        trail.record("order.ingested", order_id=order.id, **ingested_entry(order))
        enqueue(
            conn,
            topic="event",
            key=f"event:order.ingested:{order.id}",
            at=now,
            payload=ingested_event(order),
            batch=out,
        )

    stored_accounts = _present(conn, _a.id, set(deltas))
    new_accounts: list[dict[str, Any]] = [
        {
            "id": acc,
            "kind": kinds[acc][0],
            "customer_id": kinds[acc][1],
            "balance": total,
            "may_go_negative": kinds[acc][0] == "points",
        }
        for acc, total in deltas.items()
        if acc not in stored_accounts
    ]
    if any(a["balance"] < 0 and not a["may_go_negative"] for a in new_accounts):
        raise BatchRefused("a balance would go negative")
    opened_accounts = {a["id"] for a in new_accounts}

    # Tables in foreign-key order; each table's rows in the order the orders wrote them.
    _write(conn, customers, list(new_customers.values()))
    _SET_OPENED.run_many(conn, [{"b_id": k, "b_at": v} for k, v in sorted(set_opened.items())])
    _write(conn, customer_contacts, list(new_contacts.values()))
    _SET_CONTACT.run_many(
        conn,
        [
            {"b_id": k, "b_phone": v["phone"], "b_email": v["email"], "b_ch": v["channels"]}
            for k, v in sorted(set_contacts.items())
        ],
    )
    _MOVE.run_many(
        conn,
        [
            {"b_id": acc, "b_delta": deltas[acc]}
            for acc in sorted(deltas)
            if acc not in opened_accounts
        ],
    )
    _write(conn, ledger_accounts, new_accounts)
    _write(conn, campaigns, list(new_camps.values()))
    for table in (orders, order_lines, order_adjustments, order_tenders):
        _write(conn, table, rows[table.name])
    _USE.run_many(conn, [use_stored[k] for k in sorted(use_stored)])
    _write(conn, entitlements, list(new_ents.values()))
    _write(conn, order_entitlements, order_ents)
    _write(conn, campaign_rewards, new_rewards)
    for (name, cid, campaign_id), amount in sorted(add_counts.items()):
        _ADD[name].run(conn, {"b_cid": cid, "b_camp": campaign_id, "b_n": amount})
    for table in (campaign_spend, campaign_quotas):
        col = _COUNTED[table.name]
        _write(
            conn,
            table,
            [
                {"customer_id": cid, "campaign_id": camp, col: amount}
                for (name, cid, camp), amount in new_counts.items()
                if name == table.name
            ],
        )
    out.flush(conn)
    trail.flush_batch(conn)


def _write(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    if rows:
        _INSERT[table.name].run_many(conn, rows)


def _json_list(values: list[str]) -> str:
    return json.dumps(values)  # as save_contact stores them
