"""Managed certificates: requests from the API that become jobs, and their read models."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Select, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from certctl.db.base import new_id, utcnow
from certctl.db.models import (
    CertificateProfile,
    CertificateTarget,
    ConnectorInstance,
    Job,
    ManagedCertificate,
)
from certctl.domain.approvals import service as approvals
from certctl.domain.audit.service import record
from certctl.domain.auth.actor import Actor
from certctl.domain.certificates.schemas import (
    CertificateCreate,
    CertificateOut,
    CertificateUpdate,
    JobOut,
)
from certctl.domain.compliance.service import evaluate_certificates
from certctl.domain.jobs import service as jobs
from certctl.domain.policy import IssuancePolicyInput, check_issuance
from certctl.domain.renewal_policies.service import check_policy_ids
from certctl.errors import BadRequest, CertctlError, Conflict, NotFound
from certctl.lib.names import classify_sans
from certctl_sdk.models import ExtendedKeyUsage, KeyType

__all__ = [
    "CertificateFilter",
    "create_certificates",
    "create_from_csr",
    "get_certificate",
    "job_out",
    "request_deployment",
    "request_renewal",
    "to_out",
    "update_certificate",
]

_KNOWN_EKUS = {e.value for e in ExtendedKeyUsage}


def to_out(cert: ManagedCertificate, target_ids: list[str]) -> CertificateOut:
    """The API form of a certificate."""
    return CertificateOut(
        id=cert.id,
        name=cert.name,
        common_name=cert.common_name,
        sans=list(cert.sans),
        key_type=cert.key_type,
        ekus=list(cert.ekus),
        issuer_id=cert.issuer_id,
        profile_id=cert.profile_id,
        renewal_policy_id=cert.renewal_policy_id,
        target_ids=target_ids,
        status=cert.status,
        serial_number=cert.serial_number,
        fingerprint_sha256=cert.fingerprint_sha256,
        expires_at=cert.expires_at,
        renew_at=cert.renew_at,
        last_renewal_at=cert.last_renewal_at,
        last_deployment_at=cert.last_deployment_at,
        last_error=cert.last_error,
        environment=cert.environment,
        tags=dict(cert.tags),
        source=cert.source,
        key_location=cert.key_location,
        replace_by=cert.replace_by,
        created_at=cert.created_at,
        updated_at=cert.updated_at,
    )


def job_out(job: Job) -> JobOut:
    """The API form of a job."""
    return JobOut(
        id=job.id,
        type=job.type,
        status=job.status,
        certificate_id=job.certificate_id,
        target_id=job.target_id,
        version_id=job.version_id,
        attempts=job.attempts,
        max_attempts=job.max_attempts,
        last_error=job.last_error,
        next_run_at=job.next_run_at,
        requested_by=job.requested_by,
        result={k: v for k, v in job.result.items() if not k.startswith("_")},
        created_at=job.created_at,
        started_at=job.started_at,
        completed_at=job.completed_at,
    )


async def target_ids_of(session: AsyncSession, certificate_id: str) -> list[str]:
    """Targets mapped to a certificate, sorted."""
    rows = await session.scalars(
        select(CertificateTarget.target_id)
        .where(CertificateTarget.certificate_id == certificate_id)
        .order_by(CertificateTarget.target_id)
    )
    return list(rows)


async def get_certificate(session: AsyncSession, certificate_id: str) -> ManagedCertificate:
    """A certificate or NotFound."""
    cert = await session.get(ManagedCertificate, certificate_id)
    if cert is None:
        raise NotFound(f"certificate {certificate_id!r} not found")
    return cert


async def _check_targets(session: AsyncSession, target_ids: list[str]) -> list[str]:
    unique = sorted(set(target_ids))
    if not unique:
        return []
    found = set(
        await session.scalars(
            select(ConnectorInstance.id).where(
                ConnectorInstance.id.in_(unique), ConnectorInstance.family == "target"
            )
        )
    )
    missing = [t for t in unique if t not in found]
    if missing:
        raise BadRequest(f"unknown target ids: {missing}")
    return unique


async def _set_targets(session: AsyncSession, certificate_id: str, target_ids: list[str]) -> None:
    await session.execute(
        delete(CertificateTarget).where(CertificateTarget.certificate_id == certificate_id)
    )
    session.add_all(
        CertificateTarget(certificate_id=certificate_id, target_id=t) for t in target_ids
    )


class _Referenced:
    """Issuers, profiles and targets named by a batch of requests, read in one query each."""

    def __init__(
        self,
        issuers: dict[str, ConnectorInstance],
        profiles: dict[str, CertificateProfile],
        targets: set[str],
    ) -> None:
        self.issuers = issuers
        self.profiles = profiles
        self.targets = targets

    @classmethod
    async def load(cls, session: AsyncSession, items: Sequence[CertificateCreate]) -> _Referenced:
        issuer_ids = {i.issuer_id for i in items}
        profile_ids = {i.profile_id for i in items if i.profile_id}
        target_ids = {t for i in items for t in i.target_ids}
        issuers = {
            row.id: row
            for row in await session.scalars(
                select(ConnectorInstance).where(
                    ConnectorInstance.id.in_(issuer_ids), ConnectorInstance.family == "issuer"
                )
            )
        }
        profiles = (
            {
                row.id: row
                for row in await session.scalars(
                    select(CertificateProfile).where(CertificateProfile.id.in_(profile_ids))
                )
            }
            if profile_ids
            else {}
        )
        targets = (
            set(
                await session.scalars(
                    select(ConnectorInstance.id).where(
                        ConnectorInstance.id.in_(target_ids), ConnectorInstance.family == "target"
                    )
                )
            )
            if target_ids
            else set()
        )
        return cls(issuers, profiles, targets)


def _prepare(
    refs: _Referenced,
    data: CertificateCreate,
    actor: Actor,
    *,
    default_validity_days: int,
    max_attempts: int,
    approval_bypass: bool,
) -> tuple[ManagedCertificate, Job, list[str]]:
    """Validate one request and apply policy; build, but do not add, its rows.

    Under an approval-tier profile the issuance job starts ``awaiting_approval``.
    """
    issuer = refs.issuers.get(data.issuer_id)
    if issuer is None:
        raise BadRequest(f"unknown issuer_id {data.issuer_id!r}")
    if not issuer.enabled:
        raise BadRequest(f"issuer {issuer.name!r} is disabled")
    profile = None
    if data.profile_id is not None:
        profile = refs.profiles.get(data.profile_id)
        if profile is None:
            raise BadRequest(f"unknown profile_id {data.profile_id!r}")
    names = list(data.sans)
    if data.common_name not in names:
        names.insert(0, data.common_name)
    sans = classify_sans(names)
    ekus = (
        tuple(data.ekus)
        if data.ekus is not None
        else tuple(profile.allowed_ekus[:1] if profile and profile.allowed_ekus else ["serverAuth"])
    )
    unknown = sorted(set(ekus) - _KNOWN_EKUS)
    if unknown:
        raise BadRequest(f"unknown extended key usages: {unknown}")
    if data.validity_days is not None:
        validity = data.validity_days * 86400
    elif profile is not None and profile.max_ttl_seconds:
        validity = profile.max_ttl_seconds
    else:
        validity = default_validity_days * 86400
    check_issuance(
        profile,
        IssuancePolicyInput(
            key_type=KeyType(data.key_type), sans=sans, validity_seconds=validity, ekus=ekus
        ),
    )
    target_ids = sorted(set(data.target_ids))
    missing = [t for t in target_ids if t not in refs.targets]
    if missing:
        raise BadRequest(f"unknown target ids: {missing}")
    now = utcnow()
    cert = ManagedCertificate(
        id=new_id("mc"),
        name=data.name or data.common_name,
        common_name=data.common_name,
        sans=list(sans.all()),
        key_type=str(data.key_type),
        ekus=list(ekus),
        validity_seconds=validity,
        renew_before_days=data.renew_before_days,
        issuer_id=issuer.id,
        profile_id=profile.id if profile else None,
        renewal_policy_id=data.renewal_policy_id,
        environment=data.environment,
        tags=dict(data.tags),
        status="pending",
        source="api",
        created_by=actor.name,
        created_at=now,
        updated_at=now,
    )
    # The job's key embeds the new certificate's id, so it cannot exist yet: no upsert needed.
    job = Job(
        **jobs.job_values(
            type="issuance",
            idempotency_key=f"issue:{cert.id}",
            certificate_id=cert.id,
            requested_by=actor.name,
            max_attempts=max_attempts,
            now=now,
            status=approvals.job_status_for(profile, bypass=approval_bypass),
        )
    )
    return cert, job, target_ids


async def create_certificates(
    session: AsyncSession,
    items: Sequence[CertificateCreate],
    actor: Actor,
    *,
    default_validity_days: int,
    max_attempts: int,
    approval_bypass: bool = False,
) -> list[tuple[ManagedCertificate, Job, list[str]]]:
    """Validate every request, then store all certificates and their issuance jobs.

    All or nothing: the first invalid request raises (naming its index when there are several)
    before anything is added; the caller commits. Jobs under approval-tier profiles get their
    approval requests in the same transaction, and every new certificate is evaluated against
    the compliance rules (reported, never refused).
    """
    refs = await _Referenced.load(session, items)
    await check_policy_ids(session, {i.renewal_policy_id for i in items if i.renewal_policy_id})
    prepared = []
    for index, data in enumerate(items):
        try:
            prepared.append(
                _prepare(
                    refs,
                    data,
                    actor,
                    default_validity_days=default_validity_days,
                    max_attempts=max_attempts,
                    approval_bypass=approval_bypass,
                )
            )
        except CertctlError as exc:
            if len(items) == 1:
                raise
            raise type(exc)(f"certificates[{index}]: {exc.detail}", **exc.extra) from None
    session.add_all(cert for cert, _, _ in prepared)
    await session.flush()  # rows below reference them, and no ORM relationship orders the inserts
    for cert, job, target_ids in prepared:
        session.add_all(CertificateTarget(certificate_id=cert.id, target_id=t) for t in target_ids)
        session.add(job)
        record(
            session,
            actor,
            "certificate.create",
            resource_type="certificate",
            resource_id=cert.id,
            category="cert_lifecycle",
            details={
                "common_name": cert.common_name,
                "issuer_id": cert.issuer_id,
                "job_id": job.id,
            },
        )
    gated = [
        (job, "cert_issuance", cert.profile_id)
        for cert, job, _ in prepared
        if cert.profile_id and refs.profiles[cert.profile_id].requires_approval
    ]
    if gated:
        await session.flush()  # the approval requests reference the jobs
        await approvals.open_for_jobs(session, gated, actor, bypass=approval_bypass)
    await evaluate_certificates(session, [cert for cert, _, _ in prepared], actor)
    return prepared


async def create_from_csr(
    session: AsyncSession,
    *,
    csr_pem: str,
    names: Sequence[str],
    key_type: KeyType,
    profile: CertificateProfile,
    actor: Actor,
    source: str,
    idempotency_key: str,
    default_validity_days: int,
    max_attempts: int,
    validity_seconds: int | None = None,
    approval_bypass: bool = False,
) -> tuple[ManagedCertificate, Job]:
    """A certificate whose key stays with its client: sign ``csr_pem`` through the job engine.

    For the protocol servers (ACME now; EST, SCEP and the agent later). The caller has checked
    that the CSR is well formed, self-signed and names exactly ``names``; here the profile's
    policy is applied and the certificate (``key_location = client``: never renewed or deployed
    by certctl) and its issuance job are added, under approval when the profile requires it.
    The job carries the CSR itself, so the worker sends it unchanged; the caller commits.
    """
    if profile.issuer_id is None:
        raise Conflict(f"profile {profile.name!r} names no issuer")
    issuer = await session.get(ConnectorInstance, profile.issuer_id)
    if issuer is None or issuer.family != "issuer" or not issuer.enabled:
        raise Conflict(f"the issuer of profile {profile.name!r} is missing or disabled")
    sans = classify_sans(list(names))
    if validity_seconds is None:
        validity_seconds = profile.max_ttl_seconds or default_validity_days * 86400
    ekus = tuple(profile.allowed_ekus[:1] or ["serverAuth"])
    check_issuance(
        profile,
        IssuancePolicyInput(
            key_type=key_type, sans=sans, validity_seconds=validity_seconds, ekus=ekus
        ),
    )
    now = utcnow()
    cert = ManagedCertificate(
        id=new_id("mc"),
        name=names[0],
        common_name=names[0],
        sans=list(sans.all()),
        key_type=str(key_type),
        ekus=list(ekus),
        validity_seconds=validity_seconds,
        issuer_id=issuer.id,
        profile_id=profile.id,
        environment="",
        tags={},
        status="pending",
        source=source,
        key_location="client",
        created_by=actor.name,
        created_at=now,
        updated_at=now,
    )
    job = Job(
        **jobs.job_values(
            type="issuance",
            idempotency_key=idempotency_key,
            certificate_id=cert.id,
            requested_by=actor.name,
            max_attempts=max_attempts,
            now=now,
            status=approvals.job_status_for(profile, bypass=approval_bypass),
        )
    )
    job.result = {"csr_pem": csr_pem, "external_key": True, "requested_at": now.isoformat()}
    session.add(cert)
    await session.flush()
    session.add(job)
    record(
        session,
        actor,
        "certificate.create",
        resource_type="certificate",
        resource_id=cert.id,
        category="cert_lifecycle",
        details={
            "common_name": cert.common_name,
            "sans": cert.sans,
            "issuer_id": cert.issuer_id,
            "profile_id": profile.id,
            "source": source,
            "job_id": job.id,
        },
    )
    if profile.requires_approval:
        await session.flush()
        await approvals.open_for_jobs(
            session, [(job, "cert_issuance", profile.id)], actor, bypass=approval_bypass
        )
    await evaluate_certificates(session, [cert], actor)
    return cert, job


async def update_certificate(
    session: AsyncSession, cert: ManagedCertificate, data: CertificateUpdate, actor: Actor
) -> list[str]:
    """Apply an edit (caller commits); returns the target ids now mapped."""
    if cert.status == "archived":
        raise Conflict("archived certificates cannot be edited")
    changed: list[str] = []
    if data.name is not None:
        cert.name = data.name
        changed.append("name")
    if data.environment is not None:
        cert.environment = data.environment
        changed.append("environment")
    if data.tags is not None:
        cert.tags = dict(data.tags)
        changed.append("tags")
    if data.renew_before_days is not None:
        cert.renew_before_days = data.renew_before_days
        changed.append("renew_before_days")
    if data.renewal_policy_id is not None:
        await check_policy_ids(session, {data.renewal_policy_id})
        cert.renewal_policy_id = data.renewal_policy_id or None
        changed.append("renewal_policy_id")
    if data.target_ids is not None:
        if data.target_ids and cert.key_location == "client":
            raise Conflict("certctl does not hold this certificate's key, so it cannot deploy it")
        await _set_targets(session, cert.id, await _check_targets(session, data.target_ids))
        changed.append("target_ids")
    cert.updated_at = utcnow()
    record(
        session,
        actor,
        "certificate.update",
        resource_type="certificate",
        resource_id=cert.id,
        category="cert_lifecycle",
        details={"fields": changed},
    )
    await evaluate_certificates(session, [cert], actor)
    return await target_ids_of(session, cert.id)


async def open_issuance_job(session: AsyncSession, certificate_id: str) -> Job | None:
    """An issuance or renewal job of the certificate that has not finished, if any."""
    return await session.scalar(
        select(Job).where(
            Job.certificate_id == certificate_id,
            Job.type.in_(("issuance", "renewal")),
            Job.status.in_(jobs.OPEN_STATUSES),
        )
    )


async def request_renewal(
    session: AsyncSession,
    cert: ManagedCertificate,
    actor: Actor,
    *,
    max_attempts: int,
    forced: bool,
    approval_bypass: bool = False,
) -> Job:
    """Enqueue a renewal; an already open issuance/renewal job is returned instead.

    Automatic renewals are keyed by the version they replace, so a version is renewed once no
    matter how many replicas or scans notice it; forced renewals always get a new job. Under an
    approval-tier profile the job waits (``awaiting_approval``) for a second person; a rejected
    or expired automatic renewal is therefore not requested again for the same version.
    """
    if cert.status in ("archived", "revoked"):
        raise Conflict(f"{cert.status} certificates cannot be renewed")
    if cert.key_location == "client":
        raise Conflict(
            "the certificate's key is held by its client (ACME, agent): it renews itself"
        )
    existing = await open_issuance_job(session, cert.id)
    if existing is not None:
        return existing
    key = (
        f"renew:{cert.id}:{cert.current_version_id}:{new_id('r')}"
        if forced
        else f"renew:{cert.id}:{cert.current_version_id}"
    )
    if not forced:
        prior = await session.scalar(select(Job).where(Job.idempotency_key == key))
        if prior is not None:
            return prior  # this version's automatic renewal already ran (or failed for good)
    profile = await session.get(CertificateProfile, cert.profile_id) if cert.profile_id else None
    job = await jobs.enqueue(
        session,
        type="renewal" if cert.current_version_id else "issuance",
        idempotency_key=key,
        certificate_id=cert.id,
        requested_by=actor.name,
        max_attempts=max_attempts,
        status=approvals.job_status_for(profile, bypass=approval_bypass),
    )
    if profile is not None and profile.requires_approval:
        kind = "cert_renewal" if cert.current_version_id else "cert_issuance"
        await approvals.open_for_jobs(
            session, [(job, kind, profile.id)], actor, bypass=approval_bypass
        )
    record(
        session,
        actor,
        "certificate.renew.request",
        resource_type="certificate",
        resource_id=cert.id,
        category="cert_lifecycle",
        details={"job_id": job.id, "forced": forced},
    )
    return job


async def request_deployment(
    session: AsyncSession,
    cert: ManagedCertificate,
    actor: Actor,
    *,
    target_ids: list[str] | None,
    max_attempts: int,
) -> list[Job]:
    """Enqueue one deployment job per target for the current version."""
    if cert.status in ("archived", "revoked"):
        raise Conflict(f"{cert.status} certificates cannot be deployed")
    if cert.current_version_id is None:
        raise Conflict("the certificate has not been issued yet")
    mapped = await target_ids_of(session, cert.id)
    chosen = mapped if target_ids is None else sorted(set(target_ids))
    unknown = [t for t in chosen if t not in mapped]
    if unknown:
        raise BadRequest(f"targets {unknown} are not mapped to this certificate")
    if not chosen:
        raise BadRequest("the certificate has no targets to deploy to")
    request_id = new_id("d")
    created = [
        await jobs.enqueue(
            session,
            type="deployment",
            idempotency_key=f"deploy:{cert.current_version_id}:{target}:{request_id}",
            certificate_id=cert.id,
            target_id=target,
            version_id=cert.current_version_id,
            requested_by=actor.name,
            max_attempts=max_attempts,
        )
        for target in chosen
    ]
    record(
        session,
        actor,
        "certificate.deploy.request",
        resource_type="certificate",
        resource_id=cert.id,
        category="cert_lifecycle",
        details={"jobs": [j.id for j in created]},
    )
    return created


class CertificateFilter:
    """Filters of ``GET /api/v1/certificates``."""

    __slots__ = ("expires_after", "expires_before", "issuer_id", "profile_id", "status")

    def __init__(
        self,
        *,
        status: str | None = None,
        issuer_id: str | None = None,
        profile_id: str | None = None,
        expires_before: datetime | None = None,
        expires_after: datetime | None = None,
    ) -> None:
        self.status = status
        self.issuer_id = issuer_id
        self.profile_id = profile_id
        for value in (expires_before, expires_after):
            if value is not None and value.tzinfo is None:
                raise BadRequest(
                    "expires_before/expires_after need a UTC offset, e.g. 2030-01-01T00:00:00Z"
                )
        self.expires_before = expires_before
        self.expires_after = expires_after

    def apply(self, query: Select[ManagedCertificate]) -> Select[ManagedCertificate]:
        """Narrow ``query``; archived certificates show only when asked for by status."""
        if self.status is not None:
            query = query.where(ManagedCertificate.status == self.status)
        else:
            query = query.where(ManagedCertificate.status != "archived")
        if self.issuer_id is not None:
            query = query.where(ManagedCertificate.issuer_id == self.issuer_id)
        if self.profile_id is not None:
            query = query.where(ManagedCertificate.profile_id == self.profile_id)
        if self.expires_before is not None:
            query = query.where(ManagedCertificate.expires_at < self.expires_before)
        if self.expires_after is not None:
            query = query.where(ManagedCertificate.expires_at > self.expires_after)
        return query


async def list_certificates(
    session: AsyncSession, filters: CertificateFilter, *, offset: int, limit: int
) -> tuple[list[CertificateOut], int]:
    """A page of certificates (newest first) with their target ids, in two queries."""
    query = filters.apply(select(ManagedCertificate))
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    certs = list(
        await session.scalars(
            query.order_by(ManagedCertificate.created_at.desc(), ManagedCertificate.id.desc())
            .offset(offset)
            .limit(limit)
        )
    )
    mapping: dict[str, list[str]] = {c.id: [] for c in certs}
    if certs:
        rows = await session.execute(
            select(CertificateTarget.certificate_id, CertificateTarget.target_id).where(
                CertificateTarget.certificate_id.in_(list(mapping))
            )
        )
        for cert_id, target_id in rows:
            mapping[cert_id].append(target_id)
    return [to_out(c, sorted(mapping[c.id])) for c in certs], int(total or 0)
