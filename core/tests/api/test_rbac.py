"""RBAC: the seeded catalogue and roles, custom roles, grants, scopes, escalation, caching."""

import logging
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from certctl.domain.auth import rbac
from certctl.domain.auth.permissions import ALL_PERMISSIONS, BUILTIN_ROLES, ROLE_PERMISSIONS
from certctl.domain.auth.seeding import DemoResidualError
from certctl.settings import parse_named_api_keys

ADMIN_KEY = "admin-test-key-0123456789"
VIEWER_KEY = "viewer-test-key-0123456789"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def mint(client, admin_headers, name: str, roles: list[str]) -> str:
    r = await client.post(
        "/api/v1/auth/keys", json={"name": name, "roles": roles}, headers=admin_headers
    )
    assert r.status_code == 201, r.text
    return r.json()["key"]


async def query(database_url: str, sql: str) -> list[tuple]:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            return [tuple(r) for r in (await conn.execute(sa.text(sql))).all()]
    finally:
        await engine.dispose()


# --- the seeded catalogue ------------------------------------------------------------------


async def test_migrated_database_matches_the_code(client, database_url):
    permissions = {p for (p,) in await query(database_url, "SELECT name FROM permissions")}
    assert permissions == ALL_PERMISSIONS
    # the reference's 82 + plugin.read, scheduler.read/run, acme.admin
    assert len(permissions) == 86
    rows = await query(database_url, "SELECT role_id, permission FROM role_permissions")
    seeded: dict[str, set[str]] = {}
    for role, permission in rows:
        seeded.setdefault(role, set()).add(permission)
    assert seeded == {role: set(perms) for role, perms in ROLE_PERMISSIONS.items()}
    roles = await query(database_url, "SELECT id, name, builtin FROM roles")
    assert {(rid, name) for rid, name, _ in roles} == {
        (rid, name) for rid, (name, _) in BUILTIN_ROLES.items()
    }
    assert all(builtin for *_, builtin in roles)


def test_role_sizes_follow_the_reference():
    # The reference's sizes (admin 82, operator 48, viewer 19, agent 6, mcp 33, cli 47) plus
    # certctl's three additions; the auditor holds the trail and nothing else.
    sizes = {role: len(perms) for role, perms in ROLE_PERMISSIONS.items()}
    assert sizes == {
        "r-admin": 86,
        "r-operator": 51,
        "r-viewer": 21,
        "r-agent": 6,
        "r-mcp": 35,
        "r-cli": 50,
        "r-auditor": 2,
    }
    assert ROLE_PERMISSIONS["r-auditor"] == {"audit.read", "audit.export"}
    assert not any(
        p.startswith("auth.") for p in ROLE_PERMISSIONS["r-operator"] - {"auth.user.read"}
    )


async def test_auditor_reads_the_trail_and_nothing_else(client, admin_headers):
    key = await mint(client, admin_headers, "auditor-1", ["r-auditor"])
    assert (await client.get("/api/v1/audit", headers=bearer(key))).status_code == 200
    for path in ("/api/v1/certificates", "/api/v1/profiles", "/api/v1/auth/roles"):
        r = await client.get(path, headers=bearer(key))
        assert r.status_code == 403, (path, r.text)


async def test_permission_catalogue_endpoint(client, viewer_headers):
    r = await client.get("/api/v1/auth/permissions", headers=viewer_headers)
    assert r.status_code == 200
    assert {p["name"] for p in r.json()} == ALL_PERMISSIONS
    assert {"name": "auth.role.list", "namespace": "auth"} in r.json()


# --- custom roles --------------------------------------------------------------------------


