"""The generic provider against a real IdP: the login flow and every token rule, attacked."""

from __future__ import annotations

import time
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from certctl_auth_oidc import OidcProviderConfig
from certctl_sdk import AuthenticationError, ConfigurationError, TransientError, decode_config
from certctl_sdk.auth import (
    InvalidTokenError,
    ProviderRefused,
    TokenExchangeError,
    pkce_challenge,
)
from certctl_sdk.testing import ManualClock
from certctl_sdk.testing.idp import REMOVE

CLIENT_ID = "certctl"


# -- configuration -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"issuer": "http://idp.example.com"}, "issuer must use https://"),
        ({"redirect_uri": "http://certctl.example.com/cb"}, "redirect_uri must use https://"),
        ({"scopes": ["profile", "email"]}, "scopes must contain openid"),
        ({"iat_window_seconds": 0}, ">= 1"),
        ({"iat_window_seconds": 601}, "<= 600"),
        ({"jwks_cache_ttl_seconds": 59}, ">= 60"),
    ],
)
def test_configuration_rules(idp, override, message):
    data = {
        "issuer": idp.issuer,
        "client_id": CLIENT_ID,
        "client_secret": "s",
        "redirect_uri": "https://certctl.test.local/auth/oidc/callback",
    }
    assert decode_config(OidcProviderConfig, data)  # valid without the override

    with pytest.raises(ConfigurationError) as caught:
        decode_config(OidcProviderConfig, {**data, **override})
    assert message in caught.value.message


def test_http_is_accepted_for_a_loopback_issuer(make_provider, idp):
    assert make_provider().issuer.startswith("http://127.0.0.1:")


# -- the login flow ----------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["RS256", "RS512", "ES256", "ES384", "EdDSA"])
async def test_login_with_each_allowed_algorithm(make_provider, flow, idp, alg):
    idp.signing_alg = alg
    login = flow(make_provider())

    identity = await login.complete()

    assert identity.subject == "user-alice"
    assert identity.email == "alice@example.com"
    assert identity.groups == ("certctl-operators",)
    assert identity.sid == idp.sessions[-1]
    assert identity.display_name == "Alice Example"


async def test_authorization_request_uses_pkce_s256_state_and_nonce(make_provider, flow):
    login = flow(make_provider())
    url = await login.provider.authorization_url(
        state=login.state, nonce=login.nonce, code_verifier=login.verifier
    )
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}

    assert query["code_challenge"] == pkce_challenge(login.verifier)
    assert query["code_challenge_method"] == "S256"
    assert query["state"] == login.state
    assert query["nonce"] == login.nonce
    assert query["scope"] == "openid profile email"
    assert query["redirect_uri"] == "https://certctl.test.local/auth/oidc/callback"
    assert login.verifier not in url


async def test_code_exchange_sends_verifier_and_basic_client_auth(make_provider, flow, idp):
    await flow(make_provider()).complete()

    (request,) = idp.token_requests
    assert request.status == 200
    assert request.form["code_verifier"]
    assert "client_secret" not in request.form
    assert request.authorization is not None
    assert request.authorization.startswith("Basic ")


async def test_client_secret_post(make_provider, flow, idp):
    await flow(make_provider(token_endpoint_auth_method="client_secret_post")).complete()

    (request,) = idp.token_requests
    assert request.form["client_secret"] == "s3cret-client-secret"
    assert request.authorization is None


async def test_wrong_client_secret_is_an_authentication_error(make_provider, flow):
    from certctl_sdk import Secret

    with pytest.raises(AuthenticationError):
        await flow(make_provider(client_secret=Secret("wrong"))).complete()


async def test_a_code_is_redeemed_once(make_provider, flow):
    login = flow(make_provider())
    await login.complete()

    with pytest.raises(TokenExchangeError, match="invalid_grant"):
        await login.complete()


async def test_the_idp_checks_the_pkce_verifier(make_provider, flow):
    login = flow(make_provider())
    await login.authorize()
    login.verifier = "x" * 64

    with pytest.raises(TokenExchangeError, match="invalid_grant"):
        await login.complete()


async def test_allowed_email_domains(make_provider, flow, idp):
    provider = make_provider(allowed_email_domains=("corp.example",))
    with pytest.raises(InvalidTokenError, match="email domain"):
        await flow(provider).complete()

    idp.user.email = "alice@corp.example"
    assert (await flow(provider).complete()).email == "alice@corp.example"


# -- ID-token attacks --------------------------------------------------------------------------

