"""A SCEP test client written apart from the server's cms module (imported as ``scep_client``).

The envelope comes from ``cryptography``'s PKCS#7 envelope builder (OpenSSL) and replies are
decrypted with ``pkcs7_decrypt_der`` (or the openssl CLI for 3DES), so the server's own CMS
code is checked against another implementation; only the signed wrapper with SCEP's
attributes is built here with pyasn1. core/tests/scep and benchmarks/scep.py use it; real
clients (micromdm scepclient, certmonger) run in tests/integration/test_scep.py.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID
from pyasn1.codec.ber import decoder
from pyasn1.codec.der import encoder
from pyasn1.type import char, univ
from pyasn1_modules import rfc5280, rfc5652

CHALLENGE = "static-scep-secret"
SCEP = "2.16.840.1.113733.1.9."
SHA256 = "2.16.840.1.101.3.4.2.1"


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def self_signed(key: Any, cn: str = "SCEP SIGNER") -> x509.Certificate:
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(hours=1))
        .sign(key, hashes.SHA256())
    )


def make_csr(key: Any, cn: str, challenge: str | None = CHALLENGE) -> bytes:
    builder = x509.CertificateSigningRequestBuilder().subject_name(_name(cn))
    if challenge is not None:
        builder = builder.add_attribute(
            x509.oid.AttributeOID.CHALLENGE_PASSWORD, challenge.encode()
        )
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def _attr(oid: str, value: Any) -> Any:
    attribute = rfc5652.Attribute()
    attribute["attrType"] = univ.ObjectIdentifier(oid)
    attribute["attrValues"][0] = encoder.encode(value)
    return attribute


def _cert_value(certificate: x509.Certificate) -> Any:
    der = certificate.public_bytes(serialization.Encoding.DER)
    return decoder.decode(der, asn1Spec=rfc5280.Certificate())[0]


@dataclass
class Device:
    """A SCEP client: an RSA key, the certificate it signs with, and its transactionID."""

    key: Any = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    signer: x509.Certificate | None = None
    transaction_id: str = field(default_factory=lambda: os.urandom(8).hex())
    nonce: bytes = field(default_factory=lambda: os.urandom(16))

    def __post_init__(self) -> None:
        if self.signer is None:
            self.signer = self_signed(self.key)

    def envelope(
        self, data: bytes, recipient: x509.Certificate, aes: Any = algorithms.AES256
    ) -> bytes:
        return (
            pkcs7.PKCS7EnvelopeBuilder()
            .set_data(data)
            .add_recipient(recipient)
            .set_content_encryption_algorithm(aes)
            .encrypt(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary])
        )

    def message(
        self,
        content: bytes,
        message_type: str = "19",
        *,
        digest_oid: str = SHA256,
        tamper_signature: bool = False,
        omit: str = "",
        raw: dict[str, bytes] | None = None,
    ) -> bytes:
        """A signed PKIMessage around ``content`` (an EnvelopedData ContentInfo).

        ``raw`` replaces attribute values (by OID) with the given encodings, for hostile tests.
        """
        assert self.signer is not None
        digest_cls = {SHA256: hashes.SHA256, "1.3.14.3.2.26": hashes.SHA1,
                      "2.16.840.1.101.3.4.2.3": hashes.SHA512}[digest_oid]  # fmt: skip
        hasher = hashes.Hash(digest_cls())
        hasher.update(content)
        values = {
            "1.2.840.113549.1.9.3": rfc5652.id_data,
            "1.2.840.113549.1.9.4": univ.OctetString(hasher.finalize()),
            SCEP + "2": char.PrintableString(message_type),
            SCEP + "5": univ.OctetString(self.nonce),
            SCEP + "7": char.PrintableString(self.transaction_id),
        }
        attrs = rfc5652.SignedAttributes()
        for index, (oid, value) in enumerate(v for v in values.items() if v[0] != omit):
            attrs[index] = _attr(oid, value)
            if raw and oid in raw:  # a hostile value, already encoded
                attrs[index]["attrValues"][0] = univ.Any(raw[oid])
        if isinstance(self.key, ec.EllipticCurvePrivateKey):
            signature = self.key.sign(encoder.encode(attrs), ec.ECDSA(digest_cls()))
            signature_oid = "1.2.840.10045.4.3.2"
        else:
            signature = self.key.sign(encoder.encode(attrs), padding.PKCS1v15(), digest_cls())
            signature_oid = "1.2.840.113549.1.1.1"
        if tamper_signature:
            signature = bytes([signature[0] ^ 1]) + signature[1:]
        signed = rfc5652.SignedData()
        signed["version"] = 1
        algorithm = rfc5280.AlgorithmIdentifier()
        algorithm["algorithm"] = univ.ObjectIdentifier(digest_oid)
        signed["digestAlgorithms"][0] = algorithm
        signed["encapContentInfo"]["eContentType"] = rfc5652.id_data
        signed["encapContentInfo"]["eContent"] = content
        signed["certificates"][0]["certificate"] = _cert_value(self.signer)
        info = signed["signerInfos"][0]
        info["version"] = 1
        ias = info["sid"]["issuerAndSerialNumber"]
        ias["issuer"] = decoder.decode(self.signer.issuer.public_bytes(), asn1Spec=rfc5280.Name())[
            0
        ]
        ias["serialNumber"] = self.signer.serial_number
        info["digestAlgorithm"] = algorithm
        for index, attribute in enumerate(attrs):
            info["signedAttrs"][index] = attribute
        sig_alg = rfc5280.AlgorithmIdentifier()
        sig_alg["algorithm"] = univ.ObjectIdentifier(signature_oid)
        info["signatureAlgorithm"] = sig_alg
        info["signature"] = signature
        outer = rfc5652.ContentInfo()
        outer["contentType"] = rfc5652.id_signedData
        outer["content"] = encoder.encode(signed)
        return bytes(encoder.encode(outer))

    def pkcs_req(
        self, ra: x509.Certificate, cn: str = "device-1", challenge: str | None = CHALLENGE
    ) -> bytes:
        return self.message(self.envelope(make_csr(self.key, cn, challenge), ra))


def _decrypt(envelope: bytes, device: Device) -> bytes:
    """The reply's envelope opened by cryptography (AES) or the openssl CLI (3DES)."""
    assert device.signer is not None
    try:
        return pkcs7.pkcs7_decrypt_der(envelope, device.signer, device.key, [])
    except UnsupportedAlgorithm:
        pass
    with tempfile.TemporaryDirectory() as d:
        cert, key = Path(d) / "c.pem", Path(d) / "k.pem"
        cert.write_bytes(device.signer.public_bytes(serialization.Encoding.PEM))
        key.write_bytes(device.key.private_bytes(serialization.Encoding.PEM,
                        serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))  # fmt: skip
        return subprocess.run(
            ["openssl", "cms", "-decrypt", "-binary", "-inform", "DER", "-recip", str(cert),
             "-inkey", str(key)],
            input=envelope, capture_output=True, check=True,
        ).stdout  # fmt: skip


