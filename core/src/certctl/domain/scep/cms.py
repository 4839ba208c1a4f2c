"""SCEP PKIMessages (RFC 8894 §3): reading a request's CMS SignedData and its EnvelopedData.

Structure is parsed with pyasn1 (``pyasn1-modules``' RFC 5652 types): its BER decoder reads
what real clients send, e.g. micromdm's constructed OCTET STRINGs in EncryptedContentInfo,
which asn1crypto refuses (it accepts constructed strings only with indefinite lengths). Every
cryptographic operation (RSA, AES, 3DES, digests) is ``cryptography``'s. Replies are built, with
the same types, in :mod:`.certrep`.

A request is read in two steps so that a reply can be sent whenever possible:
:func:`parse_request` checks the signature and reads the SCEP attributes (after it, a failure
is answered with a signed CertRep), :func:`open_envelope` decrypts the content.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric import padding as asym_padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from pyasn1.codec.ber import decoder as ber_decoder
from pyasn1.codec.der import encoder as der_encoder
from pyasn1.error import PyAsn1Error
from pyasn1.type import char, namedtype, tag, univ
from pyasn1_modules import rfc5652

__all__ = [
    "FailInfo",
    "MessageType",
    "PkiRequest",
    "PkiStatus",
    "Rejected",
    "ScepFailure",
    "ScepMalformed",
    "SignedDataRaw",
    "open_envelope",
    "parse_request",
]


class MessageType:
    """``messageType`` values (RFC 8894 §3.2.1.2)."""

    CERT_REP = "3"
    RENEWAL_REQ = "17"
    UPDATE_REQ = "18"
    PKCS_REQ = "19"
    CERT_POLL = "20"
    GET_CERT = "21"
    GET_CRL = "22"


class PkiStatus:
    SUCCESS = "0"
    FAILURE = "2"
    PENDING = "3"


class FailInfo:
    BAD_ALG = "0"
    BAD_MESSAGE_CHECK = "1"
    BAD_REQUEST = "2"
    BAD_TIME = "3"
    BAD_CERT_ID = "4"


class ScepMalformed(ValueError):
    """The message cannot be read or authenticated far enough to reply to: a 4xx."""


class ScepFailure(Exception):
    """A readable request that fails: answered with CertRep FAILURE and ``fail_info``."""

    def __init__(self, fail_info: str, reason: str) -> None:
        super().__init__(reason)
        self.fail_info = fail_info
        self.reason = reason


class Rejected(ScepFailure):
    """A failure of an identified request: carries it, so the reply can be addressed."""

    def __init__(self, request: PkiRequest, fail_info: str, reason: str) -> None:
        super().__init__(fail_info, reason)
        self.request = request


OID_MESSAGE_TYPE = univ.ObjectIdentifier("2.16.840.1.113733.1.9.2")
OID_PKI_STATUS = univ.ObjectIdentifier("2.16.840.1.113733.1.9.3")
OID_FAIL_INFO = univ.ObjectIdentifier("2.16.840.1.113733.1.9.4")
OID_SENDER_NONCE = univ.ObjectIdentifier("2.16.840.1.113733.1.9.5")
OID_RECIPIENT_NONCE = univ.ObjectIdentifier("2.16.840.1.113733.1.9.6")
OID_TRANSACTION_ID = univ.ObjectIdentifier("2.16.840.1.113733.1.9.7")
OID_SIGNING_TIME = univ.ObjectIdentifier("1.2.840.113549.1.9.5")
OID_RSA = "1.2.840.113549.1.1.1"
OID_RSAES_OAEP = "1.2.840.113549.1.1.7"

DIGESTS: dict[str, type[hashes.HashAlgorithm]] = {
    "1.3.14.3.2.26": hashes.SHA1,
    "2.16.840.1.101.3.4.2.1": hashes.SHA256,
    "2.16.840.1.101.3.4.2.2": hashes.SHA384,
    "2.16.840.1.101.3.4.2.3": hashes.SHA512,
}
DIGEST_OIDS = {cls.name: oid for oid, cls in DIGESTS.items()}
_SIGNATURE_DIGESTS: dict[str, type[hashes.HashAlgorithm]] = {
    "1.2.840.113549.1.1.5": hashes.SHA1,
    "1.2.840.113549.1.1.11": hashes.SHA256,
    "1.2.840.113549.1.1.12": hashes.SHA384,
    "1.2.840.113549.1.1.13": hashes.SHA512,
    "1.2.840.10045.4.1": hashes.SHA1,
    "1.2.840.10045.4.3.2": hashes.SHA256,
    "1.2.840.10045.4.3.3": hashes.SHA384,
    "1.2.840.10045.4.3.4": hashes.SHA512,
}
_ECDSA_SIGNATURES = {"1.2.840.10045.2.1", "1.2.840.10045.4.1", "1.2.840.10045.4.3.2",
                     "1.2.840.10045.4.3.3", "1.2.840.10045.4.3.4"}  # fmt: skip

DES_CBC = "1.3.14.3.2.7"
AES_256_CBC = "2.16.840.1.101.3.4.1.42"
DES_EDE3_CBC = "1.2.840.113549.3.7"
AES_CBC = {
    "2.16.840.1.101.3.4.1.2": 16,
    "2.16.840.1.101.3.4.1.22": 24,
    "2.16.840.1.101.3.4.1.42": 32,
}


class _RawCertificates(univ.SetOf):  # type: ignore[misc]
    """CertificateSet kept as each entry's own bytes: decoding and re-encoding a certificate
    is slow in pyasn1 and could alter it; cryptography parses the bytes."""

    componentType = univ.Any()  # noqa: N815 - the name pyasn1 reads


class SignedDataRaw(univ.Sequence):  # type: ignore[misc]
    """RFC 5652 SignedData with the certificates left raw (see :class:`_RawCertificates`):
    read here, and built by :mod:`.certrep`, which embeds the RA certificate's own DER."""

    componentType = namedtype.NamedTypes(  # noqa: N815 - the name pyasn1 reads
        namedtype.NamedType("version", rfc5652.CMSVersion()),
        namedtype.NamedType("digestAlgorithms", rfc5652.DigestAlgorithmIdentifiers()),
        namedtype.NamedType("encapContentInfo", rfc5652.EncapsulatedContentInfo()),
        namedtype.OptionalNamedType(
            "certificates",
            _RawCertificates().subtype(
                implicitTag=tag.Tag(tag.tagClassContext, tag.tagFormatConstructed, 0)
            ),
        ),
        namedtype.OptionalNamedType(
            "crls",
            rfc5652.RevocationInfoChoices().subtype(
                implicitTag=tag.Tag(tag.tagClassContext, tag.tagFormatConstructed, 1)
            ),
        ),
        namedtype.NamedType("signerInfos", rfc5652.SignerInfos()),
    )


