"""Notifiers: connectors that tell people or systems about lifecycle events."""

from __future__ import annotations

import abc
import enum
from datetime import datetime
from typing import Any, ClassVar, TypeVar

import msgspec

from certctl_sdk.config import ConnectorConfig
from certctl_sdk.connector import Connector

__all__ = ["Notification", "Notifier", "Severity"]

ConfigT = TypeVar("ConfigT", bound=ConnectorConfig)


class Severity(enum.StrEnum):
    """How urgent a notification is."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class Notification(msgspec.Struct, frozen=True, kw_only=True):
    """One message. ``id`` is stable across retries so receivers can de-duplicate."""

    id: str
    event: str
    subject: str
    body: str
    severity: Severity = Severity.INFO
    occurred_at: datetime
    certificate_id: str | None = None
    data: dict[str, Any] = msgspec.field(default_factory=dict)


class Notifier(Connector[ConfigT], abc.ABC):
    """Base class of notifiers. Raise TransientError to have the core retry later."""

    family: ClassVar[str] = "notifier"

    @abc.abstractmethod
    async def send(self, notification: Notification) -> None:
        """Deliver ``notification``."""
