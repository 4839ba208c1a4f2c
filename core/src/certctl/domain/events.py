"""Publishing lifecycle events: to ``track_event`` hook implementations and to notifiers.

Called after the event's transaction has committed. Observers are called in-process; for
notifiers each event becomes one durable ``notifications`` row per routed notifier (see
:mod:`certctl.domain.notifications.routing`), which is then dispatched at once, best-effort.
A failed send stays queued for ``dispatch_notifications`` to retry; nothing here can undo or
block the lifecycle.
"""

from __future__ import annotations

import logging
import secrets
from typing import TYPE_CHECKING, Any

from certctl.domain.notifications.queue import dispatch_notifications, enqueue, notification_values
from certctl.domain.notifications.routing import enabled_notifiers, policies_of, route
from certctl.plugins.manager import notify_event
from certctl_sdk import LifecycleEvent, Severity

if TYPE_CHECKING:
    from certctl.runtime import Runtime

__all__ = ["event_dedup_key", "publish"]

_log = logging.getLogger("certctl.events")

_SEVERITY = {
    "deployment.failed": Severity.CRITICAL,
    "issuance.failed": Severity.CRITICAL,
    "job.failed": Severity.CRITICAL,
    "certificate.expiring": Severity.WARNING,
    "certificate.revoked": Severity.WARNING,
    "approval.requested": Severity.WARNING,
}


def event_dedup_key(event: LifecycleEvent, notifier_id: str) -> str:
    """What makes a notification of ``event`` unique for one notifier.

    An event names its occurrence by ``details["event_id"]`` when the publisher has a stable
    one (an approval decision id, a revocation id), else by its job (one issuance, deployment
    or failure per job); an event with neither is unique by construction.
    """
    occurrence = (
        event.details.get("event_id")
        or (f"job:{event.job_id}" if event.job_id else None)
        or f"once:{secrets.token_hex(8)}"
    )
    return f"event:{event.type}:{occurrence}:{notifier_id}"[:255]


def _row(runtime: Runtime, event: LifecycleEvent, notifier_id: str) -> dict[str, Any]:
    name = event.details.get("common_name", event.certificate_id or "")
    return notification_values(
        event=str(event.type),
        severity=str(_SEVERITY.get(str(event.type), Severity.INFO)),
        subject=f"certctl: {event.type} {name}".strip(),
        body=str(event.details.get("message", f"{event.type} for {name}")),
        notifier_id=notifier_id,
        dedup_key=event_dedup_key(event, notifier_id),
        max_attempts=runtime.settings.notification_max_attempts,
        occurred_at=event.occurred_at,
        certificate_id=event.certificate_id,
        data=dict(event.details),
    )


async def publish(runtime: Runtime, *events: LifecycleEvent) -> None:
    """Hand ``events`` to hook observers, queue them for their notifiers and send them now."""
    if not events:
        return
    for event in events:
        await notify_event(runtime.host.pm, event, _log)
    try:
        async with runtime.sessions.begin() as session:
            enabled = await enabled_notifiers(session)
            if not enabled:
                return
            policies = await policies_of(session, (e.certificate_id or "" for e in events))
            rows = [
                _row(runtime, event, notifier_id)
                for event in events
                for notifier_id in route(
                    str(event.type), policies.get(event.certificate_id or ""), enabled
                )
            ]
            created = await enqueue(session, rows) if rows else []
    except Exception:  # noqa: BLE001 - a database hiccup must not fail the lifecycle step
        _log.exception("could not queue notifications for %d event(s)", len(events))
        return
    try:
        await dispatch_notifications(runtime, ids=created)
    except Exception:  # noqa: BLE001 - the rows stay queued for the dispatcher
        _log.exception("immediate notification dispatch failed; left queued")
