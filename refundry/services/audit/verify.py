"""Checking the audit chains: all of them (``verify_chain``), or a few entries where they stand.

``verify_chain`` walks every chain in chain order, each from its first entry to its head
(``refundry audit verify``); ``verify_entries`` checks a few entries (an order's) where they
stand — their signatures, their links to the entries before them, and their chains' heads — at a
cost that does not grow with the chains (docs/audit.md).
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, select, tuple_

from refundry.services.audit.chain import GENESIS, LEGACY_CHAIN, entry_hash, signed_hash
from refundry.services.audit.keys import AuditKeys, keys_of
from refundry.store.tables import audit_heads, audit_log

__all__ = ["ChainReport", "verify_chain", "verify_entries"]


@dataclass(frozen=True, slots=True)
class ChainReport:
    """``entries``: how many verified; ``chains``: how many chains were walked (0 for
    ``verify_entries``); ``chain`` and ``first_bad_seq`` name the first entry that does not
    verify."""

    ok: bool
    entries: int
    first_bad_seq: int | None = None
    problem: str = ""
    chain: str | None = None
    chains: int = 0
    # verify_chain: every chain's head it verified, chain -> (seq, hash) (for a checkpoint)
    heads: dict[str, tuple[int, str]] = field(default_factory=dict, repr=False, compare=False)

    @property
    def where(self) -> str:
        """``entry 7 of chain 'c-1'``: where the chain breaks, for messages."""
        return f"entry {self.first_bad_seq} of chain {self.chain!r}"


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
        if row.chain != LEGACY_CHAIN or row.seq > keys.unkeyed_through:
            return (
                "is not signed (entries after audit_unkeyed_through must be): "
                "rewritten without the audit key"
            )
        digest = entry_hash(row.prev_hash, **entry)
    else:
        key = keys.keys.get(row.key_id)
        if key is None:
            return f"is signed with key {row.key_id!r}, which is not among the audit keys"
        digest = signed_hash(key, row.key_id, row.chain, row.prev_hash, **entry)
    if not hmac.compare_digest(digest, row.hash):
        return "content does not match its signature (edited)"
    return None


def _rows(conn: Connection) -> Iterator[Any]:
    result = conn.execution_options(yield_per=2000).execute(
        select(audit_log).order_by(audit_log.c.chain, audit_log.c.seq)
    )
    yield from result


def _heads(conn: Connection) -> dict[str, tuple[int, str]]:
    found = conn.execute(select(audit_heads.c.chain, audit_heads.c.seq, audit_heads.c.hash))
    return {str(chain): (int(seq), str(h)) for chain, seq, h in found}


def _head_problem(chain: str, head: tuple[int, str], last: tuple[int, str]) -> str:
    return (
        f"the head of chain {chain!r} says {head[0]} entries ending {head[1][:12]}…, the log "
        f"has {last[0]} ending {last[1][:12]}… (tail truncated or head altered)"
    )


def verify_chain(conn: Connection, keys: AuditKeys | None = None) -> ChainReport:
    """Walk every chain; name the first entry that does not verify. ``keys``: the engine's
    (services/audit/keys.py) when not given. The heads and the entries must be read in one
    snapshot (SQLite's read transaction; on PostgreSQL ``REPEATABLE READ``, as ``refundry
    audit verify`` reads), or entries appended meanwhile would look like a moved head."""
    keys = keys or keys_of(conn.engine)
    heads = _heads(conn)
    verified = dict(heads)
    count = chains = 0
    chain: str | None = None
    expected_seq, prev = 1, GENESIS

    def end_of(chain: str, seq: int, last: str) -> ChainReport | None:
        head = heads.pop(chain, (0, GENESIS))
        if head != (seq, last):
            bad = seq + 1 if head[0] > seq else head[0]
            return ChainReport(False, count, bad, _head_problem(chain, head, (seq, last)), chain)
        return None

    for row in _rows(conn):
        if row.chain != chain:
            if chain is not None and (broken := end_of(chain, expected_seq - 1, prev)):
                return broken
            chain, expected_seq, prev, chains = row.chain, 1, GENESIS, chains + 1
        if row.seq != expected_seq:
            return ChainReport(
                False,
                count,
                expected_seq,
                f"entry {expected_seq} is missing (next is {row.seq})",
                row.chain,
            )
        if row.prev_hash != prev:
            return ChainReport(
                False,
                count,
                row.seq,
                "does not link to the entry before it (moved or replaced)",
                row.chain,
            )
        problem = _entry_problem(row, keys)
        if problem is not None:
            return ChainReport(False, count, row.seq, problem, row.chain)
        prev, expected_seq, count = row.hash, expected_seq + 1, count + 1
    if chain is not None and (broken := end_of(chain, expected_seq - 1, prev)):
        return broken
    for empty, head in sorted(heads.items()):  # heads of chains with no entry left
        if head[0] != 0:
            return ChainReport(False, count, 1, _head_problem(empty, head, (0, GENESIS)), empty)
    return ChainReport(True, count, chains=chains, heads=verified)


def verify_entries(
    conn: Connection, rows: Sequence[Any], keys: AuditKeys | None = None
) -> ChainReport:
    """Check ``rows`` (whole ``audit_log`` rows) where they stand: each one's signature, its
    link to the entry before it in its chain (read by chain and sequence number, one query),
    and that each of their chains' head rows names an entry that is there with that hash and
    nothing after it. The cost grows with ``len(rows)`` and the log of the chains' length, not
    with the chains: an edited, replaced or removed entry of these, or a cut tail, shows here;
    an entry elsewhere removed or reordered shows in ``verify_chain``."""
    keys = keys or keys_of(conn.engine)
    c = audit_log.c
    before = sorted({(r.chain, r.seq - 1) for r in rows if r.seq > 1})
    hashes: dict[tuple[str, int], str] = {}
    if before:
        found = conn.execute(
            select(c.chain, c.seq, c.hash).where(tuple_(c.chain, c.seq).in_(before))
        )
        hashes = {(str(ch), int(seq)): str(h) for ch, seq, h in found}
    for row in rows:
        problem = _entry_problem(row, keys)
        if problem is not None:
            return ChainReport(False, 0, row.seq, problem, row.chain)
        expected = GENESIS if row.seq == 1 else hashes.get((row.chain, row.seq - 1))
        if expected is None:
            return ChainReport(
                False, 0, row.seq - 1, "is missing (the entry after it remains)", row.chain
            )
        if row.prev_hash != expected:
            return ChainReport(
                False,
                0,
                row.seq,
                "does not link to the entry before it (moved or replaced)",
                row.chain,
            )
    for chain in sorted({r.chain for r in rows}):
        head = conn.execute(
            select(audit_heads.c.seq, audit_heads.c.hash).where(audit_heads.c.chain == chain)
        ).first()
        last = conn.execute(
            select(c.seq, c.hash).where(c.chain == chain).order_by(c.seq.desc()).limit(1)
        ).first()
        head_pair = (int(head[0]), str(head[1])) if head else (0, GENESIS)
        last_pair = (int(last[0]), str(last[1])) if last else (0, GENESIS)
        if head_pair != last_pair:
            bad = min(head_pair[0], last_pair[0]) + 1
            return ChainReport(False, 0, bad, _head_problem(chain, head_pair, last_pair), chain)
    return ChainReport(True, len(rows))
