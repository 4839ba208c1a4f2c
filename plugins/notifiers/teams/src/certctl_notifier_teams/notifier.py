"""The Microsoft Teams notifier: one card per notification through a webhook.

The webhook URL is the credential (its query string carries a signature): it is a
:class:`~certctl_sdk.Secret`, and messages and logs name only its scheme and host.
"""

from __future__ import annotations

from typing import Any, ClassVar

from certctl_notifier_teams.config import CardFormat, TeamsNotifierConfig
from certctl_sdk import CheckResult, ConfigurationError, Notification, Notifier, Severity
from certctl_sdk.http import display_url, post_json, url_secrets

__all__ = ["TeamsNotifier", "build_payload"]

_ADAPTIVE_COLOR = {
    Severity.INFO: "Accent",
    Severity.WARNING: "Warning",
    Severity.CRITICAL: "Attention",
}
_THEME_COLOR = {
    Severity.INFO: "0078D7",
    Severity.WARNING: "FFA500",
    Severity.CRITICAL: "D13438",
}


def _facts(notification: Notification) -> list[tuple[str, str]]:
    facts = [
        ("Severity", notification.severity.value),
        ("Event", notification.event),
    ]
    if notification.certificate_id:
        facts.append(("Certificate", notification.certificate_id))
    facts += [
        ("Occurred at", notification.occurred_at.isoformat()),
        ("Notification", notification.id),
    ]
    return facts


def build_payload(config: TeamsNotifierConfig, notification: Notification) -> dict[str, Any]:
    """The JSON body posted to the webhook for ``notification``."""
    facts = _facts(notification)
    if config.card == CardFormat.MESSAGECARD:
        return {
            "@type": "MessageCard",
            "@context": "https://schema.org/extensions",
            "themeColor": _THEME_COLOR[notification.severity],
            "summary": notification.subject,
            "sections": [
                {
                    "activityTitle": notification.subject,
                    "text": notification.body,
                    "facts": [{"name": name, "value": value} for name, value in facts],
                    "markdown": True,
                }
            ],
        }
    card = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": [
            {
                "type": "TextBlock",
                "text": notification.subject,
                "weight": "Bolder",
                "size": "Medium",
                "color": _ADAPTIVE_COLOR[notification.severity],
                "wrap": True,
            },
            {"type": "TextBlock", "text": notification.body, "wrap": True},
            {
                "type": "FactSet",
                "facts": [{"title": name, "value": value} for name, value in facts],
            },
        ],
    }
    return {
        "type": "message",
        "summary": notification.subject,
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": None,
                "content": card,
            }
        ],
    }


class TeamsNotifier(Notifier[TeamsNotifierConfig]):
    """Posts notifications to a Microsoft Teams channel as cards."""

    kind: ClassVar[str] = "teams"
    display_name: ClassVar[str] = "Microsoft Teams"
    description: ClassVar[str] = (
        "Posts each notification to a Microsoft Teams channel through a workflow or incoming "
        "webhook, as an Adaptive Card or a legacy MessageCard coloured by severity."
    )
    Config = TeamsNotifierConfig

    async def _url(self) -> str:
        url = (await self.context.secrets.resolve(self.config.webhook_url)).strip()
        if not url.startswith(("https://", "http://")):
            raise ConfigurationError("the Teams webhook URL must start with https://")
        return url

    async def check(self) -> CheckResult:
        """Validate the webhook URL without posting: a test card would reach the channel."""
        try:
            url = await self._url()
        except ConfigurationError as exc:
            return CheckResult(ok=False, message=exc.message)
        return CheckResult(
            ok=True,
            message="configuration is valid (no message sent)",
            details={"host": display_url(url)},
        )

    async def send(self, notification: Notification) -> None:
        """Post ``notification``; errors follow the SDK's classes (see the README)."""
        url = await self._url()
        await post_json(
            self.context.http,
            url,
            build_payload(self.config, notification),
            what=f"Teams webhook {display_url(url)}",
            seconds=self.config.timeout,
            now=self.context.clock(),
            secrets=url_secrets(url),
        )
        self.context.logger.debug(
            "teams notification %s posted to %s", notification.id, display_url(url)
        )
