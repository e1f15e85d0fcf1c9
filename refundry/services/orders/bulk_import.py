"""`refundry import`: ingest JSON lines in batches, keep the good rows, report the bad ones.

A batch (``batch`` lines, one transaction: one commit, one fsync) is first checked line by line
in Python — JSON, the order and customer documents, an id already stored or met earlier in the
batch (the same content: already present; other content: ``order.conflict``) — and its new
orders are then written together, one statement per table (services/orders/batch_ingest.py).
Should the database refuse that write (a wallet paid beyond its balance, an id another row
holds), the batch is rolled back and ingested again line by line, each line inside a SAVEPOINT
so a refused line rolls back alone and is reported with the database's reason; the others are
kept.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from hashlib import sha256
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, select
from sqlalchemy.exc import IntegrityError

from refundry.domain.errors import RefundryError
from refundry.domain.json_io import parse_order
from refundry.domain.json_text import compact
from refundry.domain.policy import Policy
from refundry.services.collector import collector_paused
from refundry.services.errors import Conflict
from refundry.services.orders.batch_ingest import BatchRefused, NewOrder, ingest_new_orders
from refundry.services.orders.ingest import (
    content_hash,
    ingest_order,
    parse_customer_block,
    split_envelope,
)
from refundry.services.uow import UnitOfWork
from refundry.store.tables import orders

__all__ = ["BadLine", "ImportReport", "import_lines"]


@dataclass(frozen=True, slots=True)
class BadLine:
    line: int
    code: str
    message: str


@dataclass(slots=True)
class ImportReport:
    ingested: int = 0
    already_present: int = 0
    bad: list[BadLine] = field(default_factory=list)


def import_lines(
    engine: Engine,
    lines: Iterable[str],
    *,
    policy: Policy,
    now: datetime,
    batch: int = 500,
    on_line: Callable[[int], None] | None = None,
) -> ImportReport:
    report = ImportReport()
    pending: list[tuple[int, str]] = []

    def flush() -> None:
        try:
            with collector_paused():
                ingested, present, bad = _at_once(engine, pending, policy=policy, now=now)
        except (BatchRefused, IntegrityError):
            flush_line_by_line()
        else:
            report.ingested += ingested
            report.already_present += present
            report.bad.extend(bad)
        pending.clear()

    def flush_line_by_line() -> None:
        with UnitOfWork(engine) as uow:
            for number, text in pending:
                savepoint = uow.conn.begin_nested()
                try:
                    result = ingest_order(uow.conn, json.loads(text), policy=policy, now=now)
                except json.JSONDecodeError as exc:
                    savepoint.rollback()
                    report.bad.append(
                        BadLine(
                            number,
                            "input.not_json",
                            f"not valid JSON at column {exc.colno}: {exc.msg}",
                        )
                    )
                    continue
                except RefundryError as exc:
                    savepoint.rollback()
                    where = f" at {exc.field}" if exc.field else ""
                    report.bad.append(BadLine(number, exc.code, f"{exc.message}{where}"))
                    continue
                except IntegrityError as exc:
                    # e.g. a wallet tender larger than the wallet's opening balance
                    savepoint.rollback()
                    first = str(exc.orig).splitlines()[0] if exc.orig else str(exc)
                    report.bad.append(BadLine(number, "store.constraint_violated", first))
                    continue
                savepoint.commit()
                if result.created:
                    report.ingested += 1
                else:
                    report.already_present += 1
            uow.commit()

    for number, text in enumerate(lines, start=1):
        if text.strip():
            pending.append((number, text))
        if len(pending) >= batch:
            flush()
        if on_line is not None:
            on_line(number)
    if pending:
        flush()
    return report


class _NotPlain(Exception):
    """A float or NaN / Infinity in a line."""


def _not_plain(_text: str) -> Any:
    raise _NotPlain


# json.loads's own decoder, but a number with a fraction or an exponent, or NaN / Infinity,
# stops it: json.dumps writes some floats differently from orjson, so a document holding one is
# hashed by json.dumps itself (content_hash) and read again by json.loads.
_DECODER = json.JSONDecoder(parse_float=_not_plain, parse_constant=_not_plain)
_HASH_PREFIX = "sha256:"


def _load(text: str) -> tuple[Any, bool]:
    """``json.loads(text)``; ``plain``: the document holds no float, so ``compact`` writes it
    byte for byte as ``content_hash``'s json.dumps does (json_text.py)."""
    if not text.startswith("\ufeff"):  # json.loads refuses a BOM with its own message
        try:
            return _DECODER.decode(text), True
        except _NotPlain:
            pass
    return json.loads(text), False


