"""Configuration of the Slack notifier."""

from __future__ import annotations

import enum
from typing import Annotated

from msgspec import Meta

from certctl_sdk import ConnectorConfig, Secret

__all__ = ["MessageFormat", "SlackNotifierConfig"]


class MessageFormat(enum.StrEnum):
    """How a notification is laid out in Slack."""

    BLOCKS = "blocks"
    """Block Kit: a header, the body, and a context line with severity, event and ids."""
    TEXT = "text"
    """One mrkdwn text message, for workspaces or bridges that do not render blocks."""


class SlackNotifierConfig(ConnectorConfig, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Which Slack incoming webhook to post to, and how messages look."""

    webhook_url: Annotated[
        Secret,
        Meta(
            description=(
                "The incoming webhook URL (https://hooks.slack.com/services/...). It is the "
                "credential, so it is stored as a secret."
            )
        ),
    ]
    format: Annotated[
        MessageFormat,
        Meta(description="blocks (Block Kit, with a plain-text fallback) or text (mrkdwn)."),
    ] = MessageFormat.BLOCKS
    channel: Annotated[
        Annotated[str, Meta(pattern=r"^[#@]?[A-Za-z0-9._-]{1,80}$")] | None,
        Meta(
            description=(
                "Channel override, e.g. #pki-alerts. Only legacy webhooks honour it; app "
                "webhooks always post to the channel chosen when they were created."
            )
        ),
    ] = None
    username: Annotated[
        Annotated[str, Meta(min_length=1, max_length=80)] | None,
        Meta(description="Display name override (legacy webhooks only)."),
    ] = None
    icon_emoji: Annotated[
        Annotated[str, Meta(pattern=r"^:[a-z0-9_+-]+:$")] | None,
        Meta(description="Icon override such as :lock: (legacy webhooks only)."),
    ] = None
    timeout: Annotated[
        float,
        Meta(gt=0, le=120, description="Seconds the request may take in total."),
    ] = 10.0