ATTACKS = {
    "alg none": ({"sign_mode": "none"}, "algorithm 'none' is not allowed"),
    "alg confusion": ({"sign_mode": "hs256-public-key"}, "algorithm 'HS256' is not allowed"),
    "wrong iss": ({"claims": {"iss": "https://evil.example"}}, "is not the issuer"),
    "wrong aud": ({"claims": {"aud": "someone-else"}}, "aud does not contain"),
    "multi aud without azp": ({"claims": {"aud": [CLIENT_ID, "other"]}}, "must carry azp"),
    "wrong azp": ({"claims": {"aud": [CLIENT_ID, "x"], "azp": "x"}}, "azp is not this client"),
    "stale iat": ({"claims": {"iat": lambda: int(time.time()) - 360}}, "iat is more than 300 s"),
    "future iat": ({"claims": {"iat": lambda: int(time.time()) + 360}}, "iat is more than 300 s"),
    "expired": ({"claims": {"exp": int(time.time()) - 1}}, "has expired"),
    "no exp": ({"claims": {"exp": REMOVE}}, "exp claim is missing"),
    "wrong nonce": ({"claims": {"nonce": "replayed-nonce"}}, "nonce does not match"),
    "no nonce": ({"claims": {"nonce": REMOVE}}, "nonce does not match"),
    "substituted access token": ({"at_hash_mode": "substituted"}, "at_hash does not match"),
    "missing at_hash": ({"at_hash_mode": "omit"}, "lacks at_hash"),
    "no sub": ({"claims": {"sub": REMOVE}}, "has no sub"),
}


@pytest.mark.parametrize("attack", list(ATTACKS))
async def test_id_token_attacks_are_refused(make_provider, flow, idp, attack):
    knobs, message = ATTACKS[attack]
    provider = make_provider()
    assert (await flow(provider).complete()).subject  # the same provider accepts honest tokens

    claims = knobs.get("claims", {})
    idp.id_token_overrides = {k: v() if callable(v) else v for k, v in claims.items()}
    idp.sign_mode = knobs.get("sign_mode", "normal")
    idp.at_hash_mode = knobs.get("at_hash_mode", "normal")
    with pytest.raises(InvalidTokenError) as caught:
        await flow(provider).complete()
    assert message in caught.value.message


async def test_multi_audience_with_matching_azp_is_accepted(make_provider, flow, idp):
    idp.id_token_overrides = {"aud": [CLIENT_ID, "other"], "azp": CLIENT_ID}

    assert (await flow(make_provider()).complete()).subject == "user-alice"


async def test_iat_window_is_configurable(make_provider, flow, idp):
    idp.id_token_overrides = {"iat": int(time.time()) - 200}
    with pytest.raises(InvalidTokenError, match="iat"):
        await flow(make_provider(iat_window_seconds=100)).complete()
    assert await flow(make_provider(iat_window_seconds=300)).complete()


async def test_unknown_kid_refreshes_once_then_refuses(make_provider, flow, idp):
    provider = make_provider()
    await flow(provider).complete()
    fetched = idp.jwks_requests

    idp.sign_mode = "unknown-kid"
    with pytest.raises(InvalidTokenError, match="no signing key with kid"):
        await flow(provider).complete()
    assert idp.jwks_requests == fetched + 1


# -- keys, rotation and the downgrade defence --------------------------------------------------


async def test_rotation_is_picked_up_by_an_on_demand_refresh(make_provider, flow, idp):
    provider = make_provider()
    await flow(provider).complete()
    kid = idp.rotate()

    assert (await flow(provider).complete()).subject == "user-alice"
    assert kid in {k.kid for k in provider.jwks_status().keys}
    assert provider.jwks_status().refresh_count == 2


async def test_jwks_failure_during_rotation_is_transient(make_provider, flow, idp):
    provider = make_provider()
    await flow(provider).complete()
    idp.rotate()
    idp.jwks_fail = True

    with pytest.raises(TransientError, match="503"):
        await flow(provider).complete()
    status = provider.jwks_status()
    assert status.last_error is not None
    assert "503" in status.last_error
    assert status.keys  # the previous keys stay until their TTL


async def test_keys_expire_after_their_ttl(make_provider, flow, idp):
    clock = ManualClock()
    provider = make_provider(clock=clock, jwks_cache_ttl_seconds=60)
    await provider.load_metadata()
    clock.advance(59)
    await provider._signing_keys(None, "RS256", on_demand=False)
    assert idp.jwks_requests == 1

    clock.advance(1)
    await provider._signing_keys(None, "RS256", on_demand=False)
    assert idp.jwks_requests == 2

    idp.jwks_fail = True
    clock.advance(timedelta(seconds=60))
    with pytest.raises(TransientError):  # never trust keys past their TTL
        await provider._signing_keys(None, "RS256", on_demand=False)


@pytest.mark.parametrize("weak", ["HS256", "HS512", "none"])
async def test_a_provider_advertising_weak_algorithms_is_refused(make_provider, idp, weak):
    idp.advertised_algs = ["RS256", weak]

    result = await make_provider().check()

    assert not result.ok
    assert weak in result.message
    assert "downgrade" in result.message


