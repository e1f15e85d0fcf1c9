"""The hash of a plan's inputs: the same inputs give the same hash in any process.

Applying a plan recomputes it from the current state; a different hash means the state moved
under the caller (``plan.stale``). Orders and snapshots are immutable, so their part of the hash
is computed once per object and kept.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import fields, is_dataclass
from datetime import datetime
from enum import Enum
from typing import Any

from refundry.domain.customer import CustomerSnapshot
from refundry.domain.json_text import compact, compact_unsorted
from refundry.domain.order import Order
from refundry.domain.policy import Policy
from refundry.domain.request import PriorRefund, RefundRequest

__all__ = ["canonical", "fingerprint"]

_memo: dict[int, tuple[object, str]] = {}


_FIELDS: dict[type, tuple[str, ...] | None] = {}
_PLAIN = frozenset({str, int, bool, type(None)})


def canonical(value: Any) -> Any:
    """A JSON-ready, order-independent form of a domain value."""
    cls = type(value)
    if cls in _PLAIN:
        return value
    if cls not in _FIELDS:
        _FIELDS[cls] = tuple(f.name for f in fields(cls) if f.init) if is_dataclass(cls) else None
    names = _FIELDS[cls]
    if names is not None:
        return {name: canonical(getattr(value, name)) for name in names}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted(canonical(v) for v in value)
    return value


def _digest(value: Any) -> str:
    text = compact(canonical(value))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _cached_digest(value: Order | CustomerSnapshot | Policy) -> str:
    # Keyed by identity and holding the object itself, so an id is never reused while cached.
    hit = _memo.get(id(value))
    if hit is not None and hit[0] is value:
        return hit[1]
    digest = _digest(value)
    if len(_memo) > 4096:
        _memo.clear()
    _memo[id(value)] = (value, digest)
    return digest


def fingerprint(
    *,
    order: Order,
    history: Sequence[PriorRefund],
    customer: CustomerSnapshot,
    request: RefundRequest,
    policy: Policy,
    now: datetime,
    order_digest: str | None = None,
) -> str:
    """``order_digest`` may stand for the order when the caller has a cheaper exact digest of
    it (the store hashes the order's stored text instead of walking the parsed object)."""
    # Request and history are small and new on every call: a flat list is enough and cheap.
    steps = [
        [
            h.reason,
            sorted(h.units.items()),
            sorted(h.moved.items()),
            h.path_deductions,
            sorted(h.reward_reductions.items()),
            h.shipping_refunded,
        ]
        for h in history
    ]
    asked = [
        request.order_id,
        request.reason,
        request.kind,
        request.return_method,
        [[u.line_id, u.quantity] for u in request.lines],
    ]
    parts = [
        order_digest or _cached_digest(order),
        _cached_digest(customer),
        _cached_digest(policy),
        compact_unsorted([steps, asked]),
        now.isoformat(),
    ]
    return "sha256:" + hashlib.sha256("|".join(parts).encode("utf-8")).hexdigest()