async def test_custom_role_grants_exactly_its_permissions(client, admin_headers):
    r = await client.post(
        "/api/v1/auth/roles",
        json={"name": "profile-editor", "permissions": ["profile.read", "profile.edit"]},
        headers=admin_headers,
    )
    assert r.status_code == 201, r.text
    role = r.json()
    assert role["builtin"] is False
    key = await mint(client, admin_headers, "editor", [role["id"]])
    r = await client.post("/api/v1/profiles", json={"name": "p1"}, headers=bearer(key))
    assert r.status_code == 201, r.text
    assert (await client.get("/api/v1/certificates", headers=bearer(key))).status_code == 403

    # Taking the permission away applies to the very next request on this replica.
    r = await client.delete(
        f"/api/v1/auth/roles/{role['id']}/permissions/profile.edit", headers=admin_headers
    )
    assert r.status_code == 204
    r = await client.post("/api/v1/profiles", json={"name": "p2"}, headers=bearer(key))
    assert r.status_code == 403
    r = await client.post(
        f"/api/v1/auth/roles/{role['id']}/permissions",
        json={"permissions": ["profile.edit"]},
        headers=admin_headers,
    )
    assert r.json()["permissions"] == ["profile.edit", "profile.read"]

    # A role somebody holds cannot be deleted; after the grant goes, it can.
    r = await client.delete(f"/api/v1/auth/roles/{role['id']}", headers=admin_headers)
    assert r.status_code == 409
    r = await client.delete("/api/v1/auth/keys/editor/roles/" + role["id"], headers=admin_headers)
    assert r.status_code == 404  # "editor" is a key name, not a key id or environment name
    [key_row] = [
        k
        for k in (await client.get("/api/v1/auth/keys", headers=admin_headers)).json()
        if k["name"] == "editor"
    ]
    r = await client.delete(
        f"/api/v1/auth/keys/{key_row['id']}/roles/{role['id']}", headers=admin_headers
    )
    assert r.status_code == 204
    r = await client.delete(f"/api/v1/auth/roles/{role['id']}", headers=admin_headers)
    assert r.status_code == 204

    actions = {
        e["action"]
        for e in (
            await client.get(
                "/api/v1/audit", params={"category": "auth", "per_page": 100}, headers=admin_headers
            )
        ).json()["data"]
    }
    assert {"auth.role.create", "auth.role.edit", "auth.role.delete", "auth.role.revoke"} <= actions


async def test_builtin_roles_cannot_change(client, admin_headers):
    for call in (
        client.put("/api/v1/auth/roles/r-viewer", json={"description": "x"}, headers=admin_headers),
        client.delete("/api/v1/auth/roles/r-auditor", headers=admin_headers),
        client.post(
            "/api/v1/auth/roles/r-auditor/permissions",
            json={"permissions": ["cert.read"]},
            headers=admin_headers,
        ),
        client.delete("/api/v1/auth/roles/r-auditor/permissions/audit.read", headers=admin_headers),
    ):
        r = await call
        assert r.status_code == 409, r.text
    r = await client.get("/api/v1/auth/roles/r-auditor", headers=admin_headers)
    assert r.json()["permissions"] == ["audit.export", "audit.read"]


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x"},
        {"name": "ok-role", "permissions": ["no.such.permission"]},
        {"name": "ok-role", "extra": 1},
        {"name": "Bad Name"},
    ],
)
async def test_bad_roles_are_400(client, admin_headers, body):
    r = await client.post("/api/v1/auth/roles", json=body, headers=admin_headers)
    assert r.status_code == 400, r.text
    names = [
        r["name"] for r in (await client.get("/api/v1/auth/roles", headers=admin_headers)).json()
    ]
    assert "ok-role" not in names


# --- escalation ----------------------------------------------------------------------------


async def test_no_escalation_through_grants_keys_or_roles(client, admin_headers):
    r = await client.post(
        "/api/v1/auth/roles",
        json={
            "name": "delegate",
            "permissions": [
                "auth.role.assign",
                "auth.role.create",
                "auth.key.create",
                "cert.read",
            ],
        },
        headers=admin_headers,
    )
    delegate = await mint(client, admin_headers, "delegate", [r.json()["id"]])
    headers = bearer(delegate)

    r = await client.post(
        "/api/v1/auth/grants",
        json={"actor_type": "APIKey", "actor_id": "delegate", "role_id": "r-admin"},
        headers=headers,
    )
    assert r.status_code == 403
    assert "do not hold" in r.json()["detail"]
    r = await client.post(
        "/api/v1/auth/keys", json={"name": "minted", "roles": ["r-operator"]}, headers=headers
    )
    assert r.status_code == 403
    r = await client.post(
        "/api/v1/auth/roles",
        json={"name": "sneaky", "permissions": ["cert.read", "cert.revoke"]},
        headers=headers,
    )
    assert r.status_code == 403

    # Within its own permissions the delegate can act.
    r = await client.post(
        "/api/v1/auth/roles", json={"name": "reader", "permissions": ["cert.read"]}, headers=headers
    )
    assert r.status_code == 201
    r = await client.post(
        "/api/v1/auth/keys", json={"name": "minted", "roles": [r.json()["id"]]}, headers=headers
    )
    assert r.status_code == 201, r.text