async def test_the_downgrade_defence_runs_on_every_refresh(make_provider, flow, idp):
    provider = make_provider()
    await flow(provider).complete()

    idp.advertised_algs = ["RS256", "HS256"]
    with pytest.raises(ProviderRefused, match="HS256"):
        await provider.refresh_keys()
    assert provider.jwks_status().keys == ()  # nothing from the refused provider is trusted
    with pytest.raises(ProviderRefused):
        await flow(provider).complete()


async def test_discovery_issuer_must_match_exactly(make_provider, idp):
    result = await make_provider(issuer=idp.issuer + "/").check()

    assert not result.ok
    assert "does not match" in result.message


async def test_check_reports_keys_and_algorithms(make_provider):
    result = await make_provider().check()

    assert result.ok, result.message
    assert "RS256" in result.details["algorithms"]


async def test_unreachable_discovery_is_transient(make_provider, idp):
    idp.discovery_fail = True
    with pytest.raises(TransientError):
        await make_provider().load_metadata()


async def test_missing_discovery_is_a_configuration_error(make_provider, idp):
    with pytest.raises(ConfigurationError, match="404"):
        await make_provider(issuer=idp.base_url + "/nowhere").load_metadata()


# -- RFC 9207 ----------------------------------------------------------------------------------


async def test_callback_iss_parameter(make_provider, flow, idp):
    provider = make_provider()
    await provider.load_metadata()

    provider.check_callback_issuer(idp.issuer)
    with pytest.raises(InvalidTokenError, match="iss parameter"):
        provider.check_callback_issuer("https://evil.example")
    with pytest.raises(InvalidTokenError, match="RFC 9207"):
        provider.check_callback_issuer(None)

    idp.advertise_iss_parameter = False
    await provider.refresh_keys()
    provider.check_callback_issuer(None)


# -- back-channel logout tokens ----------------------------------------------------------------


async def test_logout_token_with_sid_or_sub(make_provider, idp):
    provider = make_provider()

    by_sid = await provider.verify_logout_token(
        idp.mint_logout_token(CLIENT_ID, sid="sid-1"), max_age_seconds=60
    )
    by_sub = await provider.verify_logout_token(
        idp.mint_logout_token(CLIENT_ID, sub="user-alice"), max_age_seconds=60
    )

    assert (by_sid.sid, by_sid.subject) == ("sid-1", None)
    assert (by_sub.sid, by_sub.subject) == (None, "user-alice")
    assert by_sid.jti != by_sub.jti


LOGOUT_ATTACKS = {
    "both sub and sid": ({"sub": "user-alice", "sid": "s"}, "exactly one of sub and sid"),
    "neither sub nor sid": ({}, "exactly one of sub and sid"),
    "nonce": ({"sid": "s", "nonce": "n"}, "must not contain a nonce"),
    "no events": ({"sid": "s", "events": REMOVE}, "back-channel logout event"),
    "wrong event": ({"sid": "s", "events": {"urn:other": {}}}, "back-channel logout event"),
    "stale iat": ({"sid": "s", "iat": int(time.time()) - 61}, "more than 60 s old"),
    "wrong aud": ({"sid": "s", "aud": "other"}, "aud does not contain"),
    "wrong iss": ({"sid": "s", "iss": "https://evil.example"}, "is not the issuer"),
    "no jti": ({"sid": "s", "jti": REMOVE}, "no usable jti"),
    "alg none": ({"sid": "s", "mode": "none"}, "'none' is not allowed"),
    "alg confusion": ({"sid": "s", "mode": "hs256-public-key"}, "'HS256' is not allowed"),
    "forged": ({"sid": "s", "mode": "unknown-kid"}, "no signing key with kid"),
}


@pytest.mark.parametrize("attack", list(LOGOUT_ATTACKS))
async def test_logout_token_attacks_are_refused(make_provider, idp, attack):
    claims, message = LOGOUT_ATTACKS[attack]
    provider = make_provider()

    with pytest.raises(InvalidTokenError) as caught:
        await provider.verify_logout_token(
            idp.mint_logout_token(CLIENT_ID, **claims), max_age_seconds=60
        )
    assert message in caught.value.message


async def test_forged_logout_tokens_cannot_hammer_the_jwks(make_provider, idp):
    provider = make_provider()
    for _ in range(3):
        with pytest.raises(InvalidTokenError):
            await provider.verify_logout_token(
                idp.mint_logout_token(CLIENT_ID, sid="s", mode="unknown-kid"), max_age_seconds=60
            )

    assert idp.jwks_requests == 2  # the first fill and one on-demand refresh
