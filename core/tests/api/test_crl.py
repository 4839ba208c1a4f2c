"""The public CRL distribution point: signature, entries, numbering, caching, real OpenSSL."""

import hashlib
import subprocess
from datetime import timedelta

import sqlalchemy as sa
from cryptography import x509
from sqlalchemy.ext.asyncio import create_async_engine

CRL_TYPE = "application/pkix-crl"


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
    cert = (await client.get(f"/api/v1/certificates/{cert_id}", headers=headers)).json()
    assert cert["status"] == "active", cert
    pem = (await client.get(f"/api/v1/certificates/{cert_id}/export/pem", headers=headers)).json()
    return cert, pem


async def _revoke(client, headers, cert_id, reason="keyCompromise"):
    r = await client.post(
        f"/api/v1/certificates/{cert_id}/revoke", json={"reason": reason}, headers=headers
    )
    assert r.status_code == 200, r.text
    return r.json()


async def _crl(client, issuer, **headers):
    """The CRL without credentials (the endpoint is public)."""
    return await client.get(f"/.well-known/pki/crl/{issuer}", headers=headers)


def _crl_number(crl):
    return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number


def _ca(pem):
    return x509.load_pem_x509_certificate(pem["chain_pem"].encode())


async def test_crl_lists_revoked_serials_signed_by_the_ca(client, admin_headers):
    issuer = await _issuer(client, admin_headers)
    cert, pem = await _issued(client, admin_headers, issuer, "a.example.test")
    other, _ = await _issued(client, admin_headers, issuer, "b.example.test")
    ca = _ca(pem)

    r = await _crl(client, issuer)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith(CRL_TYPE)
    empty = x509.load_der_x509_crl(r.content)
    assert empty.is_signature_valid(ca.public_key())
    assert len(empty) == 0
    first_number = _crl_number(empty)

    body = await _revoke(client, admin_headers, cert["id"], "keyCompromise")
    assert body["crl_number"] > first_number
    r = await _crl(client, issuer)
    assert r.status_code == 200
    crl = x509.load_der_x509_crl(r.content)
    assert crl.is_signature_valid(ca.public_key())
    assert crl.issuer == ca.subject
    assert _crl_number(crl) == body["crl_number"]
    assert crl.next_update_utc - crl.last_update_utc == timedelta(hours=24)
    entry = crl.get_revoked_certificate_by_serial_number(int(cert["serial_number"], 16))
    assert entry is not None
    reason = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
    assert reason == x509.ReasonFlags.key_compromise
    assert crl.get_revoked_certificate_by_serial_number(int(other["serial_number"], 16)) is None

    # The issuer's own CA certificates give the same verdict as the exported chain.
    async with client.runtime.sessions() as session:
        from certctl.db.models import ConnectorInstance

        row = await session.get(ConnectorInstance, issuer)
    [ca_pem, *_] = await client.runtime.connectors.instance(row).ca_certificates()
    assert crl.is_signature_valid(x509.load_pem_x509_certificate(ca_pem.encode()).public_key())

    second = await _revoke(client, admin_headers, other["id"], "superseded")
    assert second["crl_number"] > body["crl_number"]
    crl = x509.load_der_x509_crl((await _crl(client, issuer)).content)
    assert _crl_number(crl) == second["crl_number"]
    assert {e.serial_number for e in crl} == {
        int(cert["serial_number"], 16),
        int(other["serial_number"], 16),
    }


