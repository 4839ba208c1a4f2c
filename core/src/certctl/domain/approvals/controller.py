"""``/api/v1/approvals``: the two-person approval queue and its decisions."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get, post
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from certctl.domain.approvals import service
from certctl.domain.approvals.events import decide_and_announce
from certctl.domain.approvals.schemas import ApprovalOut, DecisionIn
from certctl.lib.deps import ActorDep, RuntimeDep, SessionDep
from certctl.lib.pagination import Page, page_window

__all__ = ["ApprovalController"]


class ApprovalController(Controller):
    """Approval requests."""

    path = "/api/v1/approvals"
    tags = ["Approvals"]

    @get("/", opt={"permission": "approval.read"})
    async def list_approvals(
        self,
        session: SessionDep,
        page: FromQuery[int] = 1,
        per_page: FromQuery[int] = 50,
        state_: Annotated[str | None, QueryParameter(name="state")] = None,
        kind: FromQuery[str | None] = None,
        certificate_id: FromQuery[str | None] = None,
        job_id: FromQuery[str | None] = None,
        profile_id: FromQuery[str | None] = None,
        requested_by: FromQuery[str | None] = None,
    ) -> Page[ApprovalOut]:
        """Newest first, filtered by state, kind, certificate, job, profile or requester."""
        offset, limit = page_window(page, per_page)
        filters = service.ApprovalFilter(
            state=state_,
            kind=kind,
            certificate_id=certificate_id,
            job_id=job_id,
            profile_id=profile_id,
            requested_by=requested_by,
        )
        data, total = await service.list_requests(session, filters, offset=offset, limit=limit)
        return Page(data=data, total=total, page=page, per_page=per_page)

    @get("/{approval_id:str}", opt={"permission": "approval.read"})
    async def get_approval(self, session: SessionDep, approval_id: FromPath[str]) -> ApprovalOut:
        """One request."""
        return service.approval_out(await service.get_request(session, approval_id))

    @post("/{approval_id:str}/approve", opt={"permission": "approval.approve"}, status_code=200)
    async def approve(
        self,
        runtime: RuntimeDep,
        session: SessionDep,
        actor: ActorDep,
        approval_id: FromPath[str],
        data: JSONBody[DecisionIn | None] = None,
    ) -> ApprovalOut:
        """Approve; the requester cannot approve their own request (two-person integrity)."""
        row = await service.get_request(session, approval_id)
        note = data.note if data else ""
        return await decide_and_announce(runtime, session, row, actor, approve=True, note=note)

    @post("/{approval_id:str}/reject", opt={"permission": "approval.reject"}, status_code=200)
    async def reject(
        self,
        runtime: RuntimeDep,
        session: SessionDep,
        actor: ActorDep,
        approval_id: FromPath[str],
        data: JSONBody[DecisionIn | None] = None,
    ) -> ApprovalOut:
        """Reject (or, by the requester, withdraw); the gated job is cancelled."""
        row = await service.get_request(session, approval_id)
        note = data.note if data else ""
        return await decide_and_announce(runtime, session, row, actor, approve=False, note=note)
