"""Certificate profiles over REST: CRUD, validation, and refusing to delete a profile in use."""

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

WEB = {
    "name": "web-servers",
    "description": "public TLS",
    "allowed_key_algorithms": [{"algorithm": "ECDSA", "min_size": 256}],
    "max_ttl_seconds": 90 * 86400,
    "allowed_san_patterns": ["*.example.com", "example.com"],
    "allowed_ekus": ["serverAuth"],
    "must_staple": True,
    "renew_before_days": 20,
}


async def profile_rows(database_url: str) -> int:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            return await conn.scalar(sa.text("SELECT count(*) FROM certificate_profiles"))
    finally:
        await engine.dispose()


async def create(client, headers, body):
    r = await client.post("/api/v1/profiles", json=body, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()


async def test_create_read_update_delete(client, admin_headers, viewer_headers):
    created = await create(client, admin_headers, WEB)
    assert created["id"].startswith("prof-")
    for field, value in WEB.items():
        assert created[field] == value, field
    assert created["enabled"] is True

    r = await client.get(f"/api/v1/profiles/{created['id']}", headers=viewer_headers)
    assert r.status_code == 200
    assert r.json() == created

    r = await client.put(
        f"/api/v1/profiles/{created['id']}",
        json={
            "description": "changed",
            "enabled": False,
            "allowed_ekus": ["serverAuth", "clientAuth"],
        },
        headers=admin_headers,
    )
    assert r.status_code == 200, r.text
    updated = r.json()
    assert updated["description"] == "changed"
    assert updated["enabled"] is False
    assert updated["allowed_ekus"] == ["serverAuth", "clientAuth"]
    assert updated["allowed_san_patterns"] == WEB["allowed_san_patterns"]  # untouched
    assert updated["max_ttl_seconds"] == WEB["max_ttl_seconds"]
    assert updated["updated_at"] >= created["updated_at"]
    assert (
        await client.get(f"/api/v1/profiles/{created['id']}", headers=admin_headers)
    ).json() == updated

    r = await client.delete(f"/api/v1/profiles/{created['id']}", headers=admin_headers)
    assert r.status_code == 204
    r = await client.get(f"/api/v1/profiles/{created['id']}", headers=admin_headers)
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/problem+json")


async def test_defaults(client, admin_headers):
    created = await create(client, admin_headers, {"name": "defaults"})
    assert created["allowed_key_algorithms"] == [
        {"algorithm": "ECDSA", "min_size": 256},
        {"algorithm": "RSA", "min_size": 2048},
    ]
    assert created["allowed_ekus"] == ["serverAuth"]
    assert created["allowed_san_patterns"] == []
    assert created["max_ttl_seconds"] == 0
    assert created["must_staple"] is False
    assert created["renew_before_days"] is None


async def test_list_is_sorted_by_name_and_paged(client, admin_headers):
    for name in ("charlie", "alpha", "bravo"):
        await create(client, admin_headers, {"name": name})
    body = (await client.get("/api/v1/profiles", headers=admin_headers)).json()
    assert [p["name"] for p in body["data"]] == ["alpha", "bravo", "charlie"]
    assert body["total"] == 3
    body = (
        await client.get(
            "/api/v1/profiles", params={"per_page": 2, "page": 2}, headers=admin_headers
        )
    ).json()
    assert [p["name"] for p in body["data"]] == ["charlie"]
    assert (body["total"], body["page"], body["per_page"]) == (3, 2, 2)


async def test_duplicate_names_conflict(client, admin_headers):
    await create(client, admin_headers, {"name": "one"})
    other = await create(client, admin_headers, {"name": "two"})
    r = await client.post("/api/v1/profiles", json={"name": "one"}, headers=admin_headers)
    assert r.status_code == 409
    r = await client.put(
        f"/api/v1/profiles/{other['id']}", json={"name": "one"}, headers=admin_headers
    )
    assert r.status_code == 409
    assert (await client.get(f"/api/v1/profiles/{other['id']}", headers=admin_headers)).json()[
        "name"
    ] == "two"


BAD_PROFILES = [
    (
        {"allowed_key_algorithms": [{"algorithm": "RSA", "min_size": 1024}]},
        "RSA min_size must be at least 2048",
    ),
    (
        {"allowed_key_algorithms": [{"algorithm": "RSA", "min_size": 2047}]},
        "RSA min_size must be at least 2048",
    ),
    (
        {"allowed_key_algorithms": [{"algorithm": "ECDSA", "min_size": 128}]},
        "ECDSA min_size must be at least 256",
    ),
    ({"allowed_key_algorithms": [{"algorithm": "DSA", "min_size": 2048}]}, "algorithm"),
    ({"allowed_key_algorithms": [{"algorithm": "RSA", "min_size": -1}]}, "min_size"),
    ({"allowed_key_algorithms": [{"algorithm": "RSA", "bits": 4096}]}, "bits"),
    ({"allowed_ekus": ["serverAuth", "fooAuth"]}, "unknown extended key usages: ['fooAuth']"),
    ({"allowed_ekus": ["1.3.6.1.5.5.7.3.1"]}, "unknown extended key usages"),
    ({"allowed_san_patterns": ["foo*.example.com"]}, "invalid SAN pattern 'foo*.example.com'"),
    ({"allowed_san_patterns": ["www.*.example.com"]}, "invalid SAN pattern"),
    ({"allowed_san_patterns": [""]}, "invalid SAN pattern"),
    ({"allowed_san_patterns": ["ok.example.com", "  "]}, "invalid SAN pattern"),
    ({"max_ttl_seconds": -1}, "max_ttl_seconds"),
    ({"renew_before_days": 0}, "renew_before_days"),
    ({"name": ""}, "name"),
    ({"colour": "blue"}, "colour"),
]


@pytest.mark.parametrize(("change", "reason"), BAD_PROFILES)
async def test_invalid_profiles_are_400_with_a_reason_and_write_nothing(
    client, admin_headers, database_url, change, reason
):
    r = await client.post("/api/v1/profiles", json={"name": "bad", **change}, headers=admin_headers)
    assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert reason in r.text, r.text
    assert await profile_rows(database_url) == 0
    events = (
        await client.get(
            "/api/v1/audit", params={"action": "profile.create"}, headers=admin_headers
        )
    ).json()
    assert events["total"] == 0


@pytest.mark.parametrize(("change", "reason"), [c for c in BAD_PROFILES if "name" not in c[0]])
async def test_invalid_updates_are_400_and_change_nothing(client, admin_headers, change, reason):
    created = await create(client, admin_headers, WEB)
    r = await client.put(f"/api/v1/profiles/{created['id']}", json=change, headers=admin_headers)
    assert r.status_code == 400, r.text
    assert reason in r.text
    assert (
        await client.get(f"/api/v1/profiles/{created['id']}", headers=admin_headers)
    ).json() == created


async def test_unknown_profile_is_404(client, admin_headers):
    for method, body in (("GET", None), ("PUT", {"description": "x"}), ("DELETE", None)):
        r = await client.request(
            method, "/api/v1/profiles/prof-nope", json=body, headers=admin_headers
        )
        assert r.status_code == 404, (method, r.text)


async def test_profile_in_use_cannot_be_deleted(client, admin_headers):
    r = await client.post(
        "/api/v1/issuers",
        json={"name": "local-ca", "type": "local", "config": {}},
        headers=admin_headers,
    )
    assert r.status_code == 201, r.text
    issuer_id = r.json()["id"]
    profile = await create(client, admin_headers, WEB)
    r = await client.post(
        "/api/v1/certificates",
        json={
            "common_name": "www.example.com",
            "issuer_id": issuer_id,
            "profile_id": profile["id"],
        },
        headers=admin_headers,
    )
    assert r.status_code == 202, r.text
    certificate_id = r.json()["certificate"]["id"]

    r = await client.delete(f"/api/v1/profiles/{profile['id']}", headers=admin_headers)
    assert r.status_code == 409
    assert certificate_id in r.json()["detail"]
    r = await client.get(f"/api/v1/profiles/{profile['id']}", headers=admin_headers)
    assert r.status_code == 200

    # An unused profile next to it still deletes.
    spare = await create(client, admin_headers, {"name": "spare"})
    r = await client.delete(f"/api/v1/profiles/{spare['id']}", headers=admin_headers)
    assert r.status_code == 204


async def test_certificates_are_checked_against_their_profile(client, admin_headers):
    issuer_id = (
        await client.post(
            "/api/v1/issuers",
            json={"name": "local-ca", "type": "local", "config": {}},
            headers=admin_headers,
        )
    ).json()["id"]
    profile = await create(client, admin_headers, WEB)
    r = await client.post(
        "/api/v1/certificates",
        json={"common_name": "www.evil.test", "issuer_id": issuer_id, "profile_id": profile["id"]},
        headers=admin_headers,
    )
    assert r.status_code == 422
    assert "www.evil.test" in r.json()["detail"]
    total = (await client.get("/api/v1/certificates", headers=admin_headers)).json()["total"]
    assert total == 0


async def test_required_san_patterns_are_enforced_on_request(client, admin_headers, database_url):
    r = await client.post(
        "/api/v1/issuers", json={"name": "ca", "type": "local", "config": {}}, headers=admin_headers
    )
    issuer = r.json()["id"]
    profile = await create(
        client,
        admin_headers,
        {"name": "corp", "required_san_patterns": ["*.corp.example.test"]},
    )
    assert profile["required_san_patterns"] == ["*.corp.example.test"]
    assert profile["requires_approval"] is False
    r = await client.post(
        "/api/v1/certificates",
        json={"common_name": "www.example.test", "issuer_id": issuer, "profile_id": profile["id"]},
        headers=admin_headers,
    )
    assert r.status_code == 422, r.text
    assert "required SAN pattern '*.corp.example.test'" in r.json()["detail"]
    assert await rows(database_url, "managed_certificates") == 0
    r = await client.post(
        "/api/v1/certificates",
        json={
            "common_name": "www.example.test",
            "sans": ["web.corp.example.test"],
            "issuer_id": issuer,
            "profile_id": profile["id"],
        },
        headers=admin_headers,
    )
    assert r.status_code == 202, r.text
    r = await client.post(
        "/api/v1/profiles",
        json={"name": "broken", "required_san_patterns": ["a*.test"]},
        headers=admin_headers,
    )
    assert r.status_code == 400


async def rows(database_url: str, table: str) -> int:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            return await conn.scalar(sa.text(f"SELECT count(*) FROM {table}"))  # noqa: S608
    finally:
        await engine.dispose()
