"""Checkpoints: the chains' heads as a verification found them, sealed by a digest kept outside.

A chain whose tail is cut and whose head is moved back to the entry before the cut is still a
genuine, signed chain: only a record of the head from before shows the cut. With one chain per
customer there are too many heads to print, so each ``refundry audit verify`` that finds every
chain sound writes a checkpoint row — the heads that moved since the checkpoint before it — and
prints its digest:

``digest(n) = sha256(digest(n-1) | n | at | heads(n))``

The operator keeps ``n:digest(n)`` where the database's writers cannot reach it. Given that
anchor, ``check_anchor`` recomputes the digests of checkpoints 1..n (a checkpoint edited,
removed or inserted breaks them), merges their heads into the latest head each chain had at
checkpoint n, and checks that every chain still holds that entry with that hash: a tail cut
behind any head checkpoint n knew of shows, in any chain.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, tuple_

from refundry.services.audit.chain import GENESIS
from refundry.services.audit.verify import ChainReport
from refundry.store.tables import audit_checkpoints, audit_log

__all__ = ["Checkpoint", "anchored_heads", "check_anchor", "parse_anchor", "write_checkpoint"]

_PAGE = 1000  # (chain, seq) pairs per query when checking an anchor


@dataclass(frozen=True, slots=True)
class Checkpoint:
    id: int
    digest: str
    moved: int  # heads recorded in it (those that moved since the one before)

    @property
    def anchor(self) -> str:
        """What the operator keeps and gives to the next ``--anchor``."""
        return f"{self.id}:{self.digest}"


def _digest(prev: str, checkpoint_id: int, at: datetime, heads_text: str) -> str:
    text = f"{prev}|{checkpoint_id}|{at.isoformat()}|{heads_text}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _checkpoints(conn: Connection, through: int | None = None) -> list[Any]:
    query = select(audit_checkpoints).order_by(audit_checkpoints.c.id)
    if through is not None:
        query = query.where(audit_checkpoints.c.id <= through)
    return list(conn.execute(query))


def anchored_heads(rows: Iterable[Any]) -> dict[str, tuple[int, str]]:
    """The latest head of each chain over ``rows`` (checkpoints, in order)."""
    merged: dict[str, tuple[int, str]] = {}
    for row in rows:
        for chain, (seq, digest) in json.loads(row.heads).items():
            merged[chain] = (int(seq), str(digest))
    return merged


def write_checkpoint(
    conn: Connection, heads: Mapping[str, tuple[int, str]], *, now: datetime
) -> Checkpoint:
    """Record ``heads`` (as a verification found them) after the last checkpoint: only the
    heads that moved since; the caller commits."""
    rows = _checkpoints(conn)
    known = anchored_heads(rows)
    moved = {c: [seq, h] for c, (seq, h) in sorted(heads.items()) if known.get(c) != (seq, h)}
    checkpoint_id = len(rows) + 1
    prev = str(rows[-1].digest) if rows else GENESIS
    heads_text = json.dumps(moved, ensure_ascii=False, separators=(",", ":"))
    digest = _digest(prev, checkpoint_id, now, heads_text)
    conn.execute(
        insert(audit_checkpoints).values(
            id=checkpoint_id, at=now, heads=heads_text, prev_digest=prev, digest=digest
        )
    )
    return Checkpoint(checkpoint_id, digest, len(moved))


def parse_anchor(text: str) -> tuple[int, str] | None:
    """``N:DIGEST`` → (N, digest); None when it is not of that form."""
    number, _, digest = text.partition(":")
    if not number.isdigit() or len(digest) != 64:
        return None
    return int(number), digest.lower()


def check_anchor(conn: Connection, checkpoint_id: int, digest: str) -> ChainReport:
    """Whether the checkpoints up to ``checkpoint_id`` are those whose digest is ``digest``
    and every head they name is still in its chain with its hash."""
    rows = _checkpoints(conn, checkpoint_id)
    prev = GENESIS
    for n, r in enumerate(rows, start=1):
        again = _digest(prev, n, r.at, r.heads)
        if r.id != n or r.prev_digest != prev or r.digest != again:
            return ChainReport(
                False, 0, None, f"checkpoint {n} was altered, removed or inserted", None
            )
        prev = again
    if len(rows) != checkpoint_id or not hmac.compare_digest(prev, digest):
        return ChainReport(
            False,
            0,
            None,
            f"the checkpoints do not end in the anchor {checkpoint_id}:{digest[:12]}… "
            "(removed or rewritten), nor is it an entry of the legacy chain (a head printed "
            "before 0019: its tail cut or rewritten)",
            None,
        )
    want = anchored_heads(rows)
    pairs = sorted((c, seq) for c, (seq, _h) in want.items() if seq > 0)
    c = audit_log.c
    for start in range(0, len(pairs), _PAGE):
        page = pairs[start : start + _PAGE]
        found = {
            (str(ch), int(seq)): str(h)
            for ch, seq, h in conn.execute(
                select(c.chain, c.seq, c.hash).where(tuple_(c.chain, c.seq).in_(page))
            )
        }
        for chain, seq in page:
            if found.get((chain, seq)) != want[chain][1]:
                return ChainReport(
                    False,
                    0,
                    seq,
                    f"checkpoint {checkpoint_id} saw this entry ending "
                    f"{want[chain][1][:12]}…: it is gone or different (tail cut or rewritten)",
                    chain,
                )
    return ChainReport(True, len(pairs))
