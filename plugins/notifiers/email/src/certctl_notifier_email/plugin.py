"""Entry point of ``certctl-notifier-email``: registers the e-mail notifier with certctl."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from certctl_notifier_email.notifier import EmailNotifier
from certctl_sdk import Notifier, hookimpl

__all__ = ["register_notifiers"]


@hookimpl
def register_notifiers() -> Iterable[type[Notifier[Any]]]:
    """Provide the ``email`` notifier kind."""
    return [EmailNotifier]
