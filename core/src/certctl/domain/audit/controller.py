"""Read access to the audit trail."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from litestar import Controller, get
from litestar.params import FromPath, FromQuery, QueryParameter

from certctl.db.models import AuditEvent
from certctl.domain.audit.schemas import AuditEventOut
from certctl.domain.audit.service import AuditFilter, list_events
from certctl.errors import NotFound
from certctl.lib.deps import SessionDep
from certctl.lib.pagination import Page, page_window

__all__ = ["AuditController"]


def _out(row: AuditEvent) -> AuditEventOut:
    return msgspec.convert(row, AuditEventOut, from_attributes=True)


class AuditController(Controller):
    """``/api/v1/audit``."""

    path = "/api/v1/audit"
    tags = ["Audit"]

    @get("/", opt={"permission": "audit.read"})
    async def list_audit(
        self,
        session: SessionDep,
        page: FromQuery[int] = 1,
        per_page: FromQuery[int] = 50,
        actor_name: Annotated[str | None, QueryParameter(name="actor")] = None,
        action: FromQuery[str | None] = None,
        resource_type: FromQuery[str | None] = None,
        resource_id: FromQuery[str | None] = None,
        category: FromQuery[str | None] = None,
        outcome: FromQuery[str | None] = None,
        since: FromQuery[datetime | None] = None,
        until: FromQuery[datetime | None] = None,
    ) -> Page[AuditEventOut]:
        """Newest first, filtered."""
        offset, limit = page_window(page, per_page)
        filters = AuditFilter(
            actor=actor_name,
            action=action,
            resource_type=resource_type,
            resource_id=resource_id,
            category=category,
            outcome=outcome,
            since=since,
            until=until,
        )
        rows, total = await list_events(session, filters, offset=offset, limit=limit)
        return Page(data=[_out(r) for r in rows], total=total, page=page, per_page=per_page)

    @get("/{event_id:str}", opt={"permission": "audit.read"})
    async def get_audit(self, session: SessionDep, event_id: FromPath[str]) -> AuditEventOut:
        """One audit row."""
        row = await session.get(AuditEvent, event_id)
        if row is None:
            raise NotFound(f"audit event {event_id!r} not found")
        return _out(row)
