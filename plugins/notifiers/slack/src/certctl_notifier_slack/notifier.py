"""The Slack notifier: one message per notification through an incoming webhook.

The webhook URL is the credential: it is a :class:`~certctl_sdk.Secret`, and messages and logs
name only its scheme and host. One POST per send; failures are mapped onto the SDK's errors so
the core's scheduler retries what is worth retrying.
"""

from __future__ import annotations

from typing import Any, ClassVar

from certctl_notifier_slack.config import MessageFormat, SlackNotifierConfig
from certctl_sdk import (
    CheckResult,
    ConfigurationError,
    Notification,
    Notifier,
    Severity,
)
from certctl_sdk.http import display_url, post_json, url_secrets

__all__ = ["SlackNotifier", "build_payload"]

_EMOJI = {
    Severity.INFO: ":information_source:",
    Severity.WARNING: ":warning:",
    Severity.CRITICAL: ":rotating_light:",
}
_HEADER_MAX = 150  # Block Kit limit for a header's plain text
_SECTION_MAX = 3000  # Block Kit limit for a section's text


def _escape(text: str) -> str:
    """Slack's mrkdwn control characters, so a body cannot forge links or mentions."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def build_payload(config: SlackNotifierConfig, notification: Notification) -> dict[str, Any]:
    """The JSON body posted to the webhook for ``notification``."""
    emoji = _EMOJI[notification.severity]
    facts = [
        f"*Severity:* {notification.severity.value}",
        f"*Event:* `{_escape(notification.event)}`",
    ]
    if notification.certificate_id:
        facts.append(f"*Certificate:* `{_escape(notification.certificate_id)}`")
    facts.append(f"*Notification:* `{_escape(notification.id)}`")
    subject = _escape(notification.subject)
    body = _escape(notification.body)
    payload: dict[str, Any]
    if config.format == MessageFormat.BLOCKS:
        payload = {
            "text": f"{emoji} {subject}",  # notification and screen-reader fallback
            "blocks": [
                {
                    "type": "header",
                    "text": {
                        "type": "plain_text",
                        "text": _clip(f"{emoji} {notification.subject}", _HEADER_MAX),
                        "emoji": True,
                    },
                },
                {"type": "section", "text": {"type": "mrkdwn", "text": _clip(body, _SECTION_MAX)}},
                {
                    "type": "context",
                    "elements": [{"type": "mrkdwn", "text": "  ·  ".join(facts)}],
                },
            ],
        }
    else:
        payload = {"text": f"{emoji} *{subject}*\n{body}\n" + "  ·  ".join(facts)}
    if config.channel:
        payload["channel"] = config.channel
    if config.username:
        payload["username"] = config.username
    if config.icon_emoji:
        payload["icon_emoji"] = config.icon_emoji
    return payload


class SlackNotifier(Notifier[SlackNotifierConfig]):
    """Posts notifications to a Slack channel through an incoming webhook."""

    kind: ClassVar[str] = "slack"
    display_name: ClassVar[str] = "Slack"
    description: ClassVar[str] = (
        "Posts each notification to a Slack channel through an incoming webhook, as Block Kit "
        "or plain mrkdwn, with the severity shown."
    )
    Config = SlackNotifierConfig

    async def _url(self) -> str:
        url = (await self.context.secrets.resolve(self.config.webhook_url)).strip()
        if not url.startswith(("https://", "http://")):
            raise ConfigurationError("the Slack webhook URL must start with https://")
        return url

    async def check(self) -> CheckResult:
        """Validate the webhook URL without posting: a test post would reach the channel."""
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
            what=f"Slack webhook {display_url(url)}",
            seconds=self.config.timeout,
            now=self.context.clock(),
            secrets=url_secrets(url),
        )
        self.context.logger.debug(
            "slack notification %s posted to %s", notification.id, display_url(url)
        )
