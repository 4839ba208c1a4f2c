"""Approval requests and decisions as lifecycle events, published after their commit.

Approvers learn of a waiting request through the notifiers (``approval.requested``); the
requester and the audit-minded learn of the outcome (``approval.decided``). Each event names its
approval, so a replayed publication queues no second notification.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from sqlalchemy import or_, select

from certctl.db.base import utcnow
from certctl.db.models import ApprovalRequest
from certctl.domain.approvals import service
from certctl.domain.events import publish
from certctl_sdk import EventType, LifecycleEvent

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from certctl.domain.approvals.schemas import ApprovalOut
    from certctl.domain.auth.actor import Actor
    from certctl.runtime import Runtime

__all__ = ["decide_and_announce", "publish_decided", "publish_expired", "publish_requested"]


def _event(row: ApprovalRequest, type: EventType, message: str) -> LifecycleEvent:
    return LifecycleEvent(
        type=type,
        occurred_at=row.decided_at or utcnow(),
        certificate_id=row.certificate_id,
        job_id=None,
        actor=row.decided_by or row.requested_by,
        details={
            "event_id": f"approval:{row.id}:{row.state}",
            "approval_id": row.id,
            "kind": row.kind,
            "state": row.state,
            "requested_by": row.requested_by,
            "decided_by": row.decided_by,
            "profile_id": row.profile_id,
            "job_id": row.job_id,
            "message": message,
        },
    )


async def publish_requested(
    runtime: Runtime, *, job_ids: Iterable[str] = (), approval_ids: Iterable[str] = ()
) -> None:
    """Announce the still-pending requests opened for ``job_ids`` or named by ``approval_ids``."""
    jobs, ids = list(job_ids), list(approval_ids)
    if not jobs and not ids:
        return
    async with runtime.sessions() as session:
        rows = list(
            await session.scalars(
                select(ApprovalRequest).where(
                    ApprovalRequest.state == "pending",
                    or_(ApprovalRequest.job_id.in_(jobs), ApprovalRequest.id.in_(ids)),
                )
            )
        )
    await publish(
        runtime,
        *(
            _event(
                row,
                EventType.APPROVAL_REQUESTED,
                f"{row.kind} requested by {row.requested_by} awaits a second person's approval",
            )
            for row in rows
        ),
    )


async def publish_decided(runtime: Runtime, *rows: ApprovalRequest) -> None:
    """Announce decisions (approved, rejected or expired)."""
    await publish(
        runtime,
        *(
            _event(
                row,
                EventType.APPROVAL_DECIDED,
                f"{row.kind} requested by {row.requested_by} was {row.state}"
                + (f" by {row.decided_by}" if row.decided_by else ""),
            )
            for row in rows
        ),
    )


async def publish_expired(runtime: Runtime, approval_ids: Iterable[str]) -> None:
    """Announce requests the timeout expired (``approval.decided``, state ``expired``)."""
    ids = list(approval_ids)
    if not ids:
        return
    async with runtime.sessions() as session:
        rows = list(
            await session.scalars(select(ApprovalRequest).where(ApprovalRequest.id.in_(ids)))
        )
    await publish_decided(runtime, *rows)


async def decide_and_announce(
    runtime: Runtime,
    session: AsyncSession,
    row: ApprovalRequest,
    actor: Actor,
    *,
    approve: bool,
    note: str,
) -> ApprovalOut:
    """Decide, commit, then announce: what both approval route families do."""
    await service.decide(session, row, actor, approve=approve, note=note)
    await session.commit()
    await publish_decided(runtime, row)
    return service.approval_out(row)
