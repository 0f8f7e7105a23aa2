"""`BoundedMemo`: remember a pure function's answers, for keys that repeat (classes, routes, key sets).

One policy for every memo in lmscope: at most `limit` entries, and when full the memo is emptied rather than
evicted entry by entry. The keys it serves (a program's module classes, its models, its settings keys) are few
and stable, so a reset is rare and cheap, and a hit stays one dict lookup; an app that makes unbounded new keys
(classes built in a loop, say) costs bounded memory instead of a leak.

Thread-safe without a lock: a dict read or write is atomic, and two threads that miss at once both compute the
same pure value.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

DEFAULT_LIMIT = 4096


class BoundedMemo(Generic[K, V]):
    __slots__ = ("_compute", "_limit", "_values")

    def __init__(self, compute: Callable[[K], V], limit: int = DEFAULT_LIMIT) -> None:
        if limit < 1:
            raise ValueError(f"BoundedMemo limit must be at least 1, got {limit}")
        self._compute = compute
        self._limit = limit
        self._values: dict[K, V] = {}

    def __call__(self, key: K) -> V:
        try:
            return self._values[key]
        except KeyError:
            pass
        value = self._compute(key)
        if len(self._values) >= self._limit:
            self._values.clear()
        self._values[key] = value
        return value

    def __len__(self) -> int:
        return len(self._values)

    def clear(self) -> None:
        self._values.clear()
