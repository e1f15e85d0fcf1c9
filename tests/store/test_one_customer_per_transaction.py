"""Every write transaction touches the rows of one customer (issue #15 point 5).

A recorder wraps the store on PostgreSQL: a row trigger on every table writes each row a
statement inserts, updates or deletes, with its transaction id, to a side table (a
``before_cursor_execute`` listener sees statements, not rows: on SQLite its parameters are
positional and the hot path's statements name them ``b_…``; the trigger sees the rows
themselves, whatever the statement). After ingest, an apply, a return case's acts (open,
approve, ship, receive, inspect — whose refund the relay sends), the relay's sending and a
ledger posting by the shop, each written row is attributed to a customer — its
``customer_id``, its audit chain, its order's, its case's or its refund's customer — and a
transaction whose rows belong to two customers fails the test. Rows no customer owns are
named: they must be the shared rows docs/scaling.md lists with why (``SHARED``), so a new one
fails here until it is either keyed by customer or written down there. The tables that carry
their customer's id since migration 0021 (``KEYED``) are attributed by that column alone: a
row written without it is a shared row, which fails, and its value must be the customer its
order, case or refund names.
"""

from __future__ import annotations

import copy
import json
from collections import defaultdict
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import Engine, select, text

from refundry.demo import worked_examples as ex
from refundry.domain.policy import Policy
from refundry.services.access import Actor
from refundry.services.audit.chain import LEGACY_CHAIN, SYSTEM_CHAIN
from refundry.services.cases.actions import approve, inspect, receive, ship
from refundry.services.cases.handling import add_note
from refundry.services.cases.opening import open_case
from refundry.services.customers.adjustments import post_adjustment
from refundry.services.orders.ingest import ingest_order
from refundry.services.refunds.apply import apply_refund, preview_refund
from refundry.services.uow import UnitOfWork
from refundry.store.tables import cases, ledger_accounts, metadata, orders, refunds
from tests.services.case_world import AGENT, CUSTOMER, MERCHANT, request, settle_money, world_for

NOW = datetime.fromisoformat(ex.NOW)
OTHER = "c-other"
SHOP = Actor("admin", "shop-backend")

# Rows written that belong to no customer, and why they may (docs/scaling.md, "Shared rows").
SHARED = {
    "audit_heads:~system": "the system chain's head: acts about no customer",
    "audit_log:~system": "entries of acts about no customer",
    "campaigns": "the shop's campaigns, made at ingest when first seen: a reference table",
    "gateway_events": "the gateway's event ids, seen once: keyed by the gateway's id",
    "outbox:UPDATE": "the relay's claims and counting of due messages, many customers' at once",
}
# Tables whose rows carry their customer's id (migration 0021; docs/scaling.md, "Distributed"):
# attributed by that column only, never through their order, case or refund.
KEYED = frozenset(
    {
        "order_lines",
        "order_tenders",
        "order_adjustments",
        "order_entitlements",
        "refunds",
        "refund_tenders",
        "refund_effects",
        "refund_reversals",
        "case_units",
        "case_events",
        "case_notes",
        "shipments",
        "shipment_events",
        "ledger_postings",
        "gateway_calls",
        "outbox",
        "notification_deliveries",
        "webhook_events",
        "idempotency_keys",
    }
)

_RECORDER = """
CREATE TABLE rows_written (
    txid bigint NOT NULL, tbl text NOT NULL, op text NOT NULL, row jsonb NOT NULL
);
CREATE FUNCTION record_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO rows_written
    VALUES (txid_current(), TG_TABLE_NAME, TG_OP, to_jsonb(COALESCE(NEW, OLD)));
    RETURN NULL;
END $$;
"""


@pytest.fixture()
def pg(pg_engine: Engine) -> Engine:
    """``pg_engine`` with the recorder's triggers on every table."""
    with pg_engine.begin() as conn:
        conn.execute(text(_RECORDER))
        for table in metadata.sorted_tables:
            conn.execute(
                text(
                    f"CREATE TRIGGER record_{table.name} AFTER INSERT OR UPDATE OR DELETE "
                    f"ON {table.name} FOR EACH ROW EXECUTE FUNCTION record_row()"
                )
            )
    return pg_engine


