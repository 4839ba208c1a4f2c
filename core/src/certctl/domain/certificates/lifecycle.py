"""What workers do with issuance, renewal and deployment jobs.

Each handler reads what it needs, performs the connector call outside any transaction, then
writes every result *and* the job's completion in one transaction guarded by the job's lease
(``jobs.finish``). A handler raising leaves the database untouched; the runner decides between
retry and failure from the exception's class.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, update

from certctl.db.base import new_id, utcnow
from certctl.db.models import (
    CertificateProfile,
    CertificateTarget,
    CertificateVersion,
    ConnectorInstance,
    Deployment,
    Job,
    ManagedCertificate,
)
from certctl.domain.audit.service import record
from certctl.domain.auth.actor import SYSTEM, Actor
from certctl.domain.jobs import service as jobs
from certctl.domain.policy import IssuancePolicyInput, check_issuance
from certctl.errors import PolicyViolation
from certctl.lib.keys import build_csr, generate_key, private_key_pem
from certctl.lib.names import classify_sans
from certctl_sdk import (
    DeployRequest,
    EventType,
    Issuer,
    IssueRequest,
    LifecycleEvent,
    PendingIssuance,
    Secret,
    Target,
)
from certctl_sdk.errors import ConfigurationError, RejectedError
from certctl_sdk.models import KeyType
from certctl_sdk.pem import bundle_from_pem

if TYPE_CHECKING:
    from certctl.runtime import Runtime

__all__ = ["JobLost", "execute_deployment", "execute_issuance", "key_context", "renew_at_for"]


class JobLost(Exception):
    """Another worker reclaimed the job; this worker's results were discarded."""


def key_context(version_id: str) -> str:
    """Encryption context binding a private key to its version row."""
    return f"certificate-key:{version_id}"


def renew_at_for(
    cert: ManagedCertificate, profile: CertificateProfile | None, not_before: Any, not_after: Any
) -> Any:
    """When to renew: N days before expiry if configured, else at two thirds of the lifetime."""
    days = cert.renew_before_days or (profile.renew_before_days if profile else None)
    lifetime = not_after - not_before
    if days:
        return max(not_before + lifetime / 2, not_after - timedelta(days=days))
    return not_before + lifetime * 2 / 3


def _actor(job: Job) -> Actor:
    return (
        SYSTEM
        if job.requested_by == "system"
        else Actor(name=job.requested_by, type="APIKey", role="admin")
    )


