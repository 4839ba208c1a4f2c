"""Managed certificates through the API: issuance jobs, policy, versions, renewal, bad input."""

import asyncio

import sqlalchemy as sa
from cryptography import x509
from sqlalchemy.ext.asyncio import create_async_engine


async def _issuer(client, headers, name="ca", **config):
    r = await client.post(
        "/api/v1/issuers", json={"name": name, "type": "local", "config": config}, headers=headers
    )
    assert r.status_code == 201, r.text
    return r.json()["id"]


async def _count(database_url, table):
    engine = create_async_engine(database_url)
    async with engine.connect() as conn:
        n = (await conn.execute(sa.text(f"SELECT count(*) FROM {table}"))).scalar_one()  # noqa: S608
    await engine.dispose()
    return n


async def test_issue_renew_and_export(client, admin_headers):
    issuer = await _issuer(client, admin_headers)
    r = await client.post(
        "/api/v1/certificates",
        json={
            "common_name": "www.example.test",
            "sans": ["api.example.test", "10.0.0.5"],
            "issuer_id": issuer,
            "validity_days": 10,
        },
        headers=admin_headers,
    )
    assert r.status_code == 202, r.text
    accepted = r.json()
    cert_id = accepted["certificate"]["id"]
    assert accepted["certificate"]["status"] == "pending"
    assert accepted["job"]["type"] == "issuance" and accepted["job"]["status"] == "pending"

    await client.runtime.worker.drain()
    cert = (await client.get(f"/api/v1/certificates/{cert_id}", headers=admin_headers)).json()
    assert cert["status"] == "active", cert
    assert cert["sans"] == ["www.example.test", "api.example.test", "10.0.0.5"]
    job = (await client.get(f"/api/v1/jobs/{accepted['job']['id']}", headers=admin_headers)).json()
    assert job["status"] == "completed" and job["attempts"] == 1

    pem = (
        await client.get(f"/api/v1/certificates/{cert_id}/export/pem", headers=admin_headers)
    ).json()
    leaf = x509.load_pem_x509_certificate(pem["certificate_pem"].encode())
    assert format(leaf.serial_number, "x") == cert["serial_number"]
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(names.get_values_for_type(x509.DNSName)) == {"www.example.test", "api.example.test"}
    assert "PRIVATE KEY" not in str(pem)

    r = await client.post(f"/api/v1/certificates/{cert_id}/renew", headers=admin_headers)
    assert r.status_code == 202 and r.json()["type"] == "renewal"
    again = await client.post(f"/api/v1/certificates/{cert_id}/renew", headers=admin_headers)
    assert again.json()["id"] == r.json()["id"], "an open renewal is reused, not duplicated"
    await client.runtime.worker.drain()
    renewed = (await client.get(f"/api/v1/certificates/{cert_id}", headers=admin_headers)).json()
    assert renewed["serial_number"] != cert["serial_number"]
    assert renewed["last_renewal_at"] is not None
    versions = (
        await client.get(f"/api/v1/certificates/{cert_id}/versions", headers=admin_headers)
    ).json()
    assert [v["version"] for v in versions] == [2, 1]

    audit = (
        await client.get("/api/v1/audit", params={"resource_id": cert_id}, headers=admin_headers)
    ).json()
    actions = {e["action"] for e in audit["data"]}
    assert {
        "certificate.create",
        "certificate.issued",
        "certificate.renew.request",
        "certificate.renewed",
    } <= actions


async def test_private_keys_are_encrypted_at_rest(client, admin_headers, database_url):
    issuer = await _issuer(client, admin_headers)
    await client.post(
        "/api/v1/certificates",
        json={"common_name": "k.example.test", "issuer_id": issuer},
        headers=admin_headers,
    )
    await client.runtime.worker.drain()
    engine = create_async_engine(database_url)
    async with engine.connect() as conn:
        rows = []
        for table in (
            "certificate_versions",
            "connector_state",
            "connectors",
            "jobs",
            "audit_events",
        ):
            rows += (await conn.execute(sa.text(f"SELECT * FROM {table}"))).all()  # noqa: S608
        dump = " ".join(repr(tuple(row)) for row in rows)
    await engine.dispose()
    assert "PRIVATE KEY" not in dump
    assert "v1:" in dump


async def test_policy_violations_are_422_and_write_nothing(client, admin_headers, database_url):
    issuer = await _issuer(client, admin_headers)
    r = await client.post(
        "/api/v1/profiles",
        json={
            "name": "web",
            "allowed_san_patterns": ["*.example.test"],
            "max_ttl_seconds": 86400 * 30,
            "allowed_key_algorithms": [{"algorithm": "ECDSA", "min_size": 256}],
        },
        headers=admin_headers,
    )
    assert r.status_code == 201, r.text
    profile = r.json()["id"]
    bad = [
        ({"common_name": "www.other.test"}, "matches none"),
        ({"common_name": "a.b.example.test"}, "matches none"),
        ({"common_name": "www.example.test", "validity_days": 90}, "exceeds"),
        ({"common_name": "www.example.test", "key_type": "rsa-2048"}, "not allowed"),
        ({"common_name": "www.example.test", "ekus": ["clientAuth"]}, "not allowed"),
    ]
    for body, needle in bad:
        r = await client.post(
            "/api/v1/certificates",
            json={"issuer_id": issuer, "profile_id": profile, **body},
            headers=admin_headers,
        )
        assert r.status_code == 422, (body, r.text)
        assert needle in r.json()["detail"]
    assert await _count(database_url, "managed_certificates") == 0
    assert await _count(database_url, "jobs") == 0
    r = await client.post(
        "/api/v1/certificates",
        json={"issuer_id": issuer, "profile_id": profile, "common_name": "www.example.test"},
        headers=admin_headers,
    )
    assert r.status_code == 202


