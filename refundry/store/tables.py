"""The store's tables (SQLAlchemy Core). One schema for SQLite and PostgreSQL.

Money and points are BIGINT minor units. Invariants the database itself guards:
* a line never has more units refunded than bought, a tender never more money back than paid;
* the wallet never goes below zero (points may, when policy ``allow_negative`` says so);
* idempotency keys and outbox keys are unique;
* every ledger balance is the sum of its postings (kept in the same transaction; checked by
  tests and by ``refundry db check``).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from refundry.store.types import UTCDateTime

__all__ = ["metadata"]

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

Money = BigInteger
When = UTCDateTime()

customers = Table(
    "customers",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("locale", String(16), nullable=False, server_default="zh-CN"),
    Column("tier", String(64)),
    Column("risk_flags", Text, nullable=False, server_default="[]"),  # JSON list
    Column("tier_table", Text, nullable=False, server_default="[]"),  # JSON list
    Column("created_at", When, nullable=False),  # when refundry first saw the customer
    # The account's creation time at the shop (risk rules' account age); None: not sent.
    Column("account_created_at", When),
)

# Double-entry ledgers: every journal's postings sum to zero; an account's balance is the sum
# of its postings. Customer accounts are "<kind>:<customer id>", the shop's "shop:<kind>".
ledger_accounts = Table(
    "ledger_accounts",
    metadata,
    Column("id", String(100), primary_key=True),
    Column("kind", String(16), nullable=False),  # points | wallet | growth | gift_card
    Column("customer_id", String(64), ForeignKey("customers.id")),
    Column("balance", Money, nullable=False, server_default="0"),
    Column("may_go_negative", Boolean, nullable=False, server_default="0"),
    CheckConstraint("may_go_negative OR balance >= 0", name="balance_not_negative"),
)

ledger_postings = Table(
    "ledger_postings",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("journal_id", String(100), nullable=False),
    # the journal's customer, on both legs (None: a journal of the shop alone)
    Column("customer_id", String(64)),
    Column("account_id", String(100), ForeignKey("ledger_accounts.id"), nullable=False),
    Column("amount", Money, nullable=False),
    Column("order_id", String(64)),
    Column("refund_id", String(64)),
    Column("memo", String(200), nullable=False),
    Column("created_at", When, nullable=False),
    Index("ix_ledger_postings_account", "account_id"),
    Index("ix_ledger_postings_journal", "journal_id"),
)

orders = Table(
    "orders",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("customer_id", String(64), ForeignKey("customers.id"), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("status", String(16), nullable=False),
    Column("paid_at", When),
    Column("document", Text, nullable=False),  # the order JSON as ingested (docs/plan-json.md)
    Column("content_hash", String(80), nullable=False),
    Column("goods_units", Integer, nullable=False),
    Column("goods_refunded", Integer, nullable=False, server_default="0"),
    Column("refund_count", Integer, nullable=False, server_default="0"),
    Column("ingested_at", When, nullable=False),
    # What the shop told of the order since (services/orders/fulfilment.py); ``status`` and
    # the document's status and delivered_at are kept current with them.
    Column("shipped_at", When),
    Column("delivered_at", When),
    Column("completed_at", When),
    Column("cancelled_at", When),
    CheckConstraint("goods_refunded >= 0 AND goods_refunded <= goods_units", name="goods"),
    Index("ix_orders_customer", "customer_id"),
    # Orders not fully refunded, per customer: first-purchase checks skip refunded history.
    Index(
        "ix_orders_open",
        "customer_id",
        sqlite_where=text("goods_refunded < goods_units"),
        postgresql_where=text("goods_refunded < goods_units"),
    ),
)

order_lines = Table(
    "order_lines",
    metadata,
    Column("order_id", String(64), ForeignKey("orders.id"), primary_key=True),
    Column("customer_id", String(64), nullable=False),
    Column("line_id", String(64), primary_key=True),
    Column("sku", String(100), nullable=False),
    Column("merchant_id", String(64), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("unit_price", Money, nullable=False),
    Column("paid", Money, nullable=False),
    Column("gift_of", String(64)),
    Column("refunded_qty", Integer, nullable=False, server_default="0"),
    CheckConstraint("refunded_qty >= 0 AND refunded_qty <= quantity", name="refunded_qty"),
)

order_adjustments = Table(
    "order_adjustments",
    metadata,
    Column("order_id", String(64), ForeignKey("orders.id"), primary_key=True),
    Column("customer_id", String(64), nullable=False),
    Column("adjustment_id", String(64), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("amount", Money, nullable=False),
    Column("source_type", String(16), nullable=False),
    Column("source_id", String(64), nullable=False),
)

order_tenders = Table(
    "order_tenders",
    metadata,
    Column("order_id", String(64), ForeignKey("orders.id"), primary_key=True),
    Column("customer_id", String(64), nullable=False),
    Column("tender_id", String(64), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("method", String(32)),
    Column("gateway_txn_id", String(100)),
    Column("amount", Money, nullable=False),
    Column("points", BigInteger, nullable=False, server_default="0"),
    Column("refunded", Money, nullable=False, server_default="0"),
    CheckConstraint("refunded >= 0 AND refunded <= amount", name="refunded"),
)

# Coupons and other entitlements the customer holds. ``category`` coupon | entitlement.
entitlements = Table(
    "entitlements",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("customer_id", String(64), ForeignKey("customers.id"), nullable=False),
    Column("category", String(16), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("value", Money, nullable=False, server_default="0"),
    Column("valid_until", When),
    Column("state", String(16), nullable=False),  # available | used | forfeited
    Column("reissued_from", String(64)),  # a coupon issued to replace an expired one
    Column("order_id", String(64)),  # the order that used it, while used
    Column("updated_at", When, nullable=False),
    Index("ix_entitlements_customer", "customer_id"),
)

# The coupons and entitlements each order used (written at ingest; orders are immutable), so
# the plan inputs read them with the order in one statement.
order_entitlements = Table(
    "order_entitlements",
    metadata,
    Column("order_id", String(64), ForeignKey("orders.id"), primary_key=True),
    Column("customer_id", String(64), nullable=False),
    Column("entitlement_id", String(64), ForeignKey("entitlements.id"), primary_key=True),
)

campaigns = Table(
    "campaigns",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("definition", Text, nullable=False),  # JSON, docs/plan-json.md campaigns[]
    Column("high_value", Boolean, nullable=False, server_default="0"),
    Column("ends_at", When),
)

campaign_spend = Table(
    "campaign_spend",
    metadata,
    Column("customer_id", String(64), ForeignKey("customers.id"), primary_key=True),
    Column("campaign_id", String(64), primary_key=True),
    Column("spend", Money, nullable=False, server_default="0"),
    CheckConstraint("spend >= 0", name="spend"),
)

campaign_quotas = Table(
    "campaign_quotas",
    metadata,
    Column("customer_id", String(64), ForeignKey("customers.id"), primary_key=True),
    Column("campaign_id", String(64), primary_key=True),
    Column("used", Integer, nullable=False, server_default="0"),
    CheckConstraint("used >= 0", name="used"),
)

campaign_rewards = Table(
    "campaign_rewards",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("customer_id", String(64), ForeignKey("customers.id"), nullable=False),
    Column("campaign_id", String(64), nullable=False),
    Column("order_id", String(64)),  # per-order cashback; NULL for cumulative campaigns
    Column("threshold", Money, nullable=False, server_default="0"),
    Column("amount", Money, nullable=False),  # as granted or promised
    Column("reduced", Money, nullable=False, server_default="0"),  # clawed back or cancelled
    Column("status", String(16), nullable=False),  # pending | granted | cancelled | clawed_back
    CheckConstraint("reduced >= 0 AND reduced <= amount", name="reduced"),
    Index("ix_campaign_rewards_customer", "customer_id", "campaign_id"),
    Index("ix_campaign_rewards_order", "order_id"),
)

refunds = Table(
    "refunds",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("order_id", String(64), ForeignKey("orders.id"), nullable=False),
    Column("customer_id", String(64), nullable=False),
    Column("seq", Integer, nullable=False),  # 1 for the order's first refund, 2 next…
    Column("status", String(20), nullable=False),  # refunding | refunded | refund_failed
    Column("reason", String(32), nullable=False),
    Column("total", Money, nullable=False),
    Column("plan", Text, nullable=False),  # the applied plan, canonical JSON
    Column("plan_hash", String(80), nullable=False),
    Column("actor", String(100), nullable=False),
    Column("created_at", When, nullable=False),
    Column("updated_at", When, nullable=False),
    Index("ix_refunds_order", "order_id", "seq"),
    Index("ix_refunds_customer", "customer_id", "created_at"),  # risk: refunds in 30/90 days
)

# 极速退款 whose inspection refused units (services/refunds/reversal.py, domain/express.py): at
# most one per refund. ``history`` is the step as later plans read it (the accepted units, the
# money each tender kept); ``plan`` the accepted-only plan (NULL: none accepted); ``reversal``
# what was given back or taken back.
refund_reversals = Table(
    "refund_reversals",
    metadata,
    Column("refund_id", String(64), ForeignKey("refunds.id"), primary_key=True),
    Column("order_id", String(64), ForeignKey("orders.id"), nullable=False),
    Column("customer_id", String(64), nullable=False),
    Column("case_id", String(64)),
    Column("accepted", Text, nullable=False),  # JSON [{line_id, quantity}]
    Column("refused", Text, nullable=False),  # JSON {line_id: units}
    Column("plan", Text),
    Column("history", Text, nullable=False),
    Column("reversal", Text, nullable=False),
    Column("debt", Money, nullable=False),
    Column("actor", String(100), nullable=False),
    Column("created_at", When, nullable=False),
    Index("ix_refund_reversals_order", "order_id"),
)

refund_tenders = Table(
    "refund_tenders",
    metadata,
    Column("refund_id", String(64), ForeignKey("refunds.id"), primary_key=True),
    Column("tender_id", String(64), primary_key=True),
    Column("order_id", String(64), nullable=False),
    Column("customer_id", String(64), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("amount", Money, nullable=False),
    Column("points", BigInteger, nullable=False, server_default="0"),
    # pending (outbox) | accepted (gateway) | succeeded | failed | to_wallet (agent moved it)
    Column("status", String(16), nullable=False),
    Column("gateway_refund_id", String(100)),
    Column("idempotency_key", String(200)),  # of the current gateway attempt
    Column("attempt", Integer, nullable=False, server_default="1"),
    Column("failure_code", String(64)),
    Column("updated_at", When, nullable=False),
    ForeignKeyConstraint(
        ["order_id", "tender_id"], ["order_tenders.order_id", "order_tenders.tender_id"]
    ),
)

refund_effects = Table(
    "refund_effects",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("refund_id", String(64), ForeignKey("refunds.id"), nullable=False),
    Column("customer_id", String(64), nullable=False),
    Column("position", Integer, nullable=False),
    Column("type", String(40), nullable=False),
    Column("data", Text, nullable=False),  # JSON, the effect as the plan lists it
    UniqueConstraint("refund_id", "position", name="uq_refund_effects_position"),
)

# Messages to deliver after commit: gateway refund requests, notifications, domain events.
# The conditions of the outbox's partial indexes (and of the queries that use them)
OUTBOX_MONEY = "status = 'pending' AND topic = 'gateway.refund'"
OUTBOX_PENDING = "status = 'pending'"
OUTBOX_DEAD = "status = 'dead'"

outbox = Table(
    "outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("topic", String(40), nullable=False),  # gateway.refund | notify | event
    Column("customer_id", String(64)),  # whose message it is (None: a system act's)
    Column("key", String(200), nullable=False, unique=True),  # the consumer's idempotency key
    Column("payload", Text, nullable=False),
    Column("status", String(12), nullable=False),  # pending | done | dead
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("available_at", When, nullable=False),
    Column("last_error", Text),
    Column("created_at", When, nullable=False),
    Column("done_at", When),
    # Folded into metric_counters yet (domain events only; every other message is born true).
    Column("counted", Boolean, nullable=False, server_default="1"),
    # the relay's claim, in written order: the pending gateway refunds, every pending message
    # (migration 0023: a (status, available_at) index made each claim read every due message);
    # partial, so the done messages (nearly all) are in none of them. The queries name the
    # status and topic as literals (outbox.PENDING…): a bound value cannot match a partial index
    Index(
        "ix_outbox_money",
        "id",
        sqlite_where=text(OUTBOX_MONEY),
        postgresql_where=text(OUTBOX_MONEY),
    ),
    Index(
        "ix_outbox_pending",
        "id",
        "available_at",
        sqlite_where=text(OUTBOX_PENDING),
        postgresql_where=text(OUTBOX_PENDING),
    ),
    Index(
        "ix_outbox_dead",
        "topic",
        sqlite_where=text(OUTBOX_DEAD),
        postgresql_where=text(OUTBOX_DEAD),
    ),
    Index(
        "ix_outbox_uncounted",
        "id",
        sqlite_where=text("NOT counted"),
        postgresql_where=text("NOT counted"),
    ),
)

# Every answer the gateway gave, kept for disputes and reconciliation.
gateway_calls = Table(
    "gateway_calls",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("refund_id", String(64), nullable=False),
    Column("customer_id", String(64), nullable=False),
    Column("tender_id", String(64), nullable=False),
    Column("idempotency_key", String(200), nullable=False),
    Column("kind", String(16), nullable=False),  # request | lookup | webhook
    Column("outcome", String(16), nullable=False),  # accepted | succeeded | refused | timeout…
    Column("answer", Text, nullable=False),  # JSON
    Column("at", When, nullable=False),
    Index("ix_gateway_calls_refund", "refund_id"),
    Index("ix_gateway_calls_outcome", "outcome"),  # /metrics: calls without an answer
)

gateway_events = Table(
    "gateway_events",
    metadata,
    Column("event_id", String(100), primary_key=True),  # webhooks arrive twice: seen once
    Column("received_at", When, nullable=False),
)

# Tamper-evident audit log, one chain per customer (services/audit/chain.py): entry n of a
# chain stores HMAC(key, its chain + entry n-1's hash + its own content).
audit_log = Table(
    "audit_log",
    metadata,
    # the customer's id (distribution column with customers.id), or "~system" / "~legacy"
    Column("chain", String(80), primary_key=True),
    Column("seq", Integer, primary_key=True, autoincrement=False),  # 1, 2, 3… per chain
    Column("at", When, nullable=False),
    Column("actor", String(100), nullable=False),
    Column("action", String(60), nullable=False),
    Column("order_id", String(64)),
    Column("refund_id", String(64)),
    Column("data", Text, nullable=False),  # JSON: before/after, amounts
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    # the id of the key whose HMAC ``hash`` is (services/audit/keys.py); None: before 0010
    Column("key_id", String(16)),
    Index("ix_audit_log_order", "order_id"),
)

# Each chain's head, moved in the same transaction as the chain's entries: a cut tail shows.
audit_heads = Table(
    "audit_heads",
    metadata,
    Column("chain", String(80), primary_key=True),
    Column("seq", Integer, nullable=False),
    Column("hash", String(64), nullable=False),
)

# The heads as each `refundry audit verify` found them, one digest chained to the one before
# (services/audit/anchors.py): the operator keeps the last digest outside the database.
audit_checkpoints = Table(
    "audit_checkpoints",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),  # 1, 2, 3…
    Column("at", When, nullable=False),
    Column("heads", Text, nullable=False),  # JSON {chain: [seq, hash]}: heads moved since
    Column("prev_digest", String(64), nullable=False),
    Column("digest", String(64), nullable=False),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("key", String(200), primary_key=True),
    Column("scope", String(40), nullable=False),
    Column("customer_id", String(64)),  # the customer of what the first call made
    Column("request_hash", String(80), nullable=False),
    Column("response", Text, nullable=False),  # JSON of the first result
    Column("created_at", When, nullable=False),
)

# The customer's in-app inbox: the in-app channel delivers here, once per outbox key.
inbox_messages = Table(
    "inbox_messages",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(200), nullable=False, unique=True),
    Column("customer_id", String(64), nullable=False),
    Column("order_id", String(64)),
    Column("refund_id", String(64)),
    Column("template", String(60), nullable=False),
    Column("locale", String(16), nullable=False),
    Column("params", Text, nullable=False),  # JSON
    Column("created_at", When, nullable=False),
    Column("read_at", When),
    Index("ix_inbox_messages_customer", "customer_id", "id"),
)

# -- the case process (issue 4) ----------------------------------------------------------------

# Contact and channel preferences, one row per customer (kept apart from the hot customers row).
customer_contacts = Table(
    "customer_contacts",
    metadata,
    Column("customer_id", String(64), ForeignKey("customers.id"), primary_key=True),
    Column("phone", String(32)),
    Column("email", String(200)),
    Column("channels", Text, nullable=False, server_default='["in_app"]'),  # JSON list
)

# Points and wallet adjustments the shop posts (a goodwill credit, a correction): each is one
# ledger journal ``adjustment:<id>``, named by the shop's source and kept once per idempotency
# key of the customer.
customer_adjustments = Table(
    "customer_adjustments",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("customer_id", String(64), ForeignKey("customers.id"), nullable=False),
    Column("kind", String(16), nullable=False),  # points | wallet
    Column("amount", Money, nullable=False),  # points, or minor units; negative takes back
    Column("currency", String(3)),  # wallet adjustments
    Column("source_type", String(32), nullable=False),
    Column("source_id", String(64), nullable=False),
    Column("memo", String(200), nullable=False, server_default=""),
    Column("idempotency_key", String(255), nullable=False),
    Column("request_hash", String(80), nullable=False),
    Column("balance_after", Money, nullable=False),
    Column("actor", String(140), nullable=False),
    Column("created_at", When, nullable=False),
    UniqueConstraint("customer_id", "idempotency_key", name="uq_customer_adjustments_key"),
)

cases = Table(
    "cases",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("order_id", String(64), ForeignKey("orders.id"), nullable=False),
    Column("customer_id", String(64), nullable=False),
    Column("kind", String(20), nullable=False),  # refund_only | return_and_refund
    Column("reason", String(32), nullable=False),
    Column("return_method", String(16), nullable=False),
    Column("state", String(32), nullable=False),
    Column("state_since", When, nullable=False),  # timers measure from here
    Column("lines", Text, nullable=False),  # JSON [{line_id, quantity}] asked
    Column("accepted", Text),  # JSON [{line_id, quantity}] after a partial inspection
    Column("merchant_ids", Text, nullable=False),  # JSON: merchants whose lines are asked
    Column("description", Text, nullable=False, server_default=""),
    Column("evidence", Text, nullable=False, server_default="[]"),  # JSON list of file refs
    Column("amount", Money, nullable=False),  # the plan's total when opened (minor units)
    Column("review", Text),  # JSON: decision, rule, reason, by
    Column("risk", Text),  # JSON: the risk decision with its reasons
    Column("express", Boolean, nullable=False, server_default="0"),  # 极速退款
    Column("refund_id", String(64)),  # the applied refund
    Column("rma", String(40), unique=True),
    Column("return_address", Text),
    Column("shipment", Text),  # JSON: carrier, label / pickup, payer, cost
    Column("tracking_number", String(100)),
    Column("inspection", Text),  # JSON: result, accepted quantities, reason
    Column("debt", Money, nullable=False, server_default="0"),  # express refund, goods failed
    Column("units_held", Boolean, nullable=False, server_default="1"),  # in case_units now
    Column("rating", Integer),
    Column("feedback", Text),
    Column("assignee", String(140)),  # the agent holding the case (claim / assign), if any
    Column("version", Integer, nullable=False, server_default="1"),
    Column("created_at", When, nullable=False),
    Column("updated_at", When, nullable=False),
    CheckConstraint("rating IS NULL OR (rating >= 1 AND rating <= 5)", name="rating"),
    Index("ix_cases_order", "order_id"),
    Index("ix_cases_customer", "customer_id", "created_at"),
    Index("ix_cases_state", "state", "state_since"),
    Index("ix_cases_created", "created_at", "id"),  # the case list, newest first (0022)
)

# Units held by open cases: a unit is asked for by at most one open case at a time.
case_units = Table(
    "case_units",
    metadata,
    Column("order_id", String(64), primary_key=True),
    Column("line_id", String(64), primary_key=True),
    Column("customer_id", String(64), nullable=False),
    Column("held", Integer, nullable=False, server_default="0"),
    CheckConstraint("held >= 0", name="held"),
)

case_events = Table(
    "case_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("case_id", String(64), ForeignKey("cases.id"), nullable=False),
    Column("customer_id", String(64), nullable=False),
    Column("at", When, nullable=False),
    Column("actor", String(100), nullable=False),
    Column("action", String(40), nullable=False),
    Column("from_state", String(32)),
    Column("to_state", String(32), nullable=False),
    Column("data", Text, nullable=False, server_default="{}"),
    Index("ix_case_events_case", "case_id", "id"),
)

# One-time codes: only a keyed hash is kept; the code itself is never stored or logged.
# What the desk adds to a case beside its state: internal notes, claims and assignments,
# debt recovered or written off (kind); customers and merchants never see these.
case_notes = Table(
    "case_notes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("case_id", String(64), ForeignKey("cases.id"), nullable=False),
    Column("customer_id", String(64), nullable=False),
    Column("at", When, nullable=False),
    Column("actor", String(100), nullable=False),
    Column("kind", String(24), nullable=False),  # note | claim | assign | debt_recovered | …
    Column("text", Text, nullable=False, server_default=""),
    Column("data", Text, nullable=False, server_default="{}"),  # JSON: amounts, assignee …
    Index("ix_case_notes_case", "case_id", "id"),
)


# The cases' photos (services/cases/photos.py): the bytes are in the photo storage under
# sha256 (adapters/photos.py); a row says which case holds which photo, of which kind.
photos = Table(
    "photos",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("customer_id", String(64), nullable=False),  # the case's customer
    Column("case_id", String(64), ForeignKey("cases.id"), nullable=False),
    Column("kind", String(16), nullable=False),  # customer | inspection
    Column("sha256", String(64), nullable=False),  # the storage key
    Column("content_type", String(32), nullable=False),  # sniffed from the bytes
    Column("size", Integer, nullable=False),
    Column("created_at", When, nullable=False),
    Column("created_by", String(140), nullable=False),  # the actor's tag
    CheckConstraint("kind IN ('customer', 'inspection')", name="kind"),
    CheckConstraint("size > 0", name="size"),
    Index("ix_photos_case", "case_id", "created_at"),
)

otp_codes = Table(
    "otp_codes",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("customer_id", String(64), nullable=False),
    Column("purpose", String(40), nullable=False),
    Column("code_hash", String(64), nullable=False),
    Column("expires_at", When, nullable=False),
    Column("used_at", When),
    Column("created_at", When, nullable=False),
    Column("phone", String(32)),  # where it was texted: codes per number per hour (pumping)
    Index("ix_otp_codes_customer", "customer_id", "purpose"),
    Index("ix_otp_codes_customer_sent", "customer_id", "created_at"),
    Index("ix_otp_codes_phone_sent", "phone", "created_at"),
)

otp_locks = Table(
    "otp_locks",
    metadata,
    Column("customer_id", String(64), primary_key=True),
    Column("failures", Integer, nullable=False, server_default="0"),
    Column("locked_until", When),
)

# Risk decisions that outlive a case: high-value restriction, suspended refund rights.
risk_restrictions = Table(
    "risk_restrictions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("customer_id", String(64), nullable=False),
    Column("kind", String(32), nullable=False),  # restrict_high_value | suspend
    Column("rule", String(64), nullable=False),
    Column("reason", Text, nullable=False),
    Column("since", When, nullable=False),
    Column("until", When),  # NULL: until an agent lifts it
    Column("lifted_at", When),
    Column("lifted_by", String(100)),
    Column("lift_reason", Text),
    Index("ix_risk_restrictions_customer", "customer_id"),
)

# Return shipments booked with the logistics adapter, and their tracking events.
shipments = Table(
    "shipments",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("case_id", String(64), ForeignKey("cases.id"), nullable=False),
    Column("customer_id", String(64), nullable=False),
    Column("carrier", String(40), nullable=False),
    Column("service", String(16), nullable=False),  # prepaid_label | pickup | self_ship
    Column("tracking_number", String(100)),
    Column("payer", String(16), nullable=False),  # merchant | customer
    Column("cost", Money, nullable=False, server_default="0"),
    Column("status", String(20), nullable=False),
    Column("label", Text),  # JSON: what the customer needs to ship (URL, code, pickup slot)
    Column("updated_at", When, nullable=False),
    Index("ix_shipments_tracking", "tracking_number"),
)

shipment_events = Table(
    "shipment_events",
    metadata,
    Column("event_id", String(100), primary_key=True),  # tracking webhooks arrive twice
    Column("shipment_id", String(64), nullable=False),
    Column("customer_id", String(64), nullable=False),
    Column("status", String(20), nullable=False),
    Column("at", When, nullable=False),
    Column("data", Text, nullable=False),
)

# What each channel delivered, per outbox key: a retried delivery is skipped, never re-sent.
notification_deliveries = Table(
    "notification_deliveries",
    metadata,
    Column("key", String(200), primary_key=True),
    Column("channel", String(16), primary_key=True),
    Column("customer_id", String(64)),  # the message's customer
    Column("at", When, nullable=False),
)

# -- the HTTP API (issue 5) ----------------------------------------------------------------------

# Idempotency-Key of POST requests: the first response is stored and replayed.
api_idempotency = Table(
    "api_idempotency",
    metadata,
    # "<len(subject)>:<role>:<subject>:<Idempotency-Key>"
    Column("key", String(300), primary_key=True),
    Column("request_hash", String(80), nullable=False),  # method, path, query, canonical body
    Column("state", String(12), nullable=False),  # in_flight | committed | done
    Column("status", Integer),
    Column("body", Text),
    Column("created_at", When, nullable=False),
    # the running request's claim (services/claims.py): fences a request whose lease ran out
    Column("token", String(32)),
    Column("lease_until", When),  # a retry before this is 409 idempotency.in_flight
    Column("outcome", String(200)),  # the id of what the committed request created
    Column("location", String(2000)),  # the first answer's Location header, replayed with it
    Index("ix_api_idempotency_created", "created_at"),
)

# -- operations (issue 11) -----------------------------------------------------------------------

# One row per `refundry worker` (by --name): when it last finished a round. /readyz and
# /metrics read it; a worker that stopped beating is a stuck outbox.
worker_heartbeats = Table(
    "worker_heartbeats",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("beat_at", When, nullable=False),
    Column("rounds", BigInteger, nullable=False, server_default="0"),
)

# Bearer tokens an admin revoked before they expired (by the token's jti); rows past expires_at
# can be deleted: the token is refused as expired anyway.
revoked_tokens = Table(
    "revoked_tokens",
    metadata,
    Column("jti", String(64), primary_key=True),
    Column("subject", String(140), nullable=False),  # "<role>:<subject>" the token named
    Column("expires_at", When, nullable=False),
    Column("revoked_at", When, nullable=False),
    Column("revoked_by", String(140), nullable=False),
    Column("reason", Text, nullable=False, server_default=""),
    Index("ix_revoked_tokens_expires", "expires_at"),
)

# The business figures of /metrics, maintained: each domain event in the outbox is folded into
# these counters once (services/operations/metric_counters.py), so a scrape reads a few rows
# instead of scanning refunds and case_events. ``label`` is '' for a figure without one.
metric_counters = Table(
    "metric_counters",
    metadata,
    Column("name", String(40), primary_key=True),
    Column("label", String(200), primary_key=True),
    Column("value", BigInteger, nullable=False, server_default="0"),
)

# Staff who sign in to the desk with a password (refundry user add; services/staff/accounts):
# agents, admins and merchants (``merchant_id``: the merchant whose lines it acts on). The
# password is an argon2id hash (argon2-cffi's encoded form, parameters included);
# ``failed_attempts`` counts wrong passwords since the last success, and past the limit the
# account waits until ``locked_until``.
staff_accounts = Table(
    "staff_accounts",
    metadata,
    Column("name", String(140), primary_key=True),
    Column("role", String(16), nullable=False),  # agent | merchant | admin
    Column("merchant_id", String(140), nullable=True),
    Column("password_hash", Text, nullable=False),
    Column("failed_attempts", Integer, nullable=False, server_default="0"),
    Column("locked_until", When, nullable=True),
    Column("created_at", When, nullable=False),
    Column("updated_at", When, nullable=False),
)

# Passkeys (WebAuthn, services/passkeys.py): a customer's for case submissions, a staff
# member's for the desk's sign-in. ``owner`` is the actor's tag (customer:c-1, agent:ana,
# merchant:m-1); a removed passkey keeps its row (``removed_at``) so that it is refused by name.
passkeys = Table(
    "passkeys",
    metadata,
    Column("id", String(1400), primary_key=True),  # the credential id, base64url
    Column("owner", String(160), nullable=False),
    Column("name", String(100), nullable=False),  # what its owner calls it
    Column("public_key", Text, nullable=False),  # COSE key, base64url
    Column("sign_count", BigInteger, nullable=False, server_default="0"),
    Column("transports", Text, nullable=False, server_default="[]"),  # JSON list
    Column("created_at", When, nullable=False),
    Column("last_used_at", When),
    Column("removed_at", When),
    CheckConstraint("sign_count >= 0", name="sign_count_not_negative"),
    Index("ix_passkeys_owner", "owner"),
)

# The challenges refundry issued for a passkey ceremony: single use, short-lived, for one
# purpose (register | case.submit | desk.signin), one owner (none for the desk's sign-in, where
# the passkey names its owner) and, for a case submission, the submission (``bound_to``: the
# hash of its request document).
passkey_challenges = Table(
    "passkey_challenges",
    metadata,
    Column("challenge", String(64), primary_key=True),  # base64url of 32 random bytes
    Column("purpose", String(20), nullable=False),
    Column("owner", String(160)),
    Column("bound_to", String(64)),
    Column("created_at", When, nullable=False),
    Column("expires_at", When, nullable=False),
    Column("used_at", When),
    Index("ix_passkey_challenges_expires", "expires_at"),
)

# Webhooks to the shop (Standard Webhooks; services/shop_webhooks, docs/webhooks.md). An
# endpoint the shop's admin registered: its URL, the event types it takes ("*": all) and the
# secret its bodies are signed with (``whsec_``, shown once; the one before a rotation still
# signs until ``previous_secret_until``). ``consecutive_failures`` counts failed attempts since
# the last success; past the setting ``webhook_disable_after`` the endpoint is disabled.
webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("url", Text, nullable=False),
    Column("event_types", Text, nullable=False),  # JSON list of types, or ["*"]
    Column("description", Text, nullable=False, server_default=""),
    Column("secret", String(100), nullable=False),
    Column("previous_secret", String(100), nullable=True),
    Column("previous_secret_until", When, nullable=True),
    Column("status", String(12), nullable=False),  # enabled | disabled | deleted
    Column("disabled_reason", String(200), nullable=True),  # by an admin, or the failures
    Column("consecutive_failures", Integer, nullable=False, server_default="0"),
    Column("created_at", When, nullable=False),
    Column("updated_at", When, nullable=False),
)

# One event as the shop receives it: ``body`` is the JSON text signed and sent, the same bytes
# on every attempt and replay; ``id`` (``msg_…``, the ``webhook-id`` header) is derived from
# the outbox key, so it never changes.
webhook_events = Table(
    "webhook_events",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("type", String(80), nullable=False),
    Column("customer_id", String(64)),  # the event's customer (None: an event about none)
    Column("body", Text, nullable=False),
    Column("occurred_at", When, nullable=False),
    Index("ix_webhook_events_occurred", "occurred_at"),
)

# One event to one endpoint: pending until a 2xx answer (succeeded) or its attempts are used
# up (failed). ``attempts`` counts this round's (a replay starts a new round), ``total_attempts``
# every attempt the log shows.
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(40), ForeignKey("webhook_events.id"), nullable=False),
    Column("endpoint_id", String(40), ForeignKey("webhook_endpoints.id"), nullable=False),
    Column("status", String(12), nullable=False),  # pending | succeeded | failed
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("total_attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", When, nullable=True),  # null unless pending
    Column("last_status_code", Integer, nullable=True),
    Column("created_at", When, nullable=False),
    Column("updated_at", When, nullable=False),
    UniqueConstraint("event_id", "endpoint_id", name="uq_webhook_deliveries_event_endpoint"),
    Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
    Index("ix_webhook_deliveries_endpoint", "endpoint_id", "id"),
)

# The delivery log: every attempt, its answer (no status code: nothing answered), how long it
# took and when the next one is due (null: none).
webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("delivery_id", Integer, ForeignKey("webhook_deliveries.id"), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("at", When, nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("latency_ms", Integer, nullable=False),
    Column("error", Text, nullable=True),
    Column("next_attempt_at", When, nullable=True),
    Index("ix_webhook_attempts_delivery", "delivery_id", "attempt"),
)

# Bulk refunds (services/bulk): a job selects orders once, when it is made (``bulk_job_orders``,
# one row per order in ``position`` order, ``pending`` until its batch commits with the refund),
# so a job killed at any point and started again goes on from the first pending row and no
# order is refunded twice. ``selector_hash`` finds the job again when the same command is run.
bulk_jobs = Table(
    "bulk_jobs",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("selector_hash", String(80), nullable=False),
    Column("selector", Text, nullable=False),  # JSON: campaign, sku, merchant, window, ids
    Column("reason", String(32), nullable=False),
    Column("policy", Text, nullable=False),  # JSON: the policy the job's plans are made with
    Column("rate", Integer, nullable=False, server_default="0"),  # refunds/s, 0: unlimited
    Column("state", String(16), nullable=False),  # running | finished
    Column("total", Integer, nullable=False),  # orders selected
    Column("done", Integer, nullable=False, server_default="0"),  # orders with an outcome
    Column("refunded", Integer, nullable=False, server_default="0"),
    Column("refused", Integer, nullable=False, server_default="0"),
    Column("manual_review", Integer, nullable=False, server_default="0"),
    Column("skipped", Integer, nullable=False, server_default="0"),
    Column("actor", String(100), nullable=False),
    Column("created_at", When, nullable=False),
    Column("updated_at", When, nullable=False),
    Column("finished_at", When),
    CheckConstraint("done >= 0 AND done <= total", name="done"),
    Index("ix_bulk_jobs_selector", "selector_hash"),
)

bulk_job_orders = Table(
    "bulk_job_orders",
    metadata,
    Column("job_id", String(64), ForeignKey("bulk_jobs.id"), primary_key=True),
    Column("order_id", String(64), primary_key=True),
    Column("position", Integer, nullable=False),
    Column("customer_id", String(64)),  # NULL: an id from the file that names no order
    # pending | refunded | refused | manual_review | skipped (docs/bulk-refunds.md)
    Column("state", String(16), nullable=False),
    Column("code", String(80)),  # why it was refused, skipped or left for review
    Column("message", Text),
    Column("refund_id", String(64)),
    Column("total", Money, nullable=False, server_default="0"),
    Column("currency", String(3)),
    Column("held_by_case", Integer, nullable=False, server_default="0"),  # units left to cases
    Column("updated_at", When),
    Index("ix_bulk_job_orders_position", "job_id", "state", "position"),
)
