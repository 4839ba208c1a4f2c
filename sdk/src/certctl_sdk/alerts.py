"""Alert families for paging notifiers: which events open and close an incident, and its key.

An incident is identified by the certificate and the *family* of its trouble (``expiry``,
``deployment``...), so ``certificate.expiring`` and a later ``certificate.renewed`` for the same
certificate refer to the same key and the second closes what the first opened.
"""

from __future__ import annotations

import enum
from typing import Annotated

import msgspec
from msgspec import Meta

from certctl_sdk import Notification, Severity

__all__ = ["DEFAULT_FAMILIES", "Action", "AlertFamily", "Step", "plan", "validate_families"]

_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}


class AlertFamily(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Events that open one kind of incident, and the events that close it again."""

    name: Annotated[
        str,
        Meta(
            pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$",
            description="Family name; part of the incident key (certctl/<certificate>/<name>).",
        ),
    ]
    triggers: Annotated[
        list[str],
        Meta(min_length=1, description="Events that open (or re-notify) the incident."),
    ]
    resolves: Annotated[
        list[str],
        Meta(description="Recovery events that close the incident for the same certificate."),
    ] = []


DEFAULT_FAMILIES = [
    AlertFamily(
        name="expiry",
        triggers=["certificate.expiring", "issuance.failed"],
        resolves=["certificate.renewed", "certificate.issued"],
    ),
    AlertFamily(
        name="deployment",
        triggers=["deployment.failed"],
        resolves=["certificate.deployed"],
    ),
]


def validate_families(families: list[AlertFamily]) -> None:
    """Refuse duplicate names and events that would both open and close incidents."""
    names = [family.name for family in families]
    if len(set(names)) != len(names):
        raise ValueError("families: each family name must be unique")
    opening = {event for family in families for event in family.triggers}
    closing = {event for family in families for event in family.resolves}
    both = sorted(opening & closing)
    if both:
        raise ValueError(f"families: {', '.join(both)} cannot both open and close incidents")


class Action(enum.StrEnum):
    """What to do with the vendor's incident."""

    TRIGGER = "trigger"
    RESOLVE = "resolve"


class Step(msgspec.Struct, frozen=True):
    """One request to make: open/update or close the incident ``key``."""

    action: Action
    key: str


def plan(
    families: list[AlertFamily], min_severity: Severity, notification: Notification
) -> list[Step]:
    """The requests ``notification`` calls for; empty when it is below ``min_severity``.

    A recovery event closes the incident of each family that lists it, for the notification's
    certificate (nothing to close without one). Any other event opens an incident keyed by the
    certificate and its family (the event name when no family lists it); without a certificate
    the notification id is the key, so a retry never opens a second incident.
    """
    event = notification.event
    closing = [family.name for family in families if event in family.resolves]
    if closing:
        if notification.certificate_id is None:
            return []
        return [Step(Action.RESOLVE, _key(notification.certificate_id, name)) for name in closing]
    if _RANK[notification.severity] < _RANK[min_severity]:
        return []
    family = next((f.name for f in families if event in f.triggers), event)
    if notification.certificate_id is None:
        return [Step(Action.TRIGGER, f"certctl/{notification.id}")]
    return [Step(Action.TRIGGER, _key(notification.certificate_id, family))]


def _key(certificate_id: str, family: str) -> str:
    return f"certctl/{certificate_id}/{family}"
