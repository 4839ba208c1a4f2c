"""SSO administration: providers (secrets encrypted, never shown), dry runs, group mappings."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, text

from certctl.db.models import ConnectorInstance, RoleGrant
from certctl_sdk import MASK
from certctl_sdk.testing.idp import InProcessIdp

CLIENT_ID = "certctl"
SECRET = "corp-client-secret-0123456789"
CALLBACK = "https://certctl.test.local/auth/oidc/callback"
API = "/api/v1/auth/oidc"


@pytest.fixture
def idp():
    with InProcessIdp() as server:
        server.register_client(CLIENT_ID, SECRET, [CALLBACK])
        yield server


def provider_body(idp: InProcessIdp, **config) -> dict:
    return {
        "name": "corp",
        "type": "oidc",
        "config": {
            "issuer": idp.issuer,
            "client_id": CLIENT_ID,
            "client_secret": SECRET,
            "redirect_uri": CALLBACK,
            **config,
        },
    }


async def sign_in(client: httpx.AsyncClient, idp: InProcessIdp, provider_id: str):
    b = httpx.AsyncClient(transport=client._transport, base_url="https://certctl.test.local")
    login = await b.get("/auth/oidc/login", params={"provider": provider_id})
    assert login.status_code == 302, login.text
    done = await b.get(await idp.authorize(login.headers["location"]))
    return b, done


async def test_provider_crud_keeps_the_client_secret_encrypted_and_hidden(
    client, admin_headers, viewer_headers, idp, database_url
):
    body = provider_body(idp)
    assert (
        await client.post(f"{API}/providers", json=body, headers=viewer_headers)
    ).status_code == 403

    created = await client.post(f"{API}/providers", json=body, headers=admin_headers)
    assert created.status_code == 201, created.text
    provider = created.json()
    provider_id = provider["id"]
    assert provider["config"]["client_secret"] == MASK
    assert provider["login_url"] == f"/auth/oidc/login?provider={provider_id}"

    renamed = await client.put(
        f"{API}/providers/{provider_id}",
        json={"name": "corp-sso", "config": {**body["config"], "client_secret": MASK}},
        headers=admin_headers,
    )
    assert renamed.status_code == 200, renamed.text
    await client.post(
        f"{API}/group-mappings",
        json={"provider_id": provider_id, "group": "certctl-operators", "role_id": "r-viewer"},
        headers=admin_headers,
    )
    browser, done = await sign_in(client, idp, provider_id)  # the kept secret still works
    assert done.status_code == 303, done.text
    await browser.aclose()
    (token_request,) = idp.token_requests
    assert token_request.status == 200

    responses = [
        created,
        renamed,
        await client.get(f"{API}/providers", headers=admin_headers),
        await client.get(f"{API}/providers/{provider_id}", headers=admin_headers),
        await client.get(f"{API}/providers/{provider_id}/jwks-status", headers=admin_headers),
        await client.post(f"{API}/providers/{provider_id}/refresh", headers=admin_headers),
        await client.post(f"{API}/test", json=body, headers=admin_headers),
        await client.get("/api/v1/auth/info"),
    ]
    for response in responses:
        assert response.status_code in (200, 201), response.text
        assert SECRET not in response.text
    status = responses[4].json()
    assert status["keys"] and status["refresh_count"] >= 1
    assert status["issuer"] == idp.issuer

    async with client.runtime.sessions() as db:
        row = await db.get(ConnectorInstance, provider_id)
        assert row is not None
        assert row.name == "corp-sso"
        assert row.config["client_secret"].startswith("v1:")
        dumped = " ".join(
            str(v) for v in (await db.execute(text("SELECT * FROM connectors"))).all()
        )
        pending = " ".join(
            str(v) for v in (await db.execute(text("SELECT * FROM oidc_pending_logins"))).all()
        )
    assert SECRET not in dumped
    assert SECRET not in pending
    if database_url.startswith("sqlite"):
        path = Path(database_url.split(":///", 1)[1])
        for file in (path, path.with_name(path.name + "-wal")):
            if file.exists():
                assert SECRET.encode() not in file.read_bytes(), file

    assert (
        await client.delete(f"{API}/providers/{provider_id}", headers=admin_headers)
    ).status_code == 204
    assert (
        await client.get(f"{API}/providers/{provider_id}", headers=admin_headers)
    ).status_code == 404


async def test_invalid_and_downgrading_providers_are_not_saved(client, admin_headers, idp):
    # Each configuration rule (https issuer and redirect, openid scope, iat window 1..600,
    # JWKS TTL >= 60) is the Config's; certctl-auth-oidc's tests go through them one by one.
    for override, message in (
        ({"issuer": "http://idp.example.com"}, "issuer must use https://"),
        ({"scopes": ["profile"]}, "scopes must contain openid"),
        ({"iat_window_seconds": 900}, "<= 600"),
    ):
        invalid = await client.post(
            f"{API}/providers", json=provider_body(idp, **override), headers=admin_headers
        )
        assert invalid.status_code == 400, override
        assert message in invalid.json()["detail"], override
    wrong_kind = await client.post(
        f"{API}/providers", json={**provider_body(idp), "type": "ldap"}, headers=admin_headers
    )
    assert wrong_kind.status_code == 400

    idp.advertised_algs = ["RS256", "HS256"]
    dry = await client.post(f"{API}/test", json=provider_body(idp), headers=admin_headers)
    assert dry.status_code == 200
    assert dry.json()["ok"] is False
    assert "HS256" in dry.json()["message"]
    refused = await client.post(f"{API}/providers", json=provider_body(idp), headers=admin_headers)
    assert refused.status_code == 400
    assert "downgrade" in refused.json()["detail"]

    idp.advertised_algs = ["RS256"]
    dry = await client.post(f"{API}/test", json=provider_body(idp), headers=admin_headers)
    assert dry.json()["ok"] is True, dry.text
    async with client.runtime.sessions() as db:
        assert (await db.scalars(select(ConnectorInstance))).all() == []  # nothing saved


async def test_group_mappings_are_role_grants(client, admin_headers, idp):
    created = await client.post(f"{API}/providers", json=provider_body(idp), headers=admin_headers)
    provider_id = created.json()["id"]
    mapping = await client.post(
        f"{API}/group-mappings",
        json={"provider_id": provider_id, "group": "certctl-operators", "role_id": "r-operator"},
        headers=admin_headers,
    )
    assert mapping.status_code == 201, mapping.text
    mapping_id = mapping.json()["id"]
    async with client.runtime.sessions() as db:
        grant = await db.get(RoleGrant, mapping_id)
    assert grant is not None
    assert (grant.actor_type, grant.actor_id) == ("Group", f"{provider_id}:certctl-operators")
    listed = await client.get(
        f"{API}/group-mappings", params={"provider_id": provider_id}, headers=admin_headers
    )
    assert [m["group"] for m in listed.json()] == ["certctl-operators"]
    unknown = await client.post(
        f"{API}/group-mappings",
        json={"provider_id": "aup-nope", "group": "g", "role_id": "r-viewer"},
        headers=admin_headers,
    )
    assert unknown.status_code == 404

    # Mapping is granting: the no-escalation rule applies to an SSO administrator too.
    role = await client.post(
        "/api/v1/auth/roles",
        json={"name": "sso-admin", "permissions": ["auth.oidc.list", "auth.oidc.edit"]},
        headers=admin_headers,
    )
    key = await client.post(
        "/api/v1/auth/keys",
        json={"name": "sso-admin", "roles": [role.json()["id"]]},
        headers=admin_headers,
    )
    sso_admin = {"Authorization": f"Bearer {key.json()['key']}"}
    escalate = await client.post(
        f"{API}/group-mappings",
        json={"provider_id": provider_id, "group": "x", "role_id": "r-admin"},
        headers=sso_admin,
    )
    assert escalate.status_code == 403, escalate.text

    browser, done = await sign_in(client, idp, provider_id)
    assert done.status_code == 303
    assert (await browser.get("/api/v1/certificates")).status_code == 200
    deleted = await client.delete(f"{API}/group-mappings/{mapping_id}", headers=admin_headers)
    assert deleted.status_code == 204
    assert (await browser.get("/api/v1/certificates")).status_code == 403  # role gone at once

    await client.post(
        f"{API}/group-mappings",
        json={"provider_id": provider_id, "group": "certctl-operators", "role_id": "r-viewer"},
        headers=admin_headers,
    )
    assert (await browser.get("/api/v1/certificates")).status_code == 200
    removed = await client.delete(f"{API}/providers/{provider_id}", headers=admin_headers)
    assert removed.status_code == 204
    assert (await browser.get("/api/v1/certificates")).status_code == 401  # sessions ended
    await browser.aclose()
    async with client.runtime.sessions() as db:
        left = (await db.scalars(select(RoleGrant).where(RoleGrant.actor_type == "Group"))).all()
    assert left == []
    assert json.loads((await client.get("/api/v1/auth/info")).text)["sso_providers"] == []
