"""An offline certificate authority for tests: keys, CSRs and leaves in milliseconds, no network.

Everything is built with ``cryptography`` so plugin tests need nothing but the SDK. The CA is a
self-signed root that signs leaves directly, so a leaf's chain is ``(ca.certificate_pem,)``.
"""

from __future__ import annotations

import ipaddress
import secrets
from datetime import UTC, datetime, timedelta

import msgspec
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    CertificatePublicKeyTypes,
)
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from certctl_sdk.models import KeyType, SubjectAltNames
from certctl_sdk.pem import common_name_of, fingerprint_sha256, load_csr, sans_of, serial_hex

__all__ = [
    "IssuedLeaf",
    "TestCA",
    "generate_private_key",
    "make_csr",
    "private_key_pem",
]

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
"""The key types :class:`~certctl_sdk.models.KeyType` names."""

_BACKDATE = timedelta(minutes=5)
"""Certificates start a little in the past so a peer with a slow clock still accepts them."""


def generate_private_key(key_type: KeyType = KeyType.ECDSA_P256) -> PrivateKey:
    """A fresh private key of ``key_type``."""
    match key_type:
        case KeyType.ECDSA_P256:
            return ec.generate_private_key(ec.SECP256R1())
        case KeyType.ECDSA_P384:
            return ec.generate_private_key(ec.SECP384R1())
        case KeyType.RSA_2048 | KeyType.RSA_3072 | KeyType.RSA_4096:
            bits = int(key_type.value.removeprefix("rsa-"))
            return rsa.generate_private_key(public_exponent=65537, key_size=bits)
        case KeyType.ED25519:
            return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(f"unknown key type {key_type!r}")  # pragma: no cover - enum is exhaustive


