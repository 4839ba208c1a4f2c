"""Finalize, certificate download and revocation (RFC 8555 §7.4, §7.4.2, §7.6).

Finalize hands the client's CSR to the job engine through
:func:`certctl.domain.certificates.service.create_from_csr`: the profile's policy, approvals,
audit and the issuer's retries apply exactly as for any other issuance, and the key never
reaches certctl. Revocation goes through the revocation service, so CRLs and OCSP see it.
"""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwcrypto import jwk as jose_jwk
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from certctl.db.base import utcnow
from certctl.db.models import AcmeAccount, AcmeOrder, CertificateVersion, ManagedCertificate
from certctl.domain.acme.accounts import account_actor
from certctl.domain.acme.directory import Directory
from certctl.domain.acme.problems import AcmeProblem
from certctl.domain.certificates.service import create_from_csr
from certctl.domain.revocation import service as revocation
from certctl.errors import Conflict, PolicyViolation
from certctl_sdk.models import KeyType, RevocationReason

if TYPE_CHECKING:
    from certctl.domain.revocation.service import PlannedRevocation
    from certctl.runtime import Runtime

__all__ = [
    "CHAIN_MEDIA_TYPE",
    "certificate_chain",
    "finalize",
    "revoke",
]

CHAIN_MEDIA_TYPE = "application/pem-certificate-chain"
SUBSCRIBER_REASONS = frozenset({0, 1, 3, 4, 5, 9})
"""Reasons a subscriber may give (RFC 5280 §5.3.1 minus CA/AA compromise, hold and
removeFromCRL, which only the CA decides)."""