async def test_bad_certificate_input_is_400_and_writes_nothing(client, admin_headers, database_url):
    issuer = await _issuer(client, admin_headers)
    bad = [
        {"common_name": "bad_name!.test", "issuer_id": issuer},
        {"common_name": "ok.test", "sans": ["*.*.test"], "issuer_id": issuer},
        {"common_name": "ok.test", "sans": ["a@b@c"], "issuer_id": issuer},
        {"common_name": "ok.test", "issuer_id": "iss-nope"},
        {"common_name": "ok.test", "issuer_id": issuer, "target_ids": ["tgt-nope"]},
        {"common_name": "ok.test", "issuer_id": issuer, "key_type": "dsa-1024"},
        {"common_name": "ok.test", "issuer_id": issuer, "ekus": ["launchMissiles"]},
        {"common_name": "ok.test", "issuer_id": issuer, "validity_days": 0},
        {"common_name": "ok.test", "issuer_id": issuer, "unknown": 1},
        {"issuer_id": issuer},
    ]
    for body in bad:
        r = await client.post("/api/v1/certificates", json=body, headers=admin_headers)
        assert r.status_code == 400, (body, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["detail"]
    for raw in (b"{", b"[]", b"null", b"\xff\xfe"):
        r = await client.post(
            "/api/v1/certificates",
            content=raw,
            headers=admin_headers | {"content-type": "application/json"},
        )
        assert r.status_code == 400, raw
    assert await _count(database_url, "managed_certificates") == 0


async def test_renewal_scan_renews_due_certificates_once(client, admin_headers):
    from certctl.worker.renewal import scan_for_renewals

    issuer = await _issuer(client, admin_headers)
    r = await client.post(
        "/api/v1/certificates",
        json={"common_name": "due.example.test", "issuer_id": issuer},
        headers=admin_headers,
    )
    cert_id = r.json()["certificate"]["id"]
    runtime = client.runtime
    await runtime.worker.drain()
    assert await scan_for_renewals(runtime) == 0
    from certctl.db.base import utcnow
    from certctl.db.models import ManagedCertificate

    async with runtime.sessions() as session:
        await session.execute(
            sa.update(ManagedCertificate)
            .where(ManagedCertificate.id == cert_id)
            .values(renew_at=utcnow())
        )
        await session.commit()
    first, second = await asyncio.gather(scan_for_renewals(runtime), scan_for_renewals(runtime))
    assert first + second == 1, "one scan creates the job, the other finds it taken"
    jobs = (
        await client.get(
            "/api/v1/jobs",
            params={"certificate_id": cert_id, "type": "renewal"},
            headers=admin_headers,
        )
    ).json()
    assert jobs["total"] == 1, "concurrent scans must enqueue one renewal"
    await runtime.worker.drain()
    cert = (await client.get(f"/api/v1/certificates/{cert_id}", headers=admin_headers)).json()
    assert cert["last_renewal_at"] is not None
    versions = (
        await client.get(f"/api/v1/certificates/{cert_id}/versions", headers=admin_headers)
    ).json()
    assert len(versions) == 2


async def test_archive_stops_renewal(client, admin_headers):
    issuer = await _issuer(client, admin_headers)
    r = await client.post(
        "/api/v1/certificates",
        json={"common_name": "gone.example.test", "issuer_id": issuer},
        headers=admin_headers,
    )
    cert_id = r.json()["certificate"]["id"]
    r = await client.delete(f"/api/v1/certificates/{cert_id}", headers=admin_headers)
    assert r.status_code == 204
    await client.runtime.worker.drain()
    cert = (await client.get(f"/api/v1/certificates/{cert_id}", headers=admin_headers)).json()
    assert cert["status"] == "archived" and cert["serial_number"] is None
    listed = (await client.get("/api/v1/certificates", headers=admin_headers)).json()
    assert listed["total"] == 0
    assert (
        await client.post(f"/api/v1/certificates/{cert_id}/renew", headers=admin_headers)
    ).status_code == 409


async def test_bulk_create_is_all_or_nothing(client, admin_headers, database_url):
    issuer = await _issuer(client, admin_headers)
    items = [{"common_name": f"h{i}.bulk.test", "issuer_id": issuer} for i in range(4)]
    items[2] = {"common_name": "bad name.bulk.test", "issuer_id": issuer}
    r = await client.post(
        "/api/v1/certificates/bulk", json={"certificates": items}, headers=admin_headers
    )
    assert r.status_code == 400, r.text
    assert r.json()["detail"].startswith("certificates[2]: ")
    assert await _count(database_url, "managed_certificates") == 0
    assert await _count(database_url, "jobs") == 0

    items[2] = {"common_name": "h2.bulk.test", "issuer_id": issuer}
    r = await client.post(
        "/api/v1/certificates/bulk", json={"certificates": items}, headers=admin_headers
    )
    assert r.status_code == 202, r.text
    accepted = r.json()
    assert [a["certificate"]["common_name"] for a in accepted] == [
        f"h{i}.bulk.test" for i in range(4)
    ]
    await client.runtime.worker.drain()
    listed = (
        await client.get("/api/v1/certificates", params={"status": "active"}, headers=admin_headers)
    ).json()
    assert listed["total"] == 4
    assert len({c["serial_number"] for c in listed["data"]}) == 4

    r = await client.post(
        "/api/v1/certificates/bulk", json={"certificates": []}, headers=admin_headers
    )
    assert r.status_code == 400
    r = await client.post(
        "/api/v1/certificates/bulk", json={"certificates": items * 126}, headers=admin_headers
    )
    assert r.status_code == 400 and "500" in r.text
