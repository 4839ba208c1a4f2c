"""Revoking managed certificates through the API: local state, audit, jobs, bulk, bad input."""

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine


async def _issuer(client, headers, name="ca"):
    r = await client.post(
        "/api/v1/issuers", json={"name": name, "type": "local", "config": {}}, headers=headers
    )
    assert r.status_code == 201, r.text
    return r.json()["id"]


async def _issued(client, headers, issuer, cn="www.example.test"):
    r = await client.post(
        "/api/v1/certificates",
        json={"common_name": cn, "issuer_id": issuer, "validity_days": 10},
        headers=headers,
    )
    assert r.status_code == 202, r.text
    cert_id = r.json()["certificate"]["id"]
    await client.runtime.worker.drain()
    cert = (await client.get(f"/api/v1/certificates/{cert_id}", headers=headers)).json()
    assert cert["status"] == "active", cert
    return cert


async def _rows(database_url, query, **params):
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            return [tuple(r) for r in (await conn.execute(sa.text(query), params)).all()]
    finally:
        await engine.dispose()


async def test_revoke_records_state_audit_and_cancels_jobs(client, admin_headers, database_url):
    issuer = await _issuer(client, admin_headers)
    cert = await _issued(client, admin_headers, issuer)
    # An open (pending) renewal job that the revocation must cancel.
    r = await client.post(f"/api/v1/certificates/{cert['id']}/renew", headers=admin_headers)
    assert r.status_code == 202
    renewal_job = r.json()["id"]

    r = await client.post(
        f"/api/v1/certificates/{cert['id']}/revoke",
        json={"reason": "keyCompromise"},
        headers=admin_headers,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "revoked"
    assert body["cancelled_jobs"] == [renewal_job]
    [revoked] = body["revoked"]
    assert revoked["serial_number"] == cert["serial_number"]
    assert revoked["reason"] == "keyCompromise"
    assert revoked["issuer_notified"] is True and revoked["issuer_error"] is None
    assert body["crl_number"] == 1

    after = (await client.get(f"/api/v1/certificates/{cert['id']}", headers=admin_headers)).json()
    assert after["status"] == "revoked"
    assert after["renew_at"] is None
    job = (await client.get(f"/api/v1/jobs/{renewal_job}", headers=admin_headers)).json()
    assert job["status"] == "cancelled"

    rows = await _rows(
        database_url,
        "SELECT certificate_id, issuer_id, serial_number, reason, revoked_by, issuer_notified "
        "FROM certificate_revocations",
    )
    assert rows == [(cert["id"], issuer, cert["serial_number"], 1, "admin", True)]
    audit = (
        await client.get(
            "/api/v1/audit",
            params={"resource_id": cert["id"], "action": "certificate.revoke"},
            headers=admin_headers,
        )
    ).json()
    assert audit["total"] == 1
    event = audit["data"][0]
    assert event["actor"] == "admin" and event["outcome"] == "success"
    assert event["details"]["reason"] == "keyCompromise"
    assert event["details"]["serials"] == [cert["serial_number"]]

    # Revoked certificates are neither renewed nor revoked twice; nothing more is written.
    r = await client.post(f"/api/v1/certificates/{cert['id']}/renew", headers=admin_headers)
    assert r.status_code == 409, r.text
    r = await client.post(
        f"/api/v1/certificates/{cert['id']}/revoke",
        json={"reason": "superseded"},
        headers=admin_headers,
    )
    assert r.status_code == 409, r.text
    assert "already revoked" in r.json()["detail"]
    assert len(await _rows(database_url, "SELECT id FROM certificate_revocations")) == 1
    await client.runtime.worker.drain()
    versions = (
        await client.get(f"/api/v1/certificates/{cert['id']}/versions", headers=admin_headers)
    ).json()
    assert len(versions) == 1, "the cancelled renewal must not issue a new version"


async def test_revoke_all_versions(client, admin_headers, database_url):
    issuer = await _issuer(client, admin_headers)
    cert = await _issued(client, admin_headers, issuer)
    r = await client.post(f"/api/v1/certificates/{cert['id']}/renew", headers=admin_headers)
    assert r.status_code == 202
    await client.runtime.worker.drain()
    versions = (
        await client.get(f"/api/v1/certificates/{cert['id']}/versions", headers=admin_headers)
    ).json()
    assert len(versions) == 2
    r = await client.post(
        f"/api/v1/certificates/{cert['id']}/revoke",
        json={"reason": "cessationOfOperation", "versions": "all"},
        headers=admin_headers,
    )
    assert r.status_code == 200, r.text
    assert {v["serial_number"] for v in r.json()["revoked"]} == {
        v["serial_number"] for v in versions
    }
    rows = await _rows(database_url, "SELECT reason FROM certificate_revocations")
    assert rows == [(5,), (5,)]


async def test_revoke_current_only_by_default(client, admin_headers, database_url):
    issuer = await _issuer(client, admin_headers)
    cert = await _issued(client, admin_headers, issuer)
    await client.post(f"/api/v1/certificates/{cert['id']}/renew", headers=admin_headers)
    await client.runtime.worker.drain()
    current = (await client.get(f"/api/v1/certificates/{cert['id']}", headers=admin_headers)).json()
    assert current["serial_number"] != cert["serial_number"]
    r = await client.post(
        f"/api/v1/certificates/{cert['id']}/revoke",
        json={"reason": "superseded"},
        headers=admin_headers,
    )
    assert r.status_code == 200, r.text
    rows = await _rows(database_url, "SELECT serial_number FROM certificate_revocations")
    assert rows == [(current["serial_number"],)]


async def test_bad_reasons_and_malformed_bodies_are_400_and_write_nothing(
    client, admin_headers, database_url
):
    issuer = await _issuer(client, admin_headers)
    cert = await _issued(client, admin_headers, issuer)
    url = f"/api/v1/certificates/{cert['id']}/revoke"
    for body in (
        {"reason": "removeFromCRL"},
        {"reason": "stolen"},
        {"reason": 1},
        {},
        {"reason": "keyCompromise", "versions": "some"},
        {"reason": "keyCompromise", "withdraw": True},
    ):
        r = await client.post(url, json=body, headers=admin_headers)
        assert r.status_code == 400, (body, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
    r = await client.post(
        url,
        content=b"{not json",
        headers=admin_headers | {"Content-Type": "application/json"},
    )
    assert r.status_code == 400, r.text
    r = await client.post(
        "/api/v1/certificates/bulk-revoke",
        json={"certificate_ids": [], "reason": "keyCompromise"},
        headers=admin_headers,
    )
    assert r.status_code == 400, r.text
    assert await _rows(database_url, "SELECT id FROM certificate_revocations") == []
    assert await _rows(database_url, "SELECT issuer_id FROM crl_state") == []
    after = (await client.get(f"/api/v1/certificates/{cert['id']}", headers=admin_headers)).json()
    assert after["status"] == "active"


async def test_unknown_certificate_is_404(client, admin_headers):
    r = await client.post(
        "/api/v1/certificates/mc-missing/revoke",
        json={"reason": "keyCompromise"},
        headers=admin_headers,
    )
    assert r.status_code == 404, r.text


async def test_viewer_cannot_revoke(client, admin_headers, viewer_headers, database_url):
    issuer = await _issuer(client, admin_headers)
    cert = await _issued(client, admin_headers, issuer)
    r = await client.post(
        f"/api/v1/certificates/{cert['id']}/revoke",
        json={"reason": "keyCompromise"},
        headers=viewer_headers,
    )
    assert r.status_code == 403
    assert "cert.revoke" in r.json()["detail"]
    r = await client.post(
        "/api/v1/certificates/bulk-revoke",
        json={"certificate_ids": [cert["id"]], "reason": "keyCompromise"},
        headers=viewer_headers,
    )
    assert r.status_code == 403
    assert "cert.bulk_revoke" in r.json()["detail"]
    assert await _rows(database_url, "SELECT id FROM certificate_revocations") == []


async def test_bulk_revoke_is_all_or_nothing(client, admin_headers, database_url):
    issuer = await _issuer(client, admin_headers)
    a = await _issued(client, admin_headers, issuer, "a.example.test")
    b = await _issued(client, admin_headers, issuer, "b.example.test")
    c = await _issued(client, admin_headers, issuer, "c.example.test")

    r = await client.post(
        "/api/v1/certificates/bulk-revoke",
        json={"certificate_ids": [a["id"], "mc-nope", b["id"]], "reason": "keyCompromise"},
        headers=admin_headers,
    )
    assert r.status_code == 400, r.text
    assert "mc-nope" in r.json()["detail"]
    assert await _rows(database_url, "SELECT id FROM certificate_revocations") == []

    # c revoked alone first: a batch naming it is refused as a whole.
    r = await client.post(
        f"/api/v1/certificates/{c['id']}/revoke",
        json={"reason": "superseded"},
        headers=admin_headers,
    )
    assert r.status_code == 200
    r = await client.post(
        "/api/v1/certificates/bulk-revoke",
        json={"certificate_ids": [a["id"], c["id"]], "reason": "keyCompromise"},
        headers=admin_headers,
    )
    assert r.status_code == 409, r.text
    assert c["id"] in r.json()["detail"]
    assert len(await _rows(database_url, "SELECT id FROM certificate_revocations")) == 1
    still = (await client.get(f"/api/v1/certificates/{a['id']}", headers=admin_headers)).json()
    assert still["status"] == "active"

    r = await client.post(
        "/api/v1/certificates/bulk-revoke",
        json={"certificate_ids": [a["id"], b["id"], a["id"]], "reason": "affiliationChanged"},
        headers=admin_headers,
    )
    assert r.status_code == 200, r.text
    results = r.json()
    assert [x["certificate_id"] for x in results] == [a["id"], b["id"]]
    assert all(x["status"] == "revoked" for x in results)
    assert [x["revoked"][0]["serial_number"] for x in results] == [
        a["serial_number"],
        b["serial_number"],
    ]
    rows = await _rows(
        database_url,
        "SELECT certificate_id FROM certificate_revocations WHERE reason = 3 "
        "ORDER BY certificate_id",
    )
    assert rows == sorted([(a["id"],), (b["id"],)])
    audit = (
        await client.get(
            "/api/v1/audit", params={"action": "certificate.revoke"}, headers=admin_headers
        )
    ).json()
    assert audit["total"] == 3


async def test_issuer_error_does_not_undo_the_local_revocation(
    client, admin_headers, database_url, monkeypatch
):
    from certctl_issuer_local.issuer import LocalIssuer
    from certctl_sdk.errors import TransientError

    issuer = await _issuer(client, admin_headers)
    cert = await _issued(client, admin_headers, issuer)

    async def refuse(self, request):
        raise TransientError("CA unreachable")

    monkeypatch.setattr(LocalIssuer, "revoke", refuse)
    r = await client.post(
        f"/api/v1/certificates/{cert['id']}/revoke",
        json={"reason": "keyCompromise"},
        headers=admin_headers,
    )
    assert r.status_code == 200, r.text
    [revoked] = r.json()["revoked"]
    assert revoked["issuer_notified"] is False
    assert "CA unreachable" in revoked["issuer_error"]
    rows = await _rows(
        database_url, "SELECT issuer_notified, issuer_error FROM certificate_revocations"
    )
    assert rows == [(False, "CA unreachable")]
    after = (await client.get(f"/api/v1/certificates/{cert['id']}", headers=admin_headers)).json()
    assert after["status"] == "revoked"


async def test_never_issued_certificate_cannot_be_revoked(client, admin_headers):
    issuer = await _issuer(client, admin_headers)
    r = await client.post(
        "/api/v1/certificates",
        json={"common_name": "later.example.test", "issuer_id": issuer},
        headers=admin_headers,
    )
    cert_id = r.json()["certificate"]["id"]
    r = await client.post(
        f"/api/v1/certificates/{cert_id}/revoke",
        json={"reason": "unspecified"},
        headers=admin_headers,
    )
    assert r.status_code == 409, r.text
    assert "not been issued" in r.json()["detail"]