def _b64url(value: Any, what: str) -> bytes:
    if not isinstance(value, str) or not value or len(value) > 1_000_000:
        raise AcmeProblem("malformed", f"{what} must be base64url")
    try:
        return base64.b64decode(value + "=" * (-len(value) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise AcmeProblem("malformed", f"{what} is not valid base64url") from None


def _key_type(key: Any) -> KeyType:
    if isinstance(key, rsa.RSAPublicKey):
        sizes = {2048: KeyType.RSA_2048, 3072: KeyType.RSA_3072, 4096: KeyType.RSA_4096}
        if key.key_size in sizes:
            return sizes[key.key_size]
        raise AcmeProblem("badCSR", f"RSA keys of {key.key_size} bits are not supported")
    if isinstance(key, ec.EllipticCurvePublicKey):
        curves = {"secp256r1": KeyType.ECDSA_P256, "secp384r1": KeyType.ECDSA_P384}
        if key.curve.name in curves:
            return curves[key.curve.name]
        raise AcmeProblem("badCSR", f"curve {key.curve.name} is not supported")
    if isinstance(key, ed25519.Ed25519PublicKey):
        return KeyType.ED25519
    raise AcmeProblem("badCSR", "unsupported key algorithm")


def _spki(key: Any) -> bytes:
    return bytes(
        key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def _jwk_spki(key: dict[str, Any]) -> bytes:
    pem = jose_jwk.JWK(**key).export_to_pem()
    return _spki(serialization.load_pem_public_key(pem))


def _csr_names(csr: x509.CertificateSigningRequest) -> set[tuple[str, str]]:
    """(type, value) of every name the CSR asks for: SANs and the common name."""
    names: set[tuple[str, str]] = set()
    try:
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = None
    except ValueError as exc:
        raise AcmeProblem("badCSR", f"unreadable CSR extensions: {exc}") from None
    if san is not None:
        for general in san:
            if isinstance(general, x509.DNSName):
                names.add(("dns", general.value.lower().rstrip(".")))
            elif isinstance(general, x509.IPAddress):
                names.add(("ip", str(general.value)))
            else:
                raise AcmeProblem(
                    "badCSR",
                    f"the CSR asks for a {type(general).__name__}, which ACME cannot prove",
                )
    for attribute in csr.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME):
        value = str(attribute.value).lower().rstrip(".")
        if ("dns", value) not in names and ("ip", value) not in names:
            raise AcmeProblem("badCSR", f"the common name {value!r} is not among the SANs")
    other = [a for a in csr.subject if a.oid != x509.NameOID.COMMON_NAME]
    if other:
        raise AcmeProblem("badCSR", "the CSR subject may hold only a common name")
    return names


async def finalize(
    runtime: Runtime,
    session: AsyncSession,
    directory: Directory,
    account: AcmeAccount,
    order: AcmeOrder,
    payload: dict[str, Any],
) -> AcmeOrder:
    """Check the CSR against the order and start its issuance; commits."""
    if order.status != "ready":
        raise AcmeProblem("orderNotReady", f"the order is {order.status}, not ready")
    der = _b64url(payload.get("csr"), "csr")
    try:
        csr = x509.load_der_x509_csr(der)
        valid_signature = csr.is_signature_valid
        public_key = csr.public_key()
    except (ValueError, TypeError) as exc:
        raise AcmeProblem("badCSR", f"not a PKCS#10 request: {exc}") from None
    if not valid_signature:
        raise AcmeProblem("badCSR", "the CSR signature does not verify")
    key_type = _key_type(public_key)
    if _spki(public_key) == _jwk_spki(account.jwk):
        raise AcmeProblem("badCSR", "the certificate key must not be the account key")
    wanted = {(i["type"], i["value"]) for i in order.identifiers}
    asked = _csr_names(csr)
    if asked != wanted:
        extra = sorted(v for _, v in asked - wanted)
        missing = sorted(v for _, v in wanted - asked)
        raise AcmeProblem(
            "badCSR",
            f"the CSR must name exactly the order's identifiers (extra: {extra}, "
            f"missing: {missing})",
        )
    claimed = await session.execute(
        update(AcmeOrder)
        .where(AcmeOrder.id == order.id, AcmeOrder.status == "ready")
        .values(status="processing", updated_at=utcnow())
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        await session.rollback()
        raise AcmeProblem("orderNotReady", "the order is already being finalized")
    pem = csr.public_bytes(serialization.Encoding.PEM).decode()
    dns = sorted(v for t, v in wanted if t == "dns")
    ips = sorted(v for t, v in wanted if t == "ip")
    try:
        cert, job = await create_from_csr(
            session,
            csr_pem=pem,
            names=dns + ips,
            key_type=key_type,
            profile=directory.profile,
            actor=account_actor(account),
            source="acme",
            idempotency_key=f"acme-order:{order.id}",
            default_validity_days=runtime.settings.default_validity_days,
            max_attempts=runtime.settings.job_max_attempts,
            approval_bypass=runtime.settings.approval_bypass,
        )
    except PolicyViolation as exc:
        await session.rollback()
        raise AcmeProblem("badCSR", f"the profile's policy refuses it: {exc.detail}") from None
    except Conflict as exc:
        await session.rollback()
        raise AcmeProblem("serverInternal", exc.detail, status=503) from None
    await session.execute(
        update(AcmeOrder)
        .where(AcmeOrder.id == order.id)
        .values(certificate_id=cert.id, job_id=job.id)
    )
    await session.commit()
    runtime.worker.wake()
    await session.refresh(order)
    return order


async def certificate_chain(session: AsyncSession, account: AcmeAccount, version_id: str) -> str:
    """The PEM chain of a certificate the account's order produced (RFC 8555 §7.4.2)."""
    owned = await session.scalar(
        select(AcmeOrder.id).where(
            AcmeOrder.version_id == version_id, AcmeOrder.account_id == account.id
        )
    )
    version = await session.get(CertificateVersion, version_id) if owned else None
    if version is None:
        raise AcmeProblem("unauthorized", "no certificate of this account has that URL", status=404)
    chain = version.certificate_pem.rstrip("\n") + "\n"
    if version.chain_pem.strip():
        chain += version.chain_pem.rstrip("\n") + "\n"
    return chain


async def revoke(
    runtime: Runtime,
    session: AsyncSession,
    directory: Directory,
    *,
    account: AcmeAccount | None,
    jwk: dict[str, Any] | None,
    payload: dict[str, Any],
) -> None:
    """Revoke by the issuing account (``kid``) or by the certificate's own key (``jwk``)."""
    der = _b64url(payload.get("certificate"), "certificate")
    try:
        certificate = x509.load_der_x509_certificate(der)
    except ValueError as exc:
        raise AcmeProblem("malformed", f"not a DER certificate: {exc}") from None
    reason = payload.get("reason", 0)
    if not isinstance(reason, int) or isinstance(reason, bool) or reason not in SUBSCRIBER_REASONS:
        raise AcmeProblem(
            "badRevocationReason", f"reason must be one of {sorted(SUBSCRIBER_REASONS)}"
        )
    serial = format(certificate.serial_number, "x")
    pem = certificate.public_bytes(serialization.Encoding.PEM).decode()
    versions = await session.scalars(
        select(CertificateVersion).where(CertificateVersion.serial_number == serial)
    )
    version = next((v for v in versions if v.certificate_pem.strip() == pem.strip()), None)
    cert = await session.get(ManagedCertificate, version.certificate_id) if version else None
    if version is None or cert is None or cert.profile_id != directory.profile.id:
        raise AcmeProblem("malformed", "certctl did not issue this certificate here", status=404)
    if cert.current_version_id != version.id:
        raise AcmeProblem("alreadyRevoked", "the certificate was superseded and is not in use")
    if account is not None:
        owns = await session.scalar(
            select(AcmeOrder.id).where(
                AcmeOrder.version_id == version.id, AcmeOrder.account_id == account.id
            )
        )
        if owns is None:
            raise AcmeProblem("unauthorized", "the account did not order this certificate")
        actor = account_actor(account)
    else:
        assert jwk is not None
        if _jwk_spki(jwk) != _spki(certificate.public_key()):
            raise AcmeProblem("unauthorized", "the JWS key is not the certificate's key")
        actor = account_actor(
            AcmeAccount(id=f"certificate-key:{serial}", profile_id=directory.profile.id)
        )
    if cert.status == "revoked":
        raise AcmeProblem("alreadyRevoked", "the certificate is already revoked")
    try:
        planned: list[PlannedRevocation] = await revocation.revoke_certificates(
            session, [cert], RevocationReason(reason), "current", actor
        )
    except Conflict:
        await session.rollback()
        raise AcmeProblem("alreadyRevoked", "the certificate is already revoked") from None
    await session.commit()
    runtime.worker.wake()
    await revocation.finish_revocations(runtime, planned)
