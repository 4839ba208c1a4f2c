"""SSO through the whole browser flow: certctl over ASGI, the IdP over real HTTP.

A browser is an ``httpx.AsyncClient`` with a cookie jar: it calls ``/auth/oidc/login``,
follows the redirect to the in-process IdP (real sockets, real signatures, real PKCE), brings
the IdP's redirect back to ``/auth/oidc/callback`` and then uses the session cookie.
"""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from sqlalchemy import select

from certctl.db.models import AuditEvent, BrowserSession, OidcPendingLogin
from certctl_sdk.testing.idp import InProcessIdp

CLIENT_ID = "certctl"
SECRET = "corp-client-secret-0123456789"
CALLBACK = "https://certctl.test.local/auth/oidc/callback"


@pytest.fixture
def idp():
    with InProcessIdp() as server:
        server.register_client(CLIENT_ID, SECRET, [CALLBACK])
        yield server


@pytest.fixture
def keycloak():
    with InProcessIdp(realm="corp") as server:
        server.register_client(CLIENT_ID, SECRET, [CALLBACK])
        yield server


def browser(client: httpx.AsyncClient, user_agent: str = "Firefox/140") -> httpx.AsyncClient:
    """Another browser (own cookie jar) talking to the same app."""
    return httpx.AsyncClient(
        transport=client._transport,
        base_url="https://certctl.test.local",
        headers={"User-Agent": user_agent},
    )


