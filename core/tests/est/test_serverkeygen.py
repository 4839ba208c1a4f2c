"""Server-side key generation (RFC 7030 §4.4): the two key forms, and what is never kept."""

from __future__ import annotations

import contextlib
import email
import email.policy

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID

from certctl.domain.est.csr import ASYMMETRIC_DECRYPT_KEY_ID, DECRYPT_KEY_ID

ENV = {"CERTCTL_EST_PROFILE_ID": "est-devices", "CERTCTL_EST_SERVERKEYGEN_ENABLED": "true"}


def _parts(response) -> list[tuple[str, bytes]]:
    assert response.headers["content-type"].startswith("multipart/mixed; boundary=")
    raw = b"Content-Type: " + response.headers["content-type"].encode() + b"\r\n\r\n"
    message = email.message_from_bytes(raw + response.content, policy=email.policy.default)
    parts = []
    for part in message.iter_parts():
        assert part["Content-Transfer-Encoding"] == "base64"
        kind = part.get_content_type()
        if part.get_param("smime-type"):
            kind += f"; smime-type={part.get_param('smime-type')}"
        parts.append((kind, part.get_payload(decode=True)))
    return parts


def _spki(key) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


async def test_unencrypted_pkcs8_and_certificate(est, kit):
    e = await est(ENV)
    csr, request_key = kit.make_csr("gen.example.com")
    r = await e.enroll(csr, path="/.well-known/est/serverkeygen")
    assert r.status_code == 200, r.text
    (key_type, key_der), (cert_type, cert_der) = _parts(r)
    assert key_type == "application/pkcs8"
    assert cert_type == "application/pkcs7-mime; smime-type=certs-only"
    key = serialization.load_der_private_key(key_der, password=None)
    (cert,) = pkcs7.load_der_pkcs7_certificates(cert_der)
    assert _spki(cert.public_key()) == _spki(key.public_key())
    assert _spki(key.public_key()) != _spki(request_key.public_key())  # a new key
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "gen.example.com"
    # The key is nowhere in the database.
    from sqlalchemy import select

    from certctl.db.models import CertificateVersion

    async with e.runtime.sessions() as session:
        (version,) = (await session.scalars(select(CertificateVersion))).all()
    assert version.private_key_enc is None
    # Each request makes a new key (never the same answer twice).
    r2 = await e.enroll(csr, path="/.well-known/est/serverkeygen")
    assert r2.status_code == 200
    assert _parts(r2)[0][1] != key_der


async def test_key_enveloped_to_the_client_certificate(est, kit, tmp_path):
    from certctl_sdk.models import KeyType, SubjectAltNames
    from certctl_sdk.testing import TestCA

    device_ca = TestCA.create(common_name="Device CA")
    bundle = tmp_path / "devices.pem"
    bundle.write_text(device_ca.certificate_pem)
    leaf = device_ca.issue("dev1.example.com", key_type=KeyType.RSA_2048,
                           sans=SubjectAltNames(dns=("dev1.example.com",)))  # fmt: skip
    client_cert = x509.load_pem_x509_certificate(leaf.certificate_pem.encode())
    client_key = serialization.load_pem_private_key(leaf.key_pem.encode(), password=None)
    e = await est({
        "CERTCTL_EST_PROFILES": "gen",
        "CERTCTL_EST_PROFILE_GEN_PROFILE_ID": "est-devices",
        "CERTCTL_EST_PROFILE_GEN_ALLOWED_AUTH_MODES": "mtls",
        "CERTCTL_EST_PROFILE_GEN_MTLS_ENABLED": "true",
        "CERTCTL_EST_PROFILE_GEN_MTLS_CLIENT_CA_TRUST_BUNDLE_PATH": str(bundle),
        "CERTCTL_EST_PROFILE_GEN_SERVERKEYGEN_ENABLED": "true",
    })  # fmt: skip
    e.present(client_cert)
    path = "/.well-known/est-mtls/gen/serverkeygen"
    ski = x509.SubjectKeyIdentifier.from_public_key(client_cert.public_key()).digest
    with contextlib.suppress(x509.ExtensionNotFound):
        ski = client_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    wrong, _ = kit.make_csr(
        "gen.example.com", attributes=[(ASYMMETRIC_DECRYPT_KEY_ID, b"\x01" * 20, None)]
    )
    r = await e.enroll(wrong, path=path)
    assert r.status_code == 400 and "key identifier" in r.text
    symmetric, _ = kit.make_csr(
        "gen.example.com", attributes=[(DECRYPT_KEY_ID, b"\x02" * 16, None)]
    )
    r = await e.enroll(symmetric, path=path)
    assert r.status_code == 400 and "DecryptKeyIdentifier" in r.text
    assert await e.rows() == (0, 0)

    csr, _ = kit.make_csr("gen.example.com", attributes=[(ASYMMETRIC_DECRYPT_KEY_ID, ski, None)])
    r = await e.enroll(csr, path=path)
    assert r.status_code == 200, r.text
    (key_type, enveloped), (_, cert_der) = _parts(r)
    assert key_type == "application/pkcs7-mime; smime-type=server-generated-key"
    pkcs8 = pkcs7.pkcs7_decrypt_der(enveloped, client_cert, client_key, [])
    key = serialization.load_der_private_key(pkcs8, password=None)
    (cert,) = pkcs7.load_der_pkcs7_certificates(cert_der)
    assert _spki(cert.public_key()) == _spki(key.public_key())


async def test_disabled_and_approval_profiles_refuse(est, kit):
    e = await est({"CERTCTL_EST_PROFILE_ID": "est-devices"})
    csr, _ = kit.make_csr("gen.example.com")
    r = await e.enroll(csr, path="/.well-known/est/serverkeygen")
    assert r.status_code == 404
    gated = await est(ENV | {"CERTCTL_EST_PROFILE_ID": "gated"},
                      profiles={"gated": {"requires_approval": True}})  # fmt: skip
    r = await gated.enroll(csr, path="/.well-known/est/serverkeygen")
    assert r.status_code == 409 and "approval" in r.text
    assert await gated.rows() == (0, 0)
