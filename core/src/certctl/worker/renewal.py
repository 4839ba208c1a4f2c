"""The renewal scan: certificates past their renewal time get a renewal job.

The scan is set-based so that a fleet of 100,000 certificates costs a few statements per
thousand due certificates: one query selects due certificates that have neither an open
issuance/renewal job nor this version's automatic renewal already, and one ``INSERT … ON
CONFLICT DO NOTHING RETURNING`` creates their jobs. Jobs are keyed
``renew:<certificate>:<version>``, so concurrent scans (or a scan racing a manual renewal)
enqueue each version's renewal once.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from sqlalchemy import Table, and_, exists, func, literal, select, true, tuple_

from certctl.db.base import utcnow
from certctl.db.engine import dialect_insert
from certctl.db.models import CertificateProfile, Job, ManagedCertificate, RenewalPolicy
from certctl.domain.approvals.events import publish_requested
from certctl.domain.audit.service import audit_row, record_many
from certctl.domain.auth.actor import SYSTEM
from certctl.domain.certificates.service import request_renewal
from certctl.domain.jobs import service as jobs

if TYPE_CHECKING:
    from certctl.runtime import Runtime

__all__ = ["scan_for_renewals"]

_log = logging.getLogger("certctl.renewal")

CHUNK = 1000
"""Certificates per statement: well inside both databases' bound-parameter limits."""


def _due(now: Any, limit: int, after: tuple[Any, str] | None) -> Any:
    cert = ManagedCertificate
    open_job = exists().where(
        Job.certificate_id == cert.id,
        Job.type.in_(("issuance", "renewal")),
        Job.status.in_(jobs.OPEN_STATUSES),
    )
    renewed = exists().where(
        Job.idempotency_key == literal("renew:") + cert.id + literal(":") + cert.current_version_id
    )
    # Keyset pagination on (renew_at, id): each chunk starts where the last ended, so a scan
    # over N due certificates reads each once instead of re-filtering the ones already queued.
    page = tuple_(cert.renew_at, cert.id) > tuple_(*after) if after is not None else true()
    return (
        select(
            cert.id,
            cert.current_version_id,
            CertificateProfile.requires_approval,
            cert.renew_at,
            RenewalPolicy.max_retries,
        )
        .outerjoin(CertificateProfile, CertificateProfile.id == cert.profile_id)
        .outerjoin(
            # The certificate's own renewal policy, else its profile's (as routing decides).
            RenewalPolicy,
            RenewalPolicy.id
            == func.coalesce(cert.renewal_policy_id, CertificateProfile.renewal_policy_id),
        )
        .where(
            and_(
                cert.status == "active",
                cert.renew_at <= now,
                cert.current_version_id.is_not(None),
                ~open_job,
                ~renewed,
                page,
            )
        )
        .order_by(cert.renew_at, cert.id)
        .limit(limit)
    )


def _attempts(max_retries: int | None, default: int) -> int:
    """A renewal policy's ``max_retries`` bounds its renewals' attempts; else the global limit."""
    return default if max_retries is None else max_retries + 1


async def scan_for_renewals(runtime: Runtime, chunk: int = CHUNK) -> int:
    """Enqueue renewals for every due certificate; returns how many jobs were created.

    Under an approval-gated profile the renewal waits for a second person
    (``CERTCTL_APPROVAL_BYPASS`` approves it at once), exactly as a manual renewal does.
    """
    now = utcnow()
    created = 0
    max_attempts = runtime.settings.job_max_attempts
    after: tuple[Any, str] | None = None
    while True:
        async with runtime.sessions() as session:
            due = (await session.execute(_due(now, chunk, after))).all()
            if not due:
                break
            after = (due[-1].renew_at, due[-1].id)
            # Approval-gated renewals open a request for a second person each: few, one by one.
            gated_jobs: list[str] = []
            for row in due:
                if row.requires_approval:
                    cert = await session.get(ManagedCertificate, row.id)
                    assert cert is not None
                    job = await request_renewal(
                        session,
                        cert,
                        SYSTEM,
                        max_attempts=_attempts(row.max_retries, max_attempts),
                        forced=False,
                        approval_bypass=runtime.settings.approval_bypass,
                    )
                    gated_jobs.append(job.id)
                    created += 1
            rows = [
                jobs.job_values(
                    type="renewal",
                    idempotency_key=f"renew:{row.id}:{row.current_version_id}",
                    certificate_id=row.id,
                    requested_by=SYSTEM.name,
                    max_attempts=_attempts(row.max_retries, max_attempts),
                    now=now,
                )
                for row in due
                if not row.requires_approval
            ]
            insert = dialect_insert(session)
            # executemany ("insertmanyvalues"): one cached statement, sent in batches; a
            # multi-VALUES statement of 1,000 rows would cost more to compile than to run.
            table = Job.__table__
            assert isinstance(table, Table)
            inserted = (
                (
                    await session.execute(
                        insert(table)
                        .on_conflict_do_nothing(index_elements=["idempotency_key"])
                        .returning(table.c.id, table.c.certificate_id),
                        rows,
                    )
                ).all()
                if rows
                else []
            )
            await record_many(
                session,
                [
                    audit_row(
                        SYSTEM,
                        "certificate.renew.request",
                        resource_type="certificate",
                        resource_id=str(cert_id),
                        category="cert_lifecycle",
                        details={"job_id": job_id, "forced": False},
                    )
                    for job_id, cert_id in inserted
                ],
            )
            await session.commit()
        await publish_requested(runtime, job_ids=gated_jobs)
        created += len(inserted)
        if created:
            runtime.worker.wake()
        if len(due) < chunk:
            break
    if created:
        _log.info("renewal scan queued %d certificate(s)", created)
    return created
