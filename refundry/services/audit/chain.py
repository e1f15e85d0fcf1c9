"""The tamper-evident audit log: each entry signs the previous one; the head row seals the tail.

``hash(n) = HMAC-SHA256(key[key_id], key_id | hash(n-1) | canonical(entry n))`` where the
canonical form covers the sequence number, time, actor, action, order, refund and data, and the
key is the process's, never the database's (services/audit/keys.py). An edited row breaks its
own hash, a deleted or swapped row breaks the sequence and the link, and a truncated tail no
longer matches the head row, which is written in the same transaction as every entry. Without
the key a full rewrite — an edit, then every later hash and the head recomputed — cannot make
a signature that verifies. Entries written before migration 0010 have no key id and verify as
``sha256(hash(n-1) | canonical(entry n))``, up to ``audit_unkeyed_through`` only.

``verify_chain`` walks the whole chain (``refundry audit verify``); ``verify_entries`` checks a
few entries (an order's) where they stand — their signatures, their links to the entries before
them, and the head — at a cost that does not grow with the chain (docs/audit.md).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update

from refundry.domain.json_text import compact, compact_unsorted
from refundry.services.audit.keys import AuditKeys, keys_of
from refundry.store.prepared import Prepared
from refundry.store.tables import audit_head, audit_log

__all__ = [
    "GENESIS",
    "AuditTrail",
    "ChainReport",
    "entry_hash",
    "signed_hash",
    "verify_chain",
    "verify_entries",
]

GENESIS = "0" * 64

# Statements built once, executed with parameters (cache key and compiled form reused).
_HEAD_LOCKED = Prepared(
    select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1).with_for_update()
)
_INSERT_ENTRIES = Prepared(insert(audit_log))
_INSERT_HEAD = Prepared(insert(audit_head))
_MOVE_HEAD = Prepared(
    update(audit_head)
    .where(audit_head.c.id == 1)
    .values(seq=bindparam("b_seq"), hash=bindparam("b_hash"))
)


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
    """The unkeyed hash of an entry written before migration 0010."""
    text = prev_hash + "|" + _canonical(**entry)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def signed_hash(key: bytes, key_id: str, prev_hash: str, **entry: Any) -> str:
    text = key_id + "|" + prev_hash + "|" + _canonical(**entry)
    return hmac.digest(key, text.encode("utf-8"), "sha256").hex()


@dataclass(slots=True)
class AuditTrail:
    """Collects a transaction's audit entries and appends them at ``flush`` under the head lock."""

    actor: str
    at: datetime
    # (action, order id, refund id, data, actor)
    entries: list[tuple[str, str | None, str | None, dict[str, Any], str]] = field(
        default_factory=list
    )

    def record(
        self,
        action: str,
        *,
        order_id: str | None = None,
        refund_id: str | None = None,
        **data: Any,
    ) -> None:
        self.entries.append((action, order_id, refund_id, data, self.actor))

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

    def flush(self, conn: Connection) -> None:
        if not self.entries:
            return
        keys = keys_of(conn.engine)
        key, key_id = keys.signing_key, keys.current
        head = _HEAD_LOCKED.first(conn)
        seq, prev = (int(head[0]), str(head[1])) if head else (0, GENESIS)
        when = self.at.isoformat()
        rows = []
        for action, order_id, refund_id, data, actor in self.entries:
            seq += 1
            text = compact(data)
            digest = signed_hash(
                key,
                key_id,
                prev,
                seq=seq,
                at=when,
                actor=actor,
                action=action,
                order_id=order_id,
                refund_id=refund_id,
                data=text,
            )
            rows.append(
                {
                    "seq": seq,
                    "at": self.at,
                    "actor": actor,
                    "action": action,
                    "order_id": order_id,
                    "refund_id": refund_id,
                    "data": text,
                    "prev_hash": prev,
                    "hash": digest,
                    "key_id": key_id,
                }
            )
            prev = digest
        _INSERT_ENTRIES.run_many(conn, rows)
        if head is None:
            _INSERT_HEAD.run(conn, {"id": 1, "seq": seq, "hash": prev})
        else:
            _MOVE_HEAD.run(conn, {"b_seq": seq, "b_hash": prev})
        self.entries.clear()


@dataclass(frozen=True, slots=True)
class ChainReport:
    ok: bool
    entries: int
    first_bad_seq: int | None = None
    problem: str = ""


def _rows(conn: Connection) -> Iterator[Any]:
    result = conn.execution_options(yield_per=2000).execute(
        select(audit_log).order_by(audit_log.c.seq)
    )
    yield from result


