"""Configuration of the generic OpenID Connect provider."""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta

from certctl_sdk.auth import SsoConfig, check_endpoint_url

__all__ = ["OidcProviderConfig"]


class OidcProviderConfig(SsoConfig, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Any OpenID Provider, found through ``<issuer>/.well-known/openid-configuration``."""

    issuer: Annotated[
        str,
        Meta(
            description=(
                "Issuer identifier, exactly as the IdP writes it in iss (https; http only for "
                "a loopback host). Discovery is read from "
                "<issuer>/.well-known/openid-configuration."
            )
        ),
    ]
    token_endpoint_auth_method: Annotated[
        Literal["client_secret_basic", "client_secret_post"],
        Meta(description="How the client secret is sent to the token endpoint."),
    ] = "client_secret_basic"  # noqa: S105 - a method name, not a secret
    timeout: Annotated[
        float, Meta(gt=0, le=60, description="Seconds one request to the IdP may take.")
    ] = 10.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_endpoint_url(self.issuer, "issuer")
        if "?" in self.issuer:
            raise ValueError("issuer must not contain a query")
