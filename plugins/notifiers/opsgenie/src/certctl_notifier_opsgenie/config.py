"""Configuration of the Opsgenie notifier."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from certctl_sdk import ConnectorConfig, Secret, Severity
from certctl_sdk.alerts import DEFAULT_FAMILIES, AlertFamily, validate_families

__all__ = ["OpsgenieNotifierConfig", "Priorities", "Priority"]

Priority = Literal["P1", "P2", "P3", "P4", "P5"]


class Priorities(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The Opsgenie priority of an alert, per certctl severity."""

    info: Annotated[Priority, Meta(description="Priority of info notifications.")] = "P5"
    warning: Annotated[Priority, Meta(description="Priority of warnings.")] = "P3"
    critical: Annotated[Priority, Meta(description="Priority of critical notifications.")] = "P1"


class OpsgenieNotifierConfig(
    ConnectorConfig, frozen=True, kw_only=True, forbid_unknown_fields=True
):
    """Which Opsgenie account receives alerts, how urgent they are, and what closes them."""

    api_key: Annotated[
        Secret,
        Meta(description="API key of an Opsgenie API integration (sent as 'GenieKey <key>')."),
    ]
    base_url: Annotated[
        str,
        Meta(
            pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$",
            description=(
                "Alert API base URL; https://api.eu.opsgenie.com for the EU instance. "
                "Alerts go to <base_url>/v2/alerts."
            ),
        ),
    ] = "https://api.opsgenie.com"
    priorities: Annotated[
        Priorities,
        Meta(description="Priority (P1 highest to P5) per severity."),
    ] = Priorities()
    tags: Annotated[
        list[Annotated[str, Meta(min_length=1, max_length=50)]],
        Meta(max_length=20, description="Tags put on every alert."),
    ] = msgspec.field(default_factory=lambda: ["certctl"])
    source: Annotated[
        str,
        Meta(min_length=1, max_length=100, description="Source field shown on the alert."),
    ] = "certctl"
    min_severity: Annotated[
        Severity,
        Meta(description="Notifications below this severity open no alert; recoveries close."),
    ] = Severity.WARNING
    families: Annotated[
        list[AlertFamily],
        Meta(
            description=(
                "Which events open an alert and which recovery events close it; alerts are "
                "de-duplicated per certificate and family through the alias."
            )
        ),
    ] = msgspec.field(default_factory=lambda: list(DEFAULT_FAMILIES))
    timeout: Annotated[
        float,
        Meta(gt=0, le=120, description="Seconds one request may take in total."),
    ] = 10.0

    def __post_init__(self) -> None:
        validate_families(self.families)
