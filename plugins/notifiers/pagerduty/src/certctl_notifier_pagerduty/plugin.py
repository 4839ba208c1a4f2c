"""Entry point of ``certctl-notifier-pagerduty``: registers the PagerDuty notifier with certctl."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from certctl_notifier_pagerduty.notifier import PagerDutyNotifier
from certctl_sdk import Notifier, hookimpl

__all__ = ["register_notifiers"]


@hookimpl
def register_notifiers() -> Iterable[type[Notifier[Any]]]:
    """Provide the ``pagerduty`` notifier kind."""
    return [PagerDutyNotifier]
