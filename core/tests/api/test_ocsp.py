"""The public OCSP responder: statuses, signatures, the delegated responder, caching, limits."""

import base64
import subprocess
from datetime import timedelta
from urllib.parse import quote

import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID
from sqlalchemy.ext.asyncio import create_async_engine

from certctl.domain.ocsp.service import responder_service

REQ_TYPE = "application/ocsp-request"
RESP_TYPE = "application/ocsp-response"


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
    leaf = x509.load_pem_x509_certificate(pem["certificate_pem"].encode())
    ca = x509.load_pem_x509_certificate(pem["chain_pem"].encode())
    return cert_id, leaf, ca, pem


async def _revoke(client, headers, cert_id, reason="keyCompromise"):
    r = await client.post(
        f"/api/v1/certificates/{cert_id}/revoke", json={"reason": reason}, headers=headers
    )
    assert r.status_code == 200, r.text


def _request(leaf, ca, *, nonce=None, algorithm=None):
    # SHA-1 CertIDs are what OCSP clients send by default (RFC 5019); the hash only names the CA.
    algorithm = algorithm or hashes.SHA1()  # noqa: S303
    builder = ocsp.OCSPRequestBuilder().add_certificate(leaf, ca, algorithm)
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(serialization.Encoding.DER)


async def _post(client, issuer, der, content_type=REQ_TYPE):
    r = await client.post(
        f"/.well-known/pki/ocsp/{issuer}", content=der, headers={"Content-Type": content_type}
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith(RESP_TYPE)
    return ocsp.load_der_ocsp_response(r.content)


async def _get(client, issuer, der, urlsafe=False):
    encoded = (base64.urlsafe_b64encode if urlsafe else base64.b64encode)(der).decode()
    r = await client.get(f"/.well-known/pki/ocsp/{issuer}/{quote(encoded, safe='')}")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith(RESP_TYPE)
    return ocsp.load_der_ocsp_response(r.content)


def _verified(resp, ca):
    """The responder certificate after checking the response signature and its chain to ca."""
    assert resp.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
    [responder] = resp.certificates
    responder.verify_directly_issued_by(ca)
    key = responder.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    key.verify(resp.signature, resp.tbs_response_bytes, ec.ECDSA(resp.signature_hash_algorithm))
    assert isinstance(resp.signature_hash_algorithm, hashes.SHA256)
    assert resp.responder_key_hash == x509.SubjectKeyIdentifier.from_public_key(key).digest
    return responder


async def test_good_revoked_and_unknown_over_post_and_get(client, admin_headers):
    issuer = await _issuer(client, admin_headers)
    good_id, good, ca, _ = await _issued(client, admin_headers, issuer, "good.example.test")
    bad_id, bad, _, _ = await _issued(client, admin_headers, issuer, "bad.example.test")
    await _revoke(client, admin_headers, bad_id, "keyCompromise")

    for fetch in (_post, _get):
        resp = await fetch(client, issuer, _request(good, ca))
        _verified(resp, ca)
        assert resp.certificate_status == ocsp.OCSPCertStatus.GOOD
        assert resp.serial_number == good.serial_number
        assert resp.next_update_utc - resp.this_update_utc == timedelta(hours=1)
        assert abs(resp.produced_at_utc - resp.this_update_utc) < timedelta(seconds=5)

        resp = await fetch(client, issuer, _request(bad, ca))
        _verified(resp, ca)
        assert resp.certificate_status == ocsp.OCSPCertStatus.REVOKED
        assert resp.revocation_reason == x509.ReasonFlags.key_compromise
        assert resp.revocation_time_utc is not None

    # URL-safe base64 and a SHA-256 CertID are understood too.
    resp = await _get(client, issuer, _request(good, ca, algorithm=hashes.SHA256()), urlsafe=True)
    assert resp.certificate_status == ocsp.OCSPCertStatus.GOOD
    assert isinstance(resp.hash_algorithm, hashes.SHA256)

    # A serial this issuer never issued, and the right serial under a foreign CA: unknown.
    other = await _issuer(client, admin_headers, "other")
    _, foreign, foreign_ca, _ = await _issued(client, admin_headers, other, "f.example.test")
    resp = await _post(client, issuer, _request(foreign, ca))
    _verified(resp, ca)
    assert resp.certificate_status == ocsp.OCSPCertStatus.UNKNOWN
    resp = await _post(client, issuer, _request(good, foreign_ca))
    assert resp.certificate_status == ocsp.OCSPCertStatus.UNKNOWN
    resp = await _post(client, other, _request(foreign, foreign_ca))
    _verified(resp, foreign_ca)
    assert resp.certificate_status == ocsp.OCSPCertStatus.GOOD

    # The convenience form by hexadecimal serial.
    r = await client.get(f"/.well-known/pki/ocsp/{issuer}/serial/{bad.serial_number:x}")
    assert r.status_code == 200
    resp = ocsp.load_der_ocsp_response(r.content)
    _verified(resp, ca)
    assert resp.certificate_status == ocsp.OCSPCertStatus.REVOKED
    assert resp.serial_number == bad.serial_number
    r = await client.get(f"/.well-known/pki/ocsp/{issuer}/serial/{good.serial_number:X}")
    assert ocsp.load_der_ocsp_response(r.content).certificate_status == ocsp.OCSPCertStatus.GOOD
    assert good_id != bad_id


async def test_responder_certificate_is_a_delegated_ocsp_signer(client, admin_headers):
    issuer = await _issuer(client, admin_headers)
    _, leaf, ca, _ = await _issued(client, admin_headers, issuer, "a.example.test")
    responder = _verified(await _post(client, issuer, _request(leaf, ca)), ca)
    eku = responder.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.OCSP_SIGNING]
    responder.extensions.get_extension_for_class(x509.OCSPNoCheck)
    assert responder.issuer == ca.subject
    key = responder.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1"
    lifetime = responder.not_valid_after_utc - responder.not_valid_before_utc
    assert timedelta(days=29) < lifetime <= timedelta(days=30, minutes=5)

    async with client.runtime.sessions() as session:
        from certctl.db.models import OcspResponder

        row = await session.get(OcspResponder, issuer)
    assert row is not None
    assert "PRIVATE KEY" not in row.private_key_enc
    key_pem = client.runtime.box.decrypt(row.private_key_enc, f"ocsp-responder:{issuer}")
    stored_key = serialization.load_pem_private_key(key_pem, password=None)
    assert stored_key.public_key().public_numbers() == key.public_numbers()

    # The same responder signs the next response.
    again = _verified(await _post(client, issuer, _request(leaf, ca, nonce=b"x" * 16)), ca)
    assert again.serial_number == responder.serial_number


