"""Authentication over REST: bearer keys, roles, day-0 bootstrap, database keys."""

import asyncio
import hashlib
import re
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from certctl.db.base import Base
from certctl.domain.auth import keystore
from certctl.domain.auth.permissions import ALL_PERMISSIONS, ROLE_PERMISSIONS
from certctl.settings import parse_named_api_keys

TOKEN = "bootstrap-token-0123456789-abcdefghijklmnop"
WRONG_TOKEN = "wrong-bootstrap-token-9876543210-zyxwvuts"
READER_KEY = "reader-key-0123456789-abcdef"
MUTATING = {"POST", "PUT", "PATCH", "DELETE"}
VIEWER = ROLE_PERMISSIONS["r-viewer"]


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def raw_dump(database_url: str) -> str:
    """Every row of every table, as text, straight from the database."""
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            chunks = []
            for table in [*Base.metadata.sorted_tables, sa.table("alembic_version")]:
                rows = (await conn.execute(sa.text(f"SELECT * FROM {table.name}"))).all()  # noqa: S608
                chunks.extend(repr(tuple(r)) for r in rows)
    finally:
        await engine.dispose()
    return "\n".join(chunks)


async def table_counts(database_url: str) -> dict[str, int]:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            return {
                t.name: await conn.scalar(sa.text(f"SELECT count(*) FROM {t.name}"))  # noqa: S608
                for t in Base.metadata.sorted_tables
            }
    finally:
        await engine.dispose()


async def bootstrap_client(app_factory, **overrides):
    """No admin key in the environment, a bootstrap token, and a read-only key to look around."""
    values = {
        "api_keys_named": parse_named_api_keys(f"reader:{READER_KEY}"),
        "bootstrap_token": TOKEN,
    }
    values.update(overrides)
    return await app_factory(**values)


def assert_401(r) -> None:
    assert r.status_code == 401, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.headers["www-authenticate"] == 'Bearer realm="certctl"'
    problem = r.json()
    assert (problem["status"], problem["title"]) == (401, "Unauthorized")


# --- bearer keys ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": ""},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer   "},
        {"Authorization": "Basic YWRtaW46YWRtaW4="},
        {"Authorization": "Token admin-test-key-0123456789"},
        {"Authorization": "Bearer not-a-key"},
        {"X-API-Key": "admin-test-key-0123456789"},
    ],
)
async def test_missing_or_invalid_credentials_are_401(client, headers):
    assert_401(await client.get("/api/v1/certificates", headers=headers))
    assert_401(await client.post("/api/v1/profiles", json={"name": "x"}, headers=headers))


async def test_key_in_the_query_string_is_ignored(client, admin_headers):
    key = admin_headers["Authorization"].split()[1]
    assert_401(await client.get(f"/api/v1/certificates?api_key={key}"))


async def test_scheme_is_case_insensitive(client, admin_headers):
    key = admin_headers["Authorization"].split()[1]
    r = await client.get("/api/v1/auth/check", headers={"Authorization": f"bearer {key}"})
    assert r.status_code == 200


async def test_check_shows_role_and_permissions(client, admin_headers, viewer_headers):
    r = await client.get("/api/v1/auth/check", headers=admin_headers)
    assert r.status_code == 200
    assert r.json() == {
        "name": "admin",
        "type": "APIKey",
        "display_name": "admin",
        "roles": ["r-admin"],
        "permissions": sorted(ALL_PERMISSIONS),
        "scoped_permissions": [],
        "session_id": None,
    }
    r = await client.get("/api/v1/auth/check", headers=viewer_headers)
    assert r.json() == {
        "name": "viewer",
        "type": "APIKey",
        "display_name": "viewer",
        "roles": ["r-viewer"],
        "permissions": sorted(VIEWER),
        "scoped_permissions": [],
        "session_id": None,
    }
    assert not any(
        p.endswith((".edit", ".delete", ".create", ".issue")) for p in r.json()["permissions"]
    )
    assert_401(await client.get("/api/v1/auth/check"))


