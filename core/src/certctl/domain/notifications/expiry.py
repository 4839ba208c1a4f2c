"""Expiry alerts: one notification per (certificate version, threshold, notifier), ever."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from certctl.db.base import utcnow
from certctl.db.models import CertificateProfile, ManagedCertificate, RenewalPolicy
from certctl.domain.notifications.queue import enqueue, notification_values
from certctl.domain.notifications.routing import EXPIRY_EVENT, enabled_notifiers, route
from certctl.domain.renewal_policies.service import severity_for

if TYPE_CHECKING:
    from certctl.runtime import Runtime

__all__ = ["crossed_threshold", "scan_expiry_alerts"]


def crossed_threshold(days_left: float, thresholds: list[int]) -> int | None:
    """The lowest threshold ``days_left`` has reached, or None.

    Only the most urgent one is sent: a certificate found 5 days from expiry gets the 7-day
    alert, not the 30-, 14- and 7-day alerts at once. Thresholds passed unseen stay unsent.
    """
    crossed = [t for t in thresholds if days_left <= t]
    return min(crossed) if crossed else None


async def scan_expiry_alerts(runtime: Runtime) -> int:
    """Queue due expiry alerts for active certificates; returns how many were new.

    One query selects the candidates (``expires_at`` within the largest threshold of any
    policy), one bulk ``INSERT … ON CONFLICT DO NOTHING`` per 500 rows queues them. The dedup
    key ``expiry:<certificate>:<version>:<threshold>:<notifier>`` makes every alert a single
    row however many scans or replicas run, while a renewed certificate (a new version) alerts
    afresh. Safe on every replica; the rows are then sent by ``dispatch_notifications``.
    """
    now = utcnow()
    settings = runtime.settings
    async with runtime.sessions.begin() as session:
        enabled = await enabled_notifiers(session)
        if not enabled:
            return 0
        policies = {p.id: p for p in await session.scalars(select(RenewalPolicy))}
        horizon = max(
            [*settings.expiry_alert_thresholds_days]
            + [t for p in policies.values() for t in p.alert_thresholds_days],
            default=-1,
        )
        if horizon < 0:
            return 0
        candidates = await session.execute(
            select(
                ManagedCertificate.id,
                ManagedCertificate.name,
                ManagedCertificate.common_name,
                ManagedCertificate.expires_at,
                ManagedCertificate.current_version_id,
                ManagedCertificate.serial_number,
                ManagedCertificate.renewal_policy_id,
                CertificateProfile.renewal_policy_id,
            )
            .outerjoin(CertificateProfile, CertificateProfile.id == ManagedCertificate.profile_id)
            .where(
                ManagedCertificate.status == "active",
                ManagedCertificate.expires_at.is_not(None),
                ManagedCertificate.expires_at <= now + timedelta(days=horizon),
            )
        )
        default_map = {str(t): severity_for(t, {}) for t in settings.expiry_alert_thresholds_days}
        rows: list[dict[str, Any]] = []
        for cert_id, name, cn, expires_at, version, serial, own, inherited in candidates:
            assert expires_at is not None  # filtered in the query
            policy = policies.get(own or inherited or "")
            thresholds = (
                list(policy.alert_thresholds_days)
                if policy
                else list(settings.expiry_alert_thresholds_days)
            )
            days_left = (expires_at - now).total_seconds() / 86400
            threshold = crossed_threshold(days_left, thresholds)
            if threshold is None:
                continue
            severity = severity_for(threshold, policy.alert_severity_map if policy else default_map)
            whole_days = max(0, math.floor(days_left))
            expired = days_left <= 0
            subject = (
                f"certctl: {name} has expired"
                if expired
                else f"certctl: {name} expires in {whole_days} day{'s' if whole_days != 1 else ''}"
            )
            body = (
                f"Certificate {name} ({cn}, serial {serial}) "
                f"{'expired' if expired else 'expires'} at {expires_at.isoformat()}."
            )
            data = {
                "common_name": cn,
                "name": name,
                "expires_at": expires_at.isoformat(),
                "days_left": whole_days,
                "threshold_days": threshold,
                "serial": serial,
                "version_id": version,
                "renewal_policy_id": policy.id if policy else None,
            }
            for notifier_id in route(EXPIRY_EVENT, policy, enabled):
                rows.append(
                    notification_values(
                        event=EXPIRY_EVENT,
                        severity=severity,
                        subject=subject,
                        body=body,
                        notifier_id=notifier_id,
                        dedup_key=f"expiry:{cert_id}:{version or serial}:{threshold}:{notifier_id}",
                        max_attempts=settings.notification_max_attempts,
                        occurred_at=now,
                        certificate_id=cert_id,
                        data=data,
                        now=now,
                    )
                )
        created = await enqueue(session, rows) if rows else []
    return len(created)
