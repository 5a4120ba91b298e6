"""One small bounded cache with expiry, for the answers a warm container reuses.

Used by the caller views (runtime), the verified-token cache (jwt), the synthesis memo
(policy) and `ruleauth serve`'s authorizer cache (tools). Each entry lives `ttl` seconds
from its put, or until its own `expires_at` (a token's exp), whichever comes first; at
most `maxsize` entries are kept, the least recently used going first. An entry is
expired from the moment `now >= deadline`, on the cache's clock.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Cache(Generic[K, V]):
    def __init__(self, maxsize: int, ttl: float | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.maxsize = maxsize
        self.ttl = ttl  # None: entries expire only by their own expires_at, or never
        self._clock = clock
        self._items: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self._lock = threading.Lock()  # Lambda runs one request at a time; `ruleauth serve` runs threads

    def get(self, key: K, now: float | None = None) -> V | None:
        """The live value for `key`, or None. `now`: the caller's time on the same clock."""
        with self._lock:
            found = self._items.get(key)
            if found is None:
                return None
            if (self._clock() if now is None else now) >= found[0]:
                del self._items[key]
                return None
            self._items.move_to_end(key)
            return found[1]

    def put(self, key: K, value: V, expires_at: float | None = None, now: float | None = None) -> None:
        deadline = math.inf if self.ttl is None else (self._clock() if now is None else now) + self.ttl
        if expires_at is not None:
            # min() compares int and float exactly, and nothing converts: a huge int cannot overflow.
            deadline = min(deadline, expires_at)
        with self._lock:
            self._items[key] = (deadline, value)
            self._items.move_to_end(key)
            while len(self._items) > self.maxsize:
                self._items.popitem(last=False)

    def pop(self, key: K) -> V | None:
        with self._lock:
            found = self._items.pop(key, None)
        return None if found is None else found[1]

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)
