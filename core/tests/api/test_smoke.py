async def test_health_and_version(client):
    r = await client.get("/health")
    assert r.status_code == 200
    r = await client.get("/ready")
    assert r.status_code == 200, r.text
    r = await client.get("/api/v1/version")
    assert r.json()["version"]


async def test_requires_auth(client, admin_headers):
    r = await client.get("/api/v1/certificates")
    assert r.status_code == 401
    assert r.headers["content-type"].startswith("application/problem+json")
    r = await client.get("/api/v1/certificates", headers=admin_headers)
    assert r.status_code == 200, r.text
    assert r.json()["total"] == 0
