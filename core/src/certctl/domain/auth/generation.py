"""One counter that tells every replica its cached credentials are stale.

Authentication caches key lookups, role grants and sessions per process, so checking a request
costs a dictionary lookup rather than a query. Every change that could revoke something (a key
revoked, a grant removed, a session ended, a user deactivated) increments the counter in the
same transaction. Each process re-reads it at most every ``CERTCTL_AUTH_CACHE_MS`` and drops
its caches when it moved: a revocation made on one replica is enforced everywhere within that
bound, and at once on the replica that made it.
"""

from __future__ import annotations

import time

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from certctl.db.models import AuthGeneration

__all__ = ["GenerationWatch", "bump_generation"]


async def bump_generation(session: AsyncSession) -> None:
    """Increment the counter inside the caller's transaction (it commits with the change)."""
    await session.execute(
        update(AuthGeneration).where(AuthGeneration.id == 1).values(value=AuthGeneration.value + 1)
    )


class GenerationWatch:
    """The last counter value this process saw, re-read at most every ``refresh_ms``."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], refresh_ms: int) -> None:
        self._sessions = sessions
        self._refresh = refresh_ms / 1000
        self._value = -1
        self._read_at = float("-inf")

    async def current(self) -> int:
        """The counter, from the database when the last read is older than the bound."""
        now = time.monotonic()
        if now - self._read_at >= self._refresh:
            async with self._sessions() as session:
                value = await session.scalar(
                    select(AuthGeneration.value).where(AuthGeneration.id == 1)
                )
            self._value = int(value or 0)
            self._read_at = now
        return self._value

    def invalidate(self) -> None:
        """Re-read on the next request (after this process committed a change)."""
        self._read_at = float("-inf")