def private_key_pem(key: PrivateKey) -> str:
    """Unencrypted PKCS#8 PEM, the form targets write to disk."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")


def _hash_for(key: CertificateIssuerPrivateKeyTypes) -> hashes.SHA256 | hashes.SHA384 | None:
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return None  # Ed25519 signs the message itself
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size >= 384:
        return hashes.SHA384()
    return hashes.SHA256()


def _general_names(sans: SubjectAltNames) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = [x509.DNSName(d) for d in sans.dns]
    names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in sans.ip]
    names += [x509.RFC822Name(e) for e in sans.email]
    names += [x509.UniformResourceIdentifier(u) for u in sans.uri]
    return names


def make_csr(
    common_name: str,
    sans: SubjectAltNames | None = None,
    key_type: KeyType = KeyType.ECDSA_P256,
) -> tuple[str, str]:
    """Return ``(csr_pem, key_pem)`` for a new key; ``sans`` defaults to the common name as DNS."""
    key = generate_private_key(key_type)
    names = _general_names(sans if sans is not None else SubjectAltNames(dns=(common_name,)))
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    csr = builder.sign(key, _hash_for(key))
    return csr.public_bytes(serialization.Encoding.PEM).decode("ascii"), private_key_pem(key)


class IssuedLeaf(msgspec.Struct, frozen=True, kw_only=True):
    """A leaf certificate from :class:`TestCA` with the facts tests compare against.

    ``key_pem`` is empty when the leaf was signed from a CSR (the caller holds the key).
    """

    certificate_pem: str
    key_pem: str
    serial: str
    """Lower-case hexadecimal, as :func:`certctl_sdk.pem.serial_hex` writes it."""
    fingerprint_sha256: str
    chain_pem: tuple[str, ...]
    not_before: datetime
    not_after: datetime

    def __repr__(self) -> str:
        # The key is test material, but keep the habit: nothing prints a private key.
        return f"IssuedLeaf(serial={self.serial!r}, fingerprint_sha256={self.fingerprint_sha256!r})"


class TestCA:
    """A self-signed root that issues leaves. Build it with :meth:`create`.

    Immutable after creation, so one instance may be shared by a whole test session.
    """

    __test__ = False  # not a pytest test class, whatever its name says

    def __init__(self, certificate: x509.Certificate, private_key: PrivateKey) -> None:
        self.certificate = certificate
        self.private_key = private_key
        self.certificate_pem = certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")
        self.key_pem = private_key_pem(private_key)

    def __repr__(self) -> str:
        return f"TestCA(subject={self.certificate.subject.rfc4514_string()!r})"

    @classmethod
    def create(
        cls,
        key_type: KeyType = KeyType.ECDSA_P256,
        common_name: str = "certctl Test Root CA",
        *,
        validity: timedelta = timedelta(days=3650),
        now: datetime | None = None,
    ) -> TestCA:
        """A new root CA valid from ``now`` (default: the current time) for ``validity``."""
        key = generate_private_key(key_type)
        start = (now or datetime.now(UTC)) - _BACKDATE
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "certctl tests"),
                x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            ]
        )
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + validity)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(ski, critical=False)
            .sign(key, _hash_for(key))
        )
        return cls(cert, key)

    @property
    def chain_pem(self) -> tuple[str, ...]:
        """The chain a leaf of this CA is served with (the root itself)."""
        return (self.certificate_pem,)

    def issue(
        self,
        common_name: str,
        *,
        sans: SubjectAltNames | None = None,
        key_type: KeyType = KeyType.ECDSA_P256,
        serial: int | None = None,
        validity: timedelta = timedelta(days=90),
        now: datetime | None = None,
    ) -> IssuedLeaf:
        """Generate a key and sign a server/client leaf for it.

        ``sans`` defaults to the common name as a DNS name; ``serial`` to a random one.
        """
        key = generate_private_key(key_type)
        leaf = self._sign(
            key.public_key(),
            common_name=common_name,
            sans=sans if sans is not None else SubjectAltNames(dns=(common_name,)),
            serial=serial,
            validity=validity,
            now=now,
        )
        return self._leaf(leaf, private_key_pem(key))

    def sign_csr(
        self,
        csr_pem: str,
        *,
        sans: SubjectAltNames | None = None,
        common_name: str | None = None,
        serial: int | None = None,
        validity: timedelta = timedelta(days=90),
        now: datetime | None = None,
    ) -> IssuedLeaf:
        """Sign a CSR (what a fake issuer does); subject and SANs default to the CSR's own."""
        csr = load_csr(csr_pem)
        leaf = self._sign(
            csr.public_key(),
            common_name=common_name if common_name is not None else common_name_of(csr),
            sans=sans if sans is not None else sans_of(csr),
            serial=serial,
            validity=validity,
            now=now,
        )
        return self._leaf(leaf, "")

    def _sign(
        self,
        public_key: CertificatePublicKeyTypes,
        *,
        common_name: str,
        sans: SubjectAltNames,
        serial: int | None,
        validity: timedelta,
        now: datetime | None,
    ) -> x509.Certificate:
        start = (now or datetime.now(UTC)) - _BACKDATE
        end = min(start + _BACKDATE + validity, self.certificate.not_valid_after_utc)
        is_rsa = isinstance(public_key, rsa.RSAPublicKey)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self.certificate.subject)
            .public_key(public_key)
            .serial_number(serial if serial is not None else _random_serial())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=is_rsa,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.private_key.public_key()),
                critical=False,
            )
        )
        names = _general_names(sans)
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        return builder.sign(self.private_key, _hash_for(self.private_key))

    def _leaf(self, cert: x509.Certificate, key_pem: str) -> IssuedLeaf:
        return IssuedLeaf(
            certificate_pem=cert.public_bytes(serialization.Encoding.PEM).decode("ascii"),
            key_pem=key_pem,
            serial=serial_hex(cert),
            fingerprint_sha256=fingerprint_sha256(cert),
            chain_pem=self.chain_pem,
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
        )


def _random_serial() -> int:
    # 159 bits keeps the DER INTEGER positive and within RFC 5280's 20 octets.
    return secrets.randbits(159) | 1 << 158
