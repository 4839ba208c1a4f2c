"""Publishing lifecycle events: to ``track_event`` hook implementations and to notifiers.

Called after the event's transaction has committed. Delivery is best-effort here: a failing
observer or notifier is logged and audited, never allowed to undo or block the lifecycle.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from sqlalchemy import select

from certctl.db.base import new_id
from certctl.db.models import ConnectorInstance
from certctl.domain.audit.service import record
from certctl.domain.auth.actor import SYSTEM
from certctl.plugins.manager import notify_event
from certctl_sdk import ConnectorError, LifecycleEvent, Notification, Notifier, Severity

if TYPE_CHECKING:
    from certctl.runtime import Runtime

__all__ = ["publish"]

_log = logging.getLogger("certctl.events")

_SEVERITY = {
    "deployment.failed": Severity.CRITICAL,
    "issuance.failed": Severity.CRITICAL,
    "job.failed": Severity.CRITICAL,
    "certificate.expiring": Severity.WARNING,
    "certificate.revoked": Severity.WARNING,
}


def _notification(event: LifecycleEvent) -> Notification:
    name = event.details.get("common_name", event.certificate_id or "")
    return Notification(
        id=new_id("ntf"),
        event=str(event.type),
        subject=f"certctl: {event.type} {name}".strip(),
        body=str(event.details.get("message", f"{event.type} for {name}")),
        severity=_SEVERITY.get(str(event.type), Severity.INFO),
        occurred_at=event.occurred_at,
        certificate_id=event.certificate_id,
        data=dict(event.details),
    )


async def publish(runtime: Runtime, *events: LifecycleEvent) -> None:
    """Deliver ``events`` to hook observers and every enabled notifier, in order."""
    if not events:
        return
    for event in events:
        await notify_event(runtime.host.pm, event, _log)
    async with runtime.sessions() as session:
        rows = list(
            await session.scalars(
                select(ConnectorInstance).where(
                    ConnectorInstance.family == "notifier", ConnectorInstance.enabled.is_(True)
                )
            )
        )
    for event in events if rows else ():
        await _notify(runtime, rows, event)


async def _notify(runtime: Runtime, rows: list[ConnectorInstance], event: LifecycleEvent) -> None:
    notification = _notification(event)
    for row in rows:
        try:
            notifier = runtime.connectors.instance(row)
            assert isinstance(notifier, Notifier)
            await notifier.send(notification)
            outcome, error = "success", None
        except ConnectorError as exc:
            outcome, error = "failure", exc.message
        except Exception as exc:  # noqa: BLE001 - a notifier bug must not break the lifecycle
            _log.exception("notifier %s failed", row.id)
            outcome, error = "failure", f"{type(exc).__name__}"
        async with runtime.sessions.begin() as session:
            record(
                session,
                SYSTEM,
                "notification.sent" if outcome == "success" else "notification.failed",
                resource_type="notifier",
                resource_id=row.id,
                outcome=outcome,
                category="cert_lifecycle",
                details={"event": str(event.type), "certificate_id": event.certificate_id}
                | ({"error": error} if error else {}),
            )
