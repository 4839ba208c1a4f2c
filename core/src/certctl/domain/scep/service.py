"""The SCEP operations: GetCACaps, GetCACert and PKIOperation (RFC 8894 §3.5, §4).

Issuance goes through the job engine (:func:`create_from_csr`, source ``scep``): the profile's
policy, approvals, audit and retries apply as for every other certificate. A request waits up
to ``CERTCTL_SCEP_ISSUANCE_WAIT`` for the job; a job that needs longer (a slow issuer, an
approval) is answered PENDING, and the same request resent later, or a CertPoll with its
transactionID, gets the certificate once it is issued (the Go certctl answers every CertPoll
with FAILURE). Every reply to an identified request is a signed CertRep, FAILURE included.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from certctl.db.base import new_id, utcnow
from certctl.db.models import (
    CertificateProfile,
    CertificateVersion,
    ConnectorInstance,
    ManagedCertificate,
    ScepTransaction,
)
from certctl.domain.audit.service import record
from certctl.domain.auth.actor import Actor
from certctl.domain.certificates.service import create_from_csr
from certctl.domain.certificates.waiting import IssuanceOutcome, await_issuance
from certctl.domain.scep import certrep, cms
from certctl.domain.scep.challenge import ChallengeResult, check_challenge
from certctl.domain.scep.cms import FailInfo, MessageType, PkiStatus, ScepFailure
from certctl.domain.scep.intune import IntuneVerifier
from certctl.domain.scep.names import csr_key_type, requested_names
from certctl.domain.scep.settings import RaCredentials, ScepProfileSettings, load_bundle, load_ra
from certctl.errors import CertctlError, NotFound, ServiceUnavailable
from certctl_sdk import ConnectorError, Issuer, IssuerCapability
from certctl_sdk.pem import load_certificate

if TYPE_CHECKING:
    from certctl.runtime import Runtime

__all__ = ["CA_CAPS", "ScepService"]

log = logging.getLogger("certctl.scep")

CA_CAPS = (
    "POSTPKIOperation",
    "SHA-256",
    "SHA-512",
    "SHA-1",
    "AES",
    "DES3",
    "SCEPStandard",
    "Renewal",
)
REQUEST_TYPES = {MessageType.PKCS_REQ: "scep_pkcsreq", MessageType.RENEWAL_REQ: "scep_renewalreq"}


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A configured SCEP profile with its loaded RA."""

    settings: ScepProfileSettings
    ra: RaCredentials
    mtls_roots: tuple[x509.Certificate, ...] = ()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _der(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.DER)


