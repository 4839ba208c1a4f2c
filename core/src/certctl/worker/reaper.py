"""Sweeps: fail jobs whose worker died on their last attempt; delete what is no longer needed.

A job whose lease expires is claimed again by any worker while it has attempts left (see
``jobs.claim``); one that has used its last attempt would otherwise stay ``running`` forever,
so the reaper fails it with a reason an operator can act on.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import delete, select, update

from certctl.db.base import utcnow
from certctl.db.models import (
    Job,
    ManagedCertificate,
    Notification,
    SchedulerLoopRun,
    SchedulerReplica,
)
from certctl.domain.audit.service import record
from certctl.domain.auth.actor import SYSTEM
from certctl.domain.events import publish
from certctl_sdk import EventType, LifecycleEvent

if TYPE_CHECKING:
    from certctl.runtime import Runtime

__all__ = ["REPLICA_RETENTION", "collect_garbage", "reap_jobs"]

REPLICA_RETENTION = timedelta(days=1)
"""A replica silent this long is gone (crashed without deregistering); its rows are deleted."""

_LOST = "the worker running this job stopped (lease expired) during its last attempt"


async def reap_jobs(runtime: Runtime) -> int:
    """Fail running jobs whose lease expired with no attempts left; returns how many."""
    now = utcnow()
    async with runtime.sessions() as session:
        reaped = list(
            await session.scalars(
                update(Job)
                .where(
                    Job.status == "running",
                    Job.lease_expires_at < now,
                    Job.attempts >= Job.max_attempts,
                )
                .values(
                    status="failed",
                    last_error=_LOST,
                    completed_at=now,
                    lease_expires_at=None,
                    result={"retryable": True},
                )
                .returning(Job)
                .execution_options(synchronize_session=False)
            )
        )
        unissued = {job.certificate_id for job in reaped if job.type in ("issuance", "renewal")} - {
            None
        }
        if unissued:
            await session.execute(
                update(ManagedCertificate)
                .where(ManagedCertificate.id.in_(unissued))
                .values(last_error=_LOST, updated_at=now)
            )
            await session.execute(
                update(ManagedCertificate)
                .where(
                    ManagedCertificate.id.in_(unissued),
                    ManagedCertificate.current_version_id.is_(None),
                )
                .values(status="failed")
            )
        for job in reaped:
            record(
                session,
                SYSTEM,
                "job.failed",
                resource_type="job",
                resource_id=job.id,
                outcome="failure",
                category="cert_lifecycle",
                details={
                    "type": job.type,
                    "certificate_id": job.certificate_id,
                    "target_id": job.target_id,
                    "attempt": job.attempts,
                    "error": _LOST,
                },
            )
        await session.commit()
    await publish(
        runtime,
        *(
            LifecycleEvent(
                type=EventType.DEPLOYMENT_FAILED
                if job.type == "deployment"
                else EventType.ISSUANCE_FAILED,
                occurred_at=now,
                certificate_id=job.certificate_id,
                job_id=job.id,
                details={"error": _LOST, "message": _LOST},
            )
            for job in reaped
        ),
    )
    return len(reaped)


async def collect_garbage(runtime: Runtime) -> int:
    """Delete finished jobs and delivered notifications older than ``CERTCTL_JOB_RETENTION``,
    and long-silent replicas.

    Versions, deployments and the audit trail keep the history; a finished job or a delivered
    notification is only a queue's bookkeeping. Dead-lettered notifications stay until an
    operator requeues them.
    """
    now = utcnow()
    job_cutoff = now - timedelta(seconds=runtime.settings.job_retention_seconds)
    async with runtime.sessions.begin() as session:
        jobs_deleted = await session.execute(
            delete(Job).where(
                Job.status.in_(("completed", "cancelled", "failed")),
                Job.completed_at < job_cutoff,
            )
        )
        notifications_deleted = await session.execute(
            delete(Notification).where(
                Notification.status == "sent", Notification.sent_at < job_cutoff
            )
        )
        gone = select(SchedulerReplica.id).where(
            SchedulerReplica.heartbeat_at < now - REPLICA_RETENTION
        )
        await session.execute(
            delete(SchedulerLoopRun).where(SchedulerLoopRun.replica_id.in_(gone.scalar_subquery()))
        )
        replicas_deleted = await session.execute(
            delete(SchedulerReplica).where(SchedulerReplica.heartbeat_at < now - REPLICA_RETENTION)
        )
    counts: list[int] = [
        result.rowcount or 0  # type: ignore[attr-defined]
        for result in (jobs_deleted, notifications_deleted, replicas_deleted)
    ]
    return sum(counts)
