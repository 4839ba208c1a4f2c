"""Wire types of the audit API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

__all__ = ["AuditEventOut", "ChainBreak", "ChainReport"]


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
    seq: int
    prev_hash: str
    row_hash: str


class ChainBreak(msgspec.Struct, kw_only=True):
    """The first link of the chain that does not hold.

    ``seq``/``id`` name the row where the walk failed; for rows missing at the tail ``seq`` is
    the first missing position and ``id`` is null.
    """

    seq: int | None
    id: str | None
    reason: str


class ChainReport(msgspec.Struct, kw_only=True):
    """Result of walking the hash chain (``GET /api/v1/audit/verify``, ``certctl audit verify``).

    ``checked`` counts rows found intact before the first break (all rows when ``ok``).
    ``head_seq``/``head_hash`` can be written down and passed back later as an anchor.
    """

    ok: bool
    checked: int
    first_broken: ChainBreak | None
    head_seq: int
    head_hash: str