def _at_once(
    engine: Engine, lines: list[tuple[int, str]], *, policy: Policy, now: datetime
) -> tuple[int, int, list[BadLine]]:
    """A batch checked, then its new orders written together, in one transaction: (orders
    ingested, already present, bad lines). The batch's objects are gone when it returns, so
    the collector, on again, does not walk them."""
    with UnitOfWork(engine) as uow:
        checked = _check(uow.conn, lines, policy=policy, now=now)
        if checked.new:
            ingest_new_orders(uow.conn, checked.new, now=now)
        uow.commit()
    return len(checked.new), checked.present, checked.bad


@dataclass(slots=True)
class _Checked:
    new: list[NewOrder] = field(default_factory=list)
    present: int = 0
    bad: list[BadLine] = field(default_factory=list)


def _refusal(number: int, exc: RefundryError) -> BadLine:
    where = f" at {exc.field}" if exc.field else ""
    return BadLine(number, exc.code, f"{exc.message}{where}")


def _read(
    number: int, text: str, *, policy: Policy, now: datetime, fast: bool
) -> BadLine | tuple[Any, ...]:
    """One line read and parsed: a BadLine, or (order, order document, content hash, customer
    block or the BadLine it makes). ``fast``: read by orjson, which reads a valid document as
    json.loads does (an integer beyond 64 bits it reads as a float, which no field accepts);
    the caller reads a line again without it when this finds anything wrong."""
    plain = True
    if fast:
        doc = orjson.loads(text)
    else:
        try:
            doc, plain = _load(text)
        except json.JSONDecodeError as exc:
            message = f"not valid JSON at column {exc.colno}: {exc.msg}"
            return BadLine(number, "input.not_json", message)
    try:
        order_doc, customer_doc = split_envelope(doc)
        order = parse_order(order_doc, policy=policy)
    except RefundryError as exc:
        return _refusal(number, exc)
    # a document read by orjson or without a float: compact writes it as json.dumps does
    digest = _HASH_PREFIX + sha256(compact(order_doc).encode()).hexdigest() if plain else None
    try:
        customer: Any = parse_customer_block(customer_doc, order, now)
    except RefundryError as exc:
        customer = _refusal(number, exc)
    return order, order_doc, digest or content_hash(order_doc), customer


def _check(
    conn: Connection, lines: list[tuple[int, str]], *, policy: Policy, now: datetime
) -> _Checked:
    """A batch's lines as ``ingest_order`` one after the other would take them, short of the
    writes: the bad ones (in the order and with the codes it reports them), the ones already
    stored (or met earlier in the batch) with the same content, and the new orders."""
    out = _Checked()
    parsed: list[tuple[int, Any]] = []
    for number, text in lines:
        try:
            what = _read(number, text, policy=policy, now=now, fast=True)
        except orjson.JSONDecodeError:
            what = None
        if what is None or isinstance(what, BadLine) or isinstance(what[3], BadLine):
            # as json.loads reads it: the error ingest_order would report
            what = _read(number, text, policy=policy, now=now, fast=False)
        parsed.append((number, what))
    ids = sorted({p[1][0].id for p in parsed if not isinstance(p[1], BadLine)})
    seen: dict[str, str] = {}
    if ids:
        found = conn.execute(select(orders.c.id, orders.c.content_hash).where(orders.c.id.in_(ids)))
        seen = {str(r[0]): str(r[1]) for r in found}
    for number, what in parsed:
        if isinstance(what, BadLine):
            out.bad.append(what)
            continue
        order, order_doc, digest, customer = what
        stored = seen.get(order.id)
        if stored is not None:  # checked before the customer block, as ingest_order does
            if stored == digest:
                out.present += 1
            else:
                conflict = Conflict(
                    f"order {order.id} was ingested with different content", code="order.conflict"
                )
                out.bad.append(_refusal(number, conflict))
            continue
        if isinstance(customer, BadLine):
            out.bad.append(customer)
            continue
        opening, contact, opened = customer
        seen[order.id] = digest
        out.new.append(NewOrder(order, order_doc, digest, opening, contact, opened))
    return out
