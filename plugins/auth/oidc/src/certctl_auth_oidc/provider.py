"""The generic OpenID Connect provider: discovery, JWKS and the token endpoint over httpx.

Only transport lives here; every validation rule is in :class:`certctl_sdk.auth.SsoProvider`,
shared with every other SSO provider.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import quote, urlsplit

import httpx

from certctl_auth_oidc.config import OidcProviderConfig
from certctl_sdk import AuthenticationError, ConfigurationError, TransientError
from certctl_sdk.auth import SsoProvider, TokenExchangeError

__all__ = ["OidcProvider"]

_MAX_BODY = 1024 * 1024


def _where(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


class OidcProvider(SsoProvider[OidcProviderConfig]):
    """Single sign-on with any OpenID Provider that supports discovery and PKCE S256."""

    kind: ClassVar[str] = "oidc"
    display_name: ClassVar[str] = "OpenID Connect"
    description: ClassVar[str] = (
        "Browser sign-in with any OpenID Connect provider (authorization code flow, PKCE S256, "
        "confidential client) and back-channel logout."
    )
    Config: ClassVar[type[OidcProviderConfig]] = OidcProviderConfig

    @property
    def issuer(self) -> str:
        """The configured issuer, verbatim (the discovery document must repeat it exactly)."""
        return self.config.issuer

    async def _send(self, request: httpx.Request) -> httpx.Response:
        try:
            response = await self.context.http.send(request)
        except httpx.HTTPError as exc:
            raise TransientError(
                f"{_where(str(request.url))} is unreachable: {type(exc).__name__}"
            ) from None
        if len(response.content) > _MAX_BODY:
            raise TransientError(f"{_where(str(request.url))} answered more than 1 MiB")
        return response

    async def _get_json(self, url: str, what: str) -> Mapping[str, Any]:
        request = self.context.http.build_request(
            "GET", url, headers={"Accept": "application/json"}, timeout=self.config.timeout
        )
        response = await self._send(request)
        if response.status_code >= 500 or response.status_code == 429:
            raise TransientError(f"{what} at {_where(url)} answered {response.status_code}")
        if response.status_code != 200:
            raise ConfigurationError(f"{what} at {_where(url)} answered {response.status_code}")
        try:
            doc = response.json()
        except ValueError:
            raise TransientError(f"{what} at {_where(url)} is not JSON") from None
        if not isinstance(doc, dict):
            raise TransientError(f"{what} at {_where(url)} is not a JSON object")
        return doc

    async def fetch_metadata(self) -> Mapping[str, Any]:
        """GET ``<issuer>/.well-known/openid-configuration``."""
        url = self.config.issuer.rstrip("/") + "/.well-known/openid-configuration"
        return await self._get_json(url, "the discovery document")

    async def fetch_jwks(self, jwks_uri: str) -> Mapping[str, Any]:
        """GET the JWKS named by discovery."""
        return await self._get_json(jwks_uri, "the JWKS")

    async def post_token_request(
        self, token_endpoint: str, form: Mapping[str, str]
    ) -> Mapping[str, Any]:
        """POST the grant, authenticated with the client secret (basic or post)."""
        secret = await self.context.secrets.resolve(self.config.client_secret)
        data = dict(form)
        headers = {"Accept": "application/json"}
        if self.config.token_endpoint_auth_method == "client_secret_basic":  # noqa: S105
            # RFC 6749 §2.3.1: both parts form-urlencoded before base64.
            auth = httpx.BasicAuth(quote(self.config.client_id, safe=""), quote(secret, safe=""))
        else:
            auth = None
            data["client_secret"] = secret
        request = self.context.http.build_request(
            "POST", token_endpoint, data=data, headers=headers, timeout=self.config.timeout
        )
        if auth is not None:
            request = next(auth.auth_flow(request))
        response = await self._send(request)
        try:
            doc = response.json()
        except ValueError:
            doc = {}
        error = doc.get("error") if isinstance(doc, dict) else None
        if response.status_code >= 500 or response.status_code == 429:
            raise TransientError(f"the token endpoint answered {response.status_code}")
        if response.status_code == 401 or error == "invalid_client":
            raise AuthenticationError("the IdP refused the client id or secret (invalid_client)")
        if response.status_code != 200 or not isinstance(doc, dict):
            shown = error if isinstance(error, str) and error.isascii() else "no error code"
            raise TokenExchangeError(
                f"the token endpoint refused the code ({response.status_code}, {shown[:64]})"
            )
        return doc
