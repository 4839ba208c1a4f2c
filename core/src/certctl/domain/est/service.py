"""EST operations on top of the job engine: CA certificates, enrollment, re-enrollment, CSR
attributes and server-side key generation.

Issuance never happens in the request: the CSR becomes a certificate and an issuance job through
:func:`certctl.domain.certificates.service.create_from_csr` (policy, approvals, retries and audit
as for every issuance), and the request waits a bounded time for the job
(:func:`certctl.domain.certificates.waiting.await_issuance`). Issued → the certificate; still
working or awaiting approval → 202 + ``Retry-After`` (RFC 7030 §4.2.3).

The job's idempotency key is ``est:<label>:<sha256 of the CSR DER>``: a client that retries the
same CSR (after a 202, or after losing the answer) gets the same job, hence the same
certificate, and is not charged again by the rate limit. After a failed job the same CSR may
try again, a bounded number of times, under ``…:r<n>``.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import AttributeOID
from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError

from certctl.db.base import utcnow
from certctl.db.models import (
    CertificateProfile,
    CertificateRevocation,
    CertificateVersion,
    ConnectorInstance,
    Job,
    ManagedCertificate,
)
from certctl.domain.audit.service import record
from certctl.domain.auth.actor import Actor
from certctl.domain.certificates.service import create_from_csr
from certctl.domain.certificates.waiting import IssuanceOutcome, await_issuance
from certctl.domain.est import csr as csr_rules
from certctl.domain.est.auth import EstAuthenticator, Principal
from certctl.domain.est.settings import EstProfileSettings
from certctl.domain.est.wire import (
    CERTS_ONLY,
    PKCS8,
    SERVER_GENERATED_KEY,
    EstError,
    base64_part,
    certs_only,
    csr_attributes,
)
from certctl.errors import CertctlError, PolicyViolation
from certctl.lib.peer_tls import PeerTLS
from certctl.lib.ratelimit import Budget, bucket_key
from certctl_sdk import ConnectorError, Issuer, IssuerCapability
from certctl_sdk.models import KeyType
from certctl_sdk.pem import fingerprint_sha256, serial_hex

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from certctl.runtime import Runtime

__all__ = ["EnrollmentRequest", "EstService", "Operation"]

_log = logging.getLogger("certctl.est")

Operation = Literal["simpleenroll", "simplereenroll", "serverkeygen"]
MAX_ATTEMPTS_PER_CSR = 5
"""Jobs one CSR may start (the first and retries after failures)."""
_DAY = 86400.0


@dataclass(frozen=True, slots=True)
class EnrollmentRequest:
    """One enrollment as the controller parsed it."""

    profile: EstProfileSettings
    operation: Operation
    csr: x509.CertificateSigningRequest
    csr_der: bytes
    principal: Principal
    client_ip: str
    peer: PeerTLS | None
    via_mtls: bool


@dataclass(frozen=True, slots=True)
class _Current:
    """The certificate a re-enrollment renews."""

    certificate: ManagedCertificate
    version: CertificateVersion


def _actor(principal: Principal) -> Actor:
    return Actor(name=principal.name[:128], type="EstClient")


def _pending(outcome: IssuanceOutcome, retry_after: int) -> EstError:
    if outcome.state == "awaiting_approval":
        return EstError(
            202,
            "the enrollment awaits approval; send the same request again later",
            {"Retry-After": str(retry_after * 10)},
        )
    return EstError(
        202,
        "the certificate is being issued; send the same request again",
        {"Retry-After": str(retry_after)},
    )


def _certificate_of(outcome: IssuanceOutcome) -> x509.Certificate:
    assert outcome.version is not None
    return x509.load_pem_x509_certificate(outcome.version.certificate_pem.encode())


def _new_key(
    key_type: KeyType,
) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey:
    if key_type == KeyType.ED25519:
        return ed25519.Ed25519PrivateKey.generate()
    if key_type in (KeyType.ECDSA_P256, KeyType.ECDSA_P384):
        curve = ec.SECP256R1() if key_type == KeyType.ECDSA_P256 else ec.SECP384R1()
        return ec.generate_private_key(curve)
    bits = {KeyType.RSA_2048: 2048, KeyType.RSA_3072: 3072, KeyType.RSA_4096: 4096}[key_type]
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


class EstService:
    """The EST server of one process: its authenticator and the operations."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.settings = runtime.settings.est
        self.auth = EstAuthenticator(
            self.settings, hash_concurrency=runtime.settings.breakglass_hash_concurrency
        )

    # --- the profile and its CA -------------------------------------------------------------

    async def certificate_profile(
        self, session: AsyncSession, profile: EstProfileSettings
    ) -> CertificateProfile:
        """The certificate profile an EST label names (by id, else by name); 503 if unusable."""
        row = await session.scalar(
            select(CertificateProfile).where(
                or_(
                    CertificateProfile.id == profile.profile_id,
                    CertificateProfile.name == profile.profile_id,
                )
            )
        )
        if row is None or not row.enabled or row.issuer_id is None:
            _log.error(
                "EST profile %r: certificate profile %r is missing, disabled or has no issuer",
                profile.label,
                profile.profile_id,
            )
            raise EstError(503, "this EST profile is not ready (its certificate profile is not)")
        return row

    async def ca_certificates(self, profile: EstProfileSettings) -> list[x509.Certificate]:
        """The issuer's CA chain (issuing CA first), for ``cacerts``."""
        async with self.runtime.sessions() as session:
            row = await self.certificate_profile(session, profile)
            issuer_row = await session.get(ConnectorInstance, row.issuer_id)
        if issuer_row is None or issuer_row.family != "issuer" or not issuer_row.enabled:
            raise EstError(503, "the profile's issuer is missing or disabled")
        try:
            issuer = self.runtime.connectors.instance(issuer_row)
        except Exception:  # noqa: BLE001 - e.g. its plugin is not installed; logged
            _log.exception(
                "EST profile %r: issuer %s cannot be loaded", profile.label, row.issuer_id
            )
            raise EstError(503, "the profile's issuer cannot be loaded") from None
        if (
            not isinstance(issuer, Issuer)
            or IssuerCapability.CA_CERTIFICATES not in issuer.capabilities
        ):
            raise EstError(501, "the profile's issuer does not publish its CA certificates")
        try:
            chain = await issuer.ca_certificates()
        except ConnectorError as exc:
            raise EstError(503, f"the issuer's CA chain is unavailable: {exc.message}") from None
        if not chain:
            raise EstError(503, "the issuer has no CA certificate")
        return [x509.load_pem_x509_certificate(pem.encode()) for pem in chain]

    async def csr_attributes(self, profile: EstProfileSettings) -> bytes | None:
        """CsrAttrs for the profile (RFC 7030 §4.5), or None (204) when it asks for nothing."""
        async with self.runtime.sessions() as session:
            row = await self.certificate_profile(session, profile)
        oids: list[x509.ObjectIdentifier] = []
        attributes: list[tuple[x509.ObjectIdentifier, list[x509.ObjectIdentifier]]] = []
        if profile.channel_binding_required:
            oids.append(AttributeOID.CHALLENGE_PASSWORD)
        algorithms_allowed = {str(r.get("algorithm")) for r in row.allowed_key_algorithms or ()}
        if algorithms_allowed:
            if "RSA" in algorithms_allowed:
                oids.append(x509.ObjectIdentifier("1.2.840.113549.1.1.1"))
            if "ECDSA" in algorithms_allowed:
                minimum = min(
                    int(r.get("min_size", 0))
                    for r in row.allowed_key_algorithms
                    if r.get("algorithm") == "ECDSA"
                )
                curves = [x509.ObjectIdentifier("1.3.132.0.34")]  # secp384r1
                if minimum <= 256:
                    curves.insert(0, x509.ObjectIdentifier("1.2.840.10045.3.1.7"))  # P-256
                attributes.append((x509.ObjectIdentifier("1.2.840.10045.2.1"), curves))
            if "Ed25519" in algorithms_allowed:
                oids.append(x509.ObjectIdentifier("1.3.101.112"))
        if not oids and not attributes:
            return None
        return csr_attributes(oids, attributes)

    # --- enrollment -------------------------------------------------------------------------

    async def _current(
        self, session: AsyncSession, request: EnrollmentRequest, row: CertificateProfile
    ) -> tuple[_Current, x509.Certificate]:
        """The certificate a re-enrollment renews: the client's TLS certificate, certctl's own."""
        cert = request.principal.client_certificate
        if cert is None and request.peer is not None and request.peer.client_certificate:
            try:
                cert = x509.load_der_x509_certificate(request.peer.client_certificate)
            except ValueError:
                raise EstError(403, "the client certificate cannot be read") from None
        if cert is None:
            raise EstError(
                403,
                "simplereenroll needs the certificate being renewed as the TLS client certificate",
            )
        versions = await session.scalars(
            select(CertificateVersion).where(CertificateVersion.serial_number == serial_hex(cert))
        )
        fingerprint = fingerprint_sha256(cert)
        version = next((v for v in versions if v.fingerprint_sha256 == fingerprint), None)
        managed = await session.get(ManagedCertificate, version.certificate_id) if version else None
        if version is None or managed is None or managed.profile_id != row.id:
            raise EstError(403, "the client certificate was not issued by certctl for this profile")
        revoked = await session.scalar(
            select(CertificateRevocation.id).where(
                CertificateRevocation.issuer_id == managed.issuer_id,
                CertificateRevocation.serial_number == version.serial_number,
            )
        )
        if revoked is not None or managed.status == "revoked":
            raise EstError(403, "the client certificate is revoked")
        if cert.not_valid_after_utc <= datetime.now(UTC):
            raise EstError(403, "the client certificate has expired")
        mismatch = csr_rules.identity_mismatch(request.csr, cert)
        if mismatch:
            raise EstError(400, f"simplereenroll must keep the certificate's names: {mismatch}")
        return _Current(managed, version), cert

    async def _existing_job(self, session: AsyncSession, base_key: str) -> tuple[Job | None, str]:
        """The live job of this CSR, if any, and the key a new attempt would take."""
        for attempt in range(MAX_ATTEMPTS_PER_CSR):
            key = base_key if attempt == 0 else f"{base_key}:r{attempt}"
            job = await session.scalar(select(Job).where(Job.idempotency_key == key))
            if job is None:
                return None, key
            if job.status not in ("failed", "cancelled"):
                return job, key
        raise EstError(409, f"this CSR failed {MAX_ATTEMPTS_PER_CSR} times; generate a new request")

    async def _charge(self, request: EnrollmentRequest, names: list[str]) -> None:
        limit = request.profile.rate_limit_per_principal_24h
        if limit <= 0:
            return
        key = bucket_key("est", request.profile.label or "-", request.principal.name, names[0])
        wait = await self.runtime.rate_limits.limiter.take(key, Budget(limit / _DAY, limit))
        if wait > 0:
            raise EstError(
                429,
                f"this client has used its {limit} enrollments for 24 hours",
                {"Retry-After": str(max(1, int(wait) + 1))},
            )

    async def _start(
        self,
        request: EnrollmentRequest,
        *,
        csr_pem: str,
        csr_der: bytes,
        key_type: KeyType,
        names: list[str],
        idempotent: bool,
    ) -> tuple[str, _Current | None]:
        """Find or create the issuance job; returns its id and, for re-enrollment, the current."""
        settings = self.runtime.settings
        digest = hashlib.sha256(csr_der).hexdigest()
        base_key = f"est:{request.profile.label or '-'}:{digest}"
        for _ in range(2):  # a second round only after losing an insert race on the key
            async with self.runtime.sessions() as session:
                row = await self.certificate_profile(session, request.profile)
                current: _Current | None = None
                if request.operation == "simplereenroll":
                    current, _ = await self._current(session, request, row)
                if request.operation == "serverkeygen" and row.requires_approval:
                    raise EstError(
                        409,
                        "serverkeygen cannot wait for an approval (the generated key is never "
                        "stored); use simpleenroll with a key of your own",
                    )
                key = base_key
                if idempotent:
                    existing, key = await self._existing_job(session, base_key)
                    if existing is not None:
                        return existing.id, current
                if current is not None and current.certificate.status == "archived":
                    raise EstError(403, "this certificate was already renewed by simplereenroll")
                await self._charge(request, names)
                try:
                    cert, job = await create_from_csr(
                        session,
                        csr_pem=csr_pem,
                        names=names,
                        key_type=key_type,
                        profile=row,
                        actor=_actor(request.principal),
                        source="est",
                        idempotency_key=key,
                        default_validity_days=settings.default_validity_days,
                        max_attempts=settings.job_max_attempts,
                        approval_bypass=settings.approval_bypass,
                    )
                except PolicyViolation as exc:
                    raise EstError(403, f"the profile's policy refuses it: {exc.detail}") from None
                except CertctlError as exc:
                    raise EstError(exc.status if exc.status < 500 else 503, exc.detail) from None
                record(
                    session,
                    _actor(request.principal),
                    f"est.{request.operation}",
                    resource_type="certificate",
                    resource_id=cert.id,
                    category="cert_lifecycle",
                    details={
                        "label": request.profile.label,
                        "profile_id": row.id,
                        "principal": request.principal.name,
                        "auth": request.principal.method,
                        "mtls_route": request.via_mtls,
                        "client_ip": request.client_ip,
                        "names": names,
                        "csr_sha256": digest,
                        "job_id": job.id,
                        "replaces_certificate": current.certificate.id if current else None,
                    },
                )
                try:
                    await session.commit()
                except IntegrityError:
                    await session.rollback()
                    continue  # the same CSR is being enrolled by a concurrent request
                self.runtime.worker.wake()
                return job.id, current
        raise EstError(503, "the enrollment could not be stored; send it again")

    async def _supersede(
        self, current: _Current, new: IssuanceOutcome, principal: Principal
    ) -> None:
        """A re-enrollment was issued: the renewed certificate leaves the inventory (archived)."""
        assert new.version is not None
        async with self.runtime.sessions() as session:
            done = await session.execute(
                update(ManagedCertificate)
                .where(
                    ManagedCertificate.id == current.certificate.id,
                    ManagedCertificate.status.notin_(("archived", "revoked")),
                )
                .values(status="archived", renew_at=None, replace_by=None, updated_at=utcnow())
            )
            if done.rowcount != 1:  # type: ignore[attr-defined]
                return  # an earlier answer to the same request did it
            record(
                session,
                _actor(principal),
                "est.simplereenroll.supersede",
                resource_type="certificate",
                resource_id=current.certificate.id,
                category="cert_lifecycle",
                details={
                    "replaced_by": new.version.certificate_id,
                    "serial_number": current.version.serial_number,
                },
            )
            await session.commit()

    async def enroll(self, request: EnrollmentRequest) -> x509.Certificate:
        """simpleenroll / simplereenroll: the issued certificate, or EstError (202 included)."""
        names = csr_rules.requested_names(request.csr)
        key_type = csr_rules.key_type_of(request.csr.public_key())
        if request.via_mtls:
            csr_rules.check_channel_binding(
                request.csr, request.peer, required=request.profile.channel_binding_required
            )
        pem = request.csr.public_bytes(serialization.Encoding.PEM).decode()
        job_id, current = await self._start(
            request,
            csr_pem=pem,
            csr_der=request.csr_der,
            key_type=key_type,
            names=names,
            idempotent=True,
        )
        outcome = await await_issuance(
            self.runtime.sessions, job_id, wait_seconds=self.settings.issuance_wait_seconds
        )
        if outcome.state == "failed":
            raise EstError(502, f"the issuer did not sign: {outcome.error}"[:500])
        if outcome.state != "issued":
            raise _pending(outcome, self.settings.retry_after_seconds)
        if current is not None:
            await self._supersede(current, outcome, request.principal)
        return _certificate_of(outcome)

    # --- server-side key generation ---------------------------------------------------------

    def _recipient(self, request: EnrollmentRequest, key_id: bytes) -> x509.Certificate:
        """The certificate whose RSA key the generated key is encrypted to (RFC 7030 §4.4.1.2).

        The identifier names the client's key-transport key; certctl knows the client's TLS
        certificate, so that is the one it can encrypt to, when the identifier is its key id.
        """
        cert = request.principal.client_certificate
        if cert is None and request.peer is not None and request.peer.client_certificate:
            cert = x509.load_der_x509_certificate(request.peer.client_certificate)
        if cert is None:
            raise EstError(
                400,
                "AsymmetricDecryptKeyIdentifier names a key certctl does not know: present its "
                "certificate as the TLS client certificate",
            )
        try:
            ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
        except x509.ExtensionNotFound:
            ski = x509.SubjectKeyIdentifier.from_public_key(cert.public_key()).digest
        if key_id != ski:
            raise EstError(
                400,
                "AsymmetricDecryptKeyIdentifier is not the key identifier of the client "
                "certificate",
            )
        if not isinstance(cert.public_key(), rsa.RSAPublicKey):
            raise EstError(400, "key transport to the client certificate needs an RSA key")
        return cert

    async def serverkeygen(self, request: EnrollmentRequest) -> list[tuple[str, bytes]]:
        """A new key and its certificate, as the two parts of RFC 7030 §4.4.2."""
        if not request.profile.serverkeygen_enabled:
            raise EstError(404, "server-side key generation is not enabled for this profile")
        names = csr_rules.requested_names(request.csr)
        key_type = csr_rules.key_type_of(request.csr.public_key())
        if request.via_mtls:
            csr_rules.check_channel_binding(
                request.csr, request.peer, required=request.profile.channel_binding_required
            )
        symmetric, asymmetric = csr_rules.decrypt_key_identifiers(request.csr)
        if symmetric is not None:
            raise EstError(
                400,
                "DecryptKeyIdentifier (a shared symmetric key) is not supported; use "
                "AsymmetricDecryptKeyIdentifier or no key encryption over TLS",
            )
        recipient = self._recipient(request, asymmetric) if asymmetric is not None else None
        key = _new_key(key_type)
        try:
            # The CSR the issuer signs is the client's request re-signed with the new key.
            builder = x509.CertificateSigningRequestBuilder().subject_name(request.csr.subject)
            for extension in request.csr.extensions:
                builder = builder.add_extension(extension.value, critical=extension.critical)
        except ValueError as exc:
            raise EstError(400, f"the CSR's extensions cannot be read: {exc}") from None
        algorithm = None if key_type == KeyType.ED25519 else hashes.SHA256()
        signed = builder.sign(key, algorithm)
        job_id, _ = await self._start(
            request,
            csr_pem=signed.public_bytes(serialization.Encoding.PEM).decode(),
            csr_der=signed.public_bytes(serialization.Encoding.DER),
            key_type=key_type,
            names=names,
            idempotent=False,
        )
        wait = self.settings.issuance_wait_seconds
        outcome = await await_issuance(self.runtime.sessions, job_id, wait_seconds=wait)
        if outcome.state == "pending" and not await self._cancel(job_id):
            outcome = await await_issuance(self.runtime.sessions, job_id, wait_seconds=wait)
        if outcome.state == "failed":
            raise EstError(502, f"the issuer did not sign: {outcome.error}"[:500])
        if outcome.state != "issued":
            raise EstError(
                503,
                "the issuer did not sign in time; the generated key was discarded, send the "
                "request again",
                {"Retry-After": str(self.settings.retry_after_seconds)},
            )
        pkcs8 = key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        del key  # the only reference: nothing keeps the key once the answer is built
        if recipient is None:
            key_part = (PKCS8, base64_part(pkcs8))
        else:
            enveloped = (
                pkcs7.PKCS7EnvelopeBuilder()
                .set_data(pkcs8)
                .add_recipient(recipient)
                .set_content_encryption_algorithm(algorithms.AES256)
                .encrypt(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary])
            )
            key_part = (SERVER_GENERATED_KEY, base64_part(enveloped))
        return [key_part, (CERTS_ONLY, certs_only([_certificate_of(outcome)]))]

    async def _cancel(self, job_id: str) -> bool:
        """Cancel a job that has not started (and archive its certificate, which will never have
        a key); False when it is already running or done."""
        async with self.runtime.sessions() as session:
            done = await session.execute(
                update(Job)
                .where(Job.id == job_id, Job.status == "pending")
                .values(
                    status="cancelled", completed_at=utcnow(), last_error="serverkeygen timed out"
                )
            )
            if done.rowcount == 1:  # type: ignore[attr-defined]
                certificate_id = await session.scalar(
                    select(Job.certificate_id).where(Job.id == job_id)
                )
                await session.execute(
                    update(ManagedCertificate)
                    .where(ManagedCertificate.id == certificate_id)
                    .values(status="archived", updated_at=utcnow())
                )
            await session.commit()
        return bool(done.rowcount == 1)  # type: ignore[attr-defined]
