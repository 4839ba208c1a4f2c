"""The PagerDuty notifier: Events API v2 ``trigger`` and ``resolve`` events.

Each alert carries a ``dedup_key`` built from the certificate id and the event's family (see
:mod:`certctl_sdk.alerts`), so repeated warnings update one alert and a recovery
event (``certificate.renewed``, ``certificate.deployed``) resolves it.
"""

from __future__ import annotations

from typing import Any, ClassVar

from certctl_notifier_pagerduty.config import PagerDutyNotifierConfig
from certctl_sdk import CheckResult, ConfigurationError, Notification, Notifier, Severity
from certctl_sdk.alerts import Action, plan
from certctl_sdk.http import display_url, post_json

__all__ = ["PagerDutyNotifier", "build_events"]

SEVERITY = {
    Severity.INFO: "info",
    Severity.WARNING: "warning",
    Severity.CRITICAL: "critical",
}
"""certctl severity → PagerDuty ``payload.severity``."""

_SUMMARY_MAX = 1024  # the Events API truncates longer summaries


def build_events(
    config: PagerDutyNotifierConfig, notification: Notification, routing_key: str
) -> list[dict[str, Any]]:
    """The Events API v2 bodies ``notification`` calls for (none, one, or one per family)."""
    events: list[dict[str, Any]] = []
    for step in plan(config.families, config.min_severity, notification):
        event: dict[str, Any] = {
            "routing_key": routing_key,
            "event_action": step.action.value,
            "dedup_key": step.key,
        }
        if step.action == Action.TRIGGER:
            details: dict[str, Any] = {
                "body": notification.body,
                "event": notification.event,
                "notification_id": notification.id,
            }
            if notification.certificate_id:
                details["certificate_id"] = notification.certificate_id
            if notification.data:
                details["data"] = notification.data
            payload: dict[str, Any] = {
                "summary": notification.subject[:_SUMMARY_MAX],
                "source": config.source,
                "severity": SEVERITY[notification.severity],
                "timestamp": notification.occurred_at.isoformat(),
                "class": notification.event,
                "custom_details": details,
            }
            if notification.certificate_id:
                payload["component"] = notification.certificate_id
            event.update(payload=payload, client="certctl")
        events.append(event)
    return events


class PagerDutyNotifier(Notifier[PagerDutyNotifierConfig]):
    """Opens PagerDuty alerts for certificate trouble and resolves them on recovery."""

    kind: ClassVar[str] = "pagerduty"
    display_name: ClassVar[str] = "PagerDuty"
    description: ClassVar[str] = (
        "Sends PagerDuty Events API v2 alerts, de-duplicated per certificate and problem, and "
        "resolves them when the certificate is renewed or deployed."
    )
    Config = PagerDutyNotifierConfig

    async def _routing_key(self) -> str:
        key = (await self.context.secrets.resolve(self.config.routing_key)).strip()
        if not key:
            raise ConfigurationError("the PagerDuty routing key is empty")
        return key

    async def check(self) -> CheckResult:
        """Validate the configuration without sending: a test event would page someone."""
        try:
            await self._routing_key()
        except ConfigurationError as exc:
            return CheckResult(ok=False, message=exc.message)
        return CheckResult(
            ok=True,
            message="configuration is valid (no event sent)",
            details={"endpoint": display_url(self.config.base_url)},
        )

    async def send(self, notification: Notification) -> None:
        """Send the trigger or resolve event(s) ``notification`` calls for."""
        key = await self._routing_key()
        events = build_events(self.config, notification, key)
        if not events:
            self.context.logger.debug(
                "pagerduty: notification %s (%s, %s) opens or resolves no alert",
                notification.id,
                notification.event,
                notification.severity.value,
            )
            return
        url = self.config.base_url.rstrip("/") + "/v2/enqueue"
        for event in events:
            await post_json(
                self.context.http,
                url,
                event,
                what=f"PagerDuty Events API {display_url(url)}",
                seconds=self.config.timeout,
                now=self.context.clock(),
                secrets=(key,),
            )
            self.context.logger.debug(
                "pagerduty: %s %s sent for notification %s",
                event["event_action"],
                event["dedup_key"],
                notification.id,
            )
