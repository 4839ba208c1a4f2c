"""What every connector shares: the injected context, capabilities and the base class."""

from __future__ import annotations

import abc
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, ClassVar, Generic, Protocol, TypeVar, runtime_checkable

import httpx
import msgspec

from certctl_sdk.authority import AuthorityProvider
from certctl_sdk.config import ConnectorConfig, Secret

__all__ = [
    "CheckResult",
    "Connector",
    "ConnectorContext",
    "SecretResolver",
    "StateStore",
]

ConfigT = TypeVar("ConfigT", bound=ConnectorConfig)


@runtime_checkable
class SecretResolver(Protocol):
    """Turns a :class:`Secret` into its plaintext at the moment it is needed."""

    async def resolve(self, secret: Secret) -> str:
        """Return the plaintext of ``secret``."""
        ...


@runtime_checkable
class StateStore(Protocol):
    """A small key → bytes store private to one connector instance (e.g. an ACME account key).

    The core persists it in its database, so it survives restarts and is shared by replicas.
    """

    async def get(self, key: str) -> bytes | None:
        """Return the stored value or None."""
        ...

    async def set(self, key: str, value: bytes) -> None:
        """Store ``value`` under ``key``, replacing any previous value."""
        ...

    async def add(self, key: str, value: bytes) -> bool:
        """Store ``value`` only if ``key`` is absent; True when this call stored it.

        Atomic across replicas: use it for values that must be created once (a CA root, an
        account key) and read the winner back when it returns False.
        """
        ...

    async def delete(self, key: str) -> None:
        """Remove ``key``; absent keys are ignored."""
        ...


class ConnectorContext(msgspec.Struct, frozen=True, kw_only=True):
    """Everything a connector may use from its host; nothing is read from globals.

    ``http`` is shared and owned by the host: never close it. ``clock`` returns an aware UTC
    datetime so tests can move time.
    """

    instance_id: str
    http: httpx.AsyncClient
    logger: logging.Logger | logging.LoggerAdapter[Any]
    clock: Callable[[], datetime]
    secrets: SecretResolver
    state: StateStore
    authority: AuthorityProvider | None = None
    """The CA hierarchy the core keeps for this issuer (issuers with SUBORDINATE_CA only)."""


class CheckResult(msgspec.Struct, frozen=True, kw_only=True):
    """The answer to "does this configuration work?" (the dashboard's Test button)."""

    ok: bool
    message: str
    details: dict[str, str] = msgspec.field(default_factory=dict)


class Connector(abc.ABC, Generic[ConfigT]):
    """Base of all connector families. Subclasses set the class attributes below.

    An instance is built per configured connector (per issuer, per target…) and lives until its
    configuration changes; it may keep clients and caches, but no per-call state.
    """

    family: ClassVar[str]
    kind: ClassVar[str]
    """Lowercase slug, unique within the family and stored in the database: never rename it."""
    display_name: ClassVar[str]
    description: ClassVar[str] = ""
    Config: ClassVar[type[ConnectorConfig]]

    def __init__(self, config: ConfigT, context: ConnectorContext) -> None:
        self.config = config
        self.context = context

    async def check(self) -> CheckResult:
        """Verify the configuration against the real system without changing anything."""
        return CheckResult(ok=True, message="configuration is valid")

    async def aclose(self) -> None:
        """Release resources the instance opened itself (not ``context.http``)."""
