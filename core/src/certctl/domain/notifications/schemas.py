"""Wire types of the notifications API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

__all__ = ["NotificationOut"]


class NotificationOut(msgspec.Struct, kw_only=True):
    """One queued or delivered notification for one notifier."""

    id: str
    event: str
    severity: str
    subject: str
    body: str
    data: dict[str, Any]
    certificate_id: str | None
    notifier_id: str
    status: str
    attempts: int
    max_attempts: int
    next_attempt_at: datetime
    last_error: str | None
    dedup_key: str
    occurred_at: datetime
    read_at: datetime | None
    created_at: datetime
    sent_at: datetime | None
