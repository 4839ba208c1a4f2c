"""SCEP replies: the CertRep (RFC 8894 §3.3.2) and certs-only SignedData (§3.4), as DER.

Assembled directly from tag-length-values: each certificate is embedded as its own bytes
(never decoded and re-encoded), and pyasn1's encoder, the slow part of a reply, is left out.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.asymmetric import padding as asym_padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.serialization import Encoding
from pyasn1.codec.der import encoder as der_encoder
from pyasn1.type import univ

from certctl.domain.scep.cms import (
    AES_256_CBC,
    AES_CBC,
    DES_EDE3_CBC,
    DIGEST_OIDS,
    DIGESTS,
    OID_FAIL_INFO,
    OID_MESSAGE_TYPE,
    OID_PKI_STATUS,
    OID_RECIPIENT_NONCE,
    OID_RSA,
    OID_SENDER_NONCE,
    OID_TRANSACTION_ID,
    FailInfo,
    MessageType,
    PkiStatus,
    ScepFailure,
)

__all__ = ["build_cert_rep", "degenerate_certificates"]


def _tlv(kind: int, content: bytes) -> bytes:
    """One DER tag-length-value (single-byte tags suffice here)."""
    size = len(content)
    if size < 0x80:
        return bytes([kind, size]) + content
    length = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([kind, 0x80 | len(length)]) + length + content


def _oid(dotted: str) -> bytes:
    return bytes(der_encoder.encode(univ.ObjectIdentifier(dotted)))


def _integer(value: int) -> bytes:
    return _tlv(0x02, value.to_bytes((value.bit_length() + 8) // 8, "big", signed=True))


def _algorithm_der(oid: str, parameters: bytes | None = None) -> bytes:
    return _tlv(0x30, _oid(oid) + (parameters or b""))


_NULL = b"\x05\x00"
_ID_DATA = _oid("1.2.840.113549.1.7.1")
_ID_SIGNED_DATA = _oid("1.2.840.113549.1.7.2")
_ID_ENVELOPED_DATA = _oid("1.2.840.113549.1.7.3")
_ATTRIBUTE_OIDS = {
    name: _oid(dotted)
    for name, dotted in (
        ("contentType", "1.2.840.113549.1.9.3"),
        ("messageDigest", "1.2.840.113549.1.9.4"),
        ("signingTime", "1.2.840.113549.1.9.5"),
        ("messageType", str(OID_MESSAGE_TYPE)),
        ("pkiStatus", str(OID_PKI_STATUS)),
        ("failInfo", str(OID_FAIL_INFO)),
        ("senderNonce", str(OID_SENDER_NONCE)),
        ("recipientNonce", str(OID_RECIPIENT_NONCE)),
        ("transactionID", str(OID_TRANSACTION_ID)),
    )
}


def _der(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(Encoding.DER)


def _issuer_and_serial(certificate: x509.Certificate) -> bytes:
    return _tlv(0x30, certificate.issuer.public_bytes() + _integer(certificate.serial_number))


def _content_info(kind: bytes, content: bytes) -> bytes:
    return _tlv(0x30, kind + _tlv(0xA0, content))


def degenerate_certificates(certificates: list[x509.Certificate]) -> bytes:
    """A certs-only SignedData (RFC 8894 §3.4) in DER (the certificate SET sorted).

    Order is not preserved, so a CertRep carries only the issued certificate (clients take the
    first one as theirs; the chain comes from GetCACert).
    """
    certs = b"".join(sorted(_der(c) for c in certificates))
    signed = _tlv(
        0x30,
        _integer(1)
        + _tlv(0x31, b"")  # no digest algorithms
        + _tlv(0x30, _ID_DATA)  # encapContentInfo: data, no content
        + _tlv(0xA0, certs)  # [0] IMPLICIT CertificateSet
        + _tlv(0x31, b""),  # no signers
    )
    return _content_info(_ID_SIGNED_DATA, signed)


def _envelope(plain: bytes, recipient: x509.Certificate, cipher_oid: str) -> bytes:
    public = recipient.public_key()
    if not isinstance(public, rsa.RSAPublicKey):
        raise ScepFailure(FailInfo.BAD_ALG, "the reply can only be encrypted to an RSA signer")
    if cipher_oid in AES_CBC:
        key, iv = os.urandom(AES_CBC[cipher_oid]), os.urandom(16)
        cipher = Cipher(algorithms.AES(key), modes.CBC(iv))
        block = 128
    else:
        cipher_oid = DES_EDE3_CBC
        key, iv = os.urandom(24), os.urandom(8)
        cipher = Cipher(TripleDES(key), modes.CBC(iv))
        block = 64
    padder = padding.PKCS7(block).padder()
    encryptor = cipher.encryptor()
    ciphertext = encryptor.update(padder.update(plain) + padder.finalize()) + encryptor.finalize()
    ktri = _tlv(
        0x30,
        _integer(0)
        + _issuer_and_serial(recipient)
        + _algorithm_der(OID_RSA, _NULL)
        + _tlv(0x04, public.encrypt(key, asym_padding.PKCS1v15())),
    )
    encrypted = _tlv(
        0x30,
        _ID_DATA
        + _algorithm_der(cipher_oid, _tlv(0x04, iv))
        + _tlv(0x80, ciphertext),  # [0] IMPLICIT OCTET STRING, primitive
    )
    return _content_info(_ID_ENVELOPED_DATA, _tlv(0x30, _integer(0) + _tlv(0x31, ktri) + encrypted))


def _attribute(name: str, value: bytes) -> bytes:
    return _tlv(0x30, _ATTRIBUTE_OIDS[name] + _tlv(0x31, value))


def build_cert_rep(
    *,
    status: str,
    transaction_id: str,
    recipient_nonce: bytes,
    recipient: x509.Certificate,
    ra_certificate: x509.Certificate,
    ra_key: rsa.RSAPrivateKey,
    digest_oid: str,
    fail_info: str | None = None,
    issued: list[x509.Certificate] | None = None,
    cipher_oid: str = AES_256_CBC,
) -> bytes:
    """A CertRep (RFC 8894 §3.3.2) signed by the RA; on SUCCESS the certificates are
    enveloped to ``recipient`` (the requester's signer certificate)."""
    digest_cls = DIGESTS.get(digest_oid) or hashes.SHA256
    digest_oid = DIGEST_OIDS[digest_cls.name]
    content = b""
    if status == PkiStatus.SUCCESS:
        assert issued
        content = _envelope(degenerate_certificates(issued), recipient, cipher_oid)
    hasher = hashes.Hash(digest_cls())
    hasher.update(content)
    printable = transaction_id.encode("ascii", "replace")
    attributes = [
        _attribute("contentType", _ID_DATA),
        _attribute("signingTime", _tlv(0x17, datetime.now(UTC).strftime("%y%m%d%H%M%SZ").encode())),
        _attribute("messageDigest", _tlv(0x04, hasher.finalize())),
        _attribute("messageType", _tlv(0x13, MessageType.CERT_REP.encode())),
        _attribute("pkiStatus", _tlv(0x13, status.encode())),
        _attribute("transactionID", _tlv(0x13, printable)),
        _attribute("recipientNonce", _tlv(0x04, recipient_nonce)),
        _attribute("senderNonce", _tlv(0x04, os.urandom(16))),
    ]
    if status == PkiStatus.FAILURE:
        code = (fail_info or FailInfo.BAD_REQUEST).encode()
        attributes.append(_attribute("failInfo", _tlv(0x13, code)))
    attrs = b"".join(sorted(attributes))  # DER: a SET OF is sorted by encoding
    signature = ra_key.sign(_tlv(0x31, attrs), asym_padding.PKCS1v15(), digest_cls())
    digest_algorithm = _algorithm_der(digest_oid)
    signer_info = _tlv(
        0x30,
        _integer(1)
        + _issuer_and_serial(ra_certificate)
        + digest_algorithm
        + _tlv(0xA0, attrs)  # [0] IMPLICIT SignedAttributes
        + _algorithm_der(OID_RSA, _NULL)
        + _tlv(0x04, signature),
    )
    encap = _ID_DATA + (_tlv(0xA0, _tlv(0x04, content)) if content else b"")
    signed = _tlv(
        0x30,
        _integer(1)
        + _tlv(0x31, digest_algorithm)
        + _tlv(0x30, encap)
        + _tlv(0xA0, _der(ra_certificate))
        + _tlv(0x31, signer_info),
    )
    return _content_info(_ID_SIGNED_DATA, signed)