@dataclass(frozen=True, slots=True)
class PkiRequest:
    """A signed, verified request: who sent it and which transaction it belongs to."""

    message_type: str
    transaction_id: str
    sender_nonce: bytes
    signer: x509.Certificate
    digest_oid: str
    content: bytes
    """The signed content: an EnvelopedData ContentInfo (DER or BER)."""


_DECODE_ERRORS = (PyAsn1Error, ValueError, TypeError, IndexError, KeyError, RecursionError)
"""What pyasn1 raises on hostile input (deep nesting included)."""


def _decode(data: bytes, spec: Any, what: str) -> Any:
    try:
        value, rest = ber_decoder.decode(data, asn1Spec=spec)
    except _DECODE_ERRORS as exc:
        raise ScepMalformed(f"{what} is not valid ASN.1: {_short(exc)}") from None
    if rest:
        raise ScepMalformed(f"{what} has trailing bytes")
    return value


def _short(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]


def _octets(attribute: Any) -> bytes:
    value = _attribute_value(attribute)
    if not isinstance(value, univ.OctetString):
        raise ScepMalformed(f"attribute {attribute['attrType']} must be an OCTET STRING")
    return bytes(value)


def _text(attribute: Any) -> str:
    value = _attribute_value(attribute)
    if not isinstance(value, char.AbstractCharacterString):
        raise ScepMalformed(f"attribute {attribute['attrType']} must be a string")
    return str(value)