async def execute_issuance(runtime: Runtime, job: Job, worker_id: str) -> LifecycleEvent | None:
    """Issue (or renew) the job's certificate through its issuer."""
    async with runtime.sessions() as session:
        cert = await session.get(ManagedCertificate, job.certificate_id)
        if cert is None or cert.status == "archived":
            await jobs.finish(
                session,
                job,
                worker_id=worker_id,
                status="cancelled",
                result={"reason": "certificate archived or deleted"},
            )
            await session.commit()
            return None
        profile = (
            await session.get(CertificateProfile, cert.profile_id) if cert.profile_id else None
        )
        issuer_row = await session.get(ConnectorInstance, cert.issuer_id)
    if issuer_row is None or not issuer_row.enabled:
        raise ConfigurationError("the certificate's issuer is missing or disabled")
    issuer = runtime.connectors.instance(issuer_row)
    assert isinstance(issuer, Issuer)

    key_type = KeyType(cert.key_type)
    sans = classify_sans(cert.sans)
    try:
        check_issuance(
            profile,
            IssuancePolicyInput(
                key_type=key_type,
                sans=sans,
                validity_seconds=cert.validity_seconds,
                ekus=tuple(cert.ekus),
            ),
        )
    except PolicyViolation as exc:
        raise RejectedError(f"policy: {exc.detail}") from None

    order_id = job.result.get("order_id")
    key_pem: str | None = None
    if order_id:
        outcome = await issuer.poll(str(order_id))
        csr_pem = str(job.result.get("csr_pem", ""))
    else:
        if key_type.value.startswith("rsa"):
            key = await asyncio.to_thread(generate_key, key_type)
        else:
            key = generate_key(key_type)
        key_pem = private_key_pem(key)
        csr_pem = build_csr(key, cert.common_name, sans)
        base = runtime.settings.effective_public_url
        outcome = await issuer.issue(
            IssueRequest(
                csr_pem=csr_pem,
                common_name=cert.common_name,
                sans=sans,
                validity_seconds=cert.validity_seconds,
                ekus=tuple(cert.ekus),
                must_staple=bool(profile and profile.must_staple),
                crl_urls=(f"{base}/.well-known/pki/crl/{issuer_row.id}",),
                ocsp_urls=(f"{base}/.well-known/pki/ocsp/{issuer_row.id}",),
                idempotency_key=job.idempotency_key,
                profile_id=cert.profile_id,
                certificate_id=cert.id,
            )
        )
    if isinstance(outcome, PendingIssuance):
        # Keep the order and (encrypted) key on the job so the next attempt polls, not reorders.
        sealed = (
            runtime.box.encrypt(str(key_pem).encode(), f"pending-key:{job.id}")
            if key_pem and not order_id
            else job.result.get("_pending_key_enc")
        )
        async with runtime.sessions.begin() as session:
            result = {"order_id": outcome.order_id, "csr_pem": csr_pem, "_pending_key_enc": sealed}
            await session.execute(update(Job).where(Job.id == job.id).values(result=result))
            if not await jobs.release_for_retry(
                session,
                job,
                worker_id=worker_id,
                delay=outcome.retry_after_seconds,
                error="awaiting the CA",
            ):
                raise JobLost(job.id)
        return None
    if order_id:
        key_pem = runtime.box.decrypt(
            str(job.result["_pending_key_enc"]), f"pending-key:{job.id}"
        ).decode()

    bundle = bundle_from_pem(outcome.certificate_pem, outcome.chain_pem)
    version_id = new_id("ver")
    now = utcnow()
    async with runtime.sessions() as session:
        cert = await session.get(ManagedCertificate, cert.id)
        assert cert is not None
        number = (
            await session.scalar(
                select(func.max(CertificateVersion.version)).where(
                    CertificateVersion.certificate_id == cert.id
                )
            )
            or 0
        ) + 1
        session.add(
            CertificateVersion(
                id=version_id,
                certificate_id=cert.id,
                version=number,
                serial_number=bundle.serial,
                fingerprint_sha256=bundle.fingerprint_sha256,
                not_before=bundle.not_before,
                not_after=bundle.not_after,
                certificate_pem=bundle.certificate_pem,
                chain_pem="".join(bundle.chain_pem),
                csr_pem=csr_pem,
                key_type=cert.key_type,
                private_key_enc=runtime.box.encrypt(str(key_pem).encode(), key_context(version_id)),
                job_id=job.id,
                created_at=now,
            )
        )
        renewed = cert.current_version_id is not None
        cert.status = "active"
        cert.serial_number = bundle.serial
        cert.fingerprint_sha256 = bundle.fingerprint_sha256
        cert.expires_at = bundle.not_after
        cert.renew_at = renew_at_for(cert, profile, bundle.not_before, bundle.not_after)
        cert.current_version_id = version_id
        cert.last_error = None
        cert.last_renewal_at = now if renewed else cert.last_renewal_at
        cert.updated_at = now
        targets = list(
            await session.scalars(
                select(CertificateTarget.target_id).where(
                    CertificateTarget.certificate_id == cert.id
                )
            )
        )
        deploy_jobs = [
            await jobs.enqueue(
                session,
                type="deployment",
                idempotency_key=f"deploy:{version_id}:{target}",
                certificate_id=cert.id,
                target_id=target,
                version_id=version_id,
                requested_by=job.requested_by,
                max_attempts=runtime.settings.job_max_attempts,
            )
            for target in targets
        ]
        action = "certificate.renewed" if renewed else "certificate.issued"
        details = {
            "job_id": job.id,
            "version": number,
            "serial": bundle.serial,
            "not_after": bundle.not_after.isoformat(),
            "issuer_id": cert.issuer_id,
            "deployment_jobs": [j.id for j in deploy_jobs],
        }
        record(
            session,
            _actor(job),
            action,
            resource_type="certificate",
            resource_id=cert.id,
            category="cert_lifecycle",
            details=details,
        )
        if not await jobs.finish(
            session,
            job,
            worker_id=worker_id,
            status="completed",
            result={"version_id": version_id, "serial": bundle.serial},
        ):
            await session.rollback()
            raise JobLost(job.id)
        await session.commit()
    return LifecycleEvent(
        type=EventType.CERTIFICATE_RENEWED if renewed else EventType.CERTIFICATE_ISSUED,
        occurred_at=now,
        certificate_id=cert.id,
        job_id=job.id,
        actor=job.requested_by,
        details=details | {"common_name": cert.common_name},
    )


