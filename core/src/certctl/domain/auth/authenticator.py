"""Turning a request's credentials into an :class:`Actor`.

The chain, in order: demo mode (every request is the demo actor); then each registered
credential source (the session cookie); then a bearer API key. A source returns None when the
request carries none of its credentials and raises ``Unauthorized`` when it carries bad ones,
so a browser with an expired session is told so rather than silently treated as anonymous.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from litestar.connection import ASGIConnection

from certctl.domain.auth.actor import Actor
from certctl.domain.auth.keystore import ApiKeyStore
from certctl.domain.auth.rbac import DEMO_ACTOR, RoleResolver
from certctl.errors import Unauthorized

__all__ = ["Authenticator", "CredentialSource"]

CredentialSource = Callable[[ASGIConnection[Any, Any, Any, Any]], Awaitable[Actor | None]]


class Authenticator:
    """The authentication chain of one process."""

    def __init__(self, *, demo: bool, keys: ApiKeyStore, roles: RoleResolver) -> None:
        self._demo = demo
        self._keys = keys
        self._roles = roles
        self._sources: list[CredentialSource] = []

    def add_source(self, source: CredentialSource) -> None:
        """Try ``source`` (in registration order) before the bearer key."""
        self._sources.append(source)

    async def authenticate(self, connection: ASGIConnection[Any, Any, Any, Any]) -> Actor:
        """The caller, or ``Unauthorized``."""
        if self._demo:
            return await self._roles.actor(*DEMO_ACTOR, display_name="demo")
        for source in self._sources:
            actor = await source(connection)
            if actor is not None:
                return actor
        header = connection.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("missing credentials: send a bearer API key or a session cookie")
        name = await self._keys.authenticate(token.strip())
        if name is None:
            raise Unauthorized("invalid, expired or revoked API key")
        return await self._roles.actor("APIKey", name)
