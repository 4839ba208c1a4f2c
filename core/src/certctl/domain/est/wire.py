"""RFC 7030's wire formats: base64 PKCS#10 in; certs-only PKCS#7, CSR attributes and the
server-keygen ``multipart/mixed`` out.

Decoding is strict about what matters (a valid DER PKCS#10, nothing after it) and tolerant about
what clients get wrong in practice: PEM instead of base64 DER, CRLF line wrapping, trailing
whitespace, a binary DER body. Every failure is an :class:`EstError` with a reason the client
can act on; nothing here raises anything else for bad input.

The PKCS#7 and CMS structures come from ``cryptography``'s builders; only the CsrAttrs sequence
(RFC 7030 §4.5.2: a SEQUENCE of OBJECT IDENTIFIERs and Attributes) is encoded here, because no
builder exists for it and it is a few TLVs.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs7
from pyasn1.codec.der import encoder as der_encoder
from pyasn1.type import univ
from pyasn1_modules import rfc7030

__all__ = [
    "CERTS_ONLY",
    "CSRATTRS",
    "PKCS8",
    "SERVER_GENERATED_KEY",
    "EstError",
    "base64_part",
    "certs_only",
    "csr_attributes",
    "decode_csr",
    "multipart",
]

CERTS_ONLY = "application/pkcs7-mime; smime-type=certs-only"
SERVER_GENERATED_KEY = "application/pkcs7-mime; smime-type=server-generated-key"
PKCS8 = "application/pkcs8"
CSRATTRS = "application/csrattrs"
_ACCEPTED_TYPES = frozenset(
    {"application/pkcs10", "application/x-pkcs10", "application/x-pem-file"}
)
_PEM = re.compile(
    rb"-----BEGIN (NEW )?CERTIFICATE REQUEST-----\s*(.+?)\s*"
    rb"-----END (NEW )?CERTIFICATE REQUEST-----",
    re.S,
)
_BASE64 = re.compile(rb"^[A-Za-z0-9+/=\s]*$")


class EstError(Exception):
    """An answer other than success: HTTP status, a human-readable reason, extra headers.

    EST clients show the body of an error to their operator (RFC 7030 §4.2.3), so the reason
    says what was wrong and never anything secret.
    """

    def __init__(self, status: int, reason: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = headers or {}


def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def decode_csr(body: bytes, content_type: str) -> tuple[x509.CertificateSigningRequest, bytes]:
    """The CSR of an enrollment body and its DER; EstError 415/400 with the reason."""
    media = _media_type(content_type)
    if media not in _ACCEPTED_TYPES:
        raise EstError(
            415,
            f"the request body must be application/pkcs10 (base64 DER PKCS#10), not "
            f"{media or 'an untyped body'!r}",
        )
    data = body.strip()
    if not data:
        raise EstError(400, "the request body is empty; send a base64 PKCS#10 request")
    pem = _PEM.search(data)
    if pem is not None:
        data = pem.group(2)
    elif data.startswith(b"-----BEGIN"):
        raise EstError(400, "the PEM body is not a CERTIFICATE REQUEST")
    if _BASE64.match(data):
        try:
            der = base64.b64decode(b"".join(data.split()), validate=True)
        except (binascii.Error, ValueError):
            raise EstError(400, "the body is not valid base64") from None
    elif data[:1] == b"\x30":
        # A binary DER body (Content-Transfer-Encoding: binary), tolerated. Its last bytes are
        # data even when they look like whitespace, so only the leading side is trimmed.
        der = body.lstrip()
    else:
        raise EstError(400, "the body is neither base64 nor DER")
    try:
        csr = x509.load_der_x509_csr(der)
        signature_valid = csr.is_signature_valid
    except (ValueError, TypeError) as exc:
        raise EstError(400, f"the body is not a DER PKCS#10 request: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - e.g. an unsupported signature algorithm
        raise EstError(400, f"the PKCS#10 request cannot be read: {exc}") from None
    if not signature_valid:
        raise EstError(400, "the PKCS#10 signature does not verify (proof of possession)")
    return csr, csr.public_bytes(serialization.Encoding.DER)


def _base64_lines(der: bytes) -> bytes:
    """Base64 in 64-character CRLF lines (RFC 7030 §4: base64 per RFC 2045)."""
    text = base64.b64encode(der)
    return b"".join(text[i : i + 64] + b"\r\n" for i in range(0, len(text), 64))


def certs_only(certificates: Sequence[x509.Certificate]) -> bytes:
    """A certs-only PKCS#7 (degenerate SignedData), base64-encoded, for the HTTP body."""
    der = pkcs7.serialize_certificates(list(certificates), serialization.Encoding.DER)
    return _base64_lines(der)


def csr_attributes(
    oids: Sequence[x509.ObjectIdentifier],
    attributes: Sequence[tuple[x509.ObjectIdentifier, Sequence[x509.ObjectIdentifier]]],
) -> bytes:
    """CsrAttrs (RFC 7030 §4.5.2), base64: bare OIDs, and Attributes whose values are OIDs."""
    csr_attrs = rfc7030.CsrAttrs()
    for oid in oids:
        bare = rfc7030.AttrOrOID()
        bare["oid"] = univ.ObjectIdentifier(oid.dotted_string)
        csr_attrs.append(bare)
    for kind, values in attributes:
        item = rfc7030.AttrOrOID()
        attribute = item["attribute"]
        attribute["attrType"] = univ.ObjectIdentifier(kind.dotted_string)
        for value in values:
            attribute["attrValues"].append(
                der_encoder.encode(univ.ObjectIdentifier(value.dotted_string))
            )
        csr_attrs.append(item)
    return _base64_lines(der_encoder.encode(csr_attrs))


def multipart(parts: Sequence[tuple[str, bytes]]) -> tuple[str, bytes]:
    """A ``multipart/mixed`` body of base64 parts; returns (content type, body)."""
    boundary = "est-" + secrets.token_hex(12)
    body = b""
    for media_type, content in parts:
        body += (
            f"--{boundary}\r\nContent-Type: {media_type}\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\n"
        ).encode() + content
    body += f"--{boundary}--\r\n".encode()
    return f'multipart/mixed; boundary="{boundary}"', body


def base64_part(der: bytes) -> bytes:
    """``der`` as a base64 body part."""
    return _base64_lines(der)