@dataclass
class CertRep:
    status: str
    fail_info: str | None
    transaction_id: str
    recipient_nonce: bytes
    certificates: list[x509.Certificate]


def read_cert_rep(der: bytes, device: Device, ra: x509.Certificate) -> CertRep:
    """Parse a CertRep: signature checked with the RA key, the envelope opened by OpenSSL."""
    info = decoder.decode(der, asn1Spec=rfc5652.ContentInfo())[0]
    signed = decoder.decode(bytes(info["content"]), asn1Spec=rfc5652.SignedData())[0]
    signer_info = signed["signerInfos"][0]
    attrs = rfc5652.SignedAttributes()
    found: dict[str, Any] = {}
    for index, attribute in enumerate(signer_info["signedAttrs"]):
        attrs[index] = attribute
        found[str(attribute["attrType"])] = decoder.decode(bytes(attribute["attrValues"][0]))[0]
    digest = {SHA256: hashes.SHA256, "1.3.14.3.2.26": hashes.SHA1,
              "2.16.840.1.101.3.4.2.3": hashes.SHA512}[str(signer_info["digestAlgorithm"]["algorithm"])]  # fmt: skip
    ra.public_key().verify(  # type: ignore[union-attr,call-arg]
        bytes(signer_info["signature"]), encoder.encode(attrs), padding.PKCS1v15(), digest()
    )
    assert str(found[SCEP + "2"]) == "3"
    certificates: list[x509.Certificate] = []
    encap = signed["encapContentInfo"]
    if encap["eContent"].isValue:
        assert device.signer is not None
        plain = _decrypt(bytes(encap["eContent"]), device)
        certificates = pkcs7.load_der_pkcs7_certificates(plain)
    return CertRep(
        status=str(found[SCEP + "3"]),
        fail_info=str(found[SCEP + "4"]) if SCEP + "4" in found else None,
        transaction_id=str(found[SCEP + "7"]),
        recipient_nonce=bytes(found[SCEP + "6"]),
        certificates=certificates,
    )
