"""OpenID Connect Back-Channel Logout 1.0 at ``POST /auth/oidc/back-channel-logout``."""

from __future__ import annotations

import time

import httpx
import pytest
from sqlalchemy import select

from certctl.db.models import OidcLogoutJti, OidcPendingLogin
from certctl.domain.sso.gc import collect_sso_garbage
from certctl_sdk.testing.idp import REMOVE, InProcessIdp

CLIENT_ID = "certctl"
SECRET = "corp-client-secret-0123456789"
CALLBACK = "https://certctl.test.local/auth/oidc/callback"
BCL = "/auth/oidc/back-channel-logout"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture
def idp():
    with InProcessIdp() as server:
        server.register_client(CLIENT_ID, SECRET, [CALLBACK])
        yield server


@pytest.fixture
async def corp(client, admin_headers, idp):
    body = {
        "name": "corp",
        "type": "oidc",
        "config": {
            "issuer": idp.issuer,
            "client_id": CLIENT_ID,
            "client_secret": SECRET,
            "redirect_uri": CALLBACK,
        },
    }
    provider_id = (
        await client.post("/api/v1/auth/oidc/providers", json=body, headers=admin_headers)
    ).json()["id"]
    await client.post(
        "/api/v1/auth/oidc/group-mappings",
        json={"provider_id": provider_id, "group": "certctl-operators", "role_id": "r-viewer"},
        headers=admin_headers,
    )
    return provider_id


async def signed_in(client, idp, provider_id) -> httpx.AsyncClient:
    b = httpx.AsyncClient(transport=client._transport, base_url="https://certctl.test.local")
    login = await b.get("/auth/oidc/login", params={"provider": provider_id})
    done = await b.get(await idp.authorize(login.headers["location"]))
    assert done.status_code == 303, done.text
    assert (await b.get("/api/v1/auth/me")).status_code == 200
    return b


async def post_token(client, token: str, **params) -> httpx.Response:
    return await client.post(BCL, content=f"logout_token={token}", headers=FORM, params=params)


async def test_logout_by_sid_ends_that_session_once(client, idp, corp):
    first = await signed_in(client, idp, corp)
    first_sid = idp.sessions[-1]
    second = await signed_in(client, idp, corp)
    token = idp.mint_logout_token(CLIENT_ID, sid=first_sid)

    done = await post_token(client, token)

    assert done.status_code == 200, done.text
    assert done.headers["cache-control"] == "no-store"
    assert (await first.get("/api/v1/auth/me")).status_code == 401
    assert (await second.get("/api/v1/auth/me")).status_code == 200  # another IdP session

    replay = await post_token(client, token)
    assert replay.status_code == 400
    assert "already used" in replay.json()["detail"]
    assert replay.headers["cache-control"] == "no-store"

    # The replay row outlives the token's freshness, then the session GC sweeps it, with
    # pre-login rows past their 10 minutes.
    assert ("sso", collect_sso_garbage) in client.runtime.browser_sessions.sweeps
    assert (await first.get("/auth/oidc/login", params={"provider": corp})).status_code == 302
    async with client.runtime.sessions() as db:
        (row,) = (await db.scalars(select(OidcLogoutJti))).all()
        (pending,) = (await db.scalars(select(OidcPendingLogin))).all()
        row.expires_at = row.expires_at.replace(year=2000)
        pending.expires_at = pending.expires_at.replace(year=2000)
        await db.commit()
    assert await collect_sso_garbage(client.runtime) == 2

    by_sub = await post_token(
        client, idp.mint_logout_token(CLIENT_ID, sub="user-alice"), provider=corp
    )
    assert by_sub.status_code == 200, by_sub.text
    assert (await second.get("/api/v1/auth/me")).status_code == 401  # every session of the user
    await first.aclose()
    await second.aclose()


async def test_bad_logout_tokens_are_400_and_end_nothing(client, idp, corp):
    b = await signed_in(client, idp, corp)
    sid = idp.sessions[-1]
    attacks = {
        "forged (key not in the JWKS)": idp.mint_logout_token(
            CLIENT_ID, sid=sid, mode="unknown-kid"
        ),
        "alg none": idp.mint_logout_token(CLIENT_ID, sid=sid, mode="none"),
        "alg confusion": idp.mint_logout_token(CLIENT_ID, sid=sid, mode="hs256-public-key"),
        "with nonce": idp.mint_logout_token(CLIENT_ID, sid=sid, nonce="n"),
        "both sub and sid": idp.mint_logout_token(CLIENT_ID, sid=sid, sub="user-alice"),
        "neither sub nor sid": idp.mint_logout_token(CLIENT_ID),
        "no event": idp.mint_logout_token(CLIENT_ID, sid=sid, events=REMOVE),
        "stale": idp.mint_logout_token(CLIENT_ID, sid=sid, iat=int(time.time()) - 120),
        "no jti": idp.mint_logout_token(CLIENT_ID, sid=sid, jti=REMOVE),
        "another audience": idp.mint_logout_token("other-client", sid=sid),
        "not a JWT": "not-a-token",
    }
    for attack, token in attacks.items():
        response = await post_token(client, token)
        assert response.status_code == 400, f"{attack}: {response.status_code} {response.text}"
        assert response.headers["cache-control"] == "no-store", attack
    as_json = await client.post(BCL, json={"logout_token": attacks["alg none"]})
    assert as_json.status_code == 400

    assert (await b.get("/api/v1/auth/me")).status_code == 200  # nothing was revoked
    assert (await post_token(client, idp.mint_logout_token(CLIENT_ID, sid=sid))).status_code == 200
    assert (await b.get("/api/v1/auth/me")).status_code == 401
    await b.aclose()
