"""Hostile and broken requests: a 4xx with a reason, never a 500, and no certificate or job rows."""

from __future__ import annotations

import base64

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

ANONYMOUS = {"CERTCTL_EST_PROFILE_ID": "est-devices"}


def _bad_signature() -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "forged.example.com")]))
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.DER)
    )
    return csr[:-3] + bytes(b ^ 0x55 for b in csr[-3:])  # flip the end of the signature


def _certificate_der() -> bytes:
    from certctl_sdk.testing import TestCA

    ca = TestCA.create()
    return x509.load_pem_x509_certificate(ca.certificate_pem.encode()).public_bytes(
        serialization.Encoding.DER
    )


CASES = [
    ("garbage base64", b"!!!not base64 at all???", "application/pkcs10", 400, "neither base64"),
    ("truncated base64", b"MIIBkTCB+w", "application/pkcs10", 400, "base64"),
    ("empty", b"", "application/pkcs10", 400, "empty"),
    ("not a CSR", base64.b64encode(_certificate_der()), "application/pkcs10", 400, "PKCS#10"),
    ("bad signature", base64.b64encode(_bad_signature()), "application/pkcs10", 400, "signature"),
    ("wrong type", base64.b64encode(_bad_signature()), "application/json", 415, "pkcs10"),
    ("no type", b"MIIB", "", 415, "pkcs10"),
    ("PEM certificate", b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
     "application/x-pem-file", 400, "CERTIFICATE REQUEST"),
    ("oversized", b"A" * 70_000, "application/pkcs10", 413, "larger than"),
]  # fmt: skip


async def test_bad_bodies_are_refused_with_a_reason(est):
    e = await est({**ANONYMOUS, "CERTCTL_EST_SERVERKEYGEN_ENABLED": "true"})
    for case, body, content_type, status, reason in CASES:
        headers = {"Content-Type": content_type} if content_type else {}
        for operation in ("simpleenroll", "simplereenroll", "serverkeygen"):
            r = await e.http.post(f"/.well-known/est/{operation}", content=body, headers=headers)
            if operation == "simplereenroll":  # no client certificate: refused before the body
                assert r.status_code in (403, status), (case, r.text)
                continue
            assert r.status_code == status, (case, operation, r.text)
            assert r.headers["content-type"].startswith("text/plain")
            assert reason in r.text, (case, r.text)
    assert await e.rows() == (0, 0)


async def test_unsupported_keys_are_refused(est, kit):
    e = await est(ANONYMOUS)
    small = ec.generate_private_key(ec.SECP521R1())
    csr, _ = kit.make_csr("k.example.com", key=small)
    r = await e.enroll(csr)
    assert r.status_code in (400, 403), r.text
    assert "secp521r1" in r.text or "not allowed" in r.text
    assert await e.rows() == (0, 0)


async def test_names_that_are_not_host_names_are_400(est, kit):
    e = await est(ANONYMOUS)
    csr, _ = kit.make_csr("Device 42 (lab)")
    r = await e.enroll(csr)
    assert r.status_code == 400, r.text
    assert await e.rows() == (0, 0)
