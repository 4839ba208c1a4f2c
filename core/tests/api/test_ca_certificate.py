"""Issued certificates carry AIA (OCSP, caIssuers) and CDP URLs, and the caIssuers URL answers."""

from __future__ import annotations

import shutil
import subprocess
from urllib.parse import urlsplit

import pytest
from cryptography import x509
from cryptography.x509.oid import AuthorityInformationAccessOID


async def _issued(client, headers):
    issuer = (
        await client.post(
            "/api/v1/issuers", json={"name": "ca", "type": "local", "config": {}}, headers=headers
        )
    ).json()["id"]
    cert_id = (
        await client.post(
            "/api/v1/certificates",
            json={"common_name": "aia.example.test", "issuer_id": issuer},
            headers=headers,
        )
    ).json()["certificate"]["id"]
    await client.runtime.worker.drain()
    pem = (await client.get(f"/api/v1/certificates/{cert_id}/export/pem", headers=headers)).json()[
        "certificate_pem"
    ]
    return issuer, x509.load_pem_x509_certificate(pem.encode()), pem


async def test_aia_and_cdp_point_at_this_server(client, admin_headers, tmp_path):
    issuer, leaf, pem = await _issued(client, admin_headers)
    base = client.runtime.settings.effective_public_url
    aia = leaf.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    urls = {d.access_method: d.access_location.value for d in aia}
    assert urls[AuthorityInformationAccessOID.OCSP] == f"{base}/.well-known/pki/ocsp/{issuer}"
    assert urls[AuthorityInformationAccessOID.CA_ISSUERS] == f"{base}/.well-known/pki/ca/{issuer}"
    cdp = leaf.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    assert [n.value for p in cdp for n in p.full_name] == [f"{base}/.well-known/pki/crl/{issuer}"]

    # The caIssuers URL answers without credentials, with the certificate that signed the leaf.
    r = await client.get(urlsplit(urls[AuthorityInformationAccessOID.CA_ISSUERS]).path)
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/pkix-cert"
    ca = x509.load_der_x509_certificate(r.content)
    leaf.verify_directly_issued_by(ca)
    again = await client.get(
        f"/.well-known/pki/ca/{issuer}", headers={"If-None-Match": r.headers["etag"]}
    )
    assert again.status_code == 304

    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    (tmp_path / "leaf.pem").write_text(pem)
    (tmp_path / "ca.der").write_bytes(r.content)
    subprocess.run(
        [
            openssl,
            "x509",
            "-inform",
            "DER",
            "-in",
            tmp_path / "ca.der",
            "-out",
            tmp_path / "ca.pem",
        ],
        check=True,
    )
    verified = subprocess.run(
        [openssl, "verify", "-CAfile", tmp_path / "ca.pem", tmp_path / "leaf.pem"],
        capture_output=True,
        text=True,
    )
    assert verified.returncode == 0 and verified.stdout.strip().endswith(": OK"), verified


async def test_unknown_issuers_have_no_ca_certificate(client):
    r = await client.get("/.well-known/pki/ca/iss-nope")
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/problem+json")
