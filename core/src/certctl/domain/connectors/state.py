"""The database-backed ``StateStore`` and ``SecretResolver`` handed to connectors."""

from __future__ import annotations

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from certctl.db.base import utcnow
from certctl.db.models import ConnectorState
from certctl.lib.encryption import SecretBox
from certctl_sdk.config import Secret, reveal

__all__ = ["DatabaseStateStore", "PlainSecretResolver"]


class PlainSecretResolver:
    """Secrets reach connectors already decrypted by the core; this hands over the plaintext."""

    async def resolve(self, secret: Secret) -> str:
        """Return the plaintext."""
        return reveal(secret)


class DatabaseStateStore:
    """Per-connector key/value state, each value encrypted and bound to its connector and key."""

    def __init__(
        self, connector_id: str, sessions: async_sessionmaker[AsyncSession], box: SecretBox
    ) -> None:
        self._id = connector_id
        self._sessions = sessions
        self._box = box

    def _context(self, key: str) -> str:
        return f"connector-state:{self._id}:{key}"

    async def get(self, key: str) -> bytes | None:
        """Return the stored value or None."""
        async with self._sessions() as session:
            blob = await session.scalar(
                select(ConnectorState.value).where(
                    ConnectorState.connector_id == self._id, ConnectorState.key == key
                )
            )
        return None if blob is None else self._box.decrypt(blob, self._context(key))

    async def set(self, key: str, value: bytes) -> None:
        """Insert or replace ``key``."""
        blob = self._box.encrypt(value, self._context(key))
        for _ in range(3):
            async with self._sessions.begin() as session:
                result = await session.execute(
                    update(ConnectorState)
                    .where(ConnectorState.connector_id == self._id, ConnectorState.key == key)
                    .values(value=blob, updated_at=utcnow())
                )
                if result.rowcount:  # type: ignore[attr-defined]
                    return
            try:
                async with self._sessions.begin() as session:
                    session.add(ConnectorState(connector_id=self._id, key=key, value=blob))
                return
            except IntegrityError:
                continue  # another replica inserted it first: update on the next pass
        raise RuntimeError(f"could not store state {key!r} for connector {self._id}")

    async def add(self, key: str, value: bytes) -> bool:
        """Insert ``key`` unless it exists; the unique (connector, key) index decides races."""
        blob = self._box.encrypt(value, self._context(key))
        try:
            async with self._sessions.begin() as session:
                session.add(ConnectorState(connector_id=self._id, key=key, value=blob))
        except IntegrityError:
            return False
        return True

    async def delete(self, key: str) -> None:
        """Remove ``key``."""
        async with self._sessions.begin() as session:
            await session.execute(
                delete(ConnectorState).where(
                    ConnectorState.connector_id == self._id, ConnectorState.key == key
                )
            )
