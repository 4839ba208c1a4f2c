"""Configuration of the Microsoft Teams notifier."""

from __future__ import annotations

import enum
from typing import Annotated

from msgspec import Meta

from certctl_sdk import ConnectorConfig, Secret

__all__ = ["CardFormat", "TeamsNotifierConfig"]


class CardFormat(enum.StrEnum):
    """Which card schema the webhook expects."""

    ADAPTIVE = "adaptive"
    """An Adaptive Card in a message attachment: Power Automate "workflow" webhooks."""
    MESSAGECARD = "messagecard"
    """The legacy Office 365 connector MessageCard: classic "Incoming Webhook" connectors."""


class TeamsNotifierConfig(ConnectorConfig, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Which Teams webhook to post to, and in which card format."""

    webhook_url: Annotated[
        Secret,
        Meta(
            description=(
                "The workflow or incoming webhook URL. It carries its own signature, so it is "
                "stored as a secret."
            )
        ),
    ]
    card: Annotated[
        CardFormat,
        Meta(
            description=(
                "adaptive (Adaptive Card, for Power Automate workflow webhooks) or messagecard "
                "(legacy Office 365 connector webhooks)."
            )
        ),
    ] = CardFormat.ADAPTIVE
    timeout: Annotated[
        float,
        Meta(gt=0, le=120, description="Seconds the request may take in total."),
    ] = 10.0
