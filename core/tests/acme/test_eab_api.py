"""EAB keys and ACME account administration: the HMAC shown once, stored encrypted, audited.

Also the service half the new-account handler uses: :func:`eab_hmac` refuses every key that
may not bind, and :func:`bind_eab_key` lets exactly one account claim a key.
"""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import timedelta

import pytest
from sqlalchemy import select, text, update

from certctl.db.base import new_id, utcnow
from certctl.db.models import AcmeAccount, AcmeEabKey
from certctl.domain.acme.eab import bind_eab_key, eab_context, eab_hmac
from certctl.domain.acme.jws import thumbprint
from certctl.domain.acme.problems import AcmeProblem

PROFILE = {
    "name": "acme-web",
    "allowed_key_algorithms": [{"algorithm": "ECDSA", "min_size": 256}],
    "max_ttl_seconds": 90 * 86400,
    "allowed_san_patterns": ["*.example.com"],
    "allowed_ekus": ["serverAuth"],
}


async def make_profile(client, headers, name: str = "acme-web") -> str:
    r = await client.post("/api/v1/profiles", json={**PROFILE, "name": name}, headers=headers)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def make_key(client, headers, **body) -> dict:
    r = await client.post("/api/v1/acme/eab-keys", json=body, headers=headers)
    assert r.status_code == 201, r.text
    return dict(r.json())


def hmac_bytes(created: dict) -> bytes:
    value = created["hmac_key"]
    assert "=" not in value
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


async def audit(client, headers, action: str) -> list[dict]:
    r = await client.get("/api/v1/audit", params={"action": action}, headers=headers)
    assert r.status_code == 200, r.text
    return list(r.json()["data"])


async def add_account(runtime, signer, profile_id: str, eab_key_id: str | None = None) -> str:
    key = signer().public_jwk
    account_id = new_id("acct")
    async with runtime.sessions.begin() as session:
        session.add(
            AcmeAccount(
                id=account_id,
                profile_id=profile_id,
                jwk=key,
                thumbprint=thumbprint(key),
                contact=["mailto:ops@example.com"],
                eab_key_id=eab_key_id,
            )
        )
    return account_id


async def test_create_shows_the_hmac_once_and_stores_it_encrypted(client, admin_headers):
    profile_id = await make_profile(client, admin_headers)
    created = await make_key(
        client, admin_headers, profile_id=profile_id, name="lego-01", expires_in_seconds=3600
    )
    assert created["id"].startswith("eab-")
    assert created["profile_id"] == profile_id and created["name"] == "lego-01"
    assert created["expires_at"] is not None
    secret = hmac_bytes(created)
    assert len(secret) == 32

    listed = await client.get("/api/v1/acme/eab-keys", headers=admin_headers)
    assert listed.status_code == 200
    assert created["hmac_key"] not in listed.text
    (item,) = listed.json()
    assert "hmac_key" not in item and "hmac_enc" not in item
    assert item["id"] == created["id"] and item["status"] == "unused"
    assert item["account_id"] is None and item["bound_at"] is None

    runtime = client.runtime
    async with runtime.engine.connect() as conn:
        dump = json.dumps(
            [list(r) for r in await conn.execute(text("SELECT * FROM acme_eab_keys"))], default=str
        )
    assert created["hmac_key"] not in dump
    assert secret.hex() not in dump
    async with runtime.sessions() as session:
        row = await session.get(AcmeEabKey, created["id"])
        assert row is not None
        assert runtime.box.decrypt(row.hmac_enc, eab_context(row.id)) == secret


async def test_a_key_for_every_profile_with_defaults(client, admin_headers):
    created = await make_key(client, admin_headers)
    assert created["profile_id"] is None and created["expires_at"] is None
    assert created["name"] == ""
    r = await client.post("/api/v1/acme/eab-keys", headers=admin_headers)  # no body at all
    assert r.status_code == 201, r.text
    assert r.json()["id"] != created["id"] and r.json()["hmac_key"] != created["hmac_key"]