def _attribute_value(attribute: Any) -> Any:
    values = attribute["attrValues"]
    if len(values) != 1:
        raise ScepMalformed(f"attribute {attribute['attrType']} must have exactly one value")
    try:
        value, rest = ber_decoder.decode(bytes(values[0]))
    except _DECODE_ERRORS as exc:
        raise ScepMalformed(f"attribute {attribute['attrType']}: {_short(exc)}") from None
    if rest:
        raise ScepMalformed(f"attribute {attribute['attrType']} has trailing bytes")
    return value


def _certificates(signed: Any) -> list[x509.Certificate]:
    found: list[x509.Certificate] = []
    if not signed["certificates"].isValue:
        return found
    for raw in signed["certificates"]:
        der = bytes(raw)
        if not der.startswith(b"\x30"):
            continue  # another CertificateChoices alternative (attribute certificates etc.)
        try:
            found.append(x509.load_der_x509_certificate(der))
        except ValueError:
            raise ScepMalformed("a certificate in the message is malformed") from None
    return found


def _name_der(name: x509.Name) -> bytes:
    return name.public_bytes()


def _matches_sid(certificate: x509.Certificate, sid: Any) -> bool:
    kind = sid.getName()
    if kind == "issuerAndSerialNumber":
        ias = sid["issuerAndSerialNumber"]
        try:
            issuer = der_encoder.encode(ias["issuer"])
        except PyAsn1Error:
            return False
        return int(ias["serialNumber"]) == certificate.serial_number and issuer == _name_der(
            certificate.issuer
        )
    if kind == "subjectKeyIdentifier":
        try:
            ski = certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
        except x509.ExtensionNotFound:
            return False
        return bytes(sid["subjectKeyIdentifier"]) == ski.value.digest
    return False


def _signed_attrs_der(signer_info: Any) -> bytes:
    """The DER of the signed attributes as a SET OF, which is what the signature covers."""
    attrs = rfc5652.SignedAttributes()
    for index, attribute in enumerate(signer_info["signedAttrs"]):
        attrs[index] = attribute
    return bytes(der_encoder.encode(attrs))


def _verify(certificate: x509.Certificate, signature: bytes, data: bytes, sig_oid: str,
            digest: type[hashes.HashAlgorithm]) -> None:  # fmt: skip
    key = certificate.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        if sig_oid != OID_RSA and sig_oid not in _SIGNATURE_DIGESTS:
            raise ScepFailure(FailInfo.BAD_ALG, f"signature algorithm {sig_oid} is not supported")
        algorithm = _SIGNATURE_DIGESTS.get(sig_oid, digest)
        key.verify(signature, data, asym_padding.PKCS1v15(), algorithm())
    elif isinstance(key, ec.EllipticCurvePublicKey):
        if sig_oid not in _ECDSA_SIGNATURES:
            raise ScepFailure(FailInfo.BAD_ALG, f"signature algorithm {sig_oid} is not supported")
        algorithm = _SIGNATURE_DIGESTS.get(sig_oid, digest)
        key.verify(signature, data, ec.ECDSA(algorithm()))
    else:
        raise ScepFailure(FailInfo.BAD_ALG, "the signer's key type is not supported")


