"""Entry point of ``certctl-notifier-opsgenie``: registers the Opsgenie notifier with certctl."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from certctl_notifier_opsgenie.notifier import OpsgenieNotifier
from certctl_sdk import Notifier, hookimpl

__all__ = ["register_notifiers"]


@hookimpl
def register_notifiers() -> Iterable[type[Notifier[Any]]]:
    """Provide the ``opsgenie`` notifier kind."""
    return [OpsgenieNotifier]
