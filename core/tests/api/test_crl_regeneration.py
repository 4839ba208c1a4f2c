"""CRL regeneration: the periodic job, one signing per bulk revocation, a large CRL via openssl."""

import secrets
import subprocess
from datetime import timedelta

from cryptography import x509
from sqlalchemy import insert, select

from certctl.db.base import utcnow
from certctl.db.models import CertificateRevocation, CrlState
from certctl.domain.revocation import service
from certctl.domain.revocation.service import regenerate_crls


async def _issuer(client, headers, name="ca"):
    r = await client.post(
        "/api/v1/issuers", json={"name": name, "type": "local", "config": {}}, headers=headers
    )
    assert r.status_code == 201, r.text
    return r.json()["id"]


async def _issued(client, headers, issuer, cn):
    r = await client.post(
        "/api/v1/certificates",
        json={"common_name": cn, "issuer_id": issuer, "validity_days": 10},
        headers=headers,
    )
    assert r.status_code == 202, r.text
    cert_id = r.json()["certificate"]["id"]
    await client.runtime.worker.drain()
    pem = (await client.get(f"/api/v1/certificates/{cert_id}/export/pem", headers=headers)).json()
    return cert_id, pem


async def _numbers(client):
    async with client.runtime.sessions() as session:
        return dict((await session.execute(select(CrlState.issuer_id, CrlState.crl_number))).all())


async def test_regenerate_crls_signs_stale_ones_and_survives_a_failing_issuer(
    client, admin_headers, monkeypatch
):
    first = await _issuer(client, admin_headers, "one")
    second = await _issuer(client, admin_headers, "two")
    assert await regenerate_crls(client.runtime) == 2  # neither had a CRL
    assert await _numbers(client) == {first: 1, second: 1}
    assert await regenerate_crls(client.runtime) == 0  # both fresh
    assert await regenerate_crls(client.runtime, force=True) == 2
    assert await _numbers(client) == {first: 2, second: 2}

    original = service.generate_crl

    async def failing(runtime, row, **kwargs):
        if row.id == first:
            raise RuntimeError("the HSM is unplugged")
        return await original(runtime, row, **kwargs)

    monkeypatch.setattr(service, "generate_crl", failing)
    assert await regenerate_crls(client.runtime, force=True) == 1
    assert await _numbers(client) == {first: 2, second: 3}


async def test_bulk_revocation_signs_the_crl_once(client, admin_headers):
    issuer = await _issuer(client, admin_headers)
    ids = [
        (await _issued(client, admin_headers, issuer, f"h{i}.example.test"))[0] for i in range(3)
    ]
    r = await client.get(f"/.well-known/pki/crl/{issuer}")
    assert r.status_code == 200
    before = (await _numbers(client))[issuer]
    r = await client.post(
        "/api/v1/certificates/bulk-revoke",
        json={"certificate_ids": ids, "reason": "superseded"},
        headers=admin_headers,
    )
    assert r.status_code == 200, r.text
    assert {item["crl_number"] for item in r.json()} == {before + 1}
    assert (await _numbers(client))[issuer] == before + 1
    crl = x509.load_der_x509_crl((await client.get(f"/.well-known/pki/crl/{issuer}")).content)
    assert len(crl) == 3


async def test_a_crl_of_thousands_verifies_with_openssl(client, admin_headers, tmp_path):
    issuer = await _issuer(client, admin_headers)
    cert_id, pem = await _issued(client, admin_headers, issuer, "a.example.test")
    now = utcnow()
    serials = {secrets.token_hex(16).lstrip("0") or "1" for _ in range(3000)}
    rows = [
        {
            "id": f"rev-{i:06d}",
            "certificate_id": cert_id,
            "version_id": f"ver-{i:06d}",
            "issuer_id": issuer,
            "serial_number": serial,
            "reason": 1,
            "revoked_at": now - timedelta(seconds=i),
            "revoked_by": "test",
            "issuer_notified": True,
        }
        for i, serial in enumerate(sorted(serials))
    ]
    async with client.runtime.sessions() as session:
        await session.execute(insert(CertificateRevocation), rows)
        await session.commit()
    assert await regenerate_crls(client.runtime, force=True) == 1
    r = await client.get(f"/.well-known/pki/crl/{issuer}")
    assert r.status_code == 200
    crl = x509.load_der_x509_crl(r.content)
    assert {format(entry.serial_number, "x") for entry in crl} == serials
    (tmp_path / "crl.der").write_bytes(r.content)
    (tmp_path / "ca.pem").write_text(pem["chain_pem"])
    out = subprocess.run(
        ["openssl", "crl", "-inform", "DER", "-in", "crl.der", "-CAfile", "ca.pem", "-noout",
         "-verify"],
        cwd=tmp_path, capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "verify OK" in out.stdout + out.stderr
