"""How far a customer's data has moved: the length of the customer's audit chain.

Every write transaction on a customer's rows — an ingest or an update of the order, a case's
acts, a refund and its gateway answers, an agent's or the shop's adjustment — appends its acts
to the customer's audit chain in the same transaction (docs/audit.md; one chain per customer,
services/audit/chain.py). So the chain's head ``seq`` grows with every committed change and
stays put while nothing changes: a read drawn at one version is still right while the version
is the same. The pages keep a customer's order page that way (refundry/web/kept_pages.py).

One indexed read of one row (the head's primary key), on the driver's cursor.
"""

from __future__ import annotations

from sqlalchemy import Engine, bindparam, select

from refundry.services.audit.chain import chain_of
from refundry.services.uow import UnitOfWork
from refundry.store.prepared import Prepared
from refundry.store.tables import audit_heads

__all__ = ["data_version"]

_HEAD = Prepared(select(audit_heads.c.seq).where(audit_heads.c.chain == bindparam("b_chain")))


def data_version(engine: Engine, customer_id: str) -> int:
    """The number of acts recorded on ``customer_id`` so far (0: none yet)."""
    with UnitOfWork(engine, readonly=True) as uow:
        row = _HEAD.first(uow.conn, {"b_chain": chain_of(customer_id)})
    return 0 if row is None else int(row.seq)
