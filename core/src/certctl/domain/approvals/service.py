"""Two-person approvals: opening requests, deciding them atomically, expiring stale ones.

A decision is one conditional ``UPDATE … WHERE state = 'pending'`` and the change it gates
(job released or cancelled, profile edited or deleted) in the same transaction. Of concurrent
approve and reject calls — on one process or several sharing PostgreSQL — exactly one updates
the row; the others see zero rows and get 409, and nothing they did is committed. So a
rejected request never leaves a claimable job behind, and an approved one never a cancelled job.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import msgspec
from sqlalchemy import Select, and_, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from certctl.db.base import new_id, utcnow
from certctl.db.engine import dialect_insert
from certctl.db.models import ApprovalRequest, CertificateProfile, Job, ManagedCertificate
from certctl.domain.approvals.schemas import ApprovalOut
from certctl.domain.audit.service import audit_row, record, record_many
from certctl.domain.auth.actor import SYSTEM, Actor
from certctl.domain.profiles import service as profiles
from certctl.domain.profiles.schemas import ProfileUpdate
from certctl.errors import BadRequest, Conflict, Forbidden, NotFound

if TYPE_CHECKING:
    from certctl.runtime import Runtime

__all__ = [
    "AWAITING_APPROVAL",
    "BYPASS_ACTOR",
    "ApprovalFilter",
    "approval_out",
    "decide",
    "expire_stale_approvals",
    "get_request",
    "job_status_for",
    "list_requests",
    "open_for_jobs",
    "open_profile_request",
]

_log = logging.getLogger("certctl.approvals")

AWAITING_APPROVAL = "awaiting_approval"
"""The status of a job held for approval; the worker claims only ``pending`` jobs."""

KINDS = ("cert_issuance", "cert_renewal", "profile_edit", "profile_delete")
STATES = ("pending", "approved", "rejected", "expired", "cancelled")

BYPASS_ACTOR = Actor.system("system-bypass")
"""Who approves when ``CERTCTL_APPROVAL_BYPASS`` is on."""


def approval_out(row: ApprovalRequest) -> ApprovalOut:
    """The API form of a request."""
    return ApprovalOut(
        id=row.id,
        kind=row.kind,
        state=row.state,
        certificate_id=row.certificate_id,
        job_id=row.job_id,
        profile_id=row.profile_id,
        requested_by=row.requested_by,
        decided_by=row.decided_by,
        decided_at=row.decided_at,
        note=row.note,
        payload=dict(row.payload),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def job_status_for(profile: CertificateProfile | None, *, bypass: bool) -> str:
    """The status a new issuance or renewal job under ``profile`` starts in."""
    if profile is not None and profile.requires_approval and not bypass:
        return AWAITING_APPROVAL
    return "pending"


def _category(kind: str) -> str:
    return "cert_lifecycle" if kind.startswith("cert_") else "config"


def _values(
    *,
    kind: str,
    actor: Actor,
    bypass: bool,
    job_id: str | None = None,
    certificate_id: str | None = None,
    profile_id: str | None = None,
    payload: dict[str, Any] | None = None,
) -> dict[str, Any]:
    now = utcnow()
    return {
        "id": new_id("ar"),
        "kind": kind,
        "state": "approved" if bypass else "pending",
        "certificate_id": certificate_id,
        "job_id": job_id,
        "profile_id": profile_id,
        "requested_by": actor.name,
        "decided_by": BYPASS_ACTOR.name if bypass else None,
        "decided_at": now if bypass else None,
        "note": "approved by CERTCTL_APPROVAL_BYPASS" if bypass else "",
        "payload": payload or {},
        "created_at": now,
        "updated_at": now,
    }


def _audit_opened(values: dict[str, Any], actor: Actor) -> list[dict[str, Any]]:
    details = {
        "kind": values["kind"],
        "job_id": values["job_id"],
        "certificate_id": values["certificate_id"],
        "profile_id": values["profile_id"],
    }
    rows = [
        audit_row(
            actor,
            "approval.request",
            resource_type="approval",
            resource_id=values["id"],
            category=_category(values["kind"]),
            details=details,
        )
    ]
    if values["state"] == "approved":
        rows.append(
            audit_row(
                BYPASS_ACTOR,
                "approval.approve",
                resource_type="approval",
                resource_id=values["id"],
                outcome="bypassed",
                category=_category(values["kind"]),
                details=details,
            )
        )
    return rows


async def open_for_jobs(
    session: AsyncSession,
    gated: Sequence[tuple[Job, str, str | None]],
    actor: Actor,
    *,
    bypass: bool,
) -> dict[str, str]:
    """Open one request per ``(job, kind, profile_id)`` in the caller's transaction.

    The jobs must already be flushed. A job that already has a request (a concurrent enqueue of
    the same idempotency key) keeps it: the insert skips it. Returns job id → request id for
    the requests this call created. Under bypass the requests are stored already approved by
    ``system-bypass`` and the jobs are expected to be ``pending``.
    """
    if not gated:
        return {}
    rows = [
        _values(
            kind=kind,
            actor=actor,
            bypass=bypass,
            job_id=job.id,
            certificate_id=job.certificate_id,
            profile_id=profile_id,
        )
        for job, kind, profile_id in gated
    ]
    insert = dialect_insert(session)
    created = await session.execute(
        insert(ApprovalRequest)
        .values(rows)
        .on_conflict_do_nothing(index_elements=["job_id"])
        .returning(ApprovalRequest.id, ApprovalRequest.job_id)
    )
    made = {str(job_id): str(request_id) for request_id, job_id in created}
    await record_many(
        session,
        [a for r in rows if made.get(r["job_id"]) == r["id"] for a in _audit_opened(r, actor)],
    )
    return made


async def open_profile_request(
    session: AsyncSession,
    profile: CertificateProfile,
    actor: Actor,
    *,
    update: ProfileUpdate | None,
    bypass: bool,
) -> ApprovalRequest:
    """Hold an edit (``update``) or deletion (``None``) of ``profile`` for approval.

    The edit is validated now, so a malformed one is a 400 rather than a request nobody can
    approve, and again when it is applied. The payload keeps the changed fields (applied on
    top of the profile as it is then) and the profile as it would look, for the reviewer.
    """
    if update is None:
        await profiles.ensure_unused(session, profile)
        kind = "profile_delete"
        payload: dict[str, Any] = {"profile_name": profile.name}
    else:
        profiles.validate_update(update)
        changes = profiles.changes_of(update)
        if not changes:
            raise BadRequest("the update changes nothing")
        kind = "profile_edit"
        proposed = msgspec.to_builtins(profiles.profile_out(profile))
        proposed.update(changes)
        for stamp in ("created_at", "updated_at"):
            proposed.pop(stamp, None)
        payload = {"changes": changes, "proposed": proposed}
    values = _values(kind=kind, actor=actor, bypass=bypass, profile_id=profile.id, payload=payload)
    row = ApprovalRequest(**values)
    session.add(row)
    await session.flush()
    await record_many(session, _audit_opened(values, actor))
    if bypass:
        await _apply(session, row, BYPASS_ACTOR, approve=True)
    return row


async def get_request(session: AsyncSession, approval_id: str) -> ApprovalRequest:
    """A request or NotFound."""
    row = await session.get(ApprovalRequest, approval_id)
    if row is None:
        raise NotFound(f"approval request {approval_id!r} not found")
    return row


async def request_of_job(session: AsyncSession, job_id: str) -> ApprovalRequest:
    """The request gating a job, or NotFound."""
    row = await session.scalar(select(ApprovalRequest).where(ApprovalRequest.job_id == job_id))
    if row is None:
        if await session.get(Job, job_id) is None:
            raise NotFound(f"job {job_id!r} not found")
        raise Conflict(f"job {job_id} is not awaiting approval")
    return row


async def decide(
    session: AsyncSession, row: ApprovalRequest, actor: Actor, *, approve: bool, note: str
) -> ApprovalRequest:
    """Approve or reject a pending request and apply the outcome (the caller commits).

    The requester may reject (withdraw) their own request but never approve it.
    """
    if row.state != "pending":
        raise Conflict(f"approval request {row.id} is already {row.state}")
    if approve and actor.name == row.requested_by:
        raise Forbidden(
            f"two-person integrity: {actor.name!r} requested {row.id} and cannot approve it; "
            "another person must"
        )
    now = utcnow()
    outcome = await session.execute(
        update(ApprovalRequest)
        .where(ApprovalRequest.id == row.id, ApprovalRequest.state == "pending")
        .values(
            state="approved" if approve else "rejected",
            decided_by=actor.name,
            decided_at=now,
            note=note,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    if not outcome.rowcount:  # type: ignore[attr-defined]
        raise Conflict(f"approval request {row.id} was decided meanwhile")
    await session.refresh(row)
    await _apply(session, row, actor, approve=approve)
    return row


async def _apply(
    session: AsyncSession, row: ApprovalRequest, actor: Actor, *, approve: bool
) -> None:
    """Carry out a decision already written to ``row``, and audit it."""
    if row.kind in ("cert_issuance", "cert_renewal"):
        await _release_or_cancel_job(session, row, actor, approve=approve)
    elif approve:
        profile = await session.get(CertificateProfile, row.profile_id or "")
        if profile is None:
            raise Conflict(f"profile {row.profile_id} no longer exists")
        if row.kind == "profile_edit":
            try:
                update_ = msgspec.convert(row.payload.get("changes", {}), ProfileUpdate)
            except msgspec.ValidationError as exc:
                raise Conflict(f"the proposed edit is no longer valid: {exc}") from None
            await profiles.apply_update(session, profile, update_, actor, approval_id=row.id)
        else:
            await profiles.delete_profile(session, profile, actor, approval_id=row.id)
    if actor is not BYPASS_ACTOR:  # a bypass is audited when its request is opened
        record(
            session,
            actor,
            "approval.approve" if approve else "approval.reject",
            resource_type="approval",
            resource_id=row.id,
            category=_category(row.kind),
            details={
                "kind": row.kind,
                "requested_by": row.requested_by,
                "job_id": row.job_id,
                "certificate_id": row.certificate_id,
                "profile_id": row.profile_id,
                "note": row.note,
            },
        )


async def _release_or_cancel_job(
    session: AsyncSession, row: ApprovalRequest, actor: Actor, *, approve: bool
) -> None:
    now = utcnow()
    values: dict[str, Any] = (
        {"status": "pending", "next_run_at": now}
        if approve
        else {
            "status": "cancelled",
            "completed_at": now,
            "last_error": f"approval rejected by {actor.name}"
            + (f": {row.note}" if row.note else ""),
        }
    )
    moved = await session.execute(
        update(Job)
        .where(Job.id == row.job_id, Job.status == AWAITING_APPROVAL)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if not moved.rowcount:  # type: ignore[attr-defined]
        raise Conflict(f"job {row.job_id} is no longer awaiting approval")
    if not approve and row.certificate_id:
        await _mark_certificate(session, [row.certificate_id], "rejected", values["last_error"])


async def _mark_certificate(
    session: AsyncSession, certificate_ids: list[str], never_issued_status: str, error: str
) -> None:
    """Record why gated work did not happen; a certificate never issued also changes status."""
    now = utcnow()
    await session.execute(
        update(ManagedCertificate)
        .where(
            ManagedCertificate.id.in_(certificate_ids),
            ManagedCertificate.current_version_id.is_(None),
            ManagedCertificate.status == "pending",
        )
        .values(status=never_issued_status, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    await session.execute(
        update(ManagedCertificate)
        .where(ManagedCertificate.id.in_(certificate_ids))
        .values(last_error=error, updated_at=now)
        .execution_options(synchronize_session=False)
    )


async def cancel_for_certificate(
    session: AsyncSession, certificate_id: str, actor: Actor, *, why: str = "certificate archived"
) -> int:
    """Close the pending requests of a certificate being archived or revoked, and their jobs."""
    now = utcnow()
    closed = await session.execute(
        update(ApprovalRequest)
        .where(ApprovalRequest.certificate_id == certificate_id, ApprovalRequest.state == "pending")
        .values(
            state="cancelled",
            decided_by=actor.name,
            decided_at=now,
            note=why,
            updated_at=now,
        )
        .returning(ApprovalRequest.id)
        .execution_options(synchronize_session=False)
    )
    ids = list(closed.scalars())
    await session.execute(
        update(Job)
        .where(Job.certificate_id == certificate_id, Job.status == AWAITING_APPROVAL)
        .values(status="cancelled", completed_at=now, last_error=why)
        .execution_options(synchronize_session=False)
    )
    return len(ids)


async def expire_stale_approvals(runtime: Runtime) -> int:
    """Expire requests, and fail their jobs, left undecided longer than the approval timeout.

    The timeout is ``CERTCTL_JOB_AWAITING_APPROVAL_TIMEOUT``. Returns how many requests and
    orphaned jobs it expired. Safe to run on several processes at
    once: each row changes by a conditional update, so it is expired exactly once.
    """
    timeout = runtime.settings.job_awaiting_approval_timeout_seconds
    now = utcnow()
    cutoff = now - timedelta(seconds=timeout)
    reason = f"approval not decided within {timeout}s; expired"
    async with runtime.sessions.begin() as session:
        expired = (
            await session.execute(
                update(ApprovalRequest)
                .where(ApprovalRequest.state == "pending", ApprovalRequest.created_at < cutoff)
                .values(
                    state="expired",
                    decided_by=SYSTEM.name,
                    decided_at=now,
                    note=reason,
                    updated_at=now,
                )
                .returning(
                    ApprovalRequest.id,
                    ApprovalRequest.kind,
                    ApprovalRequest.job_id,
                    ApprovalRequest.certificate_id,
                    ApprovalRequest.requested_by,
                )
                .execution_options(synchronize_session=False)
            )
        ).all()
        job_ids = [r.job_id for r in expired if r.job_id]
        # Jobs of the expired requests, and any gated job that lost its request, fail.
        failed = (
            await session.execute(
                update(Job)
                .where(
                    Job.status == AWAITING_APPROVAL,
                    or_(
                        Job.id.in_(job_ids),
                        and_(
                            Job.created_at < cutoff,
                            ~exists().where(
                                ApprovalRequest.job_id == Job.id,
                                ApprovalRequest.state == "pending",
                            ),
                        ),
                    ),
                )
                .values(status="failed", completed_at=now, last_error=reason)
                .returning(Job.id, Job.certificate_id)
                .execution_options(synchronize_session=False)
            )
        ).all()
        cert_ids = sorted({r.certificate_id for r in failed if r.certificate_id})
        if cert_ids:
            await _mark_certificate(session, cert_ids, "failed", reason)
        orphans = {r.id for r in failed} - set(job_ids)
        await record_many(
            session,
            [
                audit_row(
                    SYSTEM,
                    "approval.expire",
                    resource_type="approval",
                    resource_id=r.id,
                    outcome="expired",
                    category=_category(r.kind),
                    details={
                        "kind": r.kind,
                        "job_id": r.job_id,
                        "certificate_id": r.certificate_id,
                        "requested_by": r.requested_by,
                    },
                )
                for r in expired
            ]
            + [
                audit_row(
                    SYSTEM,
                    "job.timeout",
                    resource_type="job",
                    resource_id=job_id,
                    outcome="failure",
                    category="cert_lifecycle",
                    details={"reason": reason},
                )
                for job_id in sorted(orphans)
            ],
        )
    if expired or orphans:
        _log.info("expired %d approval request(s), %d orphaned job(s)", len(expired), len(orphans))
    from certctl.domain.approvals.events import publish_expired  # events imports this module

    await publish_expired(runtime, [r.id for r in expired])
    return len(expired) + len(orphans)


class ApprovalFilter:
    """Filters of ``GET /api/v1/approvals``."""

    __slots__ = ("certificate_id", "job_id", "kind", "profile_id", "requested_by", "state")

    def __init__(
        self,
        *,
        state: str | None = None,
        kind: str | None = None,
        certificate_id: str | None = None,
        job_id: str | None = None,
        profile_id: str | None = None,
        requested_by: str | None = None,
    ) -> None:
        if state is not None and state not in STATES:
            raise BadRequest(f"state must be one of {', '.join(STATES)}")
        if kind is not None and kind not in KINDS:
            raise BadRequest(f"kind must be one of {', '.join(KINDS)}")
        self.state = state
        self.kind = kind
        self.certificate_id = certificate_id
        self.job_id = job_id
        self.profile_id = profile_id
        self.requested_by = requested_by

    def apply(self, query: Select[ApprovalRequest]) -> Select[ApprovalRequest]:
        """Narrow ``query`` by every filter that is set."""
        for column, value in (
            (ApprovalRequest.state, self.state),
            (ApprovalRequest.kind, self.kind),
            (ApprovalRequest.certificate_id, self.certificate_id),
            (ApprovalRequest.job_id, self.job_id),
            (ApprovalRequest.profile_id, self.profile_id),
            (ApprovalRequest.requested_by, self.requested_by),
        ):
            if value is not None:
                query = query.where(column == value)
        return query


async def list_requests(
    session: AsyncSession, filters: ApprovalFilter, *, offset: int, limit: int
) -> tuple[list[ApprovalOut], int]:
    """A page of requests, newest first."""
    query = filters.apply(select(ApprovalRequest))
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    rows = await session.scalars(
        query.order_by(ApprovalRequest.created_at.desc(), ApprovalRequest.id.desc())
        .offset(offset)
        .limit(limit)
    )
    return [approval_out(r) for r in rows], int(total or 0)
