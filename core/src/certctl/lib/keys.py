"""Server-side key generation and CSR building, for certificates whose key certctl holds.

(The pull-only agent generates keys on its host and sends only a CSR; both paths end in the
same issuance code, which always signs a CSR.)
"""

from __future__ import annotations

import ipaddress

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import NameOID

from certctl_sdk.models import KeyType, SubjectAltNames

__all__ = ["build_csr", "generate_key", "key_type_of", "private_key_pem"]

_RSA_BITS = {KeyType.RSA_2048: 2048, KeyType.RSA_3072: 3072, KeyType.RSA_4096: 4096}


def generate_key(key_type: KeyType) -> CertificateIssuerPrivateKeyTypes:
    """A fresh private key of ``key_type``."""
    if key_type == KeyType.ECDSA_P256:
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == KeyType.ECDSA_P384:
        return ec.generate_private_key(ec.SECP384R1())
    if key_type == KeyType.ED25519:
        return ed25519.Ed25519PrivateKey.generate()
    return rsa.generate_private_key(public_exponent=65537, key_size=_RSA_BITS[key_type])


def key_type_of(public_key: object) -> KeyType | None:
    """The KeyType of a public key, or None for anything we do not issue for."""
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return {"secp256r1": KeyType.ECDSA_P256, "secp384r1": KeyType.ECDSA_P384}.get(
            public_key.curve.name
        )
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return KeyType.ED25519
    if isinstance(public_key, rsa.RSAPublicKey):
        return {2048: KeyType.RSA_2048, 3072: KeyType.RSA_3072, 4096: KeyType.RSA_4096}.get(
            public_key.key_size
        )
    return None


def private_key_pem(key: CertificateIssuerPrivateKeyTypes) -> str:
    """PKCS#8 PEM, unencrypted (the caller encrypts it before storing)."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def build_csr(
    key: CertificateIssuerPrivateKeyTypes, common_name: str, sans: SubjectAltNames
) -> str:
    """A PKCS#10 request carrying the subject CN and every SAN."""
    names: list[x509.GeneralName] = [x509.DNSName(d) for d in sans.dns]
    names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in sans.ip]
    names += [x509.RFC822Name(e) for e in sans.email]
    names += [x509.UniformResourceIdentifier(u) for u in sans.uri]
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    csr = builder.sign(key, algorithm)
    return csr.public_bytes(serialization.Encoding.PEM).decode()
