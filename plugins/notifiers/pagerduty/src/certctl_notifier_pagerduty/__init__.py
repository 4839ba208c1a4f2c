"""certctl-notifier-pagerduty: PagerDuty Events API v2 alerts that resolve on recovery."""

from certctl_notifier_pagerduty.config import PagerDutyNotifierConfig
from certctl_notifier_pagerduty.notifier import PagerDutyNotifier, build_events
from certctl_sdk.alerts import DEFAULT_FAMILIES, AlertFamily

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_FAMILIES",
    "AlertFamily",
    "PagerDutyNotifier",
    "PagerDutyNotifierConfig",
    "build_events",
]
