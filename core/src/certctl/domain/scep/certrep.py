"""SCEP replies: the CertRep (RFC 8894 §3.3.2) and certs-only SignedData (§3.4), as DER.

The certs-only SignedData is ``cryptography``'s (``pkcs7.serialize_certificates``); it cannot
build a SignedData with SCEP's signed attributes or an EnvelopedData around arbitrary content,
so those are pyasn1 objects of ``pyasn1-modules``' RFC 5652 types, DER-encoded by pyasn1.
Certificates are embedded as their own bytes (an ``Any`` in :class:`cms.SignedDataRaw`), never
decoded and re-encoded. RSA, AES and 3DES are ``cryptography``'s.
"""

from __future__ import annotations

import functools
import os
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.asymmetric import padding as asym_padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.serialization import Encoding, pkcs7
from pyasn1.codec.der import decoder as der_decoder
from pyasn1.codec.der import encoder as der_encoder
from pyasn1.type import char, univ, useful
from pyasn1_modules import rfc5280, rfc5652

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
    OID_SIGNING_TIME,
    OID_TRANSACTION_ID,
    FailInfo,
    MessageType,
    PkiStatus,
    ScepFailure,
    SignedDataRaw,
)

__all__ = ["build_cert_rep", "degenerate_certificates"]

_NULL = der_encoder.encode(univ.Null(""))


def _der(value: Any) -> bytes:
    return bytes(der_encoder.encode(value))


def _algorithm(oid: str, parameters: bytes | None = None) -> rfc5280.AlgorithmIdentifier:
    algorithm = rfc5280.AlgorithmIdentifier()
    algorithm["algorithm"] = univ.ObjectIdentifier(oid)
    if parameters is not None:
        algorithm["parameters"] = univ.Any(parameters)
    return algorithm


@functools.lru_cache(maxsize=256)
def _name(der: bytes) -> rfc5280.Name:
    """An issuer Name as a pyasn1 value, decoded from cryptography's DER of it.

    Cached: replies go to a handful of issuers (the RA's, the devices' CAs), decoding costs
    more than the RSA signature, and the value is only ever read (encoded) after this.
    """
    name, _rest = der_decoder.decode(der, asn1Spec=rfc5280.Name())
    return name


def _issuer_and_serial(certificate: x509.Certificate) -> rfc5652.IssuerAndSerialNumber:
    ias = rfc5652.IssuerAndSerialNumber()
    ias["issuer"] = _name(certificate.issuer.public_bytes())
    ias["serialNumber"] = certificate.serial_number
    return ias


def _content_info(kind: univ.ObjectIdentifier, content: Any) -> bytes:
    info = rfc5652.ContentInfo()
    info["contentType"] = kind
    info["content"] = der_encoder.encode(content)
    return _der(info)


def degenerate_certificates(certificates: list[x509.Certificate]) -> bytes:
    """A certs-only SignedData (RFC 8894 §3.4) in DER (the certificate SET sorted).

    Order is not preserved, so a CertRep carries only the issued certificate (clients take the
    first one as theirs; the chain comes from GetCACert).
    """
    return pkcs7.serialize_certificates(certificates, Encoding.DER)


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
    ktri = rfc5652.KeyTransRecipientInfo()
    ktri["version"] = 0  # rid is an issuerAndSerialNumber
    ktri["rid"]["issuerAndSerialNumber"] = _issuer_and_serial(recipient)
    ktri["keyEncryptionAlgorithm"] = _algorithm(OID_RSA, _NULL)
    ktri["encryptedKey"] = public.encrypt(key, asym_padding.PKCS1v15())
    recipient_info = rfc5652.RecipientInfo()
    recipient_info["ktri"] = ktri
    envelope = rfc5652.EnvelopedData()
    envelope["version"] = 0
    envelope["recipientInfos"].append(recipient_info)
    encrypted = envelope["encryptedContentInfo"]
    encrypted["contentType"] = rfc5652.id_data
    encrypted["contentEncryptionAlgorithm"] = _algorithm(cipher_oid, _der(univ.OctetString(iv)))
    encrypted["encryptedContent"] = ciphertext
    return _content_info(rfc5652.id_envelopedData, envelope)


def _attribute(oid: univ.ObjectIdentifier, value: Any) -> rfc5652.Attribute:
    attribute = rfc5652.Attribute()
    attribute["attrType"] = oid
    attribute["attrValues"].append(univ.Any(_der(value)))
    return attribute


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
    printable = transaction_id.encode("ascii", "replace").decode("ascii")
    attributes = [
        _attribute(rfc5652.id_contentType, rfc5652.id_data),
        _attribute(OID_SIGNING_TIME, useful.UTCTime.fromDateTime(datetime.now(UTC))),
        _attribute(rfc5652.id_messageDigest, univ.OctetString(hasher.finalize())),
        _attribute(OID_MESSAGE_TYPE, char.PrintableString(MessageType.CERT_REP)),
        _attribute(OID_PKI_STATUS, char.PrintableString(status)),
        _attribute(OID_TRANSACTION_ID, char.PrintableString(printable)),
        _attribute(OID_RECIPIENT_NONCE, univ.OctetString(recipient_nonce)),
        _attribute(OID_SENDER_NONCE, univ.OctetString(os.urandom(16))),
    ]
    if status == PkiStatus.FAILURE:
        code = fail_info or FailInfo.BAD_REQUEST
        attributes.append(_attribute(OID_FAIL_INFO, char.PrintableString(code)))
    signer_info = rfc5652.SignerInfo()
    signer_info["version"] = 1  # sid is an issuerAndSerialNumber
    signer_info["sid"]["issuerAndSerialNumber"] = _issuer_and_serial(ra_certificate)
    signer_info["digestAlgorithm"] = _algorithm(digest_oid)
    signed_attrs = signer_info["signedAttrs"]
    signed_attrs.extend(attributes)
    # RFC 5652 §5.4: the signature covers the attributes' DER as a SET OF (the tag 0x31, not
    # the [0] they are emitted under). The same objects are encoded both ways: the DER
    # encoder sorts a SET OF by encoding, so both carry the attributes in one order.
    as_set = rfc5652.SignedAttributes()
    as_set.extend(attributes)
    signature = ra_key.sign(_der(as_set), asym_padding.PKCS1v15(), digest_cls())
    signer_info["signatureAlgorithm"] = _algorithm(OID_RSA, _NULL)
    signer_info["signature"] = signature
    signed = SignedDataRaw()
    signed["version"] = 1
    signed["digestAlgorithms"].append(_algorithm(digest_oid))
    signed["encapContentInfo"]["eContentType"] = rfc5652.id_data
    if content:
        signed["encapContentInfo"]["eContent"] = content
    signed["certificates"].append(univ.Any(ra_certificate.public_bytes(Encoding.DER)))
    signed["signerInfos"].append(signer_info)
    return _content_info(rfc5652.id_signedData, signed)
