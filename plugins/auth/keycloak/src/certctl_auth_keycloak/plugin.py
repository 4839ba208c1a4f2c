"""Entry point of ``certctl-auth-keycloak``: registers the Keycloak provider."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from certctl_auth_keycloak.provider import KeycloakProvider
from certctl_sdk import AuthProvider, hookimpl

__all__ = ["register_auth_providers"]


@hookimpl
def register_auth_providers() -> Iterable[type[AuthProvider[Any]]]:
    """Provide the ``keycloak`` auth provider kind."""
    return [KeycloakProvider]
