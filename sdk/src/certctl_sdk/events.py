"""Lifecycle events, delivered to ``track_event`` hook implementations."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

import msgspec

__all__ = ["EventType", "LifecycleEvent"]


class EventType(enum.StrEnum):
    """What happened."""

    CERTIFICATE_ISSUED = "certificate.issued"
    CERTIFICATE_RENEWED = "certificate.renewed"
    CERTIFICATE_DEPLOYED = "certificate.deployed"
    CERTIFICATE_REVOKED = "certificate.revoked"
    CERTIFICATE_EXPIRING = "certificate.expiring"
    DEPLOYMENT_FAILED = "deployment.failed"
    ISSUANCE_FAILED = "issuance.failed"
    JOB_FAILED = "job.failed"
    APPROVAL_REQUESTED = "approval.requested"
    """A change waits for a second person's approval (two-person integrity)."""
    APPROVAL_DECIDED = "approval.decided"
    """An approval request was approved, rejected or expired (``details["state"]``)."""


class LifecycleEvent(msgspec.Struct, frozen=True, kw_only=True):
    """An event about a managed certificate or job; ``details`` never holds secrets."""

    type: EventType
    occurred_at: datetime
    certificate_id: str | None = None
    job_id: str | None = None
    actor: str = "system"
    details: dict[str, Any] = msgspec.field(default_factory=dict)
