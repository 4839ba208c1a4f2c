"""Signing certificates, CRLs and OCSP responses with a key that never leaves its token.

``cryptography``'s builders sign only with a key object they hold. With a :class:`CaSigner`
(an HSM or PKCS#11 key) the structure is built by ``cryptography`` as usual and signed with a
throwaway key of the same algorithm family: its to-be-signed part (``tbs_certificate_bytes``,
``tbs_certlist_bytes``, ``tbs_response_bytes``) is then exactly what the real key must sign,
signature algorithm identifier included. The signer signs those bytes, and ``asn1crypto``
re-assembles the outer ``SEQUENCE`` with the real signature, keeping the to-be-signed bytes as
they were. Every result is parsed back with ``cryptography`` and its signature checked against
the signer's public key before it is returned, so a device that signs with another key (or
garbles a signature) is an error here rather than a bad certificate in the world.

asn1crypto rather than pyasn1-modules: it ships the X.509, CRL and OCSP structures ready to use,
keeps the original encoding of every part it did not touch (the property this depends on), and
it is already a dependency of python-pkcs11, the core's PKCS#11 driver.
"""

from __future__ import annotations

import asyncio
import functools
from datetime import UTC, datetime, timedelta

from asn1crypto import crl as asn1_crl
from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID

from certctl_sdk.authority import CaSigner
from certctl_sdk.errors import ConfigurationError

__all__ = ["Digest", "sign_certificate", "sign_crl", "sign_ocsp_response"]

Digest = hashes.SHA256 | hashes.SHA384 | hashes.SHA512
"""The hashes a CA signs with here (SHA-1 and SHA-224 are not offered)."""

_DER = serialization.Encoding.DER

_CRL_IN_THREAD = 1000
"""Revoked entries above which the draft CRL is built off the event loop."""


@functools.cache
def _throwaway(rsa_family: bool) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
    """A key only ever used to make drafts; the draft's signature is thrown away.

    Cached per process because RSA generation takes tens of milliseconds; it certifies nothing.
    Signature algorithm identifiers depend on the family and hash only (not the key size or
    curve), so one key per family yields the right ``signatureAlgorithm`` for every CA key.
    """
    if rsa_family:
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


def _draft_key(signer: CaSigner) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
    public_key = signer.public_key()
    if isinstance(public_key, rsa.RSAPublicKey):
        return _throwaway(True)
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return _throwaway(False)
    raise ConfigurationError(f"a {type(public_key).__name__} signer cannot sign X.509 here")


def _check(signer: CaSigner, signature: bytes, tbs: bytes, algorithm: Digest) -> None:
    public_key = signer.public_key()
    try:
        if isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(signature, tbs, padding.PKCS1v15(), algorithm)
        else:
            public_key.verify(signature, tbs, ec.ECDSA(algorithm))
    except InvalidSignature:
        raise ConfigurationError(
            "the CA key's device returned a signature its public key does not verify"
        ) from None


async def sign_certificate(
    builder: x509.CertificateBuilder, signer: CaSigner, algorithm: Digest
) -> x509.Certificate:
    """``builder.sign`` for a key held by ``signer``."""
    draft = builder.sign(_draft_key(signer), algorithm)
    tbs = draft.tbs_certificate_bytes
    signature = await signer.sign(tbs, algorithm)
    parsed = asn1_x509.Certificate.load(draft.public_bytes(_DER))
    final = asn1_x509.Certificate(
        {
            "tbs_certificate": parsed["tbs_certificate"],
            "signature_algorithm": parsed["signature_algorithm"],
            "signature_value": signature,
        }
    )
    certificate = x509.load_der_x509_certificate(final.dump())
    if certificate.tbs_certificate_bytes != tbs:  # pragma: no cover - asn1crypto keeps bytes
        raise ConfigurationError("re-assembling the certificate changed what was signed")
    _check(signer, certificate.signature, tbs, algorithm)
    return certificate


