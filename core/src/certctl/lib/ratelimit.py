"""Token buckets: the one way certctl rate-limits, in process or shared through PostgreSQL.

A bucket holds at most ``burst`` tokens and refills continuously at ``rate`` tokens a second; a
request takes one token or is refused with the time until one is there. Three layers:

- :class:`LocalBuckets` keeps buckets in this process (SQLite deployments, OCSP, and the
  fallback when the database does not answer).
- :class:`SharedBuckets` keeps them in the ``rate_limit_buckets`` table on PostgreSQL, so every
  replica draws on one budget. Taking tokens is one ``INSERT … ON CONFLICT DO UPDATE …
  RETURNING`` statement that computes the refill from the stored level and timestamp (the
  database's clock, so replicas with skewed clocks agree); there is no read-modify-write.
- :class:`RateLimiter` puts them together. On PostgreSQL it takes tokens in small *leases*: one
  statement takes up to ``lease`` tokens and this process hands them out locally for at most
  :data:`LEASE_TTL` seconds, so a busy key costs one round trip per ``lease`` requests instead
  of one per request. A refusal is remembered locally until the bucket can have refilled one
  token, so a flood costs the database at most one statement per key, replica and refill.

Error bound of leases. Leased tokens were taken from the shared bucket, so the fleet never
admits more than the bucket handed out; what changes is *when*: tokens one replica holds are
not in the bucket, which may meanwhile refill to ``burst``. Over any interval of ``W`` seconds
a key is therefore admitted at most ``burst + rate·W + N·(lease - 1)`` requests across ``N``
replicas (an exact bucket: ``burst + rate·W``), and at worst ``N·(lease - 1)`` tokens are
withheld from the other replicas for up to :data:`LEASE_TTL`. :func:`lease_size` keeps
``lease`` at most a tenth of the burst and at most what the key refills in :data:`LEASE_TTL`,
so with the defaults (burst 100, 50/s, lease 10) the bound is 9 requests per replica.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import NamedTuple, TypeVar

from sqlalchemy import Double, Executable, Integer, bindparam, case, cast, delete, func
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from certctl.db.models.ratelimit import RateLimitBucket

__all__ = [
    "LEASE_TTL",
    "Budget",
    "Clock",
    "LocalBuckets",
    "LocalLimiter",
    "RateLimiter",
    "SharedBuckets",
    "bucket_key",
    "lease_size",
]

_log = logging.getLogger("certctl.ratelimit")

LEASE_TTL = 1.0
"""Seconds a process may hand out tokens it leased before returning to the shared bucket."""

MAX_LOCAL_KEYS = 100_000
"""In-process buckets kept at most; beyond it the least recently used are forgotten."""

_MAX_KEY = 200
"""Longer keys are stored as a digest (the column holds 255 characters)."""

Clock = Callable[[], float]
V = TypeVar("V")


class Budget(NamedTuple):
    """``rate`` tokens a second, at most ``burst`` at once."""

    rate: float
    burst: int

    @classmethod
    def per_minute(cls, count: int) -> Budget:
        """``count`` requests a minute, all of them usable at once."""
        return cls(count / 60.0, count)

    def wait(self, level: float) -> float:
        """Seconds until a bucket at ``level`` (< 1) holds one token."""
        return max(0.0, (1.0 - level) / self.rate)


def lease_size(budget: Budget, maximum: int) -> int:
    """Tokens taken from the shared bucket at once (see the module's error bound)."""
    return max(1, min(maximum, budget.burst // 10, math.floor(budget.rate * LEASE_TTL)))


def bucket_key(*parts: str) -> str:
    """A bucket key from its parts; overlong keys become a digest so they fit the column."""
    key = ":".join(parts)
    if len(key) <= _MAX_KEY:
        return key
    return f"{parts[0]}:sha256:{hashlib.sha256(key.encode()).hexdigest()}"


class LocalBuckets:
    """Token buckets in this process (not shared with other replicas)."""

    def __init__(self, *, clock: Clock = time.monotonic, max_keys: int = MAX_LOCAL_KEYS) -> None:
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        """key → (tokens, when they were counted), least recently used first."""

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: str, budget: Budget) -> float:
        """Take one token: 0 when taken, else the seconds until one is there."""
        now = self._clock()
        tokens, last = self._buckets.pop(key, (float(budget.burst), now))
        tokens = min(float(budget.burst), tokens + max(0.0, now - last) * budget.rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            wait = 0.0
        else:
            self._buckets[key] = (tokens, now)
            wait = budget.wait(tokens)
        if len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)
        return wait

    def prune(self, idle: float) -> int:
        """Forget buckets untouched for ``idle`` seconds; returns how many."""
        horizon = self._clock() - idle
        stale = [key for key, (_, last) in self._buckets.items() if last <= horizon]
        for key in stale:
            del self._buckets[key]
        return len(stale)


class LocalLimiter:
    """One budget for every key, in process: the OCSP responder's per-address limit."""

    def __init__(self, budget: Budget | None, *, clock: Clock = time.monotonic) -> None:
        self.budget = budget
        self._buckets = LocalBuckets(clock=clock)

    @classmethod
    def per_minute(cls, count: int, *, clock: Clock = time.monotonic) -> LocalLimiter:
        """``count`` requests per key per minute; 0 switches the limit off."""
        return cls(Budget.per_minute(count) if count > 0 else None, clock=clock)

    def acquire(self, key: str) -> int:
        """0 when the request may proceed, else the whole seconds to wait (at least 1)."""
        if self.budget is None:
            return 0
        wait = self._buckets.take(key, self.budget)
        return max(1, math.ceil(wait)) if wait > 0 else 0


def _statements() -> tuple[Executable, Executable]:
    """The take and prune statements, built once (SQLAlchemy caches their compiled form).

    Take: insert a full bucket minus what is taken, or refill the stored one from its
    timestamp and take the whole tokens it holds (at most ``want``). ``excluded.updated_at`` is
    the statement's time; GREATEST keeps a bucket's time from going backwards.
    """
    c = RateLimitBucket
    burst = bindparam("burst", type_=Double)
    rate = bindparam("rate", type_=Double)
    want = bindparam("want", type_=Integer)
    first = bindparam("first", type_=Integer)
    now = func.coalesce(
        bindparam("now", type_=Double),
        cast(func.extract("epoch", func.clock_timestamp()), Double),
    )
    insert = pg_insert(RateLimitBucket).values(
        key=bindparam("key"), tokens=burst - first, granted=first, updated_at=now
    )
    elapsed = func.greatest(0.0, insert.excluded.updated_at - c.updated_at)
    refill = func.least(burst, c.tokens + elapsed * rate)
    grant = case((refill >= 1.0, func.least(cast(want, Double), func.floor(refill))), else_=0.0)
    take = insert.on_conflict_do_update(
        index_elements=[c.key],
        set_={
            "tokens": refill - grant,
            "granted": cast(grant, Integer),
            "updated_at": func.greatest(c.updated_at, insert.excluded.updated_at),
        },
    ).returning(c.tokens, c.granted)
    prune = delete(RateLimitBucket).where(c.updated_at < now - bindparam("idle", type_=Double))
    return take, prune


_TAKE, _PRUNE = _statements()


class SharedBuckets:
    """Token buckets in PostgreSQL's ``rate_limit_buckets``, shared by every replica.

    Statements run on a small pool of its own, in autocommit and without a ping per checkout:
    each take is then exactly one round trip. ``clock`` (tests) replaces the database's clock.
    """

    def __init__(self, url: str, *, clock: Clock | None = None, pool_size: int = 2) -> None:
        self._clock = clock
        self.engine: AsyncEngine = create_async_engine(
            url,
            pool_size=pool_size,
            max_overflow=4 * pool_size,
            pool_timeout=5,
            pool_pre_ping=False,
            isolation_level="AUTOCOMMIT",
        )

    async def take(self, key: str, budget: Budget, want: int) -> tuple[int, float]:
        """Take up to ``want`` whole tokens: (how many were taken, the level left)."""
        params = {
            "key": key,
            "burst": float(budget.burst),
            "rate": budget.rate,
            "want": want,
            "first": min(want, budget.burst),
            "now": self._clock() if self._clock is not None else None,
        }
        async with self.engine.connect() as conn:
            row = (await conn.execute(_TAKE, params)).one()
        return int(row[1]), float(row[0])

    async def prune(self, idle: float) -> int:
        """Delete buckets untouched for ``idle`` seconds (they have refilled long ago)."""
        params = {"idle": idle, "now": self._clock() if self._clock is not None else None}
        async with self.engine.connect() as conn:
            result = await conn.execute(_PRUNE, params)
        return int(getattr(result, "rowcount", 0) or 0)

    async def aclose(self) -> None:
        """Close the pool."""
        await self.engine.dispose()


def _bounded_set(cache: dict[str, V], key: str, value: V) -> None:
    """Remember ``value``, forgetting the oldest entry beyond :data:`MAX_LOCAL_KEYS`.

    Forgetting a lease only withholds its tokens; forgetting a refusal costs one statement.
    Neither admits a request the shared bucket would refuse.
    """
    cache.pop(key, None)
    cache[key] = value
    if len(cache) > MAX_LOCAL_KEYS:
        del cache[next(iter(cache))]


class _Lease:
    __slots__ = ("expires", "tokens")

    def __init__(self, tokens: int, expires: float) -> None:
        self.tokens = tokens
        self.expires = expires


class RateLimiter:
    """Token buckets by key: in process on SQLite, shared through the database on PostgreSQL.

    ``clock`` replaces both the local clock and the database's (tests); ``lease`` is the most
    tokens taken from a shared bucket at once (1: one statement per request, exact).
    """

    def __init__(
        self, database_url: str | None, *, clock: Clock | None = None, lease: int = 10
    ) -> None:
        self._clock: Clock = clock or time.monotonic
        self.local = LocalBuckets(clock=self._clock)
        self.shared = (
            SharedBuckets(database_url, clock=clock)
            if database_url and database_url.startswith("postgresql")
            else None
        )
        self.lease = max(1, lease)
        self._leases: dict[str, _Lease] = {}
        self._refused_until: dict[str, float] = {}
        self._refilling: dict[str, asyncio.Future[None]] = {}
        self._failing_since: float | None = None

    @property
    def is_shared(self) -> bool:
        """Whether budgets are shared by every replica (PostgreSQL)."""
        return self.shared is not None

    async def take(self, key: str, budget: Budget) -> float:
        """Take one token for ``key``: 0 when taken, else the seconds until one is there."""
        if self.shared is None:
            return self.local.take(key, budget)
        while True:
            now = self._clock()
            wait = self._from_cache(key, now)
            if wait is not None:
                return wait
            pending = self._refilling.get(key)
            if pending is None:
                break
            await asyncio.shield(pending)  # another request of this key is at the database
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._refilling[key] = done
        try:
            return await self._refill(key, budget, now)
        finally:
            del self._refilling[key]
            done.set_result(None)

    def _from_cache(self, key: str, now: float) -> float | None:
        """0 from a live lease, the remaining wait of a remembered refusal, or None."""
        until = self._refused_until.get(key)
        if until is not None:
            if now < until:
                return until - now
            del self._refused_until[key]
        lease = self._leases.get(key)
        if lease is not None:
            if lease.tokens > 0 and now < lease.expires:
                lease.tokens -= 1
                return 0.0
            del self._leases[key]
        return None

    async def _refill(self, key: str, budget: Budget, now: float) -> float:
        assert self.shared is not None
        want = lease_size(budget, self.lease)
        try:
            granted, level = await self.shared.take(key, budget, want)
        except Exception:  # noqa: BLE001 - a limiter must not turn a database hiccup into 500s
            if self._failing_since is None:
                _log.warning(
                    "rate-limit buckets unavailable; limiting per process until the database "
                    "answers",
                    exc_info=True,
                )
                self._failing_since = now
            return self.local.take(key, budget)
        if self._failing_since is not None:
            _log.info("rate-limit buckets available again")
            self._failing_since = None
        if granted == 0:
            # Only time refills a bucket, so no replica can be admitted before this.
            wait = budget.wait(level)
            _bounded_set(self._refused_until, key, now + wait)
            return wait
        if granted > 1:
            _bounded_set(self._leases, key, _Lease(granted - 1, now + LEASE_TTL))
        return 0.0

    async def prune(self, idle: float) -> int:
        """Forget buckets idle for ``idle`` seconds, here and (PostgreSQL) in the table."""
        now = self._clock()
        for key in [k for k, until in self._refused_until.items() if until <= now]:
            del self._refused_until[key]
        for key in [k for k, lease in self._leases.items() if lease.expires <= now]:
            del self._leases[key]
        pruned = self.local.prune(idle)
        if self.shared is not None:
            pruned += await self.shared.prune(idle)
        return pruned

    async def aclose(self) -> None:
        """Release the shared buckets' connections."""
        if self.shared is not None:
            await self.shared.aclose()
