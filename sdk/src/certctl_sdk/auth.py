"""Authentication providers: connectors that turn a request's credentials into a principal.

The core asks each configured provider in turn; a provider that does not recognise the
credentials returns None, one that recognises but rejects them raises AuthenticationError.
Authorization (roles, permissions) stays in the core.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import ClassVar, TypeVar

import msgspec

from certctl_sdk.config import ConnectorConfig
from certctl_sdk.connector import Connector

__all__ = ["AuthProvider", "AuthRequest", "Principal"]

ConfigT = TypeVar("ConfigT", bound=ConnectorConfig)


class AuthRequest(msgspec.Struct, frozen=True, kw_only=True):
    """The parts of an HTTP request a provider may look at (header names are lower-case)."""

    method: str
    path: str
    headers: Mapping[str, str]
    client_ip: str | None = None


class Principal(msgspec.Struct, frozen=True, kw_only=True):
    """Who the caller is, as the provider established it."""

    subject: str
    provider: str
    display_name: str = ""
    email: str | None = None
    groups: tuple[str, ...] = ()


class AuthProvider(Connector[ConfigT], abc.ABC):
    """Base class of authentication providers."""

    family: ClassVar[str] = "auth"

    @abc.abstractmethod
    async def authenticate(self, request: AuthRequest) -> Principal | None:
        """Return the principal, None when the credentials are not this provider's."""
