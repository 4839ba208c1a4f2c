"""Entry point of ``certctl-notifier-teams``: registers the Teams notifier with certctl."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from certctl_notifier_teams.notifier import TeamsNotifier
from certctl_sdk import Notifier, hookimpl

__all__ = ["register_notifiers"]


@hookimpl
def register_notifiers() -> Iterable[type[Notifier[Any]]]:
    """Provide the ``teams`` notifier kind."""
    return [TeamsNotifier]
