"""Configuration of the Keycloak provider."""

from __future__ import annotations

import re
from typing import Annotated

from msgspec import Meta

from certctl_sdk.auth import SsoConfig, check_endpoint_url

__all__ = ["KeycloakProviderConfig"]

_REALM = re.compile(r"^[A-Za-z0-9._-]{1,255}$")


class KeycloakProviderConfig(SsoConfig, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A Keycloak realm; the issuer is ``<server_url>/realms/<realm>``."""

    server_url: Annotated[
        str,
        Meta(
            description=(
                "Keycloak's base URL, without /realms (https; http only for a loopback host), "
                "e.g. https://sso.example.com or https://sso.example.com/auth for old versions."
            )
        ),
    ]
    realm: Annotated[str, Meta(description="Realm name, e.g. corp.")]
    include_realm_roles: Annotated[
        bool,
        Meta(
            description=(
                "Also map the user's realm roles (realm_access.roles) to certctl groups, each "
                "as realm_role_prefix + role name."
            )
        ),
    ] = False
    realm_role_prefix: Annotated[
        str,
        Meta(
            max_length=32,
            description="Prefix that keeps realm roles apart from groups of the same name.",
        ),
    ] = "role:"
    timeout: Annotated[int, Meta(ge=1, le=60, description="Seconds one request may take.")] = 10

    def __post_init__(self) -> None:
        super().__post_init__()
        check_endpoint_url(self.server_url, "server_url")
        if "?" in self.server_url or "/realms/" in self.server_url + "/":
            raise ValueError("server_url is the base URL without /realms/<realm> or a query")
        if not _REALM.match(self.realm):
            raise ValueError("realm must be 1-255 characters of [A-Za-z0-9._-]")
