"""Read access to the audit trail: list, one event, chain verification, export."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from litestar import Controller, get
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, FromQuery, QueryParameter
from litestar.response import Stream

from certctl.db.base import utcnow
from certctl.db.models import AuditEvent
from certctl.domain.audit.export import FORMATS, export_stream
from certctl.domain.audit.schemas import AuditEventOut, ChainReport
from certctl.domain.audit.service import AuditFilter, list_events, read_head, record
from certctl.domain.audit.verify import parse_anchor
from certctl.errors import BadRequest, NotFound
from certctl.lib.deps import ActorDep, RuntimeDep, SessionDep
from certctl.lib.pagination import Page, page_window

__all__ = ["AuditController"]


def _out(row: AuditEvent) -> AuditEventOut:
    return msgspec.convert(row, AuditEventOut, from_attributes=True)


def provide_filters(
    actor_name: Annotated[str | None, QueryParameter(name="actor")] = None,
    action: FromQuery[str | None] = None,
    resource_type: FromQuery[str | None] = None,
    resource_id: FromQuery[str | None] = None,
    category: FromQuery[str | None] = None,
    outcome: FromQuery[str | None] = None,
    since: FromQuery[datetime | None] = None,
    until: FromQuery[datetime | None] = None,
) -> AuditFilter:
    """The filters shared by the list and the export."""
    return AuditFilter(
        actor=actor_name,
        action=action,
        resource_type=resource_type,
        resource_id=resource_id,
        category=category,
        outcome=outcome,
        since=since,
        until=until,
    )


FiltersDep = NamedDependency[AuditFilter]


class AuditController(Controller):
    """``/api/v1/audit``."""

    path = "/api/v1/audit"
    tags = ["Audit"]
    dependencies = {"filters": Provide(provide_filters, sync_to_thread=False)}

    @get("/", opt={"permission": "audit.read"})
    async def list_audit(
        self,
        session: SessionDep,
        filters: FiltersDep,
        page: FromQuery[int] = 1,
        per_page: FromQuery[int] = 50,
    ) -> Page[AuditEventOut]:
        """Newest first, filtered."""
        offset, limit = page_window(page, per_page)
        rows, total = await list_events(session, filters, offset=offset, limit=limit)
        return Page(data=[_out(r) for r in rows], total=total, page=page, per_page=per_page)

    @get("/verify", opt={"permission": "audit.read"})
    async def verify_chain(
        self, runtime: RuntimeDep, anchor: FromQuery[str | None] = None
    ) -> ChainReport:
        """Walk the hash chain and report the first broken link.

        ``anchor=<seq>:<row_hash>`` (from an earlier report's head) also checks that this
        link is still in the chain, which catches a tail deleted together with a rewound head.
        """
        try:
            expected = parse_anchor(anchor) if anchor is not None else None
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        return await runtime.audit_chain.verify(expected)

    @get("/export", opt={"permission": "audit.export"})
    async def export_audit(
        self,
        runtime: RuntimeDep,
        actor: ActorDep,
        filters: FiltersDep,
        export_format: Annotated[str, QueryParameter(name="format")] = "ndjson",
    ) -> Stream:
        """The trail in ``seq`` order as NDJSON (default) or CSV, with the list's filters.

        The export itself is recorded first (action ``audit.export``), so it appears in what
        it exports. Headers name the chain head the export stops at.
        """
        if export_format not in FORMATS:
            raise BadRequest(f"format must be one of {', '.join(sorted(FORMATS))}")
        async with runtime.sessions.begin() as session:
            record(
                session,
                actor,
                "audit.export",
                resource_type="audit",
                resource_id="export",
                category="audit",
                details={"format": export_format, "filters": filters.as_dict()},
            )
        head_seq, head_hash = await read_head(runtime.engine)
        stamp = utcnow().strftime("%Y%m%dT%H%M%SZ")
        return Stream(
            export_stream(runtime.engine, filters, head_seq=head_seq, fmt=export_format),
            media_type=FORMATS[export_format],
            headers={
                "Content-Disposition": (
                    f'attachment; filename="certctl-audit-{stamp}.{export_format}"'
                ),
                "X-Certctl-Audit-Head-Seq": str(head_seq),
                "X-Certctl-Audit-Head-Hash": head_hash,
            },
        )

    @get("/{event_id:str}", opt={"permission": "audit.read"})
    async def get_audit(self, session: SessionDep, event_id: FromPath[str]) -> AuditEventOut:
        """One audit row."""
        row = await session.get(AuditEvent, event_id)
        if row is None:
            raise NotFound(f"audit event {event_id!r} not found")
        return _out(row)
