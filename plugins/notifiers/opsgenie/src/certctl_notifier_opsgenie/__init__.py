"""certctl-notifier-opsgenie: Opsgenie alerts with P1-P5 priorities, closed on recovery."""

from certctl_notifier_opsgenie.config import OpsgenieNotifierConfig, Priorities
from certctl_notifier_opsgenie.notifier import OpsgenieNotifier, build_requests
from certctl_sdk.alerts import DEFAULT_FAMILIES, AlertFamily

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_FAMILIES",
    "AlertFamily",
    "OpsgenieNotifier",
    "OpsgenieNotifierConfig",
    "Priorities",
    "build_requests",
]
