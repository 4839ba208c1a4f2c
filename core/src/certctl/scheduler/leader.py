"""Leader election: exactly one process at a time runs the loops whose side effects must not repeat.

PostgreSQL: a session-level advisory lock held on a dedicated connection. The lock lives exactly
as long as that connection, so a leader killed with ``kill -9`` loses it the moment its socket
closes and another replica takes over at its next heartbeat — no lease to wait out. The leader
re-checks its connection on every heartbeat and steps down the moment it fails.

SQLite: a lease row renewed on every heartbeat; a process that stops renewing loses the lead
once the lease expires (SQLite is a single-host database, so this covers several processes
sharing one file).
"""

from __future__ import annotations

import abc
import logging
from datetime import timedelta

from sqlalchemy import delete, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from certctl.db.base import utcnow
from certctl.db.engine import dialect_insert
from certctl.db.models import SchedulerLease

__all__ = [
    "LEADER_LOCK_ID",
    "AdvisoryLockLeadership",
    "Leadership",
    "LeaseLeadership",
    "leadership_for",
]

LEADER_LOCK_ID = 7_283_164_759_461_502_342
"""pg_advisory_lock key of the scheduler leader (the migration lock is ``…341``)."""

LEASE_NAME = "scheduler-leader"

_log = logging.getLogger("certctl.scheduler")


class Leadership(abc.ABC):
    """Acquires, keeps and releases the leader role for one replica."""

    @abc.abstractmethod
    async def check(self) -> bool:
        """Try to become (or stay) leader; True while this replica leads."""

    @abc.abstractmethod
    async def release(self) -> None:
        """Give the role up (clean shutdown), so another replica can take it at once."""


class AdvisoryLockLeadership(Leadership):
    """``pg_try_advisory_lock`` on a connection kept out of the pool for as long as we lead."""

    def __init__(self, engine: AsyncEngine, lock_id: int = LEADER_LOCK_ID) -> None:
        self._engine = engine
        self._lock_id = lock_id
        self._conn: AsyncConnection | None = None

    async def check(self) -> bool:
        if self._conn is not None:
            try:
                await self._conn.execute(text("SELECT 1"))
                return True
            except Exception:  # noqa: BLE001 - a broken connection means the lock is gone
                _log.warning("leader connection lost; stepping down")
                await self._discard()
        conn = await self._engine.connect()
        try:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            got = (
                await conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self._lock_id})
            ).scalar()
        except BaseException:
            await conn.close()
            raise
        if got:
            self._conn = conn
            return True
        await conn.close()
        return False

    async def release(self) -> None:
        if self._conn is None:
            return
        try:
            await self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self._lock_id})
        except Exception:  # noqa: BLE001 - closing the connection releases it anyway
            _log.debug("advisory unlock failed; closing the connection releases the lock")
        await self._discard()

    async def _discard(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await conn.invalidate()
            except Exception:  # noqa: BLE001 - the connection is being thrown away
                _log.debug("invalidating the leader connection failed", exc_info=True)


class LeaseLeadership(Leadership):
    """A lease row taken when free or expired and renewed by its holder (SQLite)."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], holder: str, ttl_seconds: float
    ) -> None:
        self._sessions = sessions
        self._holder = holder
        self._ttl = ttl_seconds

    async def check(self) -> bool:
        now = utcnow()
        async with self._sessions.begin() as session:
            insert = dialect_insert(session)
            statement = insert(SchedulerLease).values(
                name=LEASE_NAME,
                holder=self._holder,
                expires_at=now + timedelta(seconds=self._ttl),
                acquired_at=now,
            )
            current = SchedulerLease.__table__.c
            await session.execute(
                statement.on_conflict_do_update(
                    index_elements=["name"],
                    set_={
                        "holder": statement.excluded.holder,
                        "expires_at": statement.excluded.expires_at,
                        # Renewing keeps the original acquisition time.
                        "acquired_at": text(
                            "CASE WHEN scheduler_leases.holder = excluded.holder "
                            "THEN scheduler_leases.acquired_at ELSE excluded.acquired_at END"
                        ),
                    },
                    where=(current.holder == self._holder) | (current.expires_at < now),
                )
            )
            holder = await session.scalar(
                select(SchedulerLease.holder).where(SchedulerLease.name == LEASE_NAME)
            )
        return holder == self._holder

    async def release(self) -> None:
        async with self._sessions.begin() as session:
            await session.execute(
                delete(SchedulerLease).where(
                    SchedulerLease.name == LEASE_NAME, SchedulerLease.holder == self._holder
                )
            )


def leadership_for(
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    holder: str,
    lease_seconds: float,
) -> Leadership:
    """Advisory locks on PostgreSQL, a lease row elsewhere."""
    if engine.dialect.name == "postgresql":
        return AdvisoryLockLeadership(engine)
    return LeaseLeadership(sessions, holder, lease_seconds)