async def test_grant_rules(client, admin_headers):
    cases = [
        ({"actor_type": "Robot", "actor_id": "x", "role_id": "r-viewer"}, 400),
        ({"actor_type": "APIKey", "actor_id": "x", "role_id": "r-nope"}, 400),
        (
            {
                "actor_type": "APIKey",
                "actor_id": "x",
                "role_id": "r-viewer",
                "scope_type": "profile",
            },
            400,
        ),
        ({"actor_type": "APIKey", "actor_id": "x", "role_id": "r-viewer", "scope_id": "p"}, 400),
        ({"actor_type": "Anonymous", "actor_id": "actor-demo-anon", "role_id": "r-viewer"}, 400),
        (
            {
                "actor_type": "APIKey",
                "actor_id": "x",
                "role_id": "r-viewer",
                "expires_at": "2001-01-01T00:00:00Z",
            },
            400,
        ),
    ]
    for body, status in cases:
        r = await client.post("/api/v1/auth/grants", json=body, headers=admin_headers)
        assert r.status_code == status, (body, r.text)
    body = {"actor_type": "Group", "actor_id": "op-x:ops", "role_id": "r-viewer"}
    assert (
        await client.post("/api/v1/auth/grants", json=body, headers=admin_headers)
    ).status_code == 201
    r = await client.post("/api/v1/auth/grants", json=body, headers=admin_headers)
    assert r.status_code == 409


async def test_the_last_admin_grant_stays(app_factory, database_url):
    client = await app_factory(api_keys_named=parse_named_api_keys(f"solo:{ADMIN_KEY}:admin"))
    [grant] = (
        await client.get(
            "/api/v1/auth/grants", params={"role_id": "r-admin"}, headers=bearer(ADMIN_KEY)
        )
    ).json()
    r = await client.delete(f"/api/v1/auth/grants/{grant['id']}", headers=bearer(ADMIN_KEY))
    assert r.status_code == 409
    assert "last admin" in r.json()["detail"]


# --- scopes --------------------------------------------------------------------------------


async def test_scoped_grant_opens_only_its_profile(client, admin_headers):
    p1 = (await client.post("/api/v1/profiles", json={"name": "one"}, headers=admin_headers)).json()
    p2 = (await client.post("/api/v1/profiles", json={"name": "two"}, headers=admin_headers)).json()
    key = await mint(client, admin_headers, "team-a", [])
    r = await client.post(
        "/api/v1/auth/grants",
        json={
            "actor_type": "APIKey",
            "actor_id": "team-a",
            "role_id": "r-operator",
            "scope_type": "profile",
            "scope_id": p1["id"],
        },
        headers=admin_headers,
    )
    assert r.status_code == 201, r.text
    h = bearer(key)
    assert (await client.get(f"/api/v1/profiles/{p1['id']}", headers=h)).status_code == 200
    r = await client.put(f"/api/v1/profiles/{p1['id']}", json={"description": "mine"}, headers=h)
    assert r.status_code == 200, r.text
    assert (await client.get(f"/api/v1/profiles/{p2['id']}", headers=h)).status_code == 403
    assert (await client.get("/api/v1/profiles", headers=h)).status_code == 403
    # profile.delete is not an operator permission, scoped or not.
    assert (await client.delete(f"/api/v1/profiles/{p1['id']}", headers=h)).status_code == 403
    me = (await client.get("/api/v1/auth/me", headers=h)).json()
    assert me["permissions"] == []
    assert ["profile.read", "profile", p1["id"]] in me["scoped_permissions"]


# --- caching and revocation ----------------------------------------------------------------


async def test_revocation_reaches_another_replica_by_the_generation(app_factory, admin_headers):
    a = await app_factory()
    b = await app_factory(auth_cache_ms=3_600_000)  # a replica that re-reads only when told
    key = await mint(a, admin_headers, "roaming", ["r-operator"])
    assert (await b.get("/api/v1/jobs", headers=bearer(key))).status_code == 200
    [grant] = (
        await a.get("/api/v1/auth/grants", params={"actor_id": "roaming"}, headers=admin_headers)
    ).json()
    assert (
        await a.delete(f"/api/v1/auth/grants/{grant['id']}", headers=admin_headers)
    ).status_code == 204
    assert (await a.get("/api/v1/jobs", headers=bearer(key))).status_code == 403  # at once here
    # B still serves its cached grants until it re-reads the counter (CERTCTL_AUTH_CACHE_MS)...
    assert (await b.get("/api/v1/jobs", headers=bearer(key))).status_code == 200
    b.runtime.auth_generation.invalidate()  # ...which the bound forces at the latest
    assert (await b.get("/api/v1/jobs", headers=bearer(key))).status_code == 403

    c = await app_factory(auth_cache_ms=0)
    assert (await c.get("/api/v1/jobs", headers=bearer(key))).status_code == 403


