"""Python's cyclic garbage collector paused over a batch (an import's, a bulk refund's)."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["collector_paused"]


@contextmanager
def collector_paused() -> Iterator[None]:
    """The collector off while a batch is checked and written: the batch makes some 100
    objects an order that all live until its end, and the collector, started every 700
    allocations, walked them (and the caller's) again and again — 40% of an import's time
    (bench/import_bench.py). Reference counting still frees what is dropped; the collector, on
    again after the batch, finds any cycle left."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