async def execute_deployment(runtime: Runtime, job: Job, worker_id: str) -> LifecycleEvent | None:
    """Deploy the job's certificate version to its target."""
    async with runtime.sessions() as session:
        version = await session.get(CertificateVersion, job.version_id)
        target_row = await session.get(ConnectorInstance, job.target_id)
        cert = await session.get(ManagedCertificate, job.certificate_id)
    if version is None or cert is None:
        raise RejectedError("the certificate version to deploy no longer exists")
    if target_row is None or target_row.family != "target":
        raise RejectedError("the deployment target no longer exists")
    if not target_row.enabled:
        raise ConfigurationError(f"target {target_row.name!r} is disabled")
    target = runtime.connectors.instance(target_row)
    assert isinstance(target, Target)
    key = None
    if version.private_key_enc:
        key = Secret(runtime.box.decrypt(version.private_key_enc, key_context(version.id)).decode())
    result = await target.deploy(
        DeployRequest(
            certificate_id=cert.id,
            common_name=cert.common_name,
            certificate_pem=version.certificate_pem,
            chain_pem=tuple(p for p in _split_pem(version.chain_pem)),
            serial=version.serial_number,
            fingerprint_sha256=version.fingerprint_sha256,
            private_key=key,
        )
    )
    now = utcnow()
    details = {
        "job_id": job.id,
        "target_id": target_row.id,
        "serial": version.serial_number,
        "changed": result.changed,
        "message": result.message,
    }
    async with runtime.sessions() as session:
        session.add(
            Deployment(
                id=new_id("dep"),
                certificate_id=cert.id,
                target_id=target_row.id,
                version_id=version.id,
                job_id=job.id,
                status="succeeded",
                changed=result.changed,
                message=result.message,
                verified_serial=result.verified_serial,
                created_at=now,
            )
        )
        await session.execute(
            update(ManagedCertificate)
            .where(ManagedCertificate.id == cert.id)
            .values(last_deployment_at=now)
        )
        record(
            session,
            _actor(job),
            "certificate.deployed",
            resource_type="certificate",
            resource_id=cert.id,
            category="cert_lifecycle",
            details=details,
        )
        if not await jobs.finish(
            session,
            job,
            worker_id=worker_id,
            status="completed",
            result={"changed": result.changed, "verified_serial": result.verified_serial},
        ):
            await session.rollback()
            raise JobLost(job.id)
        await session.commit()
    return LifecycleEvent(
        type=EventType.CERTIFICATE_DEPLOYED,
        occurred_at=now,
        certificate_id=cert.id,
        job_id=job.id,
        actor=job.requested_by,
        details=details | {"common_name": cert.common_name},
    )


def _split_pem(text: str) -> list[str]:
    marker = "-----END CERTIFICATE-----"
    return [part.strip() + "\n" + marker + "\n" for part in text.split(marker) if part.strip()]
