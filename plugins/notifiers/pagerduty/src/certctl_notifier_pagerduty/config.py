"""Configuration of the PagerDuty notifier."""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

from certctl_sdk import ConnectorConfig, Secret, Severity
from certctl_sdk.alerts import DEFAULT_FAMILIES, AlertFamily, validate_families

__all__ = ["PagerDutyNotifierConfig"]


class PagerDutyNotifierConfig(
    ConnectorConfig, frozen=True, kw_only=True, forbid_unknown_fields=True
):
    """Which PagerDuty service receives alerts, and which events open and resolve them."""

    routing_key: Annotated[
        Secret,
        Meta(description="Integration (routing) key of an Events API v2 integration."),
    ]
    base_url: Annotated[
        str,
        Meta(
            pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$",
            description=(
                "Events API base URL; events go to <base_url>/v2/enqueue. "
                "https://events.eu.pagerduty.com for the EU service region."
            ),
        ),
    ] = "https://events.pagerduty.com"
    source: Annotated[
        str,
        Meta(min_length=1, max_length=255, description="payload.source shown on the alert."),
    ] = "certctl"
    min_severity: Annotated[
        Severity,
        Meta(
            description=(
                "Notifications below this severity open no alert; recoveries always resolve."
            )
        ),
    ] = Severity.WARNING
    families: Annotated[
        list[AlertFamily],
        Meta(
            description=(
                "Which events open an alert and which recovery events resolve it; alerts are "
                "de-duplicated per certificate and family."
            )
        ),
    ] = msgspec.field(default_factory=lambda: list(DEFAULT_FAMILIES))
    timeout: Annotated[
        float,
        Meta(gt=0, le=120, description="Seconds one request may take in total."),
    ] = 10.0

    def __post_init__(self) -> None:
        validate_families(self.families)