async def test_etag_304_and_cache_control(client, admin_headers):
    issuer = await _issuer(client, admin_headers)
    cert, _ = await _issued(client, admin_headers, issuer, "a.example.test")
    await _revoke(client, admin_headers, cert["id"])
    r = await _crl(client, issuer)
    assert r.status_code == 200
    etag = r.headers["etag"]
    assert etag == '"' + hashlib.sha256(r.content).hexdigest() + '"'
    directives = [d.strip() for d in r.headers["cache-control"].split(",")]
    assert directives[0] == "public"
    max_age = int(directives[1].removeprefix("max-age="))
    assert 0 < max_age <= 3600

    again = await _crl(client, issuer, **{"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag
    weak = await _crl(client, issuer, **{"If-None-Match": f'"other", W/{etag}'})
    assert weak.status_code == 304
    stale = await _crl(client, issuer, **{"If-None-Match": '"something-else"'})
    assert stale.status_code == 200
    assert stale.content == r.content, "a fresh CRL is served from storage, not re-signed"


async def test_lazy_regeneration_when_past_half_validity(client, admin_headers, database_url):
    issuer = await _issuer(client, admin_headers)
    await _issued(client, admin_headers, issuer, "a.example.test")
    first = x509.load_der_x509_crl((await _crl(client, issuer)).content)
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as conn:
            # Move the stored CRL 13 of its 24 hours into the past.
            await conn.execute(
                sa.text(
                    "UPDATE crl_state SET this_update = :t, next_update = :n WHERE issuer_id = :i"
                ),
                {
                    "t": first.last_update_utc - timedelta(hours=13),
                    "n": first.next_update_utc - timedelta(hours=13),
                    "i": issuer,
                },
            )
    finally:
        await engine.dispose()
    regenerated = x509.load_der_x509_crl((await _crl(client, issuer)).content)
    assert _crl_number(regenerated) == _crl_number(first) + 1
    same = x509.load_der_x509_crl((await _crl(client, issuer)).content)
    assert _crl_number(same) == _crl_number(regenerated)


async def test_unknown_issuer_is_404(client):
    r = await _crl(client, "iss-missing")
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/problem+json")


async def test_issuer_without_crl_signing_is_404(client, admin_headers, monkeypatch):
    from certctl_issuer_local.issuer import LocalIssuer
    from certctl_sdk.issuer import IssuerCapability

    issuer = await _issuer(client, admin_headers)
    monkeypatch.setattr(
        LocalIssuer,
        "capabilities",
        frozenset({IssuerCapability.REVOKE, IssuerCapability.CA_CERTIFICATES}),
    )
    r = await _crl(client, issuer)
    assert r.status_code == 404, r.text


def _openssl(*args, cwd):
    return subprocess.run(
        ["openssl", *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=30
    )


async def test_openssl_verifies_the_crl_and_rejects_revoked_leaves(client, admin_headers, tmp_path):
    issuer = await _issuer(client, admin_headers)
    revoked, revoked_pem = await _issued(client, admin_headers, issuer, "bad.example.test")
    _, good_pem = await _issued(client, admin_headers, issuer, "good.example.test")
    await _revoke(client, admin_headers, revoked["id"], "keyCompromise")
    r = await _crl(client, issuer)
    assert r.status_code == 200

    (tmp_path / "crl.der").write_bytes(r.content)
    (tmp_path / "ca.pem").write_text(revoked_pem["chain_pem"])
    (tmp_path / "revoked.pem").write_text(revoked_pem["certificate_pem"])
    (tmp_path / "good.pem").write_text(good_pem["certificate_pem"])

    out = _openssl(
        "crl", "-inform", "DER", "-in", "crl.der", "-CAfile", "ca.pem", "-noout", cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    assert "verify OK" in out.stdout + out.stderr
    out = _openssl("crl", "-inform", "DER", "-in", "crl.der", "-out", "crl.pem", cwd=tmp_path)
    assert out.returncode == 0, out.stderr

    out = _openssl(
        "verify",
        "-crl_check",
        "-CAfile",
        "ca.pem",
        "-CRLfile",
        "crl.pem",
        "revoked.pem",
        cwd=tmp_path,
    )
    assert out.returncode != 0
    assert "certificate revoked" in out.stdout + out.stderr
    out = _openssl(
        "verify", "-crl_check", "-CAfile", "ca.pem", "-CRLfile", "crl.pem", "good.pem", cwd=tmp_path
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "good.pem: OK" in out.stdout


async def test_concurrent_generations_get_distinct_increasing_numbers(client, admin_headers):
    import asyncio

    from certctl.db.models import ConnectorInstance, CrlState
    from certctl.domain.revocation.service import generate_crl

    issuer = await _issuer(client, admin_headers)
    await _issued(client, admin_headers, issuer, "a.example.test")
    async with client.runtime.sessions() as session:
        row = await session.get(ConnectorInstance, issuer)
    states = await asyncio.gather(*(generate_crl(client.runtime, row) for _ in range(5)))
    assert sorted(s.crl_number for s in states) == [1, 2, 3, 4, 5]
    async with client.runtime.sessions() as session:
        stored = await session.get(CrlState, issuer)
    assert stored.crl_number == 5
    assert _crl_number(x509.load_der_x509_crl(stored.crl_der)) == 5, "the newest CRL is stored"