def _mutating_routes(app) -> list[tuple[str, str, str]]:
    routes = []
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            permission = handler.opt.get("permission")
            for method in handler.http_methods & MUTATING:
                if permission:
                    path = re.sub(r"\{(\w+):\w+\}", "does-not-exist", route.path)
                    routes.append((method, path, permission))
    return sorted(routes)


async def test_viewer_is_refused_every_mutating_route(client, viewer_headers, database_url):
    routes = _mutating_routes(client.app)
    assert len(routes) >= 20
    before = await table_counts(database_url)
    for method, path, permission in routes:
        assert permission not in VIEWER
        r = await client.request(method, path, json={}, headers=viewer_headers)
        assert r.status_code == 403, (method, path, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
        assert permission in r.json()["detail"]
    # Nothing changed except the audit rows recording the refusals.
    audit = await client.get(
        "/api/v1/audit",
        params={"actor": "viewer", "outcome": "denied", "per_page": 500},
        headers=viewer_headers,
    )
    assert audit.json()["total"] == len(routes)
    after = await table_counts(database_url)
    # The rate limiter's bucket for the viewer (PostgreSQL) is bookkeeping, not a change.
    after.pop("rate_limit_buckets")
    before.pop("rate_limit_buckets")
    assert after == {**before, "audit_events": before["audit_events"] + len(routes)}


async def test_viewer_can_read(client, viewer_headers):
    for path in ("/api/v1/certificates", "/api/v1/profiles", "/api/v1/jobs", "/api/v1/audit"):
        r = await client.get(path, headers=viewer_headers)
        assert r.status_code == 200, (path, r.text)


# --- bootstrap -----------------------------------------------------------------------------


async def test_bootstrap_unavailable_without_a_token(app_factory):
    client = await bootstrap_client(app_factory, bootstrap_token="")
    r = await client.get("/api/v1/auth/bootstrap")
    assert r.status_code == 200
    assert r.json() == {"available": False}
    r = await client.post("/api/v1/auth/bootstrap", json={"token": "", "name": "first"})
    assert r.status_code == 410


async def test_bootstrap_closed_when_the_environment_has_an_admin_key(client):
    # The default test app has an admin key in CERTCTL_API_KEYS_NAMED and no token.
    r = await client.get("/api/v1/auth/bootstrap")
    assert r.json() == {"available": False}


async def test_bootstrap_closed_with_token_and_environment_admin(app_factory, admin_headers):
    client = await app_factory(bootstrap_token=TOKEN)
    r = await client.get("/api/v1/auth/bootstrap")
    assert r.json() == {"available": False}
    r = await client.post("/api/v1/auth/bootstrap", json={"token": TOKEN, "name": "first"})
    assert r.status_code == 410
    assert "an admin already exists" in r.json()["detail"]


async def test_bootstrap_wrong_token_is_denied_and_audited(app_factory, database_url, certctl_logs):
    caplog = certctl_logs
    client = await bootstrap_client(app_factory)
    r = await client.post("/api/v1/auth/bootstrap", json={"token": WRONG_TOKEN, "name": "first"})
    assert_401(r)
    assert WRONG_TOKEN not in r.text

    r = await client.get(
        "/api/v1/audit", params={"action": "bootstrap.consume"}, headers=bearer(READER_KEY)
    )
    [event] = r.json()["data"]
    assert event["outcome"] == "denied"
    assert event["actor"] == "127.0.0.1"
    assert event["actor_type"] == "Anonymous"
    assert event["category"] == "auth"

    # Still available: a wrong guess does not burn the token.
    assert (await client.get("/api/v1/auth/bootstrap")).json() == {"available": True}
    dump = await raw_dump(database_url)
    assert WRONG_TOKEN not in dump
    assert TOKEN not in dump
    assert caplog.records  # the capture works
    assert not any(
        WRONG_TOKEN in rec.getMessage() or TOKEN in rec.getMessage() for rec in caplog.records
    )


async def test_bootstrap_mints_one_admin_key(app_factory, database_url, certctl_logs):
    caplog = certctl_logs
    client = await bootstrap_client(app_factory)
    assert (await client.get("/api/v1/auth/bootstrap")).json() == {"available": True}

    r = await client.post("/api/v1/auth/bootstrap", json={"token": TOKEN, "name": "first-admin"})
    assert r.status_code == 201, r.text
    created = r.json()
    key = created["key"]
    assert key.startswith("cck_")
    assert len(key) >= 40
    assert created["roles"] == ["r-admin"]
    assert created["name"] == "first-admin"
    assert created["created_by"] == "bootstrap"

    # The key works at once for admin-only routes.
    r = await client.get("/api/v1/auth/check", headers=bearer(key))
    assert (r.json()["roles"], r.json()["name"]) == (["r-admin"], "first-admin")
    r = await client.post("/api/v1/profiles", json={"name": "after-bootstrap"}, headers=bearer(key))
    assert r.status_code == 201, r.text
    r = await client.get("/api/v1/auth/keys", headers=bearer(key))
    assert [k["id"] for k in r.json() if k["source"] == "database"] == [created["id"]]

    # Once only.
    assert (await client.get("/api/v1/auth/bootstrap")).json() == {"available": False}
    r = await client.post("/api/v1/auth/bootstrap", json={"token": TOKEN, "name": "second"})
    assert r.status_code == 410

    r = await client.get(
        "/api/v1/audit",
        params={"action": "bootstrap.consume", "outcome": "success"},
        headers=bearer(key),
    )
    [event] = r.json()["data"]
    assert event["resource_id"] == created["id"]

    dump = await raw_dump(database_url)
    assert TOKEN not in dump
    assert key not in dump
    assert hashlib.sha256(key.encode()).hexdigest() in dump
    messages = [rec.getMessage() for rec in caplog.records]
    assert messages  # the capture works (the start-up logged the schema revision)
    assert not any(TOKEN in m or key in m for m in messages)


async def test_bootstrap_stays_closed_after_its_key_is_revoked(app_factory):
    client = await bootstrap_client(app_factory)
    created = (
        await client.post("/api/v1/auth/bootstrap", json={"token": TOKEN, "name": "first"})
    ).json()
    r = await client.delete(f"/api/v1/auth/keys/{created['id']}", headers=bearer(created["key"]))
    assert r.status_code == 204
    assert (await client.get("/api/v1/auth/bootstrap")).json() == {"available": False}
    r = await client.post("/api/v1/auth/bootstrap", json={"token": TOKEN, "name": "again"})
    assert r.status_code == 410


async def test_bootstrap_rejects_a_bad_name_without_consuming(app_factory):
    client = await bootstrap_client(app_factory)
    for name in ("AB", "Upper", "has space", "x" * 65):
        r = await client.post("/api/v1/auth/bootstrap", json={"token": TOKEN, "name": name})
        assert r.status_code == 400, (name, r.text)
    assert (await client.get("/api/v1/auth/bootstrap")).json() == {"available": True}


async def test_concurrent_bootstrap_calls_mint_exactly_one_key(app_factory):
    client = await bootstrap_client(app_factory)
    responses = await asyncio.gather(
        *(
            client.post("/api/v1/auth/bootstrap", json={"token": TOKEN, "name": f"admin-{i}"})
            for i in range(5)
        )
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201, 410, 410, 410, 410], [r.text for r in responses]
    [winner] = [r.json() for r in responses if r.status_code == 201]
    r = await client.get("/api/v1/auth/keys", headers=bearer(winner["key"]))
    assert [k["name"] for k in r.json() if k["source"] == "database"] == [winner["name"]]


# --- database keys -------------------------------------------------------------------------


async def test_database_key_lifecycle(client, admin_headers, database_url):
    r = await client.post(
        "/api/v1/auth/keys",
        json={"name": "ci-deployer", "roles": ["r-admin"]},
        headers=admin_headers,
    )
    assert r.status_code == 201, r.text
    created = r.json()
    key = created["key"]
    assert key.startswith("cck_")
    assert created["created_by"] == "admin"
    assert (created["expires_at"], created["revoked_at"]) == (None, None)

    # The plaintext exists only in that response; the database keeps its SHA-256.
    dump = await raw_dump(database_url)
    assert key not in dump
    assert hashlib.sha256(key.encode()).hexdigest() in dump
    r = await client.get("/api/v1/auth/keys", headers=admin_headers)
    assert r.status_code == 200
    assert key not in r.text
    [listed] = [k for k in r.json() if k["source"] == "database"]
    assert listed["id"] == created["id"]
    assert listed["roles"] == ["r-admin"]
    assert listed.get("key") is None
    r = await client.get("/api/v1/auth/check", headers=bearer(key))
    assert (r.json()["name"], r.json()["roles"]) == ("ci-deployer", ["r-admin"])

    r = await client.delete(f"/api/v1/auth/keys/{created['id']}", headers=admin_headers)
    assert r.status_code == 204
    assert_401(await client.get("/api/v1/auth/check", headers=bearer(key)))
    [listed] = [
        k
        for k in (await client.get("/api/v1/auth/keys", headers=admin_headers)).json()
        if k["source"] == "database"
    ]
    assert listed["revoked_at"] is not None

    r = await client.delete(f"/api/v1/auth/keys/{created['id']}", headers=admin_headers)
    assert r.status_code == 204
    r = await client.delete("/api/v1/auth/keys/ak-0000000000000000", headers=admin_headers)
    assert r.status_code == 404

    actions = [
        e["action"]
        for e in (
            await client.get(
                "/api/v1/audit", params={"resource_id": created["id"]}, headers=admin_headers
            )
        ).json()["data"]
    ]
    assert actions == ["auth.key.revoke", "auth.key.create"]


async def test_non_admin_database_key_is_read_only(client, admin_headers):
    key = (
        await client.post("/api/v1/auth/keys", json={"name": "dashboard"}, headers=admin_headers)
    ).json()["key"]
    assert (await client.get("/api/v1/profiles", headers=bearer(key))).status_code == 200
    r = await client.post("/api/v1/profiles", json={"name": "p"}, headers=bearer(key))
    assert r.status_code == 403
    r = await client.post(
        "/api/v1/auth/keys", json={"name": "escalate", "roles": ["r-admin"]}, headers=bearer(key)
    )
    assert r.status_code == 403


@pytest.mark.parametrize(
    "body",
    [
        {"name": "ab"},
        {"name": "Has-Upper"},
        {"name": "ok-name", "colour": "red"},
        {"name": "ok-name", "expires_at": "2001-01-01T00:00:00Z"},
        {"roles": ["r-admin"]},
        {"name": "ok-name", "roles": ["r-no-such-role"]},
    ],
)
async def test_bad_key_requests_are_400(client, admin_headers, body):
    r = await client.post("/api/v1/auth/keys", json=body, headers=admin_headers)
    assert r.status_code == 400, r.text
    listed = (await client.get("/api/v1/auth/keys", headers=admin_headers)).json()
    assert [k for k in listed if k["source"] == "database"] == []


async def test_expired_key_is_401(client, admin_headers, database_url):
    soon = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    created = (
        await client.post(
            "/api/v1/auth/keys", json={"name": "temp", "expires_at": soon}, headers=admin_headers
        )
    ).json()
    assert created["expires_at"] is not None
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as conn:
            # Bound as a parameter through the model's column type (naive UTC on SQLite).
            past = datetime.now(UTC) - timedelta(minutes=1)
            if database_url.startswith("sqlite"):
                past = past.replace(tzinfo=None)
            await conn.execute(
                sa.text("UPDATE api_keys SET expires_at = :t WHERE id = :id"),
                {"t": past, "id": created["id"]},
            )
    finally:
        await engine.dispose()
    assert_401(await client.get("/api/v1/auth/check", headers=bearer(created["key"])))


async def test_key_expiring_while_cached_stops_working(client, admin_headers, monkeypatch):
    expires = datetime.now(UTC) + timedelta(hours=1)
    created = (
        await client.post(
            "/api/v1/auth/keys",
            json={"name": "short-lived", "expires_at": expires.isoformat()},
            headers=admin_headers,
        )
    ).json()
    r = await client.get("/api/v1/auth/check", headers=bearer(created["key"]))
    assert r.status_code == 200  # now cached
    monkeypatch.setattr(keystore, "utcnow", lambda: expires + timedelta(seconds=1))
    assert_401(await client.get("/api/v1/auth/check", headers=bearer(created["key"])))
