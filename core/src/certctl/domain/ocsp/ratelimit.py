"""A per-client token bucket for the public OCSP endpoints."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

__all__ = ["RateLimiter"]

_MAX_CLIENTS = 10_000
"""Idle buckets are dropped once this many clients are tracked."""


class RateLimiter:
    """``limit`` requests per minute per key, refilled continuously (bursts up to ``limit``).

    :meth:`acquire` returns 0 when the request may proceed, else the seconds to wait.
    """

    def __init__(self, limit: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self._rate = limit / 60.0
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def acquire(self, key: str) -> int:
        if self.limit <= 0:
            return 0
        now = self._clock()
        with self._lock:
            tokens, last = self._buckets.get(key, (float(self.limit), now))
            tokens = min(float(self.limit), tokens + (now - last) * self._rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                if len(self._buckets) > _MAX_CLIENTS:
                    self._prune(now)
                return 0
            self._buckets[key] = (tokens, now)
            return max(1, math.ceil((1.0 - tokens) / self._rate))

    def _prune(self, now: float) -> None:
        """Forget clients whose bucket has refilled: they are indistinguishable from new ones."""
        full = [
            key
            for key, (tokens, last) in self._buckets.items()
            if tokens + (now - last) * self._rate >= self.limit
        ]
        for key in full:
            del self._buckets[key]
