"""Wire types of the audit API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

__all__ = ["AuditEventOut"]


class AuditEventOut(msgspec.Struct, kw_only=True):
    """One audit row."""

    id: str
    timestamp: datetime
    actor: str
    actor_type: str
    action: str
    resource_type: str
    resource_id: str
    outcome: str
    category: str
    details: dict[str, Any]