@pytest.mark.parametrize(
    "body",
    [
        {"profile_id": "prof-missing"},
        {"expires_in_seconds": 5},
        {"expires_in_seconds": "soon"},
        {"name": "x" * 256},
        {"hmac_key": "mine"},
    ],
)
async def test_bad_create_requests_are_400_and_store_nothing(client, admin_headers, body):
    r = await client.post("/api/v1/acme/eab-keys", json=body, headers=admin_headers)
    assert r.status_code == 400, r.text
    listed = await client.get("/api/v1/acme/eab-keys", headers=admin_headers)
    assert listed.json() == []
    assert await audit(client, admin_headers, "acme.eab.create") == []


async def test_revoke_a_key(client, admin_headers):
    created = await make_key(client, admin_headers, name="gone")
    r = await client.delete(f"/api/v1/acme/eab-keys/{created['id']}", headers=admin_headers)
    assert r.status_code == 204
    r = await client.delete(f"/api/v1/acme/eab-keys/{created['id']}", headers=admin_headers)
    assert r.status_code == 204
    (item,) = (await client.get("/api/v1/acme/eab-keys", headers=admin_headers)).json()
    assert item["status"] == "revoked"
    r = await client.delete("/api/v1/acme/eab-keys/eab-unknown", headers=admin_headers)
    assert r.status_code == 404

    (event,) = await audit(client, admin_headers, "acme.eab.revoke")  # once, not twice
    assert event["resource_id"] == created["id"]
    (event,) = await audit(client, admin_headers, "acme.eab.create")
    assert event["resource_id"] == created["id"] and event["details"]["name"] == "gone"
    assert event["category"] == "auth" and event["actor"] == "admin"
    assert created["hmac_key"] not in json.dumps(event)


async def test_every_route_is_refused_to_a_viewer(client, viewer_headers, admin_headers):
    created = await make_key(client, admin_headers)
    calls = [
        ("POST", "/api/v1/acme/eab-keys", {}),
        ("GET", "/api/v1/acme/eab-keys", None),
        ("DELETE", f"/api/v1/acme/eab-keys/{created['id']}", None),
        ("GET", "/api/v1/acme/accounts", None),
        ("POST", "/api/v1/acme/accounts/acct-x/revoke", {}),
    ]
    for method, url, body in calls:
        r = await client.request(method, url, json=body, headers=viewer_headers)
        assert r.status_code == 403, (method, url, r.text)
        assert "acme.admin" in r.json()["detail"]
    (item,) = (await client.get("/api/v1/acme/eab-keys", headers=admin_headers)).json()
    assert item["status"] == "unused"


async def test_accounts_are_listed_and_revoked(client, admin_headers, signer):
    runtime = client.runtime
    web = await make_profile(client, admin_headers, "web")
    mail = await make_profile(client, admin_headers, "mail")
    first = await add_account(runtime, signer, web, eab_key_id="eab-1")
    second = await add_account(runtime, signer, mail)

    r = await client.get("/api/v1/acme/accounts", headers=admin_headers)
    assert r.status_code == 200
    assert {a["id"] for a in r.json()} == {first, second}
    r = await client.get("/api/v1/acme/accounts", params={"profile_id": web}, headers=admin_headers)
    (account,) = r.json()
    assert account["id"] == first and account["eab_key_id"] == "eab-1"
    assert account["status"] == "valid" and account["contact"] == ["mailto:ops@example.com"]
    assert len(account["thumbprint"]) == 43 and "jwk" not in account

    r = await client.post(f"/api/v1/acme/accounts/{first}/revoke", headers=admin_headers)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "revoked" and r.json()["id"] == first
    r = await client.post(f"/api/v1/acme/accounts/{first}/revoke", headers=admin_headers)
    assert r.status_code == 200
    r = await client.post("/api/v1/acme/accounts/acct-missing/revoke", headers=admin_headers)
    assert r.status_code == 404
    async with runtime.sessions() as session:
        statuses = dict((await session.execute(select(AcmeAccount.id, AcmeAccount.status))).all())
    assert statuses == {first: "revoked", second: "valid"}
    (event,) = await audit(client, admin_headers, "acme.account.revoke")
    assert event["resource_id"] == first and event["details"]["previous_status"] == "valid"


