"""Entry point of ``certctl-auth-oidc``: registers the generic OpenID Connect provider."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from certctl_auth_oidc.provider import OidcProvider
from certctl_sdk import AuthProvider, hookimpl

__all__ = ["register_auth_providers"]


@hookimpl
def register_auth_providers() -> Iterable[type[AuthProvider[Any]]]:
    """Provide the ``oidc`` auth provider kind."""
    return [OidcProvider]
