"""In-memory stand-ins for what the core injects into connectors (:class:`ConnectorContext`)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx

from certctl_sdk.config import Secret, reveal
from certctl_sdk.connector import ConnectorContext, SecretResolver, StateStore
from certctl_sdk.testing.http import FakeHttp

__all__ = [
    "ManualClock",
    "MemoryStateStore",
    "PlainSecretResolver",
    "make_context",
]


class MemoryStateStore:
    """A :class:`~certctl_sdk.connector.StateStore` in a dict; ``data`` is there to inspect."""

    def __init__(self, data: dict[str, bytes] | None = None) -> None:
        self.data: dict[str, bytes] = dict(data or {})

    async def get(self, key: str) -> bytes | None:
        """Return the stored value or None."""
        return self.data.get(key)

    async def set(self, key: str, value: bytes) -> None:
        """Store ``value`` under ``key``."""
        if not isinstance(value, bytes):
            raise TypeError("state values are bytes")  # the core's store only takes bytes
        self.data[key] = value

    async def add(self, key: str, value: bytes) -> bool:
        """Store ``value`` only if ``key`` is absent; True when stored."""
        if not isinstance(value, bytes):
            raise TypeError("state values are bytes")
        if key in self.data:
            return False
        self.data[key] = value
        return True

    async def delete(self, key: str) -> None:
        """Remove ``key`` if present."""
        self.data.pop(key, None)


class PlainSecretResolver:
    """Resolves a :class:`Secret` to the plaintext it holds, and counts how often it was asked."""

    def __init__(self) -> None:
        self.resolved = 0

    async def resolve(self, secret: Secret) -> str:
        """Return the plaintext of ``secret``."""
        self.resolved += 1
        return reveal(secret)


class ManualClock:
    """A clock tests move by hand; call it like ``datetime.now(UTC)``."""

    def __init__(self, start: datetime | None = None) -> None:
        now = start or datetime.now(UTC)
        if now.tzinfo is None:
            raise ValueError("ManualClock needs an aware datetime")
        self.now = now.astimezone(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta | float) -> datetime:
        """Move forward by ``delta`` (seconds when a number) and return the new time."""
        self.now += delta if isinstance(delta, timedelta) else timedelta(seconds=delta)
        return self.now


def _utc_now() -> datetime:
    return datetime.now(UTC)


def make_context(
    http: httpx.AsyncClient | FakeHttp | None = None,
    clock: Callable[[], datetime] | None = None,
    instance_id: str = "test-instance",
    state: StateStore | None = None,
    *,
    secrets: SecretResolver | None = None,
    logger: logging.Logger | None = None,
) -> ConnectorContext:
    """A :class:`ConnectorContext` for tests; every argument has an offline default.

    Without ``http`` the client answers 404 to everything (a fresh :class:`FakeHttp`), so a
    connector under test can never reach the network by accident.
    """
    if http is None:
        http = FakeHttp()
    client = http.client() if isinstance(http, FakeHttp) else http
    return ConnectorContext(
        instance_id=instance_id,
        http=client,
        logger=logger or logging.getLogger(f"certctl.testing.{instance_id}"),
        clock=clock or _utc_now,
        secrets=secrets or PlainSecretResolver(),
        state=state if state is not None else MemoryStateStore(),
    )
