"""A Keycloak-shaped OpenID Provider on loopback and a Keycloak provider pointed at it."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from certctl_auth_keycloak import KeycloakProvider, KeycloakProviderConfig
from certctl_sdk import Secret
from certctl_sdk.auth import SsoIdentity
from certctl_sdk.testing import make_context
from certctl_sdk.testing.idp import InProcessIdp

REALM = "corp"
CLIENT_ID = "certctl"
CLIENT_SECRET = "kc-client-secret"
REDIRECT_URI = "https://certctl.test.local/auth/oidc/callback"


@pytest.fixture
def idp() -> Iterator[InProcessIdp]:
    with InProcessIdp(realm=REALM) as server:
        server.register_client(CLIENT_ID, CLIENT_SECRET, [REDIRECT_URI])
        server.user.groups = ["certctl-operators", "eng/pki"]
        server.user.realm_roles = ["certctl-admin", "offline_access"]
        yield server


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False) as client:
        yield client


@pytest.fixture
async def make_provider(
    idp: InProcessIdp, http: httpx.AsyncClient
) -> AsyncIterator[Callable[..., KeycloakProvider]]:
    built: list[KeycloakProvider] = []

    def build(**overrides: Any) -> KeycloakProvider:
        values: dict[str, Any] = {
            "server_url": idp.base_url,
            "realm": REALM,
            "client_id": CLIENT_ID,
            "client_secret": Secret(CLIENT_SECRET),
            "redirect_uri": REDIRECT_URI,
        }
        values.update(overrides)
        provider = KeycloakProvider(KeycloakProviderConfig(**values), make_context(http=http))
        built.append(provider)
        return provider

    yield build
    for provider in built:
        await provider.aclose()


@pytest.fixture
def login(http: httpx.AsyncClient) -> Callable[..., Any]:
    """Run one browser login against the IdP over HTTP and return the validated identity."""

    async def run(provider: KeycloakProvider) -> SsoIdentity:
        state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        verifier = secrets.token_urlsafe(48)
        url = await provider.authorization_url(state=state, nonce=nonce, code_verifier=verifier)
        response = await http.get(url)
        assert response.status_code == 302, response.text
        query = {k: v[0] for k, v in parse_qs(urlsplit(response.headers["location"]).query).items()}
        assert query["state"] == state
        provider.check_callback_issuer(query.get("iss"))
        return await provider.complete_login(
            code=query["code"], code_verifier=verifier, nonce=nonce
        )

    return run
