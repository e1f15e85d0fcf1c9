"""Double-entry postings: every journal sums to zero, balances move with their postings.

Each journal has a customer leg and a shop leg. A customer account keeps its balance in its
row, updated in the same transaction as the posting (the CHECK constraint keeps wallets from
going negative). The shop's counter-accounts (``shop:points``…) are append-only: their balance
is the sum of their postings, computed when read. A running balance there would be one hot row
that every refund of every customer locks, serializing the whole shop.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, bindparam, insert, select, update

from refundry.services.batch import RowBatch
from refundry.store.tables import ledger_accounts, ledger_postings

__all__ = ["account_id", "balance", "post", "shop_account_id"]

# Statements built once, executed with parameters (cache key and compiled form reused).
_a = ledger_accounts.c
_MOVE = (
    update(ledger_accounts)
    .where(_a.id == bindparam("b_id"))
    .values(balance=_a.balance + bindparam("b_delta"))
    .returning(_a.balance)
)
_OPEN_ACCOUNT = insert(ledger_accounts)
_INSERT_POSTINGS = insert(ledger_postings)
_BALANCE = select(_a.balance).where(_a.id == bindparam("b_id"))


def account_id(kind: str, customer_id: str) -> str:
    return f"{kind}:{customer_id}"


def shop_account_id(kind: str) -> str:
    """The shop's counter-account of a kind (created by the initial migration)."""
    return f"shop/{kind}"


def _move(conn: Connection, acc: str, kind: str, customer_id: str, delta: int) -> int:
    """Add ``delta`` to a customer account; returns the new balance."""
    moved = conn.execute(_MOVE, {"b_id": acc, "b_delta": delta}).first()
    if moved is not None:
        return int(moved[0])
    # First movement of this account. Points may go negative (policy allow_negative); wallets,
    # gift cards and growth may not (the CHECK constraint refuses it).
    conn.execute(
        _OPEN_ACCOUNT,
        {
            "id": acc,
            "kind": kind,
            "customer_id": customer_id,
            "balance": delta,
            "may_go_negative": kind == "points",
        },
    )
    return delta


def post(
    conn: Connection,
    *,
    journal_id: str,
    kind: str,
    customer_id: str,
    amount: int,
    memo: str,
    at: datetime,
    order_id: str | None = None,
    refund_id: str | None = None,
    batch: RowBatch | None = None,
) -> int:
    """Move ``amount`` of ``kind`` from the shop to the customer (negative: back to the shop).

    Returns the customer's new balance. With ``batch`` the two postings are appended to it and
    written at its flush, in the same transaction."""
    mine = account_id(kind, customer_id)
    if not amount:
        return balance(conn, kind, customer_id)
    after = _move(conn, mine, kind, customer_id, amount)
    legs: Sequence[tuple[str, int]] = ((mine, amount), (shop_account_id(kind), -amount))
    rows = [
        {
            "journal_id": journal_id,
            "account_id": acc,
            "amount": delta,
            "order_id": order_id,
            "refund_id": refund_id,
            "memo": memo,
            "created_at": at,
        }
        for acc, delta in legs
    ]
    if batch is not None:
        batch.postings.extend(rows)
    else:
        conn.execute(_INSERT_POSTINGS, rows)
    return after


def balance(conn: Connection, kind: str, customer_id: str) -> int:
    """A customer account's balance (0 if it never moved)."""
    row = conn.execute(_BALANCE, {"b_id": account_id(kind, customer_id)}).first()
    return int(row[0]) if row else 0
