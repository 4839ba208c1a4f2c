"""``/api/v1/certificates``: managed certificates, their versions, deployments and exports."""

from __future__ import annotations

from datetime import datetime

from litestar import Controller, delete, get, post, put
from litestar.params import FromPath, FromQuery, JSONBody
from sqlalchemy import select, update

from certctl.db.base import utcnow
from certctl.db.models import CertificateVersion, Deployment, Job
from certctl.domain.approvals import service as approvals
from certctl.domain.approvals.events import publish_requested
from certctl.domain.audit.service import record
from certctl.domain.certificates import service
from certctl.domain.certificates.schemas import (
    CertificateAccepted,
    CertificateBulkCreate,
    CertificateCreate,
    CertificateOut,
    CertificateUpdate,
    DeployIn,
    DeploymentOut,
    JobOut,
    PemExport,
    VersionOut,
)
from certctl.domain.compliance.schemas import ViolationOut
from certctl.domain.compliance.service import list_violations
from certctl.errors import Conflict, NotFound
from certctl.lib.deps import ActorDep, RuntimeDep, SessionDep
from certctl.lib.pagination import Page, page_window

__all__ = ["CertificateController"]


class CertificateController(Controller):
    """Managed certificates."""

    path = "/api/v1/certificates"
    tags = ["Certificates"]

    @get("/", opt={"permission": "cert.read"})
    async def list_certificates(
        self,
        session: SessionDep,
        page: FromQuery[int] = 1,
        per_page: FromQuery[int] = 50,
        status: FromQuery[str | None] = None,
        issuer_id: FromQuery[str | None] = None,
        profile_id: FromQuery[str | None] = None,
        expires_before: FromQuery[datetime | None] = None,
        expires_after: FromQuery[datetime | None] = None,
    ) -> Page[CertificateOut]:
        """Newest first; archived certificates only with ``status=archived``."""
        offset, limit = page_window(page, per_page)
        filters = service.CertificateFilter(
            status=status,
            issuer_id=issuer_id,
            profile_id=profile_id,
            expires_before=expires_before,
            expires_after=expires_after,
        )
        data, total = await service.list_certificates(session, filters, offset=offset, limit=limit)
        return Page(data=data, total=total, page=page, per_page=per_page)

    @post("/", opt={"permission": "cert.issue"}, status_code=202)
    async def create_certificate(
        self,
        runtime: RuntimeDep,
        session: SessionDep,
        actor: ActorDep,
        data: JSONBody[CertificateCreate],
    ) -> CertificateAccepted:
        """Create a managed certificate; it is issued (and deployed) by a job."""
        [(cert, job, targets)] = await service.create_certificates(
            session,
            [data],
            actor,
            default_validity_days=runtime.settings.default_validity_days,
            max_attempts=runtime.settings.job_max_attempts,
            approval_bypass=runtime.settings.approval_bypass,
        )
        await session.commit()
        runtime.worker.wake()
        if job.status == "awaiting_approval":
            await publish_requested(runtime, job_ids=[job.id])
        return CertificateAccepted(
            certificate=service.to_out(cert, targets), job=service.job_out(job)
        )

    @post("/bulk", opt={"permission": "cert.issue"}, status_code=202)
    async def create_certificates_bulk(
        self,
        runtime: RuntimeDep,
        session: SessionDep,
        actor: ActorDep,
        data: JSONBody[CertificateBulkCreate],
    ) -> list[CertificateAccepted]:
        """Create up to 500 certificates in one transaction: all are accepted or none is."""
        created = await service.create_certificates(
            session,
            data.certificates,
            actor,
            default_validity_days=runtime.settings.default_validity_days,
            max_attempts=runtime.settings.job_max_attempts,
            approval_bypass=runtime.settings.approval_bypass,
        )
        await session.commit()
        runtime.worker.wake()
        await publish_requested(
            runtime, job_ids=[j.id for _, j, _ in created if j.status == "awaiting_approval"]
        )
        return [
            CertificateAccepted(certificate=service.to_out(c, t), job=service.job_out(j))
            for c, j, t in created
        ]

    @get("/{certificate_id:str}", opt={"permission": "cert.read"})
    async def get_certificate(
        self, session: SessionDep, certificate_id: FromPath[str]
    ) -> CertificateOut:
        """One certificate."""
        cert = await service.get_certificate(session, certificate_id)
        return service.to_out(cert, await service.target_ids_of(session, cert.id))

    @put("/{certificate_id:str}", opt={"permission": "cert.edit"})
    async def update_certificate(
        self,
        session: SessionDep,
        actor: ActorDep,
        certificate_id: FromPath[str],
        data: JSONBody[CertificateUpdate],
    ) -> CertificateOut:
        """Edit name, targets, tags, environment or renewal lead time."""
        cert = await service.get_certificate(session, certificate_id)
        targets = await service.update_certificate(session, cert, data, actor)
        await session.commit()
        return service.to_out(cert, targets)

    @delete("/{certificate_id:str}", opt={"permission": "cert.delete"})
    async def archive_certificate(
        self, session: SessionDep, actor: ActorDep, certificate_id: FromPath[str]
    ) -> None:
        """Archive: stop renewing, cancel pending and awaiting-approval jobs (their approval
        requests become ``cancelled``); versions and audit history are kept."""
        cert = await service.get_certificate(session, certificate_id)
        if await session.scalar(
            select(Job.id).where(Job.certificate_id == cert.id, Job.status == "running").limit(1)
        ):
            raise Conflict("a job for this certificate is running; retry when it finishes")
        await approvals.cancel_for_certificate(session, cert.id, actor)
        await session.execute(
            update(Job)
            .where(Job.certificate_id == cert.id, Job.status == "pending")
            .values(status="cancelled", completed_at=utcnow())
        )
        cert.status = "archived"
        cert.renew_at = None
        cert.updated_at = utcnow()
        record(
            session,
            actor,
            "certificate.archive",
            resource_type="certificate",
            resource_id=cert.id,
            category="cert_lifecycle",
        )
        await session.commit()

    @get("/{certificate_id:str}/versions", opt={"permission": "cert.read"})
    async def list_versions(
        self, session: SessionDep, certificate_id: FromPath[str]
    ) -> list[VersionOut]:
        """Every issued version, newest first."""
        await service.get_certificate(session, certificate_id)
        rows = await session.scalars(
            select(CertificateVersion)
            .where(CertificateVersion.certificate_id == certificate_id)
            .order_by(CertificateVersion.version.desc())
        )
        return [
            VersionOut(
                id=v.id,
                version=v.version,
                serial_number=v.serial_number,
                fingerprint_sha256=v.fingerprint_sha256,
                not_before=v.not_before,
                not_after=v.not_after,
                key_type=v.key_type,
                certificate_pem=v.certificate_pem,
                chain_pem=v.chain_pem,
                created_at=v.created_at,
            )
            for v in rows
        ]

    @get("/{certificate_id:str}/deployments", opt={"permission": "cert.read"})
    async def list_deployments(
        self, session: SessionDep, certificate_id: FromPath[str]
    ) -> list[DeploymentOut]:
        """Deployment outcomes, newest first."""
        await service.get_certificate(session, certificate_id)
        rows = await session.scalars(
            select(Deployment)
            .where(Deployment.certificate_id == certificate_id)
            .order_by(Deployment.created_at.desc())
        )
        return [
            DeploymentOut(
                id=d.id,
                target_id=d.target_id,
                version_id=d.version_id,
                job_id=d.job_id,
                status=d.status,
                changed=d.changed,
                message=d.message,
                verified_serial=d.verified_serial,
                created_at=d.created_at,
            )
            for d in rows
        ]

    @post("/{certificate_id:str}/renew", opt={"permission": "cert.issue"}, status_code=202)
    async def renew(
        self,
        runtime: RuntimeDep,
        session: SessionDep,
        actor: ActorDep,
        certificate_id: FromPath[str],
    ) -> JobOut:
        """Renew now; an issuance or renewal already under way is returned instead."""
        cert = await service.get_certificate(session, certificate_id)
        job = await service.request_renewal(
            session,
            cert,
            actor,
            max_attempts=runtime.settings.job_max_attempts,
            forced=True,
            approval_bypass=runtime.settings.approval_bypass,
        )
        await session.commit()
        runtime.worker.wake()
        if job.status == "awaiting_approval":
            await publish_requested(runtime, job_ids=[job.id])
        return service.job_out(job)

    @post("/{certificate_id:str}/deploy", opt={"permission": "cert.edit"}, status_code=202)
    async def deploy(
        self,
        runtime: RuntimeDep,
        session: SessionDep,
        actor: ActorDep,
        certificate_id: FromPath[str],
        data: JSONBody[DeployIn | None] = None,
    ) -> list[JobOut]:
        """Deploy the current version to all (or the named) mapped targets."""
        cert = await service.get_certificate(session, certificate_id)
        created = await service.request_deployment(
            session,
            cert,
            actor,
            target_ids=data.target_ids if data else None,
            max_attempts=runtime.settings.job_max_attempts,
        )
        await session.commit()
        runtime.worker.wake()
        return [service.job_out(j) for j in created]

    @get("/{certificate_id:str}/violations", opt={"permission": "policy.read"})
    async def list_certificate_violations(
        self,
        session: SessionDep,
        certificate_id: FromPath[str],
        page: FromQuery[int] = 1,
        per_page: FromQuery[int] = 50,
    ) -> Page[ViolationOut]:
        """Compliance rules this certificate currently breaks."""
        offset, limit = page_window(page, per_page)
        await service.get_certificate(session, certificate_id)
        data, total = await list_violations(
            session, certificate_id=certificate_id, offset=offset, limit=limit
        )
        return Page(data=data, total=total, page=page, per_page=per_page)

    @get("/{certificate_id:str}/export/pem", opt={"permission": "cert.read"})
    async def export_pem(self, session: SessionDep, certificate_id: FromPath[str]) -> PemExport:
        """The current certificate and chain (never the private key)."""
        cert = await service.get_certificate(session, certificate_id)
        if cert.current_version_id is None:
            raise NotFound("the certificate has not been issued yet")
        version = await session.get(CertificateVersion, cert.current_version_id)
        assert version is not None
        return PemExport(
            certificate_pem=version.certificate_pem,
            chain_pem=version.chain_pem,
            full_chain_pem=version.certificate_pem + version.chain_pem,
        )
