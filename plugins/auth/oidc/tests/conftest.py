"""A real OpenID Provider on loopback and a generic OIDC provider pointed at it."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from certctl_auth_oidc import OidcProvider, OidcProviderConfig
from certctl_sdk import Secret
from certctl_sdk.auth import SsoIdentity
from certctl_sdk.testing import make_context
from certctl_sdk.testing.idp import InProcessIdp

CLIENT_ID = "certctl"
CLIENT_SECRET = "s3cret-client-secret"
REDIRECT_URI = "https://certctl.test.local/auth/oidc/callback"


@pytest.fixture
def idp() -> Iterator[InProcessIdp]:
    with InProcessIdp() as server:
        server.register_client(CLIENT_ID, CLIENT_SECRET, [REDIRECT_URI])
        yield server


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False) as client:
        yield client


@pytest.fixture
def make_provider(idp: InProcessIdp, http: httpx.AsyncClient) -> Callable[..., OidcProvider]:
    """A provider for the IdP; keyword arguments override its configuration."""

    def build(clock: Any = None, **overrides: Any) -> OidcProvider:
        values: dict[str, Any] = {
            "issuer": idp.issuer,
            "client_id": CLIENT_ID,
            "client_secret": Secret(CLIENT_SECRET),
            "redirect_uri": REDIRECT_URI,
        }
        values.update(overrides)
        return OidcProvider(OidcProviderConfig(**values), make_context(http=http, clock=clock))

    return build


class Flow:
    """One browser login: authorize at the IdP over HTTP, then hand the code to the provider."""

    def __init__(self, provider: OidcProvider, http: httpx.AsyncClient) -> None:
        self.provider = provider
        self.http = http
        self.state = secrets.token_urlsafe(32)
        self.nonce = secrets.token_urlsafe(32)
        self.verifier = secrets.token_urlsafe(48)
        self.query: dict[str, str] = {}

    async def authorize(self) -> dict[str, str]:
        url = await self.provider.authorization_url(
            state=self.state, nonce=self.nonce, code_verifier=self.verifier
        )
        response = await self.http.get(url)
        assert response.status_code == 302, response.text
        location = response.headers["location"]
        assert location.startswith(REDIRECT_URI + "?")
        self.query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
        assert self.query["state"] == self.state
        return self.query

    async def complete(self) -> SsoIdentity:
        if not self.query:
            await self.authorize()
        self.provider.check_callback_issuer(self.query.get("iss"))
        return await self.provider.complete_login(
            code=self.query["code"], code_verifier=self.verifier, nonce=self.nonce
        )


@pytest.fixture
def flow(http: httpx.AsyncClient) -> Callable[[OidcProvider], Flow]:
    return lambda provider: Flow(provider, http)
