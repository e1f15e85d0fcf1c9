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

from sqlalchemy import (
    BigInteger,
    Connection,
    String,
    bindparam,
    case,
    insert,
    select,
    update,
)

from refundry.services.errors import Unprocessable
from refundry.services.refunds.batch import INSERT_POSTINGS, RowBatch
from refundry.store.prepared import Prepared
from refundry.store.tables import ledger_accounts

__all__ = ["account_id", "balance", "debit_wallet", "move_accounts", "post", "shop_account_id"]

# Statements built once, executed with parameters (cache key and compiled form reused).
_a = ledger_accounts.c
_MOVE = Prepared(
    update(ledger_accounts)
    .where(_a.id == bindparam("b_id"))
    .values(balance=_a.balance + bindparam("b_delta"))
    .returning(_a.balance)
)
_OPEN_ACCOUNT = Prepared(insert(ledger_accounts))
_BALANCE = Prepared(select(_a.balance).where(_a.id == bindparam("b_id")))
_move_many: dict[int, Prepared] = {}


def account_id(kind: str, customer_id: str) -> str:
    return f"{kind}:{customer_id}"


def shop_account_id(kind: str) -> str:
    """The shop's counter-account of a kind (created by the initial migration)."""
    return f"shop/{kind}"


def _move(conn: Connection, acc: str, kind: str, customer_id: str, delta: int) -> int:
    """Add ``delta`` to a customer account; returns the new balance."""
    moved = _MOVE.first(conn, {"b_id": acc, "b_delta": delta})
    if moved is not None:
        return int(moved[0])
    # First movement of this account. Points may go negative (policy allow_negative); wallets,
    # gift cards and growth may not (the CHECK constraint refuses it).
    _OPEN_ACCOUNT.run(
        conn,
        {
            "id": acc,
            "kind": kind,
            "customer_id": customer_id,
            "balance": delta,
            "may_go_negative": kind == "points",
        },
    )
    return delta


def _move_many_stmt(n: int) -> Prepared:
    """Account ``b_id_i`` gains ``b_delta_i``; the rows are locked (PostgreSQL) in the order
    given, as one UPDATE per account would lock them, then updated; returns (id, balance)."""
    stmt = _move_many.get(n)
    if stmt is None:
        ids = [bindparam(f"b_id_{i}", type_=String()) for i in range(n)]
        locked = (
            select(_a.id)
            .where(_a.id.in_(ids))
            .order_by(case(*[(_a.id == ids[i], i) for i in range(n)]))
            .with_for_update()
        )
        added = case(
            *[(_a.id == ids[i], bindparam(f"b_delta_{i}", type_=BigInteger())) for i in range(n)],
            else_=0,
        )
        stmt = Prepared(
            update(ledger_accounts)
            .where(_a.id.in_(locked))
            .values(balance=_a.balance + added)
            .returning(_a.id, _a.balance)
        )
        if n <= 16:
            _move_many[n] = stmt
    return stmt


def move_accounts(
    conn: Connection, customer_id: str, moves: Sequence[tuple[str, int]]
) -> list[int] | None:
    """Make the balance moves ``(kind, delta)`` of a customer's accounts in one statement (and
    one INSERT per account that never moved); returns the balance after each move, as if they
    had been made one by one in this order (pass each to ``post(after=…)``).

    None (nothing moved; post one by one) unless the one statement is sure to end as the moves
    one by one would: every delta non-zero, and on each account no increase after a decrease
    (then the lowest running balance is the start or the end, and the CHECK on the end balance
    refuses exactly when one of the single moves would have)."""
    totals: dict[str, int] = {}
    kinds: dict[str, str] = {}
    fell: set[str] = set()
    for kind, delta in moves:
        acc = account_id(kind, customer_id)
        if not delta or (delta > 0 and acc in fell):
            return None
        if delta < 0:
            fell.add(acc)
        totals[acc] = totals.get(acc, 0) + delta
        kinds[acc] = kind
    if not totals:
        return []
    params: dict[str, object] = {}
    for i, (acc, total) in enumerate(totals.items()):
        params[f"b_id_{i}"] = acc
        params[f"b_delta_{i}"] = total
    final = {str(r[0]): int(r[1]) for r in _move_many_stmt(len(totals)).rows(conn, params)}
    for acc, total in totals.items():
        if acc not in final:  # first movement of this account (see _move)
            _OPEN_ACCOUNT.run(
                conn,
                {
                    "id": acc,
                    "kind": kinds[acc],
                    "customer_id": customer_id,
                    "balance": total,
                    "may_go_negative": kinds[acc] == "points",
                },
            )
            final[acc] = total
    afters = []
    for kind, delta in reversed(moves):
        acc = account_id(kind, customer_id)
        afters.append(final[acc])
        final[acc] -= delta
    afters.reverse()
    return afters


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
    after: int | None = None,
) -> int:
    """Move ``amount`` of ``kind`` from the shop to the customer (negative: back to the shop).

    Returns the customer's new balance. With ``batch`` the two postings are appended to it and
    written at its flush, in the same transaction. ``after``: the account was already moved by
    ``move_accounts``, this is its balance after this posting (only the postings are written)."""
    mine = account_id(kind, customer_id)
    if not amount:
        return balance(conn, kind, customer_id)
    if after is None:
        after = _move(conn, mine, kind, customer_id, amount)
    legs: Sequence[tuple[str, int]] = ((mine, amount), (shop_account_id(kind), -amount))
    rows = [
        {
            "journal_id": journal_id,
            "customer_id": customer_id,  # on the shop's leg too: the journal's customer
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
        INSERT_POSTINGS.run_many(conn, rows)
    return after


def balance(conn: Connection, kind: str, customer_id: str) -> int:
    """A customer account's balance (0 if it never moved)."""
    row = _BALANCE.first(conn, {"b_id": account_id(kind, customer_id)})
    return int(row[0]) if row else 0


def debit_wallet(
    conn: Connection,
    *,
    journal_id: str,
    customer_id: str,
    amount: int,
    memo: str,
    at: datetime,
    order_id: str | None,
    what: str,
    otherwise: str,
) -> None:
    """Take ``amount`` from the customer's wallet back to the shop, only if the wallet holds
    it: else ``ledger.insufficient_funds`` (naming ``what`` the amount is, and ``otherwise``
    what the caller may do instead) and nothing moves."""
    held = balance(conn, "wallet", customer_id)
    if held < amount:
        raise Unprocessable(
            f"the customer's wallet holds {held}, less than {what} {amount} (minor units): "
            + otherwise,
            code="ledger.insufficient_funds",
        )
    post(
        conn,
        journal_id=journal_id,
        kind="wallet",
        customer_id=customer_id,
        amount=-amount,
        at=at,
        order_id=order_id,
        memo=memo,
    )
