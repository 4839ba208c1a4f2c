"""Building the digest and queueing it for the digest notifiers."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import msgspec
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from certctl.db.base import utcnow
from certctl.db.models import Job, ManagedCertificate
from certctl.db.models import Notification as NotificationRow
from certctl.domain.digest.schemas import Digest, DigestCertificate, DigestFailure
from certctl.domain.notifications.queue import dispatch_notifications, enqueue, notification_values
from certctl.domain.notifications.routing import enabled_notifiers

if TYPE_CHECKING:
    from certctl.runtime import Runtime

__all__ = ["build_digest", "digest_recipients", "queue_digest", "send_digest"]

_LISTED = 50


async def _expiring(
    session: AsyncSession, now: datetime, days: int
) -> tuple[int, list[DigestCertificate]]:
    where = (
        ManagedCertificate.status == "active",
        ManagedCertificate.expires_at.is_not(None),
        ManagedCertificate.expires_at <= now + timedelta(days=days),
    )
    count = await session.scalar(select(func.count()).where(*where))
    rows = await session.scalars(
        select(ManagedCertificate)
        .where(*where)
        .order_by(ManagedCertificate.expires_at)
        .limit(_LISTED)
    )
    return int(count or 0), [
        DigestCertificate(id=c.id, name=c.name, common_name=c.common_name, expires_at=c.expires_at)
        for c in rows
    ]


def _render(digest: Digest) -> tuple[str, str]:
    lines = [
        f"{digest.total_certificates} managed certificates: "
        + ", ".join(f"{n} {s}" for s, n in sorted(digest.certificates_by_status.items())),
        f"Expiring within 7 days: {digest.expiring_7d_count}",
        *(f"  - {c.name} ({c.common_name}) {c.expires_at:%Y-%m-%d}" for c in digest.expiring_7d),
        f"Expiring within 30 days: {digest.expiring_30d_count}",
        *(f"  - {c.name} ({c.common_name}) {c.expires_at:%Y-%m-%d}" for c in digest.expiring_30d),
        f"Failed jobs in the last 24 hours: {digest.failed_jobs_24h_count}",
        *(
            f"  - {f.type} {f.certificate_id or ''}: {f.error or 'no reason recorded'}"
            for f in digest.failed_jobs_24h
        ),
        f"Dead-lettered notifications: {digest.dead_notifications}",
    ]
    subject = (
        f"certctl digest {digest.generated_at:%Y-%m-%d}: "
        f"{digest.expiring_7d_count} expiring within 7 days, "
        f"{digest.failed_jobs_24h_count} failures"
    )
    return subject, "\n".join(lines)


async def build_digest(session: AsyncSession) -> Digest:
    """The digest as of now: a handful of aggregate queries, independent of estate size."""
    now = utcnow()
    by_status = {
        status: int(n)
        for status, n in await session.execute(
            select(ManagedCertificate.status, func.count()).group_by(ManagedCertificate.status)
        )
    }
    week_count, week = await _expiring(session, now, 7)
    month_count, month = await _expiring(session, now, 30)
    failed_where = (Job.status == "failed", Job.completed_at >= now - timedelta(days=1))
    failed_count = await session.scalar(select(func.count()).where(*failed_where))
    failed = await session.scalars(
        select(Job).where(*failed_where).order_by(Job.completed_at.desc()).limit(_LISTED)
    )
    dead = await session.scalar(select(func.count()).where(NotificationRow.status == "dead"))
    digest = Digest(
        generated_at=now,
        total_certificates=sum(by_status.values()),
        certificates_by_status=by_status,
        expiring_7d_count=week_count,
        expiring_7d=week,
        expiring_30d_count=month_count,
        expiring_30d=month,
        failed_jobs_24h_count=int(failed_count or 0),
        failed_jobs_24h=[
            DigestFailure(
                job_id=j.id,
                type=j.type,
                certificate_id=j.certificate_id,
                error=j.last_error,
                failed_at=j.completed_at,
            )
            for j in failed
        ],
        dead_notifications=int(dead or 0),
        subject="",
        body="",
    )
    subject, body = _render(digest)
    return msgspec.structs.replace(digest, subject=subject, body=body)


async def digest_recipients(runtime: Runtime, session: AsyncSession) -> list[str]:
    """``CERTCTL_DIGEST_NOTIFIER_IDS`` that are enabled notifiers, else every enabled one."""
    enabled = await enabled_notifiers(session)
    chosen = runtime.settings.digest_notifier_ids
    return [n for n in enabled if n in chosen] if chosen else enabled


async def queue_digest(runtime: Runtime, key: str) -> tuple[list[str], int]:
    """Queue the digest under ``digest:<key>:<notifier>`` and send it; (ids, newly queued).

    The ids include rows an earlier call with the same key queued, so a repeated request
    reports the existing delivery instead of sending a second one.
    """
    async with runtime.sessions.begin() as session:
        recipients = await digest_recipients(runtime, session)
        if not recipients:
            return [], 0
        digest = await build_digest(session)
        keys = {n: f"digest:{key}:{n}" for n in recipients}
        created = await enqueue(
            session,
            [
                notification_values(
                    event="digest",
                    severity="info",
                    subject=digest.subject,
                    body=digest.body,
                    notifier_id=n,
                    dedup_key=keys[n],
                    max_attempts=runtime.settings.notification_max_attempts,
                    occurred_at=digest.generated_at,
                    data=msgspec.to_builtins(digest),
                )
                for n in recipients
            ],
        )
        ids = list(
            await session.scalars(
                select(NotificationRow.id).where(NotificationRow.dedup_key.in_(keys.values()))
            )
        )
    await dispatch_notifications(runtime, ids=created)
    return sorted(ids), len(created)


async def send_digest(runtime: Runtime) -> int:
    """The daily digest: once per UTC day per notifier (``digest:<YYYY-MM-DD>:<notifier>``).

    Does nothing unless ``CERTCTL_DIGEST_ENABLED``. Safe on every replica: the first call of
    the day queues it, later calls (any replica) find the key taken; returns how many new.
    """
    if not runtime.settings.digest_enabled:
        return 0
    _, created = await queue_digest(runtime, f"{utcnow():%Y-%m-%d}")
    return created
