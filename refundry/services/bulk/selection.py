"""What a bulk refund selects, and the orders it matches.

A selector combines any of: ``campaign`` (orders with a discount, gift or reward of that
campaign), ``sku`` and ``merchant`` (orders with such a line; only those lines are refunded),
``paid_from`` / ``paid_until`` (orders paid in [from, until)), ``order_ids`` (a list, e.g. from a
file). Every criterion given must hold; at least one is required. Orders fully refunded are not
selected (ids named in ``order_ids`` always are: the job records what happened to each).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, or_, select

from refundry.domain.errors import InvalidInput
from refundry.domain.json_text import compact
from refundry.domain.policy import REASONS
from refundry.domain.reader import Reader
from refundry.store.tables import campaign_rewards, order_adjustments, order_lines, orders

__all__ = ["MAX_ORDER_IDS", "Selector", "matching_orders", "parse_selector"]

MAX_ORDER_IDS = 1_000_000


@dataclass(frozen=True, slots=True)
class Selector:
    campaign: str | None = None
    sku: str | None = None
    merchant: str | None = None
    paid_from: datetime | None = None
    paid_until: datetime | None = None
    order_ids: tuple[str, ...] = ()

    @property
    def lines_filtered(self) -> bool:
        """Only some lines of each order are refunded (a SKU's or a merchant's)."""
        return self.sku is not None or self.merchant is not None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in ("campaign", "sku", "merchant"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        for key in ("paid_from", "paid_until"):
            when = getattr(self, key)
            if when is not None:
                out[key] = when.isoformat()
        if self.order_ids:
            out["order_ids"] = list(self.order_ids)
        return out

    def fingerprint(self, *, reason: str, policy: dict[str, Any]) -> str:
        """The same selection, reason and policy: the same job (a command run again finds it)."""
        text = compact({"selector": self.as_dict(), "reason": reason, "policy": policy})
        return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def parse_selector(data: Any, *, reason: Any) -> tuple[Selector, str]:
    """The selector and reason from a JSON object, naming the bad field (``bulk.invalid``);
    ``bulk.selector_missing`` when nothing is selected by."""
    r = Reader(data, "selector", "bulk.invalid")
    r.only("campaign", "sku", "merchant", "paid_from", "paid_until", "order_ids")
    selector = Selector(
        campaign=r.opt_text("campaign"),
        sku=r.opt_text("sku"),
        merchant=r.opt_text("merchant"),
        paid_from=r.moment("paid_from", required=False) if r.has("paid_from") else None,
        paid_until=r.moment("paid_until", required=False) if r.has("paid_until") else None,
        order_ids=tuple(r.str_list("order_ids", required=False)) if r.has("order_ids") else (),
    )
    if not selector.as_dict():
        raise InvalidInput(
            "select orders by campaign, sku, merchant, paid_from / paid_until or order ids",
            code="bulk.selector_missing",
            field="selector",
        )
    if (
        selector.paid_from is not None
        and selector.paid_until is not None
        and selector.paid_until <= selector.paid_from
    ):
        r.fail("paid_until", "must be later than paid_from")
    if len(selector.order_ids) > MAX_ORDER_IDS:
        r.fail("order_ids", f"at most {MAX_ORDER_IDS} ids")
    if len(set(selector.order_ids)) != len(selector.order_ids):
        r.fail("order_ids", "an order id is named twice")
    if reason not in REASONS:
        raise InvalidInput(
            f"must be one of {', '.join(REASONS)}", code="bulk.invalid", field="reason"
        )
    return selector, str(reason)


def matching_orders(conn: Connection, selector: Selector) -> list[tuple[str, str | None]]:
    """(order id, customer id) of every order the selector matches, in the order they were
    paid; with ``order_ids``, in the list's order. Ids that name no order are kept (customer
    None: the job records ``order.not_found``) when the ids are the only criterion."""
    if not selector.order_ids:
        query = _query(selector, None).order_by(orders.c.paid_at, orders.c.id)
        return [(r.id, r.customer_id) for r in conn.execute(query)]
    found: dict[str, str] = {}
    ids = selector.order_ids
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        found.update((r.id, r.customer_id) for r in conn.execute(_query(selector, chunk)))
    if selector.as_dict().keys() == {"order_ids"}:
        return [(i, found.get(i)) for i in ids]
    return [(i, found[i]) for i in ids if i in found]


# Ids per statement: one bound parameter each (SQLite allows 32,766).
_CHUNK = 5_000


def _query(selector: Selector, ids: tuple[str, ...] | None) -> Any:
    o, line = orders.c, order_lines.c
    query = select(o.id, o.customer_id)
    if ids is not None:
        query = query.where(o.id.in_(ids))
    else:
        query = query.where(o.goods_refunded < o.goods_units)
    if selector.campaign is not None:
        adj, rew = order_adjustments.c, campaign_rewards.c
        query = query.where(
            or_(
                o.id.in_(
                    select(adj.order_id).where(
                        (adj.source_type == "campaign") & (adj.source_id == selector.campaign)
                    )
                ),
                o.id.in_(select(rew.order_id).where(rew.campaign_id == selector.campaign)),
                o.id.in_(select(line.order_id).where(line.gift_of == selector.campaign)),
            )
        )
    if selector.lines_filtered:
        lines = select(line.order_id)
        if selector.sku is not None:
            lines = lines.where(line.sku == selector.sku)
        if selector.merchant is not None:
            lines = lines.where(line.merchant_id == selector.merchant)
        query = query.where(o.id.in_(lines))
    if selector.paid_from is not None:
        query = query.where(o.paid_at >= selector.paid_from)
    if selector.paid_until is not None:
        query = query.where(o.paid_at < selector.paid_until)
    return query