async def test_nonce_is_echoed_and_never_cached(client, admin_headers):
    issuer = await _issuer(client, admin_headers)
    _, leaf, ca, _ = await _issued(client, admin_headers, issuer, "a.example.test")
    first = await _post(client, issuer, _request(leaf, ca, nonce=b"\x01" * 16))
    nonce = first.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
    assert nonce == b"\x01" * 16
    second = await _post(client, issuer, _request(leaf, ca, nonce=b"\x02" * 20))
    assert second.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == b"\x02" * 20
    plain = await _post(client, issuer, _request(leaf, ca))
    assert not any(isinstance(e.value, x509.OCSPNonce) for e in plain.extensions)


async def test_cached_response_is_invalidated_by_revocation(client, admin_headers):
    issuer = await _issuer(client, admin_headers)
    cert_id, leaf, ca, _ = await _issued(client, admin_headers, issuer, "a.example.test")
    r1 = await client.post(
        f"/.well-known/pki/ocsp/{issuer}",
        content=_request(leaf, ca),
        headers={"Content-Type": REQ_TYPE},
    )
    r2 = await client.post(
        f"/.well-known/pki/ocsp/{issuer}",
        content=_request(leaf, ca),
        headers={"Content-Type": REQ_TYPE},
    )
    assert r1.content == r2.content, "the second answer comes from the cache"
    assert r1.headers["cache-control"].startswith("public, max-age=")
    await _revoke(client, admin_headers, cert_id, "superseded")
    resp = await _post(client, issuer, _request(leaf, ca))
    assert resp.certificate_status == ocsp.OCSPCertStatus.REVOKED
    assert resp.revocation_reason == x509.ReasonFlags.superseded


