"""``/api/v1/notifications``: the delivery queue, its dead letters and requeueing."""

from __future__ import annotations

from litestar import Controller, get, post
from litestar.params import FromPath, FromQuery
from sqlalchemy import func, select, update

from certctl.db.base import utcnow
from certctl.db.models import Notification as NotificationRow
from certctl.domain.audit.service import record
from certctl.domain.notifications.schemas import NotificationOut
from certctl.errors import BadRequest, Conflict, NotFound
from certctl.lib.deps import ActorDep, SessionDep
from certctl.lib.pagination import Page, page_window

__all__ = ["NotificationController"]

STATUSES = ("pending", "sending", "sent", "failed", "dead")
REQUEUEABLE = ("failed", "dead")


def to_out(row: NotificationRow) -> NotificationOut:
    """The API form of a notification."""
    return NotificationOut(
        id=row.id,
        event=row.event,
        severity=row.severity,
        subject=row.subject,
        body=row.body,
        data=dict(row.data),
        certificate_id=row.certificate_id,
        notifier_id=row.notifier_id,
        status=row.status,
        attempts=row.attempts,
        max_attempts=row.max_attempts,
        next_attempt_at=row.next_attempt_at,
        last_error=row.last_error,
        dedup_key=row.dedup_key,
        occurred_at=row.occurred_at,
        read_at=row.read_at,
        created_at=row.created_at,
        sent_at=row.sent_at,
    )


class NotificationController(Controller):
    """Notifications queued for notifier instances."""

    path = "/api/v1/notifications"
    tags = ["Notifications"]

    @get("/", opt={"permission": "notification.read"})
    async def list_notifications(
        self,
        session: SessionDep,
        page: FromQuery[int] = 1,
        per_page: FromQuery[int] = 50,
        status: FromQuery[str | None] = None,
        certificate_id: FromQuery[str | None] = None,
        notifier_id: FromQuery[str | None] = None,
        event: FromQuery[str | None] = None,
        unread: FromQuery[bool | None] = None,
    ) -> Page[NotificationOut]:
        """Newest first, filtered by status, certificate, notifier, event or read state."""
        offset, limit = page_window(page, per_page)
        query = select(NotificationRow)
        if status is not None:
            if status not in STATUSES:
                raise BadRequest(f"status must be one of {', '.join(STATUSES)}")
            query = query.where(NotificationRow.status == status)
        if certificate_id is not None:
            query = query.where(NotificationRow.certificate_id == certificate_id)
        if notifier_id is not None:
            query = query.where(NotificationRow.notifier_id == notifier_id)
        if event is not None:
            query = query.where(NotificationRow.event == event)
        if unread is not None:
            query = query.where(
                NotificationRow.read_at.is_(None)
                if unread
                else NotificationRow.read_at.is_not(None)
            )
        total = await session.scalar(select(func.count()).select_from(query.subquery()))
        rows = await session.scalars(
            query.order_by(NotificationRow.created_at.desc(), NotificationRow.id.desc())
            .offset(offset)
            .limit(limit)
        )
        return Page(
            data=[to_out(r) for r in rows], total=int(total or 0), page=page, per_page=per_page
        )

    @get("/{notification_id:str}", opt={"permission": "notification.read"})
    async def get_notification(
        self, session: SessionDep, notification_id: FromPath[str]
    ) -> NotificationOut:
        """One notification with its attempts and last error."""
        row = await session.get(NotificationRow, notification_id)
        if row is None:
            raise NotFound(f"notification {notification_id!r} not found")
        return to_out(row)

    # The reference gates this with notification.read; read_at is shared by every caller, so
    # here it is a change like any other and needs notification.edit (viewers stay read-only).
    @post("/{notification_id:str}/read", opt={"permission": "notification.edit"}, status_code=200)
    async def mark_read(
        self, session: SessionDep, notification_id: FromPath[str]
    ) -> NotificationOut:
        """Mark as read (idempotent: the first read time is kept)."""
        row = await session.get(NotificationRow, notification_id)
        if row is None:
            raise NotFound(f"notification {notification_id!r} not found")
        if row.read_at is None:
            row.read_at = utcnow()
            await session.commit()
        return to_out(row)

    @post(
        "/{notification_id:str}/requeue",
        opt={"permission": "notification.edit"},
        status_code=200,
    )
    async def requeue(
        self, session: SessionDep, actor: ActorDep, notification_id: FromPath[str]
    ) -> NotificationOut:
        """Send a failed or dead notification again, with a fresh attempt budget."""
        row = await session.get(NotificationRow, notification_id)
        if row is None:
            raise NotFound(f"notification {notification_id!r} not found")
        if row.status not in REQUEUEABLE:
            raise Conflict(
                f"notification {row.id} is {row.status}; only failed or dead ones can be requeued"
            )
        previous = row.status
        outcome = await session.execute(
            update(NotificationRow)
            .where(NotificationRow.id == row.id, NotificationRow.status.in_(REQUEUEABLE))
            .values(status="pending", attempts=0, next_attempt_at=utcnow(), last_error=None)
        )
        if not outcome.rowcount:  # type: ignore[attr-defined]
            raise Conflict(f"notification {row.id} was claimed by a dispatcher meanwhile")
        record(
            session,
            actor,
            "notification.requeue",
            resource_type="notification",
            resource_id=row.id,
            details={"previous_status": previous, "notifier_id": row.notifier_id},
        )
        await session.commit()
        await session.refresh(row)
        return to_out(row)
