"""What an EST CSR asks for, and the RFC 7030 rules that are about the CSR itself.

- the names (common name first, then SANs) and the key type, which the profile's policy judges;
- the RFC 9266 channel binding, carried where RFC 7030 §3.5 puts the TLS binding: base64 of
  the value in the ``challengePassword`` attribute (``tls-exporter`` replacing ``tls-unique``,
  which TLS 1.3 does not have);
- re-enrollment identity (§4.2.2): the Subject and SubjectAltName must be those of the
  certificate being renewed;
- the key-encryption requests of server-side key generation (§4.4.1.1, §4.4.1.2).
"""

from __future__ import annotations

import base64
import binascii
import hmac
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import AttributeOID, NameOID

from certctl.domain.est.wire import EstError
from certctl.lib.peer_tls import PeerTLS
from certctl_sdk.models import KeyType

__all__ = [
    "ASYMMETRIC_DECRYPT_KEY_ID",
    "DECRYPT_KEY_ID",
    "check_channel_binding",
    "decrypt_key_identifiers",
    "identity_mismatch",
    "key_type_of",
    "requested_names",
]

DECRYPT_KEY_ID = x509.ObjectIdentifier("1.2.840.113549.1.9.16.2.37")
"""id-aa-decryptKeyID (RFC 4108): the client's symmetric key for server-generated keys."""
ASYMMETRIC_DECRYPT_KEY_ID = x509.ObjectIdentifier("1.2.840.113549.1.9.16.2.54")
"""id-aa-asymmDecryptKeyID (RFC 7030 §4.4.1.2): the client's key-transport key identifier."""

_RSA_SIZES = {2048: KeyType.RSA_2048, 3072: KeyType.RSA_3072, 4096: KeyType.RSA_4096}
_CURVES = {"secp256r1": KeyType.ECDSA_P256, "secp384r1": KeyType.ECDSA_P384}


def key_type_of(key: Any) -> KeyType:
    """The key type of a CSR's public key; EstError 400 for keys certctl does not issue for."""
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size in _RSA_SIZES:
            return _RSA_SIZES[key.key_size]
        raise EstError(400, f"RSA keys of {key.key_size} bits are not supported (2048/3072/4096)")
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name in _CURVES:
            return _CURVES[key.curve.name]
        raise EstError(400, f"the curve {key.curve.name} is not supported (P-256, P-384)")
    if isinstance(key, ed25519.Ed25519PublicKey):
        return KeyType.ED25519
    raise EstError(400, "the CSR's key algorithm is not supported (RSA, ECDSA, Ed25519)")


def _sans(csr: x509.CertificateSigningRequest) -> x509.SubjectAlternativeName | None:
    try:
        return csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    except ValueError as exc:
        raise EstError(400, f"the CSR's extensions cannot be read: {exc}") from None


def requested_names(csr: x509.CertificateSigningRequest) -> list[str]:
    """Common name first (if any), then the SANs; EstError 400 when there is nothing to name."""
    names: list[str] = []
    try:
        common = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    except ValueError as exc:
        raise EstError(400, f"the CSR subject cannot be read: {exc}") from None
    names += [str(a.value).strip() for a in common[:1] if str(a.value).strip()]
    san = _sans(csr)
    for general in san or ():
        if isinstance(general, x509.DNSName | x509.RFC822Name):
            value = general.value
        elif isinstance(general, x509.IPAddress):
            value = str(general.value)
        elif isinstance(general, x509.UniformResourceIdentifier):
            value = general.value
        else:
            raise EstError(400, f"the CSR asks for a {type(general).__name__} name, not supported")
        if value not in names:
            names.append(value)
    if not names:
        raise EstError(400, "the CSR names nothing: give a common name or subjectAltName")
    return names


def _attribute(csr: x509.CertificateSigningRequest, oid: x509.ObjectIdentifier) -> bytes | None:
    try:
        return bytes(csr.attributes.get_attribute_for_oid(oid).value)
    except x509.AttributeNotFound:
        return None
    except ValueError as exc:
        raise EstError(400, f"the CSR's attributes cannot be read: {exc}") from None


def _binding_of(csr: x509.CertificateSigningRequest) -> bytes | None:
    raw = _attribute(csr, AttributeOID.CHALLENGE_PASSWORD)
    if raw is None:
        return None
    try:
        value = base64.b64decode(raw.strip(), validate=True)
    except (binascii.Error, ValueError):
        return b""  # present, but not a binding value
    return value


def check_channel_binding(
    csr: x509.CertificateSigningRequest, peer: PeerTLS | None, *, required: bool
) -> None:
    """RFC 9266 on the mTLS route: 426 for TLS 1.2, 400 when missing, 409 when it differs.

    When not required, a binding the CSR does carry (a 32-byte value) is still checked: a
    present but wrong binding means the CSR was made on another connection.
    """
    carried = _binding_of(csr)
    if not required:
        own = peer.channel_binding if peer is not None else None
        if carried and len(carried) == 32 and own and not hmac.compare_digest(carried, own):
            raise EstError(409, "the CSR's channel binding is not this TLS connection's")
        return
    if peer is None or peer.version != "TLSv1.3":
        raise EstError(
            426,
            "channel binding (RFC 9266 tls-exporter) needs TLS 1.3",
            {"Upgrade": "TLS/1.3, HTTP/1.1", "Connection": "Upgrade"},
        )
    if peer.channel_binding is None:
        raise EstError(503, "this server cannot read the connection's tls-exporter value")
    if carried is None:
        raise EstError(
            400,
            "this profile requires channel binding: put base64(tls-exporter) of this connection "
            "in the CSR's challengePassword attribute",
        )
    if not hmac.compare_digest(carried, peer.channel_binding):
        raise EstError(409, "the CSR's channel binding is not this TLS connection's")


def identity_mismatch(csr: x509.CertificateSigningRequest, current: x509.Certificate) -> str:
    """Why the CSR may not renew ``current`` (RFC 7030 §4.2.2), or "" when it may."""
    try:
        if csr.subject != current.subject:
            return (
                f"the CSR subject {csr.subject.rfc4514_string()!r} is not the current "
                f"certificate's {current.subject.rfc4514_string()!r}"
            )
        try:
            now = set(current.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
        except x509.ExtensionNotFound:
            now = set()
    except ValueError as exc:
        return f"the names cannot be compared: {exc}"
    asked = set(_sans(csr) or ())
    if asked != now:
        return "the CSR's subjectAltName is not the current certificate's"
    return ""


def decrypt_key_identifiers(
    csr: x509.CertificateSigningRequest,
) -> tuple[bytes | None, bytes | None]:
    """(DecryptKeyIdentifier, AsymmetricDecryptKeyIdentifier) as the CSR carries them."""
    return _attribute(csr, DECRYPT_KEY_ID), _attribute(csr, ASYMMETRIC_DECRYPT_KEY_ID)