async def test_responder_rotates_inside_the_grace_window(client, admin_headers, database_url):
    issuer = await _issuer(client, admin_headers)
    _, leaf, ca, _ = await _issued(client, admin_headers, issuer, "a.example.test")
    first = _verified(await _post(client, issuer, _request(leaf, ca)), ca)
    still = _verified(await _post(client, issuer, _request(leaf, ca, nonce=b"n" * 8)), ca)
    assert still.serial_number == first.serial_number

    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                sa.text("UPDATE ocsp_responders SET not_after = :t WHERE issuer_id = :i"),
                {"t": first.not_valid_before_utc + timedelta(days=3), "i": issuer},
            )
    finally:
        await engine.dispose()
    # A change made behind the responder's back is seen at its next refresh (at most
    # CERTCTL_OCSP_REFRESH_MS later); the test asks for it now instead of waiting.
    await responder_service(client.runtime).refresh_all()
    rotated = _verified(await _post(client, issuer, _request(leaf, ca)), ca)
    assert rotated.serial_number != first.serial_number
    rotated.extensions.get_extension_for_class(x509.OCSPNoCheck)
    async with client.runtime.sessions() as session:
        from certctl.db.models import OcspResponder

        row = await session.get(OcspResponder, issuer)
    stored = x509.load_pem_x509_certificate(row.certificate_pem.encode())
    assert stored.serial_number == rotated.serial_number
    assert row.not_after == stored.not_valid_after_utc
    again = _verified(await _post(client, issuer, _request(leaf, ca, nonce=b"m" * 8)), ca)
    assert again.serial_number == rotated.serial_number


async def test_malformed_requests_get_malformed_request(client, admin_headers):
    issuer = await _issuer(client, admin_headers)
    _, leaf, ca, _ = await _issued(client, admin_headers, issuer, "a.example.test")
    der = _request(leaf, ca)
    cases = [
        ("post", b"garbage", REQ_TYPE),
        ("post", b"", REQ_TYPE),
        ("post", der, "application/json"),
        ("post", der + b"\x00" * 9000, REQ_TYPE),
        ("post", der[:-3], REQ_TYPE),
        ("get", "not-base64!!", None),
        ("get", base64.b64encode(b"\x30\x03\x02\x01\x01").decode(), None),
        ("serial", "xyz", None),
    ]
    for kind, body, content_type in cases:
        if kind == "post":
            r = await client.post(
                f"/.well-known/pki/ocsp/{issuer}",
                content=body,
                headers={"Content-Type": content_type},
            )
        elif kind == "get":
            r = await client.get(f"/.well-known/pki/ocsp/{issuer}/{quote(body, safe='')}")
        else:
            r = await client.get(f"/.well-known/pki/ocsp/{issuer}/serial/{body}")
        assert r.status_code == 200, (kind, body, r.text)
        resp = ocsp.load_der_ocsp_response(r.content)
        assert resp.response_status == ocsp.OCSPResponseStatus.MALFORMED_REQUEST, (kind, body)


async def test_unknown_issuer_is_unauthorized(client, admin_headers):
    issuer = await _issuer(client, admin_headers)
    _, leaf, ca, _ = await _issued(client, admin_headers, issuer, "a.example.test")
    for path in ("iss-missing", "iss-missing/serial/01"):
        if "serial" in path:
            r = await client.get(f"/.well-known/pki/ocsp/{path}")
        else:
            r = await client.post(
                f"/.well-known/pki/ocsp/{path}",
                content=_request(leaf, ca),
                headers={"Content-Type": REQ_TYPE},
            )
        assert r.status_code == 200
        resp = ocsp.load_der_ocsp_response(r.content)
        assert resp.response_status == ocsp.OCSPResponseStatus.UNAUTHORIZED