def parse_request(der: bytes) -> PkiRequest:
    """Read and authenticate a PKIMessage.

    Raises :class:`ScepMalformed` while there is nobody to reply to (no signer certificate, no
    transactionID or nonce), and :class:`ScepFailure` once there is.
    """
    if not der:
        raise ScepMalformed("the PKIOperation message is empty")
    info = _decode(der, rfc5652.ContentInfo(), "the PKIMessage")
    if info["contentType"] != rfc5652.id_signedData:
        raise ScepMalformed("the PKIMessage is not a CMS SignedData")
    signed = _decode(bytes(info["content"]), SignedDataRaw(), "the SignedData")
    if len(signed["signerInfos"]) != 1:
        raise ScepMalformed("the SignedData must have exactly one signer")
    signer_info = signed["signerInfos"][0]
    signer = next((c for c in _certificates(signed) if _matches_sid(c, signer_info["sid"])), None)
    if signer is None:
        raise ScepMalformed("the SignedData does not carry the signer's certificate")
    if not signer_info["signedAttrs"].isValue:
        raise ScepMalformed("the SignerInfo has no signed attributes")
    attributes: dict[str, Any] = {}
    for attribute in signer_info["signedAttrs"]:
        oid = str(attribute["attrType"])
        if oid in attributes:
            raise ScepMalformed(f"signed attribute {oid} appears twice")
        attributes[oid] = attribute
    transaction = attributes.get(str(OID_TRANSACTION_ID))
    nonce = attributes.get(str(OID_SENDER_NONCE))
    kind = attributes.get(str(OID_MESSAGE_TYPE))
    if transaction is None or nonce is None or kind is None:
        raise ScepMalformed("transactionID, senderNonce and messageType are required")
    transaction_id = _text(transaction)
    sender_nonce = _octets(nonce)
    message_type = _text(kind)
    if not transaction_id or len(transaction_id) > 128 or not transaction_id.isprintable():
        raise ScepMalformed("the transactionID must be 1 to 128 printable characters")
    if len(sender_nonce) != 16:
        raise ScepMalformed("the senderNonce must be 16 bytes")
    request = PkiRequest(
        message_type=message_type,
        transaction_id=transaction_id,
        sender_nonce=sender_nonce,
        signer=signer,
        digest_oid=str(signer_info["digestAlgorithm"]["algorithm"]),
        content=b"",
    )
    digest_cls = DIGESTS.get(request.digest_oid)
    if digest_cls is None:
        raise Rejected(request, FailInfo.BAD_ALG, f"digest {request.digest_oid} is not supported")
    encap = signed["encapContentInfo"]
    content = bytes(encap["eContent"]) if encap["eContent"].isValue else b""
    digest_attr = attributes.get(str(rfc5652.id_messageDigest))
    if digest_attr is None:
        raise Rejected(request, FailInfo.BAD_MESSAGE_CHECK, "no messageDigest attribute")
    hasher = hashes.Hash(digest_cls())
    hasher.update(content)
    try:
        claimed = _octets(digest_attr)
    except ScepMalformed as exc:
        raise Rejected(request, FailInfo.BAD_MESSAGE_CHECK, str(exc)) from None
    if claimed != hasher.finalize():
        raise Rejected(request, FailInfo.BAD_MESSAGE_CHECK, "messageDigest does not match")
    try:
        _verify(
            signer,
            bytes(signer_info["signature"]),
            _signed_attrs_der(signer_info),
            str(signer_info["signatureAlgorithm"]["algorithm"]),
            digest_cls,
        )
    except InvalidSignature:
        raise Rejected(
            request, FailInfo.BAD_MESSAGE_CHECK, "the signature does not verify"
        ) from None
    except ScepFailure as exc:
        raise Rejected(request, exc.fail_info, exc.reason) from None
    return PkiRequest(
        message_type=message_type,
        transaction_id=transaction_id,
        sender_nonce=sender_nonce,
        signer=signer,
        digest_oid=request.digest_oid,
        content=content,
    )


def _cipher_for(oid: str, key: bytes, iv: bytes, *, allow_single_des: bool) -> Cipher[Any]:
    if oid in AES_CBC:
        if len(key) != AES_CBC[oid] or len(iv) != 16:
            raise ScepFailure(FailInfo.BAD_MESSAGE_CHECK, "bad AES key or IV length")
        return Cipher(algorithms.AES(key), modes.CBC(iv))
    if oid == DES_EDE3_CBC:
        if len(key) != 24 or len(iv) != 8:
            raise ScepFailure(FailInfo.BAD_MESSAGE_CHECK, "bad 3DES key or IV length")
        return Cipher(TripleDES(key), modes.CBC(iv))
    if oid == DES_CBC:
        if not allow_single_des:
            raise ScepFailure(
                FailInfo.BAD_ALG,
                "single DES is refused (CERTCTL_SCEP_ALLOW_SINGLE_DES=false); use AES or 3DES",
            )
        if len(key) != 8 or len(iv) != 8:
            raise ScepFailure(FailInfo.BAD_MESSAGE_CHECK, "bad DES key or IV length")
        return Cipher(TripleDES(key * 3), modes.CBC(iv))  # K|K|K is single DES
    raise ScepFailure(FailInfo.BAD_ALG, f"content encryption {oid} is not supported")


