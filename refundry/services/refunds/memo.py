"""Values kept per process between a preview and its apply: parsed orders, customer snapshots,
previewed plans. Each is a pure function of its key, so a kept value is always right; the bound
keeps memory flat (least recently used goes first)."""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from typing import Any, Generic, TypeVar

__all__ = ["Memo", "forget_all"]

K = TypeVar("K")
V = TypeVar("V")


# Every Memo of the process, for forget_all (weak: a memo dropped by its owner goes).
_every: weakref.WeakSet[Memo[Any, Any]] = weakref.WeakSet()


class Memo(Generic[K, V]):
    """A bounded map safe to share between threads; ``size`` may be changed at any time."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()
        _every.add(self)

    def get(self, key: K) -> V | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._items[key] = value
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


def forget_all() -> None:
    """Empty every memo of this process, as if what comes next ran in another process
    (bench/apply_bench.py --cold-apply: an apply whose preview was served elsewhere)."""
    for memo in list(_every):
        memo.clear()
