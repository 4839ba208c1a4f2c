"""PEM and X.509 helpers shared by the core and plugins; bad input raises :class:`PemError`."""

from __future__ import annotations

import re
from datetime import UTC

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.x509.oid import NameOID

from certctl_sdk.models import CertificateBundle, SubjectAltNames

__all__ = [
    "PemError",
    "bundle_from_pem",
    "common_name_of",
    "fingerprint_sha256",
    "load_certificate",
    "load_certificates",
    "load_csr",
    "load_private_key",
    "sans_of",
    "serial_hex",
]

_CERT_BLOCK = re.compile(
    r"-----BEGIN CERTIFICATE-----\r?\n.+?\r?\n-----END CERTIFICATE-----", re.DOTALL
)


class PemError(ValueError):
    """The input is not the PEM object it claims to be; the message says why."""


def load_certificate(pem: str | bytes) -> x509.Certificate:
    """Parse exactly one certificate."""
    certs = load_certificates(pem)
    if len(certs) != 1:
        raise PemError(f"expected one certificate, found {len(certs)}")
    return certs[0]


def load_certificates(pem: str | bytes) -> list[x509.Certificate]:
    """Parse every CERTIFICATE block, in order; at least one is required."""
    text = pem.decode("ascii", "replace") if isinstance(pem, bytes) else pem
    blocks = _CERT_BLOCK.findall(text)
    if not blocks:
        raise PemError("no PEM CERTIFICATE block found")
    try:
        return [x509.load_pem_x509_certificate(b.encode("ascii")) for b in blocks]
    except (ValueError, UnicodeEncodeError) as exc:
        raise PemError(f"malformed certificate: {exc}") from None


def load_csr(pem: str | bytes) -> x509.CertificateSigningRequest:
    """Parse a PKCS#10 request and check its self-signature (proof of key possession)."""
    data = pem.encode("ascii", "replace") if isinstance(pem, str) else pem
    if b"-----BEGIN CERTIFICATE REQUEST-----" not in data:
        raise PemError("no PEM CERTIFICATE REQUEST block found")
    try:
        csr = x509.load_pem_x509_csr(data)
    except ValueError as exc:
        raise PemError(f"malformed certificate request: {exc}") from None
    try:
        valid = csr.is_signature_valid
    except Exception as exc:  # noqa: BLE001 - unsupported algorithms raise assorted errors
        raise PemError(f"cannot verify the request's signature: {exc}") from None
    if not valid:
        raise PemError("the certificate request's signature does not verify")
    return csr


def load_private_key(pem: str | bytes) -> PrivateKeyTypes:
    """Parse an unencrypted PEM private key."""
    data = pem.encode("ascii", "replace") if isinstance(pem, str) else pem
    try:
        return serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise PemError(f"malformed private key: {exc}") from None


def serial_hex(cert: x509.Certificate) -> str:
    """Serial number as lower-case hexadecimal without separators."""
    return format(cert.serial_number, "x")


def fingerprint_sha256(cert: x509.Certificate) -> str:
    """SHA-256 of the DER encoding, lower-case hexadecimal."""
    return cert.fingerprint(hashes.SHA256()).hex()


def common_name_of(obj: x509.Certificate | x509.CertificateSigningRequest) -> str:
    """The subject CN, or an empty string."""
    attrs = obj.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    value = attrs[0].value if attrs else ""
    return value if isinstance(value, str) else value.decode()


def sans_of(obj: x509.Certificate | x509.CertificateSigningRequest) -> SubjectAltNames:
    """Subject alternative names of a certificate or request."""
    try:
        ext = obj.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return SubjectAltNames()
    return SubjectAltNames(
        dns=tuple(ext.get_values_for_type(x509.DNSName)),
        ip=tuple(str(ip) for ip in ext.get_values_for_type(x509.IPAddress)),
        email=tuple(ext.get_values_for_type(x509.RFC822Name)),
        uri=tuple(ext.get_values_for_type(x509.UniformResourceIdentifier)),
    )


def bundle_from_pem(certificate_pem: str, chain_pem: tuple[str, ...] = ()) -> CertificateBundle:
    """Build a :class:`CertificateBundle` with the facts read from the certificate itself."""
    cert = load_certificate(certificate_pem)
    return CertificateBundle(
        certificate_pem=cert.public_bytes(serialization.Encoding.PEM).decode(),
        chain_pem=chain_pem,
        serial=serial_hex(cert),
        not_before=cert.not_valid_before_utc.astimezone(UTC),
        not_after=cert.not_valid_after_utc.astimezone(UTC),
        fingerprint_sha256=fingerprint_sha256(cert),
    )