# --- the new-account side: eab_hmac and bind_eab_key ------------------------------------------


async def refused(coro, reason: str) -> None:
    with pytest.raises(AcmeProblem) as info:
        await coro
    assert info.value.kind == "unauthorized"
    assert reason in info.value.detail


async def test_eab_hmac_gives_the_key_only_while_it_may_bind(client, admin_headers, signer):
    runtime = client.runtime
    web = await make_profile(client, admin_headers, "web")
    mail = await make_profile(client, admin_headers, "mail")
    scoped = await make_key(client, admin_headers, profile_id=web)
    anywhere = await make_key(client, admin_headers)
    revoked = await make_key(client, admin_headers)
    expired = await make_key(client, admin_headers, expires_in_seconds=60)
    await client.delete(f"/api/v1/acme/eab-keys/{revoked['id']}", headers=admin_headers)
    async with runtime.sessions.begin() as session:
        await session.execute(
            update(AcmeEabKey)
            .where(AcmeEabKey.id == expired["id"])
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )

    async with runtime.sessions() as session:
        assert await eab_hmac(session, runtime, scoped["id"], profile_id=web) == hmac_bytes(scoped)
        for profile_id in (web, mail):
            got = await eab_hmac(session, runtime, anywhere["id"], profile_id=profile_id)
            assert got == hmac_bytes(anywhere)
        await refused(eab_hmac(session, runtime, scoped["id"], profile_id=mail), "another profile")
        await refused(eab_hmac(session, runtime, "eab-nope", profile_id=web), "unknown")
        await refused(eab_hmac(session, runtime, "x" * 5000, profile_id=web), "unknown")
        await refused(eab_hmac(session, runtime, revoked["id"], profile_id=web), "revoked")
        await refused(eab_hmac(session, runtime, expired["id"], profile_id=web), "expired")

    account = await add_account(runtime, signer, web)
    async with runtime.sessions() as session:
        await bind_eab_key(session, scoped["id"], account)
        await session.commit()
    async with runtime.sessions() as session:
        await refused(eab_hmac(session, runtime, scoped["id"], profile_id=web), "already used")
        await refused(bind_eab_key(session, scoped["id"], "acct-other"), "already used")
        await refused(bind_eab_key(session, revoked["id"], "acct-other"), "already used")
        await refused(bind_eab_key(session, expired["id"], "acct-other"), "already used")

    listed = {
        k["id"]: k
        for k in (await client.get("/api/v1/acme/eab-keys", headers=admin_headers)).json()
    }
    assert listed[scoped["id"]]["status"] == "bound"
    assert listed[scoped["id"]]["account_id"] == account
    assert listed[scoped["id"]]["bound_at"] is not None
    assert listed[expired["id"]]["status"] == "expired"
    assert listed[revoked["id"]]["status"] == "revoked"
    assert listed[anywhere["id"]]["status"] == "unused"

    # Revoking a bound key leaves the account alone.
    await client.delete(f"/api/v1/acme/eab-keys/{scoped['id']}", headers=admin_headers)
    async with runtime.sessions() as session:
        bound = await session.get(AcmeAccount, account)
        assert bound is not None and bound.status == "valid"


async def test_two_replicas_racing_for_one_key_bind_one_account(app_factory, admin_headers):
    first, second = await app_factory(), await app_factory()
    created = await make_key(first, admin_headers)

    async def claim(runtime, account_id: str) -> bool:
        async with runtime.sessions() as session:
            try:
                await bind_eab_key(session, created["id"], account_id)
            except AcmeProblem:
                await session.rollback()
                return False
            await session.commit()
            return True

    results = await asyncio.gather(
        *(claim((first, second)[i % 2].runtime, f"acct-{i}") for i in range(10))
    )
    assert results.count(True) == 1
    async with first.runtime.sessions() as session:
        row = await session.get(AcmeEabKey, created["id"])
        assert row is not None and row.account_id == f"acct-{results.index(True)}"