def _spki(key: Any) -> bytes:
    return bytes(
        key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


class ScepService:
    """Per-process SCEP state: the RA of each profile and the Intune trust."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.settings = runtime.settings.scep
        self.endpoints: dict[str, Endpoint] = {}
        if self.settings.enabled:
            for profile in self.settings.profiles:
                roots: tuple[x509.Certificate, ...] = ()
                if profile.mtls_enabled:
                    roots = tuple(load_bundle("mTLS bundle", profile.mtls_trust_bundle_path))
                self.endpoints[profile.name] = Endpoint(profile, load_ra(profile), roots)
        self.intune = IntuneVerifier.build([e.settings for e in self.endpoints.values()])

    def endpoint(self, name: str, *, mtls: bool) -> Endpoint:
        """The profile a path names; 404 when SCEP is off or the profile is not configured."""
        found = self.endpoints.get(name)
        if found is None:
            where = f"/scep/{name}" if name else "/scep"
            raise NotFound(f"no SCEP profile is served at {where}")
        if mtls and not found.settings.mtls_enabled:
            raise NotFound(f"SCEP profile {found.settings.label} has no mTLS endpoint")
        return found

    # --- GetCACert -----------------------------------------------------------------------------

    async def certificate_profile(
        self, session: AsyncSession, endpoint: Endpoint
    ) -> CertificateProfile:
        ref = endpoint.settings.profile_id
        profile = await session.get(CertificateProfile, ref)
        if profile is None:
            profile = await session.scalar(
                select(CertificateProfile).where(CertificateProfile.name == ref)
            )
        if profile is None or not profile.enabled or profile.issuer_id is None:
            raise ServiceUnavailable(
                f"SCEP profile {endpoint.settings.label}: certificate profile {ref!r} is missing, "
                "disabled or names no issuer"
            )
        return profile

    async def ca_chain(self, endpoint: Endpoint) -> list[x509.Certificate]:
        """The issuing CA certificate first, then the rest of its chain."""
        async with self.runtime.sessions() as session:
            profile = await self.certificate_profile(session, endpoint)
            row = await session.get(ConnectorInstance, profile.issuer_id)
        if row is None or not row.enabled:
            raise ServiceUnavailable("the profile's issuer is missing or disabled")
        try:
            issuer = self.runtime.connectors.instance(row)
        except Exception:  # noqa: BLE001 - e.g. its plugin is not installed
            raise ServiceUnavailable("the profile's issuer cannot be loaded") from None
        if not isinstance(issuer, Issuer) or IssuerCapability.CA_CERTIFICATES not in (
            issuer.capabilities
        ):
            raise ServiceUnavailable("the profile's issuer does not publish its CA certificate")
        try:
            chain = await issuer.ca_certificates()
        except ConnectorError as exc:
            raise ServiceUnavailable(f"the CA chain is unavailable: {exc.message}") from None
        if not chain:
            raise ServiceUnavailable("the profile's issuer has no CA certificate")
        return [load_certificate(pem) for pem in chain]

    async def ca_certificates(self, endpoint: Endpoint) -> tuple[bytes, str]:
        """GetCACert: the CA alone when it is its own RA, else CA chain + RA as PKCS#7."""
        chain = await self.ca_chain(endpoint)
        ra = endpoint.ra.certificate
        if _der(chain[0]) == _der(ra) and len(chain) == 1:
            return _der(ra), "application/x-x509-ca-cert"
        certificates = [c for c in chain if _der(c) != _der(ra)] + [ra]
        return certrep.degenerate_certificates(certificates), "application/x-x509-ca-ra-cert"

    # --- PKIOperation --------------------------------------------------------------------------

    async def pki_operation(self, endpoint: Endpoint, message: bytes) -> bytes:
        """Answer one PKIMessage with a CertRep; :class:`cms.ScepMalformed` when none can be."""
        try:
            request = cms.parse_request(message)
        except cms.Rejected as exc:
            self._refused(endpoint, exc.request, exc.reason)
            return self._reply(endpoint, exc.request, PkiStatus.FAILURE, fail_info=exc.fail_info)
        try:
            return await self._handle(endpoint, request)
        except ScepFailure as exc:
            self._refused(endpoint, request, exc.reason)
            await self._audit_failure(endpoint, request, exc.reason)
            return self._reply(endpoint, request, PkiStatus.FAILURE, fail_info=exc.fail_info)

    def _refused(self, endpoint: Endpoint, request: cms.PkiRequest, reason: str) -> None:
        log.info(
            "SCEP %s: messageType %s transaction %s refused: %s",
            endpoint.settings.label,
            request.message_type,
            request.transaction_id,
            reason,
        )

    def _reply(
        self,
        endpoint: Endpoint,
        request: cms.PkiRequest,
        status: str,
        *,
        fail_info: str | None = None,
        issued: list[x509.Certificate] | None = None,
        cipher_oid: str | None = None,
    ) -> bytes:
        if cipher_oid is None:
            cipher_oid = cms.AES_256_CBC
        elif cipher_oid == cms.DES_CBC:
            cipher_oid = cms.DES_EDE3_CBC  # a single-DES client decrypts 3DES too
        try:
            return certrep.build_cert_rep(
                status=status,
                transaction_id=request.transaction_id,
                recipient_nonce=request.sender_nonce,
                recipient=request.signer,
                ra_certificate=endpoint.ra.certificate,
                ra_key=endpoint.ra.key,
                digest_oid=request.digest_oid,
                fail_info=fail_info,
                issued=issued,
                cipher_oid=cipher_oid,
            )
        except ScepFailure as exc:  # e.g. the certificate cannot be encrypted to the signer
            return certrep.build_cert_rep(
                status=PkiStatus.FAILURE,
                transaction_id=request.transaction_id,
                recipient_nonce=request.sender_nonce,
                recipient=request.signer,
                ra_certificate=endpoint.ra.certificate,
                ra_key=endpoint.ra.key,
                digest_oid=request.digest_oid,
                fail_info=exc.fail_info,
            )

    async def _handle(self, endpoint: Endpoint, request: cms.PkiRequest) -> bytes:
        kind = request.message_type
        if kind not in (MessageType.PKCS_REQ, MessageType.RENEWAL_REQ, MessageType.CERT_POLL):
            raise ScepFailure(FailInfo.BAD_REQUEST, f"messageType {kind} is not supported")
        plain, cipher_oid = cms.open_envelope(
            request.content,
            endpoint.ra.certificate,
            endpoint.ra.key,
            allow_single_des=self.settings.allow_single_des,
        )
        if not isinstance(request.signer.public_key(), rsa.RSAPublicKey):
            # The certificate travels encrypted to the signer: refuse before issuing anything.
            raise ScepFailure(FailInfo.BAD_ALG, "the signer certificate must have an RSA key")
        if kind == MessageType.CERT_POLL:
            return await self._poll(endpoint, request, cipher_oid)
        try:
            csr = x509.load_der_x509_csr(plain)
            valid = csr.is_signature_valid
        except (ValueError, UnsupportedAlgorithm):
            raise ScepFailure(
                FailInfo.BAD_REQUEST, "the envelope does not hold a PKCS#10 CSR"
            ) from None
        if not valid:
            raise ScepFailure(FailInfo.BAD_REQUEST, "the CSR signature does not verify")
        digest_input = plain + (_der(request.signer) if kind == MessageType.RENEWAL_REQ else b"")
        request_digest = _sha256(digest_input)
        async with self.runtime.sessions() as session:
            prior = await self._prior(session, endpoint, request, request_digest)
            if prior is not None:
                job_id = prior.job_id
            else:
                try:
                    job_id = await self._start(session, endpoint, request, csr, request_digest)
                except IntegrityError:  # the same request, sent twice at once: one job
                    await session.rollback()
                    prior = await self._prior(session, endpoint, request, request_digest)
                    if prior is None:
                        raise
                    job_id = prior.job_id
        outcome = await await_issuance(
            self.runtime.sessions, job_id, wait_seconds=self.settings.issuance_wait_seconds
        )
        return await self._answer(endpoint, request, outcome, cipher_oid)

    async def _prior(
        self,
        session: AsyncSession,
        endpoint: Endpoint,
        request: cms.PkiRequest,
        request_digest: str,
    ) -> ScepTransaction | None:
        """The transaction a resent request belongs to (same transactionID and CSR).

        One older than ``CERTCTL_SCEP_TRANSACTION_TTL`` is forgotten (deleted), so the same
        request starts a new enrolment.
        """
        prior = await session.scalar(
            select(ScepTransaction).where(
                ScepTransaction.scep_profile == endpoint.settings.name,
                ScepTransaction.transaction_id == request.transaction_id,
                ScepTransaction.request_digest == request_digest,
            )
        )
        since = utcnow() - timedelta(seconds=self.settings.transaction_ttl_seconds)
        if prior is not None and prior.created_at <= since:
            await session.delete(prior)
            await session.commit()
            return None
        return prior

    async def _renewed(
        self, session: AsyncSession, profile: CertificateProfile, signer: x509.Certificate
    ) -> ManagedCertificate:
        """The certctl certificate a RenewalReq is signed with: current, unrevoked, this profile."""
        pem = signer.public_bytes(serialization.Encoding.PEM).decode().strip()
        versions = await session.scalars(
            select(CertificateVersion).where(
                CertificateVersion.serial_number == format(signer.serial_number, "x")
            )
        )
        version = next((v for v in versions if v.certificate_pem.strip() == pem), None)
        cert = await session.get(ManagedCertificate, version.certificate_id) if version else None
        if version is None or cert is None or cert.profile_id != profile.id:
            raise ScepFailure(
                FailInfo.BAD_CERT_ID,
                "the RenewalReq is not signed by a certificate of this profile",
            )
        if cert.status == "revoked" or cert.current_version_id != version.id:
            raise ScepFailure(
                FailInfo.BAD_CERT_ID, "the signing certificate is revoked or superseded"
            )
        if signer.not_valid_after_utc <= utcnow():
            raise ScepFailure(FailInfo.BAD_TIME, "the signing certificate has expired")
        return cert

    async def _start(
        self,
        session: AsyncSession,
        endpoint: Endpoint,
        request: cms.PkiRequest,
        csr: x509.CertificateSigningRequest,
        request_digest: str,
    ) -> str:
        """Authenticate the request and add its issuance job; commits; returns the job id."""
        kind = request.message_type
        profile = await self.certificate_profile(session, endpoint)
        names = requested_names(csr)
        key_type = csr_key_type(csr)
        renewed: ManagedCertificate | None = None
        proof: ChallengeResult
        if kind == MessageType.RENEWAL_REQ:
            renewed = await self._renewed(session, profile, request.signer)
            if {n.lower() for n in names} != {n.lower() for n in renewed.sans} | {
                renewed.common_name.lower()
            }:
                raise ScepFailure(
                    FailInfo.BAD_REQUEST, "a renewal must ask for the names of the certificate"
                )
            proof = ChallengeResult("certificate")
        else:
            intune = self.intune if self.intune.enabled_for(endpoint.settings) else None
            proof = await check_challenge(
                session, endpoint.settings, csr, request.transaction_id, intune
            )
        action = REQUEST_TYPES[kind] + ("_intune" if proof.kind == "intune" else "")
        actor = Actor(name=f"scep:{endpoint.settings.name or 'legacy'}", type="ScepClient")
        transaction = ScepTransaction(
            id=new_id("sct"),
            scep_profile=endpoint.settings.name,
            transaction_id=request.transaction_id,
            message_type=kind,
            request_digest=request_digest,
            requester_key=_sha256(_spki(csr.public_key())),
            created_at=utcnow(),
        )
        try:
            cert, job = await create_from_csr(
                session,
                csr_pem=csr.public_bytes(serialization.Encoding.PEM).decode(),
                names=names,
                key_type=key_type,
                profile=profile,
                actor=actor,
                source="scep",
                idempotency_key=f"scep:{transaction.id}",
                default_validity_days=self.runtime.settings.default_validity_days,
                max_attempts=self.runtime.settings.job_max_attempts,
                approval_bypass=self.runtime.settings.approval_bypass,
            )
        except CertctlError as exc:
            await session.rollback()
            raise ScepFailure(
                FailInfo.BAD_REQUEST, f"refused by the profile: {exc.detail}"
            ) from None
        transaction.certificate_id = cert.id
        transaction.job_id = job.id
        session.add(transaction)
        record(
            session,
            actor,
            action,
            resource_type="certificate",
            resource_id=cert.id,
            category="cert_lifecycle",
            details={
                "scep_profile": endpoint.settings.name,
                "transaction_id": request.transaction_id,
                "names": names,
                "challenge": proof.kind,
                "device": proof.device,
                "renews": renewed.id if renewed else None,
                "job_id": job.id,
            },
        )
        await session.commit()
        self.runtime.worker.wake()
        return job.id

    async def _poll(self, endpoint: Endpoint, request: cms.PkiRequest, cipher_oid: str) -> bytes:
        """CertPoll / GetCertInitial: the transaction's state, for the key that started it."""
        async with self.runtime.sessions() as session:
            transaction = await session.scalar(
                select(ScepTransaction)
                .where(
                    ScepTransaction.scep_profile == endpoint.settings.name,
                    ScepTransaction.transaction_id == request.transaction_id,
                    ScepTransaction.requester_key == _sha256(_spki(request.signer.public_key())),
                )
                .order_by(ScepTransaction.created_at.desc())
                .limit(1)
            )
        if transaction is None:
            raise ScepFailure(FailInfo.BAD_CERT_ID, "no transaction with this transactionID")
        outcome = await await_issuance(self.runtime.sessions, transaction.job_id, wait_seconds=0)
        return await self._answer(endpoint, request, outcome, cipher_oid)

    async def _answer(
        self,
        endpoint: Endpoint,
        request: cms.PkiRequest,
        outcome: IssuanceOutcome,
        cipher_oid: str,
    ) -> bytes:
        if outcome.state in ("pending", "awaiting_approval"):
            return self._reply(endpoint, request, PkiStatus.PENDING)
        if outcome.state == "failed" or outcome.version is None:
            raise ScepFailure(FailInfo.BAD_REQUEST, f"issuance failed: {outcome.error}")
        # Only the leaf: clients take the CertRep's first certificate as theirs, and a DER
        # certificate SET has no order (the chain is GetCACert's).
        issued = [x509.load_pem_x509_certificate(outcome.version.certificate_pem.encode())]
        return self._reply(
            endpoint, request, PkiStatus.SUCCESS, issued=issued, cipher_oid=cipher_oid
        )

    async def _audit_failure(
        self, endpoint: Endpoint, request: cms.PkiRequest, reason: str
    ) -> None:
        action = REQUEST_TYPES.get(request.message_type)
        if action is None:
            return
        async with self.runtime.sessions() as session:
            record(
                session,
                Actor(name=f"scep:{endpoint.settings.name or 'legacy'}", type="ScepClient"),
                action,
                resource_type="scep_profile",
                resource_id=endpoint.settings.name or "legacy",
                outcome="failure",
                category="cert_lifecycle",
                details={"transaction_id": request.transaction_id, "reason": reason},
            )
            await session.commit()
