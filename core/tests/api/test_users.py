"""Federated users: created and refreshed at sign-in, listed, deactivated and reactivated."""

import asyncio

import pytest
import sqlalchemy as sa
from litestar import Request

from certctl.db.models import User
from certctl.domain.auth.seeding import grant_once
from certctl.domain.sessions.cookies import CSRF_COOKIE, SESSION_COOKIE
from certctl.domain.sessions.service import start_session
from certctl.domain.users.service import upsert_federated_user
from certctl.errors import BadRequest
from certctl.settings import parse_named_api_keys

OPERATOR_KEY = "operator-test-key-0123456789"


async def upsert(client, subject, *, provider="op-a", groups=(), email=None, name=None):
    async with client.runtime.sessions() as db:
        user = await upsert_federated_user(
            db,
            provider_id=provider,
            subject=subject,
            email=email,
            display_name=name or subject.title(),
            groups=groups,
        )
        await db.commit()
    return user


async def operator_client(app_factory):
    keys = parse_named_api_keys(
        f"admin:admin-test-key-0123456789:admin,viewer:viewer-test-key-0123456789,"
        f"operator:{OPERATOR_KEY}"
    )
    client = await app_factory(api_keys_named=keys)
    async with client.runtime.sessions() as db:
        await grant_once(db, "APIKey", "operator", "r-operator", "test")
        await db.commit()
    return client


async def test_sign_in_creates_then_refreshes_the_user(client):
    first = await upsert(client, "sub-1", groups=("b", "a", "a"), email="x@example.test")
    assert first.id.startswith("usr-")
    assert first.groups == ["a", "b"]
    assert first.last_login_at is not None
    again = await upsert(client, "sub-1", groups=("c",), email="y@example.test", name="Renamed")
    assert again.id == first.id
    assert (again.groups, again.email, again.display_name) == (["c"], "y@example.test", "Renamed")
    assert again.created_at == first.created_at
    assert again.last_login_at >= first.last_login_at
    other_provider = await upsert(client, "sub-1", provider="op-b")
    assert other_provider.id != first.id  # same subject, other provider: another person
    async with client.runtime.sessions() as db:
        with pytest.raises(BadRequest):
            await upsert_federated_user(
                db, provider_id="op-a", subject="", email=None, display_name="", groups=()
            )


async def test_concurrent_first_sign_ins_make_one_user(app_factory):
    a = await app_factory()
    b = await app_factory()
    users = await asyncio.gather(*(upsert(c, "racer") for c in (a, b, a, b)))
    assert len({u.id for u in users}) == 1
    async with a.runtime.sessions() as db:
        count = await db.scalar(
            sa.select(sa.func.count()).select_from(User).where(User.subject == "racer")
        )
    assert count == 1


async def test_list_users_with_filters(client, admin_headers):
    alice = await upsert(client, "alice", email="alice@example.test", groups=("ops",))
    await upsert(client, "bob", provider="op-b")
    await upsert(client, "carol", provider="breakglass")
    r = await client.delete(f"/api/v1/auth/users/{alice.id}", headers=admin_headers)
    assert r.status_code == 204

    async def names(**params):
        r = await client.get("/api/v1/auth/users", params=params, headers=admin_headers)
        assert r.status_code == 200, r.text
        return [u["subject"] for u in r.json()["data"]]

    assert await names() == ["alice", "bob", "carol"]
    assert await names(provider_id="op-b") == ["bob"]
    assert await names(deactivated="true") == ["alice"]
    assert await names(deactivated="false") == ["bob", "carol"]
    assert await names(q="EXAMPLE.test") == ["alice"]
    assert await names(per_page=1, page=2) == ["bob"]
    r = await client.get("/api/v1/auth/users", params={"per_page": 0}, headers=admin_headers)
    assert r.status_code == 400
    r = await client.get("/api/v1/auth/users", headers=admin_headers)
    first = r.json()["data"][0]
    assert first["groups"] == ["ops"]
    assert first["deactivated_at"] is not None
    assert set(first) == {
        "id",
        "provider_id",
        "subject",
        "email",
        "display_name",
        "groups",
        "created_at",
        "last_login_at",
        "deactivated_at",
    }


async def test_user_permissions(app_factory, admin_headers, viewer_headers):
    client = await operator_client(app_factory)
    user = await upsert(client, "dave")
    operator = {"Authorization": f"Bearer {OPERATOR_KEY}"}
    assert (await client.get("/api/v1/auth/users", headers=viewer_headers)).status_code == 403
    assert (await client.get("/api/v1/auth/users", headers=operator)).status_code == 200
    for headers in (viewer_headers, operator):  # reading users is not deactivating them
        r = await client.delete(f"/api/v1/auth/users/{user.id}", headers=headers)
        assert r.status_code == 403
        assert "auth.user.deactivate" in r.json()["detail"]
        r = await client.post(f"/api/v1/auth/users/{user.id}/reactivate", headers=headers)
        assert r.status_code == 403
    for method, url in (
        ("DELETE", "/api/v1/auth/users/usr-missing"),
        ("POST", "/api/v1/auth/users/usr-missing/reactivate"),
    ):
        r = await client.request(method, url, headers=admin_headers)
        assert r.status_code == 404


async def test_deactivate_and_reactivate_are_audited_once(client, admin_headers):
    user = await upsert(client, "erin")
    for _ in range(2):  # the second call changes nothing and records nothing
        r = await client.delete(f"/api/v1/auth/users/{user.id}", headers=admin_headers)
        assert r.status_code == 204
    for _ in range(2):
        r = await client.post(f"/api/v1/auth/users/{user.id}/reactivate", headers=admin_headers)
        assert r.status_code == 200
        assert r.json()["deactivated_at"] is None
    r = await client.get(
        "/api/v1/audit",
        params={"resource_id": user.id, "category": "auth"},
        headers=admin_headers,
    )
    events = sorted((e["action"], e["actor"]) for e in r.json()["data"])
    assert events == [("auth.user.deactivate", "admin"), ("auth.user.reactivate", "admin")]


async def test_a_user_cannot_deactivate_themselves(client):
    user = await upsert(client, "frank", groups=("admins",))
    async with client.runtime.sessions() as db:
        await grant_once(db, "Group", "op-a:admins", "r-admin", "test")
        issued = await start_session(
            client.runtime,
            db,
            user=user,
            request=Request(scope={"type": "http", "headers": [], "client": ("127.0.0.1", 1)}),
            groups=("admins",),
            auth_method="sso",
        )
        await db.commit()
    headers = {
        "Cookie": f"{SESSION_COOKIE}={issued.cookie_value}; {CSRF_COOKIE}={issued.csrf_token}",
        "X-CSRF-Token": issued.csrf_token,
    }
    r = await client.delete(f"/api/v1/auth/users/{user.id}", headers=headers)
    assert r.status_code == 409
    assert "yourself" in r.json()["detail"]
