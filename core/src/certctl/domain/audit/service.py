"""Writing and reading the append-only, hash-chained audit trail.

:func:`record` and :func:`record_many` stage rows on the caller's session; they are numbered,
hashed and inserted when that session commits (``certctl.domain.audit.chain``), so a row
commits or rolls back with the change it records and takes the chain lock only at the end.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from certctl.db.base import new_id, utcnow
from certctl.db.models import AuditChainHead, AuditEvent
from certctl.domain.audit.chain import stage
from certctl.domain.auth.actor import Actor
from certctl.errors import BadRequest

__all__ = ["AuditFilter", "audit_row", "list_events", "read_head", "record", "record_many"]

_Query = TypeVar("_Query", bound=Select[Any])


def audit_row(
    actor: Actor,
    action: str,
    *,
    resource_type: str,
    resource_id: str,
    outcome: str = "success",
    category: str = "config",
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The column values of one audit row."""
    return {
        "id": new_id("aud"),
        "timestamp": utcnow(),
        "actor": actor.name,
        "actor_type": actor.type,
        "action": action,
        "resource_type": resource_type,
        "resource_id": resource_id,
        "outcome": outcome,
        "category": category,
        "details": details or {},
    }


def record(
    session: AsyncSession,
    actor: Actor,
    action: str,
    *,
    resource_type: str,
    resource_id: str,
    outcome: str = "success",
    category: str = "config",
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Add an audit row to ``session``: it commits (or rolls back) with the change it records.

    ``details`` is redacted (``certctl.domain.audit.redact``) and must be plain JSON. The
    returned event is not attached to the session; its ``seq`` and hashes are set at commit.
    """
    values = audit_row(
        actor,
        action,
        resource_type=resource_type,
        resource_id=resource_id,
        outcome=outcome,
        category=category,
        details=details,
    )
    event = AuditEvent(**values)
    stage(session, values, event)
    return event


async def record_many(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Add many :func:`audit_row` rows to ``session``; they are inserted in one statement.

    Asynchronous for its callers' sake: the rows go through the same commit-time chaining as
    :func:`record`, so nothing is written before the session commits.
    """
    for values in rows:
        stage(session, values)


def _aware(name: str, value: datetime | None) -> datetime | None:
    """Refuse a timestamp without an offset: it would be compared as UTC only by accident."""
    if value is not None and value.tzinfo is None:
        raise BadRequest(f"{name} must include a UTC offset, e.g. 2026-01-31T00:00:00Z")
    return value


class AuditFilter:
    """Filters of ``GET /api/v1/audit``."""

    __slots__ = (
        "action",
        "actor",
        "category",
        "outcome",
        "resource_id",
        "resource_type",
        "since",
        "until",
    )

    def __init__(
        self,
        *,
        actor: str | None = None,
        action: str | None = None,
        resource_type: str | None = None,
        resource_id: str | None = None,
        category: str | None = None,
        outcome: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> None:
        self.actor = actor
        self.action = action
        self.resource_type = resource_type
        self.resource_id = resource_id
        self.category = category
        self.outcome = outcome
        self.since = _aware("since", since)
        self.until = _aware("until", until)

    def as_dict(self) -> dict[str, str]:
        """The filters that are set, as strings (recorded with an export)."""
        out = {}
        for name in self.__slots__:
            value = getattr(self, name)
            if value is not None:
                out[name] = value.isoformat() if isinstance(value, datetime) else str(value)
        return out

    def apply(self, query: _Query) -> _Query:
        """Narrow ``query`` by every filter that is set."""
        for column, value in (
            (AuditEvent.actor, self.actor),
            (AuditEvent.action, self.action),
            (AuditEvent.resource_type, self.resource_type),
            (AuditEvent.resource_id, self.resource_id),
            (AuditEvent.category, self.category),
            (AuditEvent.outcome, self.outcome),
        ):
            if value is not None:
                query = query.where(column == value)
        if self.since is not None:
            query = query.where(AuditEvent.timestamp >= self.since)
        if self.until is not None:
            query = query.where(AuditEvent.timestamp <= self.until)
        return query


async def list_events(
    session: AsyncSession, filters: AuditFilter, *, offset: int, limit: int
) -> tuple[list[AuditEvent], int]:
    """Newest first, with the total matching count."""
    query = filters.apply(select(AuditEvent))
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    rows = await session.scalars(
        query.order_by(AuditEvent.timestamp.desc(), AuditEvent.id.desc())
        .offset(offset)
        .limit(limit)
    )
    return list(rows), int(total or 0)


async def read_head(engine: AsyncEngine) -> tuple[int, str]:
    """The chain head's (last seq, last hash), without locking it.

    Without a head row (it can only be missing after tampering, which verification reports)
    this is the highest ``seq`` present and an empty hash, so an export still shows every row.
    """
    async with engine.connect() as conn:
        head = (
            await conn.execute(
                select(AuditChainHead.last_seq, AuditChainHead.last_hash).where(
                    AuditChainHead.id == 1
                )
            )
        ).one_or_none()
        if head is not None:
            return int(head[0]), str(head[1])
        return int(await conn.scalar(select(func.max(AuditEvent.seq))) or 0), ""
