"""The tamper-evident audit log: one signed chain per customer; each head row seals its tail.

Entries belong to the chain of the customer the transaction acts on (its ``chain`` column is
the customer id); entries about no customer — a staff account's sign-in, a webhook endpoint, a
token revoked — go to the system chain, and the one chain written before migration 0019 stays
as it was, the legacy chain. Within a chain ``seq`` counts 1, 2, 3… and

``hash(n) = HMAC-SHA256(key[key_id], key_id | chain | hash(n-1) | canonical(entry n))``

where the canonical form covers the sequence number, time, actor, action, order, refund and
data, and the key is the process's, never the database's (services/audit/keys.py). Naming the
chain in the signed text keeps an entry from being moved to another chain. The legacy chain's
entries verify exactly as they were written: ``HMAC(key, key_id | hash(n-1) | canonical)``, and
before migration 0010 unkeyed ``sha256(hash(n-1) | canonical)`` up to ``audit_unkeyed_through``.

One head row per chain (``audit_heads``) is locked and moved in the transaction that appends to
the chain, so transactions of different customers do not wait for each other; one that writes
to several chains (a bulk batch) locks their heads in chain order. A cut tail no longer matches
its head; a tail cut together with its head moved back is caught by the checkpoints
(services/audit/anchors.py). Verification: services/audit/verify.py.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, text, update

from refundry.domain.json_text import compact, compact_unsorted
from refundry.services.audit.keys import keys_of
from refundry.store.prepared import Prepared
from refundry.store.tables import audit_heads, audit_log

__all__ = [
    "GENESIS",
    "LEGACY_CHAIN",
    "SYSTEM_CHAIN",
    "AuditTrail",
    "chain_of",
    "entry_hash",
    "signed_hash",
]

GENESIS = "0" * 64
# Chains that are no customer's. Customer ids are not escaped unless they begin with "~"
# (chain_of), so no customer's chain can be named like these.
SYSTEM_CHAIN = "~system"
LEGACY_CHAIN = "~legacy"

# Statements built once, executed with parameters (cache key and compiled form reused).
_HEAD_LOCKED = Prepared(
    select(audit_heads.c.seq, audit_heads.c.hash)
    .where(audit_heads.c.chain == bindparam("b_chain"))
    .with_for_update()
)
_INSERT_ENTRIES = Prepared(insert(audit_log))
_MOVE_HEAD = Prepared(
    update(audit_heads)
    .where(audit_heads.c.chain == bindparam("b_chain"))
    .values(seq=bindparam("b_seq"), hash=bindparam("b_hash"))
)
_HEADS_OF = select(audit_heads.c.chain).where(
    audit_heads.c.chain.in_(bindparam("chains", expanding=True))
)
_HEADS_LOCKED = (
    select(audit_heads.c.chain, audit_heads.c.seq, audit_heads.c.hash)
    .where(audit_heads.c.chain.in_(bindparam("chains", expanding=True)))
    .order_by(audit_heads.c.chain)
    .with_for_update()
)
# A chain's first entry: its head row made if no other transaction made it first (then this
# one waits for that one's lock, as for any head).
_NEW_HEAD = text(
    "INSERT INTO audit_heads (chain, seq, hash) VALUES (:chain, 0, :genesis) "
    "ON CONFLICT (chain) DO NOTHING"
)


def chain_of(customer_id: str | None) -> str:
    """The chain a customer's entries go to: its id (so the audit log is distributed and
    partitioned with the customer's other rows, docs/scaling.md); an id that begins with "~"
    gets one more "~" in front, so it cannot be the system or the legacy chain."""
    if customer_id is None:
        return SYSTEM_CHAIN
    return "~" + customer_id if customer_id.startswith("~") else customer_id


def _canonical(
    seq: int,
    at: datetime | str,
    actor: str,
    action: str,
    order_id: str | None,
    refund_id: str | None,
    data: str,
) -> str:
    """``json.dumps([seq, at.isoformat(), actor, action, order_id, refund_id, data],
    ensure_ascii=False, separators=(",", ":"))``, byte for byte (tests/services/test_audit.py),
    through the prebuilt encoder: 9 entries a refund made the list encoding a measurable part of
    applying it. ``at``: the datetime, or its ISO text already made."""
    when = at if isinstance(at, str) else at.isoformat()
    return compact_unsorted([int(seq), when, actor, action, order_id, refund_id, data])


def entry_hash(prev_hash: str, **entry: Any) -> str:
    """The unkeyed hash of a legacy entry written before migration 0010."""
    text_ = prev_hash + "|" + _canonical(**entry)
    return hashlib.sha256(text_.encode("utf-8")).hexdigest()


def signed_hash(key: bytes, key_id: str, chain: str, prev_hash: str, **entry: Any) -> str:
    """An entry's signature; the legacy chain's entries were signed without the chain."""
    named = "" if chain == LEGACY_CHAIN else chain + "|"
    text_ = key_id + "|" + named + prev_hash + "|" + _canonical(**entry)
    return hmac.digest(key, text_.encode("utf-8"), "sha256").hex()


# (chain, action, order id, refund id, data, actor)
_Entry = tuple[str, str, str | None, str | None, dict[str, Any], str]


@dataclass(slots=True, kw_only=True)
class AuditTrail:
    """Collects a transaction's audit entries and appends them at ``flush`` under the lock of
    their chain's head. ``customer_id`` is required: the customer the use case acts on (None:
    the entries concern no customer and go to the system chain)."""

    actor: str
    at: datetime
    customer_id: str | None
    entries: list[_Entry] = field(default_factory=list)

    def record(
        self,
        action: str,
        *,
        order_id: str | None = None,
        refund_id: str | None = None,
        **data: Any,
    ) -> None:
        chain = chain_of(self.customer_id)
        self.entries.append((chain, action, order_id, refund_id, data, self.actor))

    @contextmanager
    def acting(self, actor: str) -> Iterator[None]:
        """Entries recorded inside name ``actor``: what refundry decided on its own inside a
        person's transaction (the automatic review of a case a customer opened) is the
        system's, not that person's."""
        previous, self.actor = self.actor, actor
        try:
            yield
        finally:
            self.actor = previous

    @contextmanager
    def about(self, customer_id: str | None) -> Iterator[None]:
        """Entries recorded inside go to ``customer_id``'s chain: a bulk batch's trail, which
        refunds several customers' orders in one transaction."""
        previous, self.customer_id = self.customer_id, customer_id
        try:
            yield
        finally:
            self.customer_id = previous

    def flush(self, conn: Connection) -> None:
        if not self.entries:
            return
        heads: dict[str, tuple[int, str]] = {}
        for chain in sorted({e[0] for e in self.entries}):  # locked in one order: no deadlock
            head = _HEAD_LOCKED.first(conn, {"b_chain": chain})
            if head is None:
                conn.execute(_NEW_HEAD, {"chain": chain, "genesis": GENESIS})
                head = _HEAD_LOCKED.first(conn, {"b_chain": chain})
            heads[chain] = (int(head[0]), str(head[1]))
        self._append(conn, heads)

    def flush_batch(self, conn: Connection) -> None:
        """``flush`` for the entries of many chains (an import batch): the chains' heads are
        made where missing, then read and locked (in chain order) by one statement each."""
        if not self.entries:
            return
        chains = sorted({e[0] for e in self.entries})
        missing = set(chains) - {str(r[0]) for r in conn.execute(_HEADS_OF, {"chains": chains})}
        if missing:
            conn.execute(_NEW_HEAD, [{"chain": c, "genesis": GENESIS} for c in sorted(missing)])
        heads = {
            str(r[0]): (int(r[1]), str(r[2]))
            for r in conn.execute(_HEADS_LOCKED, {"chains": chains})
        }
        self._append(conn, heads)

    def _append(self, conn: Connection, heads: dict[str, tuple[int, str]]) -> None:
        """Sign and insert the entries after their chains' ``heads`` (seq, hash), locked by
        the caller; move the heads."""
        keys = keys_of(conn.engine)
        key, key_id = keys.signing_key, keys.current
        when = self.at.isoformat()
        rows: list[dict[str, Any]] = []
        moved: list[dict[str, Any]] = []
        by_chain: dict[str, list[_Entry]] = {}
        for entry in self.entries:
            by_chain.setdefault(entry[0], []).append(entry)
        for chain in sorted(by_chain):
            seq, prev = heads[chain]
            for _chain, action, order_id, refund_id, data, actor in by_chain[chain]:
                seq += 1
                data_text = compact(data)
                digest = signed_hash(
                    key,
                    key_id,
                    chain,
                    prev,
                    seq=seq,
                    at=when,
                    actor=actor,
                    action=action,
                    order_id=order_id,
                    refund_id=refund_id,
                    data=data_text,
                )
                rows.append(
                    {
                        "chain": chain,
                        "seq": seq,
                        "at": self.at,
                        "actor": actor,
                        "action": action,
                        "order_id": order_id,
                        "refund_id": refund_id,
                        "data": data_text,
                        "prev_hash": prev,
                        "hash": digest,
                        "key_id": key_id,
                    }
                )
                prev = digest
            moved.append({"b_chain": chain, "b_seq": seq, "b_hash": prev})
        _INSERT_ENTRIES.run_many(conn, rows)
        _MOVE_HEAD.run_many(conn, moved)
        self.entries.clear()
