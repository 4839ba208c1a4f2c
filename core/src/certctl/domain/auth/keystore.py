"""API-key authentication: environment keys in memory, database keys by hash with a short cache.

Keys are high-entropy random strings, so a SHA-256 digest is a safe verifier (a slow password
hash buys nothing against a 256-bit secret and would cost milliseconds per request).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from certctl.db.base import utcnow
from certctl.db.models import ApiKey
from certctl.domain.auth.actor import Actor
from certctl.settings import NamedApiKey

__all__ = ["ApiKeyStore", "generate_api_key", "hash_api_key"]

_CACHE_SECONDS = 10.0
_CACHE_MAX = 10_000


def hash_api_key(key: str) -> str:
    """The stored verifier of a key."""
    return hashlib.sha256(key.encode()).hexdigest()


def generate_api_key() -> str:
    """A new random key (256 bits), prefixed so leaked keys are easy to grep for."""
    return "cck_" + secrets.token_urlsafe(32)


class ApiKeyStore:
    """Resolves bearer tokens to actors."""

    def __init__(
        self, env_keys: Sequence[NamedApiKey], sessions: async_sessionmaker[AsyncSession]
    ) -> None:
        self._env = {
            hash_api_key(k.key): Actor(
                name=k.name, type="APIKey", role="admin" if k.admin else "viewer"
            )
            for k in env_keys
        }
        self._sessions = sessions
        self._cache: dict[str, tuple[float, Actor | None, datetime | None]] = {}

    @property
    def has_env_admin(self) -> bool:
        """True when an admin key is configured in the environment."""
        return any(a.role == "admin" for a in self._env.values())

    def forget(self) -> None:
        """Drop cached database lookups (after a key is created or revoked)."""
        self._cache.clear()

    async def authenticate(self, token: str) -> Actor | None:
        """The actor for ``token``, or None when no live key matches."""
        digest = hash_api_key(token)
        actor = self._env.get(digest)
        if actor is not None:
            return actor
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > now:
            _, actor, expires_at = cached
            # A cached key still stops working the moment it expires.
            return actor if expires_at is None or expires_at > utcnow() else None
        async with self._sessions() as session:
            row = await session.scalar(select(ApiKey).where(ApiKey.key_hash == digest))
        actor = None
        expires_at = None
        if row is not None and row.revoked_at is None:
            expires_at = row.expires_at
            if expires_at is None or expires_at > utcnow():
                actor = Actor(name=row.name, type="APIKey", role="admin" if row.admin else "viewer")
        if len(self._cache) >= _CACHE_MAX:
            self._cache.clear()
        self._cache[digest] = (now + _CACHE_SECONDS, actor, expires_at)
        return actor
