"""The Opsgenie notifier: Alert API create and close requests.

Alerts carry an ``alias`` built from the certificate id and the event's family (see
:mod:`certctl_sdk.alerts`): Opsgenie folds a repeated alert with an open alias
into the existing one, and a recovery event closes it by alias.
"""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import quote

import msgspec

from certctl_notifier_opsgenie.config import OpsgenieNotifierConfig
from certctl_sdk import CheckResult, ConfigurationError, Notification, Notifier
from certctl_sdk.alerts import Action, plan
from certctl_sdk.http import display_url, post_json

__all__ = ["OpsgenieNotifier", "build_requests"]

_MESSAGE_MAX = 130  # Opsgenie's limit for an alert message
_DESCRIPTION_MAX = 15000


class _Request(msgspec.Struct, frozen=True):
    """One Alert API call: the path below the base URL and its JSON body."""

    path: str
    body: dict[str, Any]
    label: str


def _text(value: object) -> str:
    return value if isinstance(value, str) else msgspec.json.encode(value).decode()


def build_requests(
    config: OpsgenieNotifierConfig, notification: Notification
) -> list[tuple[str, dict[str, Any]]]:
    """``(path, body)`` of each Alert API call ``notification`` calls for."""
    return [(r.path, r.body) for r in _requests(config, notification)]


def _requests(config: OpsgenieNotifierConfig, notification: Notification) -> list[_Request]:
    requests: list[_Request] = []
    for step in plan(config.families, config.min_severity, notification):
        if step.action == Action.RESOLVE:
            path = f"/v2/alerts/{quote(step.key, safe='')}/close?identifierType=alias"
            note = f"Closed by {notification.event} ({notification.id})"
            close: dict[str, Any] = {"source": config.source, "note": note[:25000]}
            requests.append(_Request(path, close, f"close {step.key}"))
            continue
        details = {
            "event": notification.event,
            "severity": notification.severity.value,
            "notification_id": notification.id,
            "occurred_at": notification.occurred_at.isoformat(),
        }
        if notification.certificate_id:
            details["certificate_id"] = notification.certificate_id
        details.update({key: _text(value) for key, value in notification.data.items()})
        body: dict[str, Any] = {
            "message": notification.subject[:_MESSAGE_MAX],
            "alias": step.key,
            "description": notification.body[:_DESCRIPTION_MAX],
            "priority": getattr(config.priorities, notification.severity.value),
            "tags": list(config.tags),
            "details": details,
            "source": config.source,
        }
        if notification.certificate_id:
            body["entity"] = notification.certificate_id
        requests.append(_Request("/v2/alerts", body, f"create {step.key}"))
    return requests


class OpsgenieNotifier(Notifier[OpsgenieNotifierConfig]):
    """Creates Opsgenie alerts for certificate trouble and closes them on recovery."""

    kind: ClassVar[str] = "opsgenie"
    display_name: ClassVar[str] = "Opsgenie"
    description: ClassVar[str] = (
        "Creates Opsgenie alerts with P1-P5 priorities by severity, de-duplicated per "
        "certificate and problem, and closes them when the certificate is renewed or deployed."
    )
    Config = OpsgenieNotifierConfig

    async def _api_key(self) -> str:
        key = (await self.context.secrets.resolve(self.config.api_key)).strip()
        if not key:
            raise ConfigurationError("the Opsgenie API key is empty")
        if any(c in key for c in "\r\n"):
            raise ConfigurationError("the Opsgenie API key contains a line break")
        return key

    async def check(self) -> CheckResult:
        """Validate the configuration without sending: a test alert would notify people."""
        try:
            await self._api_key()
        except ConfigurationError as exc:
            return CheckResult(ok=False, message=exc.message)
        return CheckResult(
            ok=True,
            message="configuration is valid (no alert sent)",
            details={"endpoint": display_url(self.config.base_url)},
        )

    async def send(self, notification: Notification) -> None:
        """Create or close the alert(s) ``notification`` calls for."""
        key = await self._api_key()
        requests = _requests(self.config, notification)
        if not requests:
            self.context.logger.debug(
                "opsgenie: notification %s (%s, %s) creates or closes no alert",
                notification.id,
                notification.event,
                notification.severity.value,
            )
            return
        base = self.config.base_url.rstrip("/")
        for request in requests:
            await post_json(
                self.context.http,
                base + request.path,
                request.body,
                what=f"Opsgenie Alert API {display_url(base)}",
                seconds=self.config.timeout,
                now=self.context.clock(),
                headers={"Authorization": f"GenieKey {key}"},
                secrets=(key,),
            )
            self.context.logger.debug(
                "opsgenie: %s sent for notification %s", request.label, notification.id
            )
