"""``/api/v1/jobs``: list, inspect, cancel jobs, and decide the approval gating one."""

from __future__ import annotations

from litestar import Controller, get, post
from litestar.params import FromPath, FromQuery, JSONBody
from sqlalchemy import func, select

from certctl.db.models import Job
from certctl.domain.approvals import service as approvals
from certctl.domain.approvals.events import decide_and_announce
from certctl.domain.approvals.schemas import ApprovalOut, DecisionIn
from certctl.domain.audit.service import record
from certctl.domain.certificates.schemas import JobOut
from certctl.domain.certificates.service import job_out
from certctl.domain.jobs import service as jobs
from certctl.errors import NotFound
from certctl.lib.deps import ActorDep, RuntimeDep, SessionDep
from certctl.lib.pagination import Page, page_window

__all__ = ["JobController"]


class JobController(Controller):
    """Jobs and their state."""

    path = "/api/v1/jobs"
    tags = ["Jobs"]

    @get("/", opt={"permission": "job.read"})
    async def list_jobs(
        self,
        session: SessionDep,
        page: FromQuery[int] = 1,
        per_page: FromQuery[int] = 50,
        status: FromQuery[str | None] = None,
        type: FromQuery[str | None] = None,
        certificate_id: FromQuery[str | None] = None,
    ) -> Page[JobOut]:
        """Newest first, filtered by status, type or certificate."""
        offset, limit = page_window(page, per_page)
        query = select(Job)
        if status is not None:
            query = query.where(Job.status == status)
        if type is not None:
            query = query.where(Job.type == type)
        if certificate_id is not None:
            query = query.where(Job.certificate_id == certificate_id)
        total = await session.scalar(select(func.count()).select_from(query.subquery()))
        rows = await session.scalars(
            query.order_by(Job.created_at.desc(), Job.id.desc()).offset(offset).limit(limit)
        )
        return Page(
            data=[job_out(j) for j in rows], total=int(total or 0), page=page, per_page=per_page
        )

    @get("/{job_id:str}", opt={"permission": "job.read"})
    async def get_job(self, session: SessionDep, job_id: FromPath[str]) -> JobOut:
        """One job, with its attempts and last error."""
        job = await session.get(Job, job_id)
        if job is None:
            raise NotFound(f"job {job_id!r} not found")
        return job_out(job)

    @post("/{job_id:str}/cancel", opt={"permission": "job.cancel"}, status_code=200)
    async def cancel_job(
        self, session: SessionDep, actor: ActorDep, job_id: FromPath[str]
    ) -> JobOut:
        """Cancel a job no worker has started."""
        job = await session.get(Job, job_id)
        if job is None:
            raise NotFound(f"job {job_id!r} not found")
        await jobs.cancel(session, job)
        record(
            session,
            actor,
            "job.cancel",
            resource_type="job",
            resource_id=job.id,
            category="cert_lifecycle",
        )
        await session.commit()
        return job_out(job)

    @post("/{job_id:str}/approve", opt={"permission": "approval.approve"}, status_code=200)
    async def approve_job(
        self,
        runtime: RuntimeDep,
        session: SessionDep,
        actor: ActorDep,
        job_id: FromPath[str],
        data: JSONBody[DecisionIn | None] = None,
    ) -> ApprovalOut:
        """Approve the request gating this job (same rules as ``/approvals/{id}/approve``)."""
        row = await approvals.request_of_job(session, job_id)
        note = data.note if data else ""
        return await decide_and_announce(runtime, session, row, actor, approve=True, note=note)

    @post("/{job_id:str}/reject", opt={"permission": "approval.reject"}, status_code=200)
    async def reject_job(
        self,
        runtime: RuntimeDep,
        session: SessionDep,
        actor: ActorDep,
        job_id: FromPath[str],
        data: JSONBody[DecisionIn | None] = None,
    ) -> ApprovalOut:
        """Reject the request gating this job; the job is cancelled."""
        row = await approvals.request_of_job(session, job_id)
        note = data.note if data else ""
        return await decide_and_announce(runtime, session, row, actor, approve=False, note=note)