async def test_expired_grant_stops_at_its_expiry_even_when_cached(
    client, admin_headers, monkeypatch
):
    key = await mint(client, admin_headers, "contractor", [])
    until = datetime.now(UTC) + timedelta(hours=1)
    r = await client.post(
        "/api/v1/auth/grants",
        json={
            "actor_type": "APIKey",
            "actor_id": "contractor",
            "role_id": "r-viewer",
            "expires_at": until.isoformat(),
        },
        headers=admin_headers,
    )
    assert r.status_code == 201
    assert (await client.get("/api/v1/jobs", headers=bearer(key))).status_code == 200
    monkeypatch.setattr(rbac, "utcnow", lambda: until + timedelta(seconds=1))
    assert (await client.get("/api/v1/jobs", headers=bearer(key))).status_code == 403


async def test_environment_grants_survive_a_restart(app_factory, admin_headers):
    first = await app_factory()
    r = await first.post(
        "/api/v1/auth/keys/viewer/roles", json={"role_id": "r-agent"}, headers=admin_headers
    )
    assert r.status_code == 201, r.text
    r = await first.delete("/api/v1/auth/keys/viewer/roles/r-viewer", headers=admin_headers)
    assert r.status_code == 204
    second = await app_factory()  # a restart on the same database
    me = (await second.get("/api/v1/auth/me", headers=bearer(VIEWER_KEY))).json()
    assert me["roles"] == ["r-agent"]


async def test_key_rotation_keeps_the_grants(client, admin_headers, monkeypatch):
    r = await client.post(
        "/api/v1/auth/keys",
        json={"name": "deployer", "roles": ["r-operator"]},
        headers=admin_headers,
    )
    old = r.json()
    r = await client.post(
        f"/api/v1/auth/keys/{old['id']}/rotate",
        json={"overlap_seconds": 600},
        headers=admin_headers,
    )
    assert r.status_code == 201, r.text
    new = r.json()
    assert (new["name"], new["roles"]) == ("deployer", ["r-operator"])
    assert new["key"] != old["key"]
    for key in (old["key"], new["key"]):
        assert (await client.get("/api/v1/jobs", headers=bearer(key))).status_code == 200
    listed = {
        k["id"]: k for k in (await client.get("/api/v1/auth/keys", headers=admin_headers)).json()
    }
    assert listed[old["id"]]["expires_at"] is not None
    assert listed[new["id"]]["expires_at"] is None
    r = await client.post("/api/v1/auth/keys", json={"name": "deployer"}, headers=admin_headers)
    assert r.status_code == 409  # a live key has that name: rotate it


# --- demo mode residual --------------------------------------------------------------------


async def test_demo_grant_is_reported_and_cleaned_up_outside_demo_mode(
    app_factory, admin_headers, certctl_logs
):
    demo = await app_factory(auth_type="none", demo=True)
    me = (await demo.get("/api/v1/auth/me")).json()
    assert (me["name"], me["type"], me["roles"]) == ("actor-demo-anon", "Anonymous", ["r-admin"])

    client = await app_factory()  # the same database, now with API keys
    assert any(
        rec.levelno == logging.WARNING and "actor-demo-anon" in rec.getMessage()
        for rec in certctl_logs.records
    )
    config = (await client.get("/api/v1/auth/runtime-config", headers=admin_headers)).json()
    assert config["demo_residual_grants"] == 1
    events = (
        await client.get(
            "/api/v1/audit", params={"action": "auth.demo_residual.detected"}, headers=admin_headers
        )
    ).json()
    assert events["total"] == 1
    r = await client.get("/api/v1/auth/me")
    assert r.status_code == 401  # the residual grants nothing: nobody can be the demo actor

    r = await client.post("/api/v1/auth/demo-residual/cleanup", headers=admin_headers)
    assert r.json() == {"removed": 1, "remaining": 0}
    r = await client.post("/api/v1/auth/demo-residual/cleanup", headers=admin_headers)
    assert r.json() == {"removed": 0, "remaining": 0}
    r = await client.post("/api/v1/auth/demo-residual/cleanup", headers=bearer(VIEWER_KEY))
    assert r.status_code == 403


async def test_strict_mode_refuses_to_start_with_a_residual(app_factory):
    await app_factory(auth_type="none", demo=True)
    with pytest.raises(DemoResidualError, match="actor-demo-anon"):
        await app_factory(demo_mode_residual_strict=True)
    await app_factory(demo_mode_residual_strict=True, auth_type="none", demo=True)


async def test_auth_info_is_public_and_names_no_secret(client):
    r = await client.get("/api/v1/auth/info")
    assert r.status_code == 200
    assert r.json()["auth_type"] == "api-key"
    assert "api-key" in r.json()["methods"]
    assert ADMIN_KEY not in r.text