async def add_provider(client, headers, idp, *, kind="oidc", name="corp", **config) -> str:
    if kind == "oidc":
        config = {"issuer": idp.issuer, **config}
    else:
        config = {"server_url": idp.base_url, "realm": idp.realm, **config}
    body = {
        "name": name,
        "type": kind,
        "config": {
            "client_id": CLIENT_ID,
            "client_secret": SECRET,
            "redirect_uri": CALLBACK,
            **config,
        },
    }
    response = await client.post("/api/v1/auth/oidc/providers", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def map_group(client, headers, provider_id, group, role_id="r-operator") -> str:
    response = await client.post(
        "/api/v1/auth/oidc/group-mappings",
        json={"provider_id": provider_id, "group": group, "role_id": role_id},
        headers=headers,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def start(b: httpx.AsyncClient, idp: InProcessIdp, provider_id: str, **params) -> str:
    """Begin a login and authorize at the IdP; the callback URL the IdP sent back."""
    response = await b.get("/auth/oidc/login", params={"provider": provider_id, **params})
    assert response.status_code == 302, response.text
    assert response.headers["location"].startswith(idp.base_url)
    return await idp.authorize(response.headers["location"])


async def sign_in(b: httpx.AsyncClient, idp: InProcessIdp, provider_id: str, **params):
    return await b.get(await start(b, idp, provider_id, **params))


@pytest.fixture
async def corp(client, admin_headers, idp):
    """An oidc provider whose ``certctl-operators`` group maps to r-operator."""
    provider_id = await add_provider(client, admin_headers, idp)
    await map_group(client, admin_headers, provider_id, "certctl-operators")
    return provider_id


async def test_browser_flow_login_api_call_logout(client, idp, corp):
    # The Go certctl's dispatcher never routes /auth/*: ours answer without any credentials.
    unknown = await client.get("/auth/oidc/login", params={"provider": "aup-missing"})
    assert unknown.status_code == 404, unknown.text  # not 401
    stray = await client.get("/auth/oidc/callback", params={"state": "x", "code": "y"})
    assert stray.status_code == 400, stray.text  # not 401
    for response in (unknown, stray):
        assert "www-authenticate" not in response.headers
    info = (await client.get("/api/v1/auth/info")).json()
    assert "sso" in info["methods"]
    assert info["sso_providers"] == [
        {
            "id": corp,
            "name": "corp",
            "type": "oidc",
            "login_url": f"/auth/oidc/login?provider={corp}",
        }
    ]

    async with browser(client) as b:
        assert (await b.get("/api/v1/auth/me")).status_code == 401

        done = await sign_in(b, idp, corp, redirect_to="/certificates/mc-1?view=full")

        assert done.status_code == 303, done.text
        assert done.headers["location"] == "/certificates/mc-1?view=full"
        assert done.headers["cache-control"] == "no-store"
        cookies = done.headers.get_list("set-cookie")
        session_cookie = next(c for c in cookies if c.startswith("__Host-certctl_session="))
        assert "HttpOnly" in session_cookie
        assert "Secure" in session_cookie
        assert "Path=/" in session_cookie
        assert any(
            c.startswith("__Host-certctl_oidc_pending=") and "Max-Age=0" in c for c in cookies
        )
        me = (await b.get("/api/v1/auth/me")).json()
        assert me["type"] == "User"
        assert me["display_name"] == "Alice Example"
        assert me["roles"] == ["r-operator"]
        assert me["session_id"]
        assert (await b.get("/api/v1/certificates")).status_code == 200
        assert (await b.get("/api/v1/auth/oidc/providers")).status_code == 403  # operator

        csrf = b.cookies["__Host-certctl_csrf"]
        assert (await b.post("/auth/logout", headers={"X-CSRF-Token": csrf})).status_code == 204
        assert (await b.get("/api/v1/auth/me")).status_code == 401

    async with client.runtime.sessions() as db:
        actions = set(await db.scalars(select(AuditEvent.action)))
    assert {"auth.session.start", "auth.session.logout"} <= actions


async def test_keycloak_flow_next_to_another_provider(client, admin_headers, keycloak, corp):
    # Same group name at both IdPs: corp's mapping of certctl-operators must not apply here.
    keycloak.user.groups = ["eng/pki", "certctl-operators"]
    keycloak.user.realm_roles = ["certctl-admin"]
    provider_id = await add_provider(
        client, admin_headers, keycloak, kind="keycloak", name="kc", include_realm_roles=True
    )
    await map_group(client, admin_headers, provider_id, "eng/pki", "r-viewer")
    await map_group(client, admin_headers, provider_id, "role:certctl-admin", "r-admin")
    info = (await client.get("/api/v1/auth/info")).json()
    assert [p["id"] for p in info["sso_providers"]] == [corp, provider_id]  # by name

    async with browser(client) as b:
        ambiguous = await b.get("/auth/oidc/login")
        assert ambiguous.status_code == 400
        assert "name the provider" in ambiguous.json()["detail"]
        done = await sign_in(b, keycloak, provider_id)
        assert done.status_code == 303, done.text
        me = (await b.get("/api/v1/auth/me")).json()
        assert me["roles"] == ["r-admin", "r-viewer"]  # no r-operator from corp's mapping
        assert (await b.get("/api/v1/auth/oidc/providers")).status_code == 200

        csrf = b.cookies["__Host-certctl_csrf"]
        assert (await b.post("/auth/logout", headers={"X-CSRF-Token": csrf})).status_code == 204
        assert (await b.get("/api/v1/auth/me")).status_code == 401


async def test_state_code_and_nonce_are_single_use(client, idp, corp):
    async with browser(client) as b:
        callback = await start(b, idp, corp)
        first, second = await asyncio.gather(b.get(callback), b.get(callback))
        assert sorted([first.status_code, second.status_code]) == [303, 400]
        replay = await b.get(callback)
        assert replay.status_code == 400
        assert "already used" in replay.json()["detail"]
        old = {k: v[0] for k, v in parse_qs(urlsplit(callback).query).items()}

        # A new login (new state) fed the old code: the IdP redeems a code once.
        fresh = {k: v[0] for k, v in parse_qs(urlsplit(await start(b, idp, corp)).query).items()}
        replayed = await b.get("/auth/oidc/callback?" + urlencode({**fresh, "code": old["code"]}))
        assert replayed.status_code == 400
        assert "invalid_grant" in replayed.json()["detail"]

        # An ID token carrying another login's nonce.
        idp.id_token_overrides = {"nonce": "nonce-of-an-earlier-login"}
        nonce = await sign_in(b, idp, corp)
        assert nonce.status_code == 400
        assert "nonce does not match" in nonce.json()["detail"]
    async with client.runtime.sessions() as db:
        assert (await db.scalars(select(OidcPendingLogin))).all() == []
        assert len((await db.scalars(select(BrowserSession))).all()) == 1


async def test_id_token_attacks_end_without_a_session(client, idp, corp):
    attacks = {
        "alg none": ("sign_mode", "none", "'none' is not allowed"),
        "alg confusion": ("sign_mode", "hs256-public-key", "'HS256' is not allowed"),
        "wrong iss": ("id_token_overrides", {"iss": "https://evil.example"}, "is not the issuer"),
        "wrong aud": ("id_token_overrides", {"aud": "other-client"}, "aud does not contain"),
        "multi aud, no azp": ("id_token_overrides", {"aud": [CLIENT_ID, "x"]}, "must carry azp"),
        "stale iat": ("id_token_overrides", {"iat": 1_700_000_000}, "iat is more than"),
        "substituted access token": ("at_hash_mode", "substituted", "at_hash does not match"),
        "missing at_hash": ("at_hash_mode", "omit", "lacks at_hash"),
        "unknown kid": ("sign_mode", "unknown-kid", "no signing key with kid"),
        "RFC 9207 mix-up": ("iss_param", "https://evil.example", "iss parameter"),
        "RFC 9207 iss missing": ("send_iss", False, "RFC 9207"),
    }
    defaults = {
        "sign_mode": "normal",
        "id_token_overrides": {},
        "at_hash_mode": "normal",
        "iss_param": None,
        "send_iss": True,
    }
    async with browser(client) as b:
        for attack, (knob, value, message) in attacks.items():
            for name, default in defaults.items():
                setattr(idp, name, default)
            setattr(idp, knob, value)
            response = await sign_in(b, idp, corp)
            assert response.status_code == 400, f"{attack}: {response.status_code}"
            assert message in response.json()["detail"], attack
            assert "__Host-certctl_session" not in b.cookies, attack
        for name, default in defaults.items():
            setattr(idp, name, default)
        assert (await sign_in(b, idp, corp)).status_code == 303  # the honest token still works
    async with client.runtime.sessions() as db:
        denied = (
            await db.scalars(
                select(AuditEvent).where(
                    AuditEvent.action == "auth.oidc.login", AuditEvent.outcome == "denied"
                )
            )
        ).all()
    assert len(denied) == len(attacks)


async def test_browser_binding_redirect_target_and_fail_closed_roles(client, idp, corp):
    async with browser(client) as b:
        callback = await start(b, idp, corp)
    async with browser(client) as victim:  # login CSRF: the victim lacks the pending cookie
        response = await victim.get(callback)
        assert response.status_code == 400
        assert "another browser" in response.json()["detail"]

    async with browser(client, user_agent="Chrome/150") as b:
        callback = await start(b, idp, corp)
        b.headers["User-Agent"] = "curl/8"
        response = await b.get(callback)
        assert response.status_code == 400
        assert "another User-Agent" in response.json()["detail"]

        for target in (
            "//evil.example/",
            "https://evil.example/",
            "/\\evil.example",
            "/\tevil",
            "javascript:alert(1)",
            "evil",
        ):
            response = await b.get(
                "/auth/oidc/login", params={"provider": corp, "redirect_to": target}
            )
            assert response.status_code == 400, target
            assert "redirect_to" in response.json()["detail"], target

        idp.user.groups = ["marketing"]  # no mapping: fail closed
        refused = await sign_in(b, idp, corp)
        assert refused.status_code == 403
        assert "no certctl role" in refused.json()["detail"]
        assert "__Host-certctl_session" not in b.cookies
    async with client.runtime.sessions() as db:
        assert (await db.scalars(select(BrowserSession))).all() == []


async def test_jwks_failure_is_503_sessions_survive_and_downgrade_stops_logins(
    client, admin_headers, idp, corp
):
    async with browser(client) as existing:
        assert (await sign_in(existing, idp, corp)).status_code == 303

        idp.rotate()
        idp.jwks_fail = True
        async with browser(client) as b:
            response = await sign_in(b, idp, corp)
            assert response.status_code == 503, response.text
            assert "__Host-certctl_session" not in b.cookies
        assert (await existing.get("/api/v1/auth/me")).status_code == 200

        idp.jwks_fail = False
        async with browser(client) as b:
            assert (await sign_in(b, idp, corp)).status_code == 303  # the new key is fetched

        idp.advertised_algs = ["RS256", "HS256"]
        refresh = await client.post(
            f"/api/v1/auth/oidc/providers/{corp}/refresh", headers=admin_headers
        )
        assert refresh.status_code == 502, refresh.text
        assert "HS256" in refresh.json()["detail"]
        status = await client.get(
            f"/api/v1/auth/oidc/providers/{corp}/jwks-status", headers=admin_headers
        )
        assert status.json()["keys"] == []
        assert "downgrade" in status.json()["last_error"]
        async with browser(client) as b:
            response = await b.get("/auth/oidc/login", params={"provider": corp})
            assert response.status_code == 502, response.text
        assert (await existing.get("/api/v1/auth/me")).status_code == 200