def _entry_problem(row: Any, keys: AuditKeys) -> str | None:
    """Why ``row`` does not match its own hash (None: it does)."""
    entry = {
        "seq": row.seq,
        "at": row.at,
        "actor": row.actor,
        "action": row.action,
        "order_id": row.order_id,
        "refund_id": row.refund_id,
        "data": row.data,
    }
    if row.key_id is None:
        if row.seq > keys.unkeyed_through:
            return (
                "is not signed (entries after audit_unkeyed_through must be): "
                "rewritten without the audit key"
            )
        digest = entry_hash(row.prev_hash, **entry)
    else:
        key = keys.keys.get(row.key_id)
        if key is None:
            return f"is signed with key {row.key_id!r}, which is not among the audit keys"
        digest = signed_hash(key, row.key_id, row.prev_hash, **entry)
    if not hmac.compare_digest(digest, row.hash):
        return "content does not match its signature (edited)"
    return None


def verify_chain(conn: Connection, keys: AuditKeys | None = None) -> ChainReport:
    """Walk the whole chain; name the first entry that does not verify. ``keys``: the
    engine's (services/audit/keys.py) when not given."""
    keys = keys or keys_of(conn.engine)
    expected_seq, prev, count = 1, GENESIS, 0
    for row in _rows(conn):
        if row.seq != expected_seq:
            return ChainReport(
                False, count, expected_seq, f"entry {expected_seq} is missing (next is {row.seq})"
            )
        if row.prev_hash != prev:
            return ChainReport(
                False, count, row.seq, "does not link to the entry before it (moved or replaced)"
            )
        problem = _entry_problem(row, keys)
        if problem is not None:
            return ChainReport(False, count, row.seq, problem)
        prev, expected_seq, count = row.hash, expected_seq + 1, count + 1
    head = conn.execute(select(audit_head.c.seq, audit_head.c.hash)).first()
    head_seq, head_hash = (int(head[0]), str(head[1])) if head else (0, GENESIS)
    if head_seq != count or head_hash != prev:
        return ChainReport(
            False,
            count,
            count + 1 if head_seq > count else head_seq,
            f"the head says {head_seq} entries ending {head_hash[:12]}…, the log "
            f"has {count} ending {prev[:12]}… (tail truncated or head altered)",
        )
    return ChainReport(True, count)


def verify_entries(
    conn: Connection, rows: Sequence[Any], keys: AuditKeys | None = None
) -> ChainReport:
    """Check ``rows`` (whole ``audit_log`` rows, in chain order) where they stand: each one's
    signature, its link to the entry before it (read by its sequence number, one query), and
    that the head row names an entry that is there with that hash and nothing after it. The
    cost grows with ``len(rows)`` and the log of the chain's length, not with the chain: an
    edited, replaced or removed entry of these, or a cut tail, shows here; an entry elsewhere
    removed or reordered shows in ``verify_chain`` (``refundry audit verify``)."""
    keys = keys or keys_of(conn.engine)
    c = audit_log.c
    before = {r.seq - 1 for r in rows if r.seq > 1}
    hashes = {}
    if before:
        found = conn.execute(select(c.seq, c.hash).where(c.seq.in_(sorted(before))))
        hashes = {int(seq): str(h) for seq, h in found}
    for row in rows:
        problem = _entry_problem(row, keys)
        if problem is not None:
            return ChainReport(False, 0, row.seq, problem)
        expected = GENESIS if row.seq == 1 else hashes.get(row.seq - 1)
        if expected is None:
            return ChainReport(False, 0, row.seq - 1, "is missing (the entry after it remains)")
        if row.prev_hash != expected:
            return ChainReport(
                False, 0, row.seq, "does not link to the entry before it (moved or replaced)"
            )
    head = conn.execute(select(audit_head.c.seq, audit_head.c.hash)).first()
    last = conn.execute(select(c.seq, c.hash).order_by(c.seq.desc()).limit(1)).first()
    head_pair = (int(head[0]), str(head[1])) if head else (0, GENESIS)
    last_pair = (int(last[0]), str(last[1])) if last else (0, GENESIS)
    if head_pair != last_pair:
        return ChainReport(
            False,
            0,
            min(head_pair[0], last_pair[0]) + 1,
            f"the head says {head_pair[0]} entries ending {head_pair[1][:12]}…, the log ends "
            f"at {last_pair[0]} ending {last_pair[1][:12]}… (tail truncated or head altered)",
        )
    return ChainReport(True, len(rows))
