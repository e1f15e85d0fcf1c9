"""How far a customer's data has moved: the length of the customer's audit chain.

Every write transaction on a customer's rows — an ingest or an update of the order, a case's
acts, a refund and its gateway answers, an agent's or the shop's adjustment — appends its acts
to the customer's audit chain in the same transaction (docs/audit.md; one chain per customer,
services/audit/chain.py). So the chain's head ``seq`` grows with every committed change and
stays put while nothing changes: a read drawn at one version is still right while the version
is the same. The pages keep a customer's order page that way (refundry/web/kept_pages.py).

One indexed read of one row (the head's primary key), on the driver's cursor; on the server's
event loop, on PostgreSQL, awaited over refundry/store/loop_reads.py.
"""

from __future__ import annotations

from sqlalchemy import Engine, any_, bindparam, select
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg

from refundry.services.audit.chain import chain_of
from refundry.services.uow import UnitOfWork
from refundry.store.loop_reads import LoopReads
from refundry.store.prepared import Prepared
from refundry.store.tables import audit_heads

__all__ = ["data_version", "data_version_on_loop"]

_HEAD_QUERY = select(audit_heads.c.seq).where(audit_heads.c.chain == bindparam("b_chain"))
_HEAD = Prepared(_HEAD_QUERY)
# the heads of several chains at once, for LoopReads.read_keyed (psycopg's %(keys)s)
_HEADS_PG = str(
    select(audit_heads.c.chain, audit_heads.c.seq)
    .where(audit_heads.c.chain == any_(bindparam("keys")))
    .compile(dialect=PGDialect_psycopg())  # type: ignore[no-untyped-call]
)


def data_version(engine: Engine, customer_id: str) -> int:
    """The number of acts recorded on ``customer_id`` so far (0: none yet)."""
    with UnitOfWork(engine, readonly=True) as uow:
        row = _HEAD.first(uow.conn, {"b_chain": chain_of(customer_id)})
    return 0 if row is None else int(row.seq)


async def data_version_on_loop(engine: Engine, reads: LoopReads, customer_id: str) -> int:
    """``data_version`` for code on the server's event loop: on PostgreSQL through ``reads``
    (awaited, the loop not blocked; the versions asked for at once read in one query), else the
    usual read (SQLite: a local file, microseconds)."""
    try:
        row = await reads.read_keyed(_HEADS_PG, chain_of(customer_id))
    except LookupError:
        return data_version(engine, customer_id)
    return 0 if row is None else int(row[1])
