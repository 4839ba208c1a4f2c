"""Entry point of ``certctl-notifier-webhook``: registers the webhook notifier with certctl."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from certctl_notifier_webhook.notifier import WebhookNotifier
from certctl_sdk import Notifier, hookimpl

__all__ = ["register_notifiers"]


@hookimpl
def register_notifiers() -> Iterable[type[Notifier[Any]]]:
    """Provide the ``webhook`` notifier kind."""
    return [WebhookNotifier]
