"""Entry point of ``certctl-notifier-slack``: registers the Slack notifier with certctl."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from certctl_notifier_slack.notifier import SlackNotifier
from certctl_sdk import Notifier, hookimpl

__all__ = ["register_notifiers"]


@hookimpl
def register_notifiers() -> Iterable[type[Notifier[Any]]]:
    """Provide the ``slack`` notifier kind."""
    return [SlackNotifier]