async def sign_crl(
    builder: x509.CertificateRevocationListBuilder,
    signer: CaSigner,
    algorithm: Digest,
    *,
    entries: int = 0,
) -> x509.CertificateRevocationList:
    """``builder.sign`` for a key held by ``signer``; ``entries`` > 1000 drafts in a thread."""
    key = _draft_key(signer)
    if entries > _CRL_IN_THREAD:
        draft = await asyncio.to_thread(builder.sign, key, algorithm)
    else:
        draft = builder.sign(key, algorithm)
    tbs = draft.tbs_certlist_bytes
    signature = await signer.sign(tbs, algorithm)
    parsed = asn1_crl.CertificateList.load(draft.public_bytes(_DER))
    final = asn1_crl.CertificateList(
        {
            "tbs_cert_list": parsed["tbs_cert_list"],
            "signature_algorithm": parsed["signature_algorithm"],
            "signature": signature,
        }
    )
    crl = x509.load_der_x509_crl(final.dump())
    if crl.tbs_certlist_bytes != tbs:  # pragma: no cover - asn1crypto keeps bytes
        raise ConfigurationError("re-assembling the CRL changed what was signed")
    _check(signer, crl.signature, tbs, algorithm)
    return crl


@functools.cache
def _throwaway_responder(rsa_family: bool) -> x509.Certificate:
    """A certificate for the throwaway key: ``OCSPResponseBuilder`` wants the responder's."""
    key = _throwaway(rsa_family)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "certctl draft (never issued)")])
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )


def _spki(public_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey | object) -> bytes:
    if not isinstance(public_key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        return b""
    return public_key.public_bytes(_DER, serialization.PublicFormat.SubjectPublicKeyInfo)


async def sign_ocsp_response(
    builder: ocsp.OCSPResponseBuilder,
    signer: CaSigner,
    algorithm: Digest,
    *,
    responder: x509.Certificate,
    encoding: ocsp.OCSPResponderEncoding = ocsp.OCSPResponderEncoding.HASH,
    certificates: tuple[x509.Certificate, ...] | None = None,
) -> ocsp.OCSPResponse:
    """A successful OCSP response signed by ``signer``, the key of ``responder``.

    ``builder`` has its responses but no ``responder_id`` or ``certificates`` yet: the draft is
    made under a throwaway responder (cryptography insists the key matches its certificate),
    then the ``ResponderID`` is set to ``responder``'s in the to-be-signed data, which is
    signed by the device and re-assembled. ``certificates`` defaults to ``(responder,)``.
    """
    if _spki(responder.public_key()) != _spki(signer.public_key()):
        raise ConfigurationError("the responder certificate is not for the signer's key")
    rsa_family = isinstance(signer.public_key(), rsa.RSAPublicKey)
    draft = builder.responder_id(encoding, _throwaway_responder(rsa_family)).sign(
        _draft_key(signer), algorithm
    )
    outer = asn1_ocsp.OCSPResponse.load(draft.public_bytes(_DER))
    basic = outer["response_bytes"]["response"].parsed
    tbs_data = basic["tbs_response_data"]
    real = asn1_x509.Certificate.load(responder.public_bytes(_DER))
    if encoding == ocsp.OCSPResponderEncoding.HASH:
        tbs_data["responder_id"] = asn1_ocsp.ResponderId(name="by_key", value=real.public_key.sha1)
    else:
        tbs_data["responder_id"] = asn1_ocsp.ResponderId(name="by_name", value=real.subject)
    tbs = tbs_data.dump()
    signature = await signer.sign(tbs, algorithm)
    certs = (responder,) if certificates is None else certificates
    fields = {
        "tbs_response_data": tbs_data,
        "signature_algorithm": basic["signature_algorithm"],
        "signature": signature,
    }
    if certs:
        fields["certs"] = [asn1_x509.Certificate.load(c.public_bytes(_DER)) for c in certs]
    final = asn1_ocsp.OCSPResponse(
        {
            "response_status": "successful",
            "response_bytes": {
                "response_type": "basic_ocsp_response",
                "response": asn1_ocsp.BasicOCSPResponse(fields),
            },
        }
    )
    response = ocsp.load_der_ocsp_response(final.dump())
    if response.tbs_response_bytes != tbs:  # pragma: no cover - asn1crypto keeps bytes
        raise ConfigurationError("re-assembling the OCSP response changed what was signed")
    _check(signer, response.signature, tbs, algorithm)
    return response