def _owners(engine: Engine) -> dict[str, dict[str, str]]:
    """Who owns the orders, cases, refunds and ledger accounts (read after the run)."""
    with engine.connect() as conn:
        order_of = {r.id: r.customer_id for r in conn.execute(select(orders))}
        return {
            "order": order_of,
            "case": {r.id: r.customer_id for r in conn.execute(select(cases))},
            "refund": {r.id: order_of[r.order_id] for r in conn.execute(select(refunds))},
            "account": {
                r.id: r.customer_id
                for r in conn.execute(select(ledger_accounts))
                if r.customer_id is not None
            },
        }


def _owner(table: str, row: dict[str, Any], owners: dict[str, dict[str, str]]) -> str:
    """The customer a written row belongs to, or ``shared:<what>``."""
    if table in ("audit_log", "audit_heads"):
        chain = str(row["chain"])
        if chain in (SYSTEM_CHAIN, LEGACY_CHAIN):
            return f"shared:{table}:{chain}"
        return chain[1:] if chain.startswith("~") else chain
    if table == "customers":
        return str(row["id"])
    if table in KEYED:
        return f"shared:{table}" if row["customer_id"] is None else str(row["customer_id"])
    if row.get("customer_id"):
        return str(row["customer_id"])
    for key, kind in (("order_id", "order"), ("case_id", "case"), ("refund_id", "refund")):
        if row.get(key) and row[key] in owners[kind]:
            return owners[kind][row[key]]
    if table == "ledger_postings" and row.get("account_id") in owners["account"]:
        return owners["account"][row["account_id"]]
    if table == "orders":
        return str(row["customer_id"])
    return f"shared:{table}"


def _through_links(table: str, row: dict[str, Any], owners: dict[str, dict[str, str]]) -> str:
    """A keyed row's customer as found before 0021: through its order, case, refund or
    account (a shop leg's posting: its refund's or order's)."""
    for key, kind in (("order_id", "order"), ("case_id", "case"), ("refund_id", "refund")):
        if row.get(key) and row[key] in owners[kind]:
            return owners[kind][row[key]]
    if table == "ledger_postings":
        return owners["account"].get(row["account_id"], "?")
    return "?"


def run_the_shop(engine: Engine) -> None:
    """Ingest, an apply, a return case to its refund, the relay, a shop's ledger posting."""
    world = world_for(engine)  # three orders of CUSTOMER, ingested in one transaction
    # The relay's default (relay_answers_per_transaction = 1): one customer per transaction,
    # as a store sharded by customer runs it (more is excepted by design, docs/scaling.md).
    world["relay"].answers_per_transaction = 1
    desk, clock = world["desk"], world["clock"]
    other = copy.deepcopy(ex.POINTS)
    other.update(id="o-other", customer_id=OTHER)
    with UnitOfWork(engine) as uow:
        ingest_order(uow.conn, {"order": other}, policy=Policy(), now=clock())
        uow.commit()
    # an apply for the other customer
    req = {
        "order_id": "o-other",
        "reason": "changed_mind",
        "lines": [{"line_id": other["lines"][0]["id"], "quantity": 1}],
    }
    plan = preview_refund(engine, order_id="o-other", request=req, policy=Policy(), now=clock())
    apply_refund(
        engine,
        order_id="o-other",
        request=req,
        expected_plan_hash=plan["plan_hash"],
        idempotency_key="k-other",
        actor="agent:li",
        now=clock(),
        policy=Policy(),
    )
    # a return case of CUSTOMER's, from opening to its refund
    opened = open_case(
        desk,
        actor=CUSTOMER,
        now=clock(),
        request=request("o-1000-200", "B", reason="quality_issue"),
    )
    if opened.state == "under_review":
        approve(desk, opened.case_id, actor=AGENT, now=clock())
    add_note(desk, opened.case_id, actor=AGENT, now=clock(), text="called the customer")
    ship(desk, opened.case_id, actor=CUSTOMER, now=clock(), tracking_number="SF1")
    receive(desk, opened.case_id, actor=MERCHANT, now=clock())
    inspect(desk, opened.case_id, actor=MERCHANT, now=clock(), result="pass")
    settle_money(world)  # the relay: gateway calls, notifications, the gateway's answers
    # a ledger posting by the shop
    post_adjustment(
        engine,
        actor=SHOP,
        customer_id=OTHER,
        doc={"kind": "points", "points": 300, "source": {"type": "goodwill", "id": "gw-1"}},
        idempotency_key="adj-1",
        now=clock(),
    )