async def test_rate_limit_per_address(app_factory, admin_headers):
    client = await app_factory(ocsp_rate_limit_per_ip_min=3)
    issuer = await _issuer(client, admin_headers)
    url = f"/.well-known/pki/ocsp/{issuer}/serial/01"
    for _ in range(3):
        assert (await client.get(url)).status_code == 200
    r = await client.get(url)
    assert r.status_code == 429
    assert int(r.headers["retry-after"]) >= 1
    resp = ocsp.load_der_ocsp_response(r.content)
    assert resp.response_status == ocsp.OCSPResponseStatus.TRY_LATER
    # Another address has its own budget.
    import httpx

    other = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=client.app, client=("10.0.0.9", 1234)),
        base_url="https://certctl.test.local",
    )
    async with other:
        assert (await other.get(url)).status_code == 200


def _openssl(*args, cwd):
    return subprocess.run(
        ["openssl", *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=30
    )


async def test_real_openssl_client(client, admin_headers, tmp_path):
    issuer = await _issuer(client, admin_headers)
    _, _, _, good_pem = await _issued(client, admin_headers, issuer, "good.example.test")
    bad_id, _, _, bad_pem = await _issued(client, admin_headers, issuer, "bad.example.test")
    await _revoke(client, admin_headers, bad_id, "keyCompromise")
    (tmp_path / "ca.pem").write_text(good_pem["chain_pem"])
    (tmp_path / "good.pem").write_text(good_pem["certificate_pem"])
    (tmp_path / "bad.pem").write_text(bad_pem["certificate_pem"])

    for name, expected in (("good", "good"), ("bad", "revoked")):
        out = _openssl(
            "ocsp", "-issuer", "ca.pem", "-cert", f"{name}.pem", "-reqout", f"{name}.req",
            cwd=tmp_path,
        )  # fmt: skip
        assert (tmp_path / f"{name}.req").exists(), out.stderr
        der = (tmp_path / f"{name}.req").read_bytes()
        r = await client.post(
            f"/.well-known/pki/ocsp/{issuer}", content=der, headers={"Content-Type": REQ_TYPE}
        )
        assert r.status_code == 200
        (tmp_path / f"{name}.resp").write_bytes(r.content)
        # openssl's own request carries a nonce: the response must echo it byte for byte.
        sent = ocsp.load_der_ocsp_request(der).extensions.get_extension_for_class(x509.OCSPNonce)
        got = ocsp.load_der_ocsp_response(r.content).extensions
        assert got.get_extension_for_class(x509.OCSPNonce).value == sent.value
        # (Parsing below builds a new request with its own nonce, hence -no_nonce there.)
        out = _openssl(
            "ocsp", "-respin", f"{name}.resp", "-no_nonce", "-CAfile", "ca.pem",
            "-issuer", "ca.pem", "-cert", f"{name}.pem", "-resp_text",
            cwd=tmp_path,
        )  # fmt: skip
        text = out.stdout + out.stderr
        assert out.returncode == 0, text
        assert "Response verify OK" in text, text
        assert f"{name}.pem: {expected}" in text, text
        if expected == "revoked":
            assert "Reason: keyCompromise" in text, text
        assert "OCSP No Check" in text, text

    # Two certificates in one request: not supported, so malformedRequest (never a 500).
    out = _openssl(
        "ocsp", "-issuer", "ca.pem", "-cert", "good.pem", "-cert", "bad.pem", "-reqout", "two.req",
        cwd=tmp_path,
    )  # fmt: skip
    assert (tmp_path / "two.req").exists(), out.stderr
    r = await client.post(
        f"/.well-known/pki/ocsp/{issuer}",
        content=(tmp_path / "two.req").read_bytes(),
        headers={"Content-Type": REQ_TYPE},
    )
    assert r.status_code == 200
    resp = ocsp.load_der_ocsp_response(r.content)
    assert resp.response_status == ocsp.OCSPResponseStatus.MALFORMED_REQUEST
