"""API keys: environment keys in memory, database keys by hash, cached per auth generation.

Keys are high-entropy random strings, so a SHA-256 digest is a safe verifier (a slow password
hash buys nothing against a 256-bit secret and would cost milliseconds per request). A key
only establishes a name; what the name may do comes from its role grants (``rbac.py``).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from certctl.db.base import utcnow
from certctl.db.models import ApiKey
from certctl.domain.auth.generation import GenerationWatch
from certctl.settings import NamedApiKey

__all__ = ["ApiKeyStore", "generate_api_key", "hash_api_key"]

_CACHE_MAX = 10_000


def hash_api_key(key: str) -> str:
    """The stored verifier of a key."""
    return hashlib.sha256(key.encode()).hexdigest()


def generate_api_key() -> str:
    """A new random key (256 bits), prefixed so leaked keys are easy to grep for."""
    return "cck_" + secrets.token_urlsafe(32)


class ApiKeyStore:
    """Resolves bearer tokens to key names."""

    def __init__(
        self,
        env_keys: Sequence[NamedApiKey],
        sessions: async_sessionmaker[AsyncSession],
        generation: GenerationWatch,
    ) -> None:
        self._env = {hash_api_key(k.key): k.name for k in env_keys}
        self.env_names: frozenset[str] = frozenset(k.name for k in env_keys)
        self.env_admins: frozenset[str] = frozenset(k.name for k in env_keys if k.admin)
        self._sessions = sessions
        self._generation = generation
        self._seen = -1
        self._cache: dict[str, tuple[str | None, datetime | None]] = {}

    async def authenticate(self, token: str) -> str | None:
        """The key name for ``token``, or None when no live key matches."""
        digest = hash_api_key(token)
        name = self._env.get(digest)
        if name is not None:
            return name
        generation = await self._generation.current()
        if generation != self._seen:
            self._cache.clear()
            self._seen = generation
        cached = self._cache.get(digest)
        if cached is None:
            async with self._sessions() as session:
                row = await session.scalar(
                    select(ApiKey).where(ApiKey.key_hash == digest, ApiKey.revoked_at.is_(None))
                )
            cached = (row.name, row.expires_at) if row is not None else (None, None)
            if len(self._cache) >= _CACHE_MAX:
                self._cache.clear()
            self._cache[digest] = cached
        name, expires_at = cached
        # A cached key still stops working the moment it expires.
        return name if expires_at is None or expires_at > utcnow() else None
