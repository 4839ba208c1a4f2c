"""Wire types of the renewal policy API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

__all__ = [
    "DEFAULT_SEVERITY_MAP",
    "DEFAULT_THRESHOLDS",
    "RenewalPolicyIn",
    "RenewalPolicyOut",
    "RenewalPolicyUpdate",
    "SeverityName",
]

SeverityName = Literal["info", "warning", "critical"]
DEFAULT_THRESHOLDS = [30, 14, 7, 0]
DEFAULT_SEVERITY_MAP: dict[str, SeverityName] = {
    "30": "info",
    "14": "warning",
    "7": "warning",
    "0": "critical",
}

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
WindowDays = Annotated[int, msgspec.Meta(ge=1, le=365)]
Fraction = Annotated[float, msgspec.Meta(ge=0.1, le=0.95)]
JitterPercent = Annotated[int, msgspec.Meta(ge=0, le=50)]
MaxRetries = Annotated[int, msgspec.Meta(ge=0, le=10)]
RetryInterval = Annotated[int, msgspec.Meta(ge=60, le=86400)]
Thresholds = Annotated[
    list[Annotated[int, msgspec.Meta(ge=0, le=365)]], msgspec.Meta(min_length=0, max_length=16)
]


class RenewalPolicyIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Create a renewal policy.

    ``renew_fraction`` (of the lifetime), when set, replaces ``renewal_window_days``;
    ``jitter_percent`` of the renewal window spreads a fleet's renewals later inside it.
    """

    name: Name
    renewal_window_days: WindowDays = 30
    renew_fraction: Fraction | None = None
    jitter_percent: JitterPercent = 10
    auto_renew: bool = True
    max_retries: MaxRetries = 3
    retry_interval_seconds: RetryInterval = 3600
    alert_thresholds_days: Thresholds = msgspec.field(default_factory=lambda: [30, 14, 7, 0])
    alert_severity_map: dict[str, SeverityName] | None = None
    alert_notifier_ids: list[str] = msgspec.field(default_factory=list)
    notify_events: list[str] | None = None


class RenewalPolicyUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Change a policy; omitted fields keep their values (``renew_fraction: 0`` clears it)."""

    name: Name | None = None
    renewal_window_days: WindowDays | None = None
    renew_fraction: Annotated[float, msgspec.Meta(ge=0, le=0.95)] | None = None
    jitter_percent: JitterPercent | None = None
    auto_renew: bool | None = None
    max_retries: MaxRetries | None = None
    retry_interval_seconds: RetryInterval | None = None
    alert_thresholds_days: Thresholds | None = None
    alert_severity_map: dict[str, SeverityName] | None = None
    alert_notifier_ids: list[str] | None = None
    notify_events: list[str] | None = None


class RenewalPolicyOut(msgspec.Struct, kw_only=True):
    """A renewal policy."""

    id: str
    name: str
    renewal_window_days: int
    renew_fraction: float | None
    jitter_percent: int
    auto_renew: bool
    max_retries: int
    retry_interval_seconds: int
    alert_thresholds_days: list[int]
    alert_severity_map: dict[str, str]
    alert_notifier_ids: list[str]
    notify_events: list[str]
    created_at: datetime
    updated_at: datetime
