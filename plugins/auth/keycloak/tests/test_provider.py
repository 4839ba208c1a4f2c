"""The Keycloak provider against a Keycloak-shaped IdP, over python-keycloak."""

from __future__ import annotations

import time

import pytest

from certctl_auth_keycloak import KeycloakProviderConfig
from certctl_sdk import (
    AuthenticationError,
    ConfigurationError,
    Secret,
    TransientError,
    decode_config,
)
from certctl_sdk.auth import InvalidTokenError, ProviderRefused, TokenExchangeError


async def test_login_maps_group_paths(make_provider, login, idp):
    provider = make_provider()

    identity = await login(provider)

    assert provider.issuer == f"{idp.base_url}/realms/corp"
    assert identity.issuer == provider.issuer
    assert identity.groups == ("certctl-operators", "eng/pki")
    assert identity.claims["typ"] == "ID"
    assert identity.claims["azp"] == "certctl"
    assert identity.sid == idp.sessions[-1]
    (request,) = idp.token_requests
    assert request.form["client_secret"] == "kc-client-secret"  # python-keycloak posts it
    assert request.form["code_verifier"]


async def test_realm_roles_map_when_enabled(make_provider, login):
    identity = await login(make_provider(include_realm_roles=True))

    assert identity.groups == (
        "certctl-operators",
        "eng/pki",
        "role:certctl-admin",
        "role:offline_access",
    )


@pytest.mark.parametrize(
    ("knobs", "message"),
    [
        ({"sign_mode": "none"}, "'none' is not allowed"),
        ({"sign_mode": "hs256-public-key"}, "'HS256' is not allowed"),
        ({"id_token_overrides": {"aud": "other"}}, "aud does not contain"),
        ({"id_token_overrides": {"azp": "other"}}, "azp is not this client"),
        ({"id_token_overrides": {"iat": int(time.time()) - 400}}, "iat is more than"),
        ({"at_hash_mode": "substituted"}, "at_hash does not match"),
        ({"sign_mode": "unknown-kid"}, "no signing key with kid"),
    ],
)
async def test_the_shared_rules_apply(make_provider, login, idp, knobs, message):
    provider = make_provider()
    assert await login(provider)
    for name, value in knobs.items():
        setattr(idp, name, value)

    with pytest.raises(InvalidTokenError) as caught:
        await login(provider)
    assert message in caught.value.message


async def test_back_channel_logout_token(make_provider, idp):
    provider = make_provider()
    token = idp.mint_logout_token("certctl", sid="kc-session")

    claims = await provider.verify_logout_token(token, max_age_seconds=60)

    assert claims.sid == "kc-session"
    assert claims.issuer == provider.issuer


async def test_hs256_advertising_realm_is_refused(make_provider, idp):
    idp.advertised_algs = ["RS256", "HS256"]

    with pytest.raises(ProviderRefused, match="downgrade"):
        await make_provider().load_metadata()


async def test_wrong_client_secret(make_provider, login):
    with pytest.raises(AuthenticationError):
        await login(make_provider(client_secret=Secret("wrong")))


async def test_a_code_is_redeemed_once(make_provider, idp, http):
    import secrets
    from urllib.parse import parse_qs, urlsplit

    provider = make_provider()
    verifier, nonce = secrets.token_urlsafe(48), "n" * 43
    url = await provider.authorization_url(state="s" * 43, nonce=nonce, code_verifier=verifier)
    location = (await http.get(url)).headers["location"]
    code = parse_qs(urlsplit(location).query)["code"][0]
    await provider.complete_login(code=code, code_verifier=verifier, nonce=nonce)

    with pytest.raises(TokenExchangeError, match="invalid_grant"):
        await provider.complete_login(code=code, code_verifier=verifier, nonce=nonce)


async def test_jwks_failure_is_transient(make_provider, idp):
    idp.jwks_fail = True

    with pytest.raises(TransientError, match="503"):
        await make_provider().load_metadata()


async def test_unknown_realm_is_a_configuration_error(make_provider):
    with pytest.raises(ConfigurationError, match="404"):
        await make_provider(realm="nope").load_metadata()


def test_server_url_must_not_contain_the_realm_path(idp):
    data = {
        "server_url": idp.base_url,
        "realm": "corp",
        "client_id": "c",
        "client_secret": "s",
        "redirect_uri": "https://certctl.test.local/auth/oidc/callback",
    }
    assert decode_config(KeycloakProviderConfig, data)

    with pytest.raises(ConfigurationError, match="without /realms"):
        decode_config(KeycloakProviderConfig, {**data, "server_url": idp.base_url + "/realms/corp"})