def open_envelope(
    content: bytes,
    certificate: x509.Certificate,
    key: rsa.RSAPrivateKey,
    *,
    allow_single_des: bool,
) -> tuple[bytes, str]:
    """Decrypt the EnvelopedData addressed to ``certificate``; returns (plaintext, cipher OID)."""
    try:
        info = _decode(content, rfc5652.ContentInfo(), "the pkcsPKIEnvelope")
        if info["contentType"] != rfc5652.id_envelopedData:
            raise ScepMalformed("the signed content is not an EnvelopedData")
        envelope = _decode(bytes(info["content"]), rfc5652.EnvelopedData(), "the EnvelopedData")
    except ScepMalformed as exc:
        raise ScepFailure(FailInfo.BAD_MESSAGE_CHECK, str(exc)) from None
    encrypted_key = None
    for recipient in envelope["recipientInfos"]:
        if recipient.getName() != "ktri":
            continue
        ktri = recipient["ktri"]
        if _matches_sid(certificate, ktri["rid"]):
            encrypted_key = bytes(ktri["encryptedKey"])
            key_alg = str(ktri["keyEncryptionAlgorithm"]["algorithm"])
            break
    if encrypted_key is None:
        raise ScepFailure(
            FailInfo.BAD_MESSAGE_CHECK,
            "the request is not encrypted to this profile's RA certificate (fetch GetCACert)",
        )
    if key_alg == OID_RSA:
        scheme: asym_padding.AsymmetricPadding = asym_padding.PKCS1v15()
    elif key_alg == OID_RSAES_OAEP:
        # RFC 3560's default parameters; SHA-1 in OAEP is not a collision-sensitive use.
        sha1 = hashes.SHA1()  # noqa: S303
        scheme = asym_padding.OAEP(asym_padding.MGF1(sha1), sha1, None)
    else:
        raise ScepFailure(FailInfo.BAD_ALG, f"key transport {key_alg} is not supported")
    try:
        cek = key.decrypt(encrypted_key, scheme)
    except ValueError:
        raise ScepFailure(FailInfo.BAD_MESSAGE_CHECK, "the content key does not decrypt") from None
    eci = envelope["encryptedContentInfo"]
    oid = str(eci["contentEncryptionAlgorithm"]["algorithm"])
    if not eci["encryptedContent"].isValue:
        raise ScepFailure(FailInfo.BAD_MESSAGE_CHECK, "the EnvelopedData has no content")
    try:
        iv, _rest = ber_decoder.decode(
            bytes(eci["contentEncryptionAlgorithm"]["parameters"]), asn1Spec=univ.OctetString()
        )
    except _DECODE_ERRORS:
        raise ScepFailure(FailInfo.BAD_MESSAGE_CHECK, "the cipher IV is malformed") from None
    cipher = _cipher_for(oid, cek, bytes(iv), allow_single_des=allow_single_des)
    ciphertext = bytes(eci["encryptedContent"])
    block = cipher.algorithm.block_size  # type: ignore[attr-defined]
    if not ciphertext or len(ciphertext) % (block // 8):
        raise ScepFailure(FailInfo.BAD_MESSAGE_CHECK, "the ciphertext is truncated")
    decryptor = cipher.decryptor()
    padded = decryptor.update(ciphertext) + decryptor.finalize()
    unpadder = padding.PKCS7(block).unpadder()
    try:
        plain = unpadder.update(padded) + unpadder.finalize()
    except ValueError:
        raise ScepFailure(FailInfo.BAD_MESSAGE_CHECK, "the content does not decrypt") from None
    return plain, oid
