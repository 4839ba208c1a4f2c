"""The keys that sign session cookies: one active, retired ones verifying for a while.

Keys live in ``session_signing_keys``, encrypted with the configuration key, so every replica
verifies every other's cookies. The database arbitrates between replicas: the active key holds
``active_slot = 1`` under a unique constraint, so two replicas creating the first key at once
end with one key (the loser's insert does nothing and it reads the winner's), and a rotation
retires the old key with a conditional update that only one rotator can win.

Each process keeps the decrypted keys in memory. It re-reads the table when the auth
generation moves (a rotation bumps it, so every replica starts signing with the new key within
``CERTCTL_AUTH_CACHE_MS``) and, at most once a second, when a cookie names a key it does not
know (a replica that rotated a moment ago), so forged key ids cannot cost a query per request.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from certctl.db.base import new_id
from certctl.db.engine import dialect_insert
from certctl.db.models import SessionSigningKey
from certctl.domain.auth.generation import GenerationWatch, bump_generation
from certctl.lib.encryption import SecretBox

__all__ = ["SigningKeyRing"]

_UNKNOWN_KEY_RELOAD_SECONDS = 1.0


def _context(key_id: str) -> str:
    return f"session-signing-key:{key_id}"


@dataclass(frozen=True, slots=True)
class _Key:
    secret: bytes
    created_at: datetime
    valid_until: datetime | None
    """None while active; ``retired_at`` + retention once replaced."""


class SigningKeyRing:
    """This process's view of the signing keys."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        box: SecretBox,
        generation: GenerationWatch,
        *,
        rotation_seconds: int,
        retention_seconds: int,
        clock: Callable[[], datetime],
    ) -> None:
        self._sessions = sessions
        self._box = box
        self._generation = generation
        self._rotation = timedelta(seconds=rotation_seconds)
        self._retention = timedelta(seconds=retention_seconds)
        self._clock = clock
        self._keys: dict[str, _Key] = {}
        self._active: str | None = None
        self._loaded_generation: int | None = None
        self._miss_reload_at = float("-inf")

    async def sync(self, generation: int) -> None:
        """Re-read the keys if the auth generation moved since they were loaded."""
        if generation != self._loaded_generation:
            await self._load(generation)

    async def signing_key(self, db: AsyncSession | None = None) -> tuple[str, bytes]:
        """The active key, creating the first one if there is none.

        With ``db`` the first key is created in that transaction and commits with it: the
        caller may already hold SQLite's single write lock (a user row just upserted), so a
        second connection could not write until it commits. Such a key is not remembered as
        active until it is read back committed (the first cookie naming it reloads the keys).
        """
        await self.sync(await self._generation.current())
        if self._active is None:
            if db is None:
                await self._create_first()
            else:
                return await self._insert_first(db)
        assert self._active is not None
        return self._active, self._keys[self._active].secret

    async def verifying_key(self, key_id: str, now: datetime) -> bytes | None:
        """The key named by a cookie, if it is active or retired less than the retention ago."""
        key = self._keys.get(key_id)
        if key is None and time.monotonic() - self._miss_reload_at >= _UNKNOWN_KEY_RELOAD_SECONDS:
            self._miss_reload_at = time.monotonic()
            await self._load(self._loaded_generation)
            key = self._keys.get(key_id)
        if key is None or not self.valid(key_id, now):
            return None
        return key.secret

    def valid(self, key_id: str, now: datetime) -> bool:
        """Does ``key_id`` still verify cookies at ``now``? (No I/O: used on cache hits.)"""
        key = self._keys.get(key_id)
        return key is not None and (key.valid_until is None or key.valid_until > now)

    async def rotate(self, *, force: bool = False) -> bool:
        """Replace the active key if it is older than the rotation period (or ``force``).

        True when this call rotated (False also when it made the very first key). The old key
        keeps verifying for the retention period.
        """
        now = self._clock()
        async with self._sessions() as session:
            active = await session.scalar(
                select(SessionSigningKey).where(SessionSigningKey.active_slot == 1)
            )
            if active is None:  # nothing to rotate yet: make the first key
                await session.rollback()
                await self._create_first()
                return False
            if not force and active.created_at > now - self._rotation:
                return False
            retired = await session.execute(
                update(SessionSigningKey)
                .where(SessionSigningKey.id == active.id, SessionSigningKey.active_slot == 1)
                .values(active_slot=None, retired_at=now)
            )
            if getattr(retired, "rowcount", 0) != 1:
                await session.rollback()  # another replica rotated first
                return False
            session.add(self._new_row(now))
            await bump_generation(session)
            await session.commit()
        self._generation.invalidate()
        await self._load(None)
        return True

    async def prune(self) -> int:
        """Delete retired keys past the retention period; how many went."""
        cutoff = self._clock() - self._retention
        async with self._sessions() as session:
            result = await session.execute(
                delete(SessionSigningKey).where(
                    SessionSigningKey.active_slot.is_(None),
                    SessionSigningKey.retired_at < cutoff,
                )
            )
            await session.commit()
        return int(getattr(result, "rowcount", 0) or 0)

    def _new_row(self, now: datetime) -> SessionSigningKey:
        key_id = new_id("sk")
        return SessionSigningKey(
            id=key_id,
            key_enc=self._box.encrypt(secrets.token_bytes(32), _context(key_id)),
            active_slot=1,
            created_at=now,
        )

    async def _insert_first(self, session: AsyncSession) -> tuple[str, bytes]:
        """Insert a key unless one is active (a concurrent creator won); the active one."""
        secret = secrets.token_bytes(32)
        key_id = new_id("sk")
        await session.execute(
            dialect_insert(session)(SessionSigningKey)
            .values(
                id=key_id,
                key_enc=self._box.encrypt(secret, _context(key_id)),
                active_slot=1,
                created_at=self._clock(),
                retired_at=None,
            )
            .on_conflict_do_nothing(index_elements=["active_slot"])
        )
        row = await session.scalar(
            select(SessionSigningKey).where(SessionSigningKey.active_slot == 1)
        )
        assert row is not None
        if row.id == key_id:
            return key_id, secret
        return row.id, self._box.decrypt(row.key_enc, _context(row.id))

    async def _create_first(self) -> None:
        async with self._sessions() as session:
            await self._insert_first(session)
            await session.commit()
        await self._load(self._loaded_generation)

    async def _load(self, generation: int | None) -> None:
        if generation is None:
            generation = await self._generation.current()
        async with self._sessions() as session:
            rows = (await session.execute(select(SessionSigningKey))).scalars().all()
        keys: dict[str, _Key] = {}
        active: str | None = None
        for row in rows:
            known = self._keys.get(row.id)
            secret = known.secret if known else self._box.decrypt(row.key_enc, _context(row.id))
            valid_until = None if row.retired_at is None else row.retired_at + self._retention
            keys[row.id] = _Key(secret, row.created_at, valid_until)
            if row.active_slot == 1:
                active = row.id
        self._keys, self._active = keys, active
        self._loaded_generation = generation
