"""The hooks certctl calls. Mark implementations with :data:`hookimpl`.

Registration hooks run once at start-up, synchronously, and return connector *classes*; they must
not open connections or read settings. All I/O happens in ``async`` methods of connector
instances. ``track_event`` is the only hook whose implementations may be ``async def``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable

import pluggy

from certctl_sdk.auth import AuthProvider
from certctl_sdk.events import LifecycleEvent
from certctl_sdk.issuer import Issuer
from certctl_sdk.notifier import Notifier
from certctl_sdk.scanner import Scanner
from certctl_sdk.target import Target

__all__ = [
    "PROJECT_NAME",
    "hookimpl",
    "hookspec",
    "register_auth_providers",
    "register_issuers",
    "register_notifiers",
    "register_scanners",
    "register_targets",
    "track_event",
]

PROJECT_NAME = "certctl"
"""The pluggy project name and the entry-point group plugins are published under."""

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def register_issuers() -> Iterable[type[Issuer]]:  # type: ignore[empty-body,type-arg]
    """Return the issuer classes this plugin provides."""


@hookspec
def register_targets() -> Iterable[type[Target]]:  # type: ignore[empty-body,type-arg]
    """Return the deployment target classes this plugin provides."""


@hookspec
def register_notifiers() -> Iterable[type[Notifier]]:  # type: ignore[empty-body,type-arg]
    """Return the notifier classes this plugin provides."""


@hookspec
def register_auth_providers() -> Iterable[type[AuthProvider]]:  # type: ignore[empty-body,type-arg]
    """Return the authentication provider classes this plugin provides."""


@hookspec
def register_scanners() -> Iterable[type[Scanner]]:  # type: ignore[empty-body,type-arg]
    """Return the discovery scanner classes this plugin provides."""


@hookspec
def track_event(event: LifecycleEvent) -> Awaitable[None] | None:
    """Observe a lifecycle event. May be ``async def``. Must not raise; errors are logged.

    The core calls implementations one at a time with a timeout, after the event's database
    transaction has committed, so an observer can neither block nor undo the lifecycle.
    """