def test_keyed_rows_carry_the_customer_their_order_case_or_refund_names(pg: Engine) -> None:
    """Every row written to a keyed table names its customer, the one found through its links
    (a shipment's event and a notification's sending have none but the column)."""
    run_the_shop(pg)
    owners = _owners(pg)
    with pg.connect() as conn:
        written = conn.execute(text("SELECT tbl, row FROM rows_written")).all()
    seen: dict[str, set[str]] = defaultdict(set)
    wrong = []
    for table, row in written:
        if table not in KEYED:
            continue
        seen[table].add(str(row["customer_id"]))
        linked = _through_links(table, row, owners)
        if row["customer_id"] is None or linked not in ("?", row["customer_id"]):
            wrong.append((table, row["customer_id"], linked))
    assert wrong == []
    # What the run writes of them. Not written here: order_entitlements, refund_reversals,
    # shipments, shipment_events; their NOT NULL column refuses a row written without it in
    # test_migrations.py's 0006 test (coupons), tests/services/test_reversals.py and
    # tests/e2e/test_case_journeys.py (labels, pickups, tracking events), and
    # test_migrations.py's 0021 test backfills them.
    both, mine = sorted({CUSTOMER.id, OTHER}), [CUSTOMER.id]
    assert {t: sorted(c) for t, c in seen.items()} == {
        **dict.fromkeys(_WRITTEN_FOR_BOTH, both),
        **dict.fromkeys(("order_adjustments", "case_units", "case_events", "case_notes"), mine),
        "ledger_postings": [OTHER],  # CUSTOMER's orders and case move no points or wallet
        "idempotency_keys": [OTHER],  # the case's refund is applied without a caller's key
    }


_WRITTEN_FOR_BOTH = (
    "order_lines",
    "order_tenders",
    "refunds",
    "refund_tenders",
    "refund_effects",
    "gateway_calls",
    "outbox",
    "notification_deliveries",
    "webhook_events",
)


def _written(engine: Engine) -> tuple[dict[int, set[str]], dict[int, set[str]], set[str]]:
    """Per transaction: the customers whose rows it wrote, and the tables; the shared rows."""
    owners = _owners(engine)
    with engine.connect() as conn:
        written = conn.execute(text("SELECT txid, tbl, op, row FROM rows_written")).all()
    by_tx: dict[int, set[str]] = defaultdict(set)
    where: dict[int, set[str]] = defaultdict(set)
    shared: set[str] = set()
    for txid, table, op, row in written:
        if table == "outbox" and op == "UPDATE":  # the relay's, not a use case's (SHARED)
            owner = "shared:outbox:UPDATE"
        else:
            owner = _owner(table, row if isinstance(row, dict) else json.loads(row), owners)
        if owner.startswith("shared:"):
            shared.add(owner.removeprefix("shared:"))
        else:
            by_tx[txid].add(owner)
            where[txid].add(table)
    return by_tx, where, shared


def _mixed(engine: Engine) -> dict[int, tuple[list[str], list[str]]]:
    by_tx, where, _shared = _written(engine)
    return {tx: (sorted(c), sorted(where[tx])) for tx, c in by_tx.items() if len(c) > 1}


def test_no_transaction_writes_two_customers_rows(pg: Engine) -> None:
    run_the_shop(pg)
    by_tx, _where, shared = _written(pg)
    assert {o for cs in by_tx.values() for o in cs} == {CUSTOMER.id, OTHER}
    assert _mixed(pg) == {}
    assert shared <= set(SHARED), sorted(shared - set(SHARED))


def test_the_recorder_names_a_transaction_that_writes_two_customers_rows(pg: Engine) -> None:
    """The control: two customers' orders ingested in one transaction (as an import batch
    does) are named, with the tables written."""
    with UnitOfWork(pg) as uow:
        for customer in ("c-1", "c-2"):
            doc = copy.deepcopy(ex.POINTS)
            doc.update(id=f"o-{customer}", customer_id=customer)
            ingest_order(uow.conn, {"order": doc}, policy=Policy(), now=NOW)
        uow.commit()
    ((customers_, tables),) = _mixed(pg).values()
    assert customers_ == ["c-1", "c-2"]
    assert {"orders", "order_lines", "audit_log", "audit_heads"} <= set(tables)
