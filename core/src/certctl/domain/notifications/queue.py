"""The durable notification queue: idempotent enqueue, leased claiming, retry and dead-letter.

Delivery guarantees, with any number of replicas on one PostgreSQL:

* **Enqueue once.** Each row has a unique ``dedup_key`` (``INSERT … ON CONFLICT DO NOTHING``),
  so the same alert enqueued by several scans or replicas is one row.
* **Send once per completed attempt.** Rows are claimed in one ``UPDATE … RETURNING`` over a
  ``FOR UPDATE SKIP LOCKED`` sub-select (SQLite: one writer makes it atomic), so two
  dispatchers never hold the same row; a row is marked sent only by the holder of its lease.
* **At-least-once across a crash.** A process that dies mid-send leaves its rows ``sending``;
  once the lease expires another dispatcher sends them again. The notification's row id is
  the ``Notification.id`` every attempt carries (webhook ``X-Certctl-Delivery``, PagerDuty and
  OpsGenie dedup keys), so receivers can drop that rare second copy.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from certctl.db.base import new_id, utcnow
from certctl.db.engine import dialect_insert
from certctl.db.models import ConnectorInstance
from certctl.db.models import Notification as NotificationRow
from certctl.domain.audit.service import record
from certctl.domain.auth.actor import SYSTEM
from certctl.domain.jobs.service import backoff_delay
from certctl_sdk import (
    AuthenticationError,
    ConfigurationError,
    ConnectorError,
    Notification,
    Notifier,
    RejectedError,
    Severity,
    TransientError,
)

if TYPE_CHECKING:
    from certctl.runtime import Runtime

__all__ = [
    "CLAIMABLE_STATUSES",
    "dispatch_notifications",
    "enqueue",
    "notification_values",
]

_log = logging.getLogger("certctl.notifications")

CLAIMABLE_STATUSES = ("pending", "failed")
_PERMANENT = (RejectedError, ConfigurationError, AuthenticationError)
_CHUNK = 500
"""Rows per INSERT statement: well inside both databases' bound-parameter limits."""


def notification_values(
    *,
    event: str,
    severity: str,
    subject: str,
    body: str,
    notifier_id: str,
    dedup_key: str,
    max_attempts: int,
    occurred_at: datetime,
    certificate_id: str | None = None,
    data: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The column values of a new pending notification."""
    now = now or utcnow()
    return {
        "id": new_id("ntf"),
        "event": event,
        "severity": severity,
        "subject": subject,
        "body": body,
        "data": data or {},
        "certificate_id": certificate_id,
        "notifier_id": notifier_id,
        "status": "pending",
        "attempts": 0,
        "max_attempts": max_attempts,
        "next_attempt_at": now,
        "dedup_key": dedup_key,
        "occurred_at": occurred_at,
        "created_at": now,
    }


def _dialect(session: AsyncSession) -> str:
    bind = session.bind
    assert bind is not None, "sessions are always bound to the runtime's engine"
    return bind.dialect.name


async def enqueue(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> list[str]:
    """Insert notifications, skipping those whose ``dedup_key`` exists; returns the new ids.

    The caller commits. Concurrent callers with one key end up with exactly one row.
    """
    insert = dialect_insert(session)
    created: list[str] = []
    for start in range(0, len(rows), _CHUNK):
        chunk = list(rows[start : start + _CHUNK])
        result = await session.execute(
            insert(NotificationRow)
            .values(chunk)
            .on_conflict_do_nothing(index_elements=["dedup_key"])
            .returning(NotificationRow.id)
        )
        created += list(result.scalars())
    return created


def _claimable(now: datetime) -> Any:
    return or_(
        and_(
            NotificationRow.status.in_(CLAIMABLE_STATUSES), NotificationRow.next_attempt_at <= now
        ),
        and_(NotificationRow.status == "sending", NotificationRow.lease_expires_at < now),
    )


async def claim(
    session: AsyncSession,
    *,
    claimer: str,
    limit: int,
    lease_seconds: int,
    ids: Sequence[str] | None = None,
) -> list[NotificationRow]:
    """Claim up to ``limit`` due notifications (only ``ids`` when given) and commit."""
    now = utcnow()
    candidates = (
        select(NotificationRow.id)
        .where(_claimable(now))
        .order_by(NotificationRow.next_attempt_at)
        .limit(limit)
    )
    if ids is not None:
        candidates = candidates.where(NotificationRow.id.in_(list(ids)))
    if _dialect(session) == "postgresql":
        candidates = candidates.with_for_update(skip_locked=True)
    statement = (
        update(NotificationRow)
        .where(NotificationRow.id.in_(candidates.scalar_subquery()))
        .values(
            status="sending",
            claimed_by=claimer,
            lease_expires_at=now + timedelta(seconds=lease_seconds),
            attempts=NotificationRow.attempts + 1,
        )
        .returning(NotificationRow)
        .execution_options(synchronize_session=False)
    )
    rows = list(await session.scalars(statement))
    await session.commit()
    return rows


def _message(row: NotificationRow) -> Notification:
    try:
        severity = Severity(row.severity)
    except ValueError:
        severity = Severity.INFO
    return Notification(
        id=row.id,
        event=row.event,
        subject=row.subject,
        body=row.body,
        severity=severity,
        occurred_at=row.occurred_at,
        certificate_id=row.certificate_id,
        data=dict(row.data),
    )


class _Outcome:
    __slots__ = ("error", "permanent", "retry_after")

    def __init__(
        self, error: str | None = None, *, permanent: bool = False, retry_after: float | None = None
    ) -> None:
        self.error = error
        self.permanent = permanent
        self.retry_after = retry_after


async def _send(
    runtime: Runtime, row: NotificationRow, notifier_row: ConnectorInstance | None
) -> _Outcome:
    if notifier_row is None or notifier_row.family != "notifier":
        return _Outcome("the notifier was deleted", permanent=True)
    if not notifier_row.enabled:
        return _Outcome("the notifier is disabled", permanent=True)
    try:
        notifier = runtime.connectors.instance(notifier_row)
        assert isinstance(notifier, Notifier)
        await notifier.send(_message(row))
    except _PERMANENT as exc:
        return _Outcome(exc.message, permanent=True)
    except TransientError as exc:
        return _Outcome(exc.message, retry_after=exc.retry_after)
    except ConnectorError as exc:
        return _Outcome(exc.message)
    except Exception as exc:  # noqa: BLE001 - a notifier bug is retried, never fatal
        _log.exception("notifier %s failed on notification %s", notifier_row.id, row.id)
        return _Outcome(type(exc).__name__)
    return _Outcome()


async def _settle(runtime: Runtime, row: NotificationRow, claimer: str, outcome: _Outcome) -> None:
    """Record one attempt: sent, retry later, or dead; only while this claimer holds it."""
    now = utcnow()
    values: dict[str, Any]
    if outcome.error is None:
        values = {"status": "sent", "sent_at": now, "last_error": None}
    elif outcome.permanent or row.attempts >= row.max_attempts:
        values = {"status": "dead", "last_error": outcome.error}
    else:
        delay = backoff_delay(
            row.attempts, runtime.settings.notification_retry_base_seconds, outcome.retry_after
        )
        values = {
            "status": "failed",
            "last_error": outcome.error,
            "next_attempt_at": now + timedelta(seconds=delay),
        }
    async with runtime.sessions.begin() as session:
        held = await session.execute(
            update(NotificationRow)
            .where(
                NotificationRow.id == row.id,
                NotificationRow.claimed_by == claimer,
                NotificationRow.status == "sending",
            )
            .values(**values, claimed_by=None, lease_expires_at=None)
        )
        lost = not held.rowcount  # type: ignore[attr-defined]
        if lost:
            _log.warning("notification %s was reclaimed while it was being sent", row.id)
        record(
            session,
            SYSTEM,
            "notification.sent" if outcome.error is None else "notification.failed",
            resource_type="notifier",
            resource_id=row.notifier_id,
            outcome="success" if outcome.error is None else "failure",
            category="cert_lifecycle",
            details={
                "notification_id": row.id,
                "event": row.event,
                "certificate_id": row.certificate_id,
                "attempt": row.attempts,
                "status": values["status"],
            }
            | ({"error": outcome.error} if outcome.error else {})
            | ({"lease_lost": True} if lost else {}),
        )


async def _deliver(
    runtime: Runtime,
    row: NotificationRow,
    notifier_row: ConnectorInstance | None,
    claimer: str,
    semaphore: asyncio.Semaphore,
) -> None:
    async with semaphore:
        await _settle(runtime, row, claimer, await _send(runtime, row, notifier_row))


async def dispatch_notifications(runtime: Runtime, *, ids: Sequence[str] | None = None) -> int:
    """Send due notifications (only ``ids`` when given); returns how many were attempted.

    Safe to run on every replica at once: claiming partitions the rows (see the module
    docstring). Failures retry with exponential back-off and jitter (no sooner than a
    notifier's ``retry_after``) until ``CERTCTL_NOTIFICATION_MAX_ATTEMPTS``; rejections,
    configuration and authentication errors are dead-lettered at once. Requeue dead rows
    through ``POST /api/v1/notifications/{id}/requeue``.
    """
    if ids is not None and not ids:
        return 0
    settings = runtime.settings
    claimer = new_id("ntfd")
    semaphore = asyncio.Semaphore(settings.notification_concurrency)
    total = 0
    while True:
        async with runtime.sessions() as session:
            rows = await claim(
                session,
                claimer=claimer,
                limit=settings.notification_batch_size,
                lease_seconds=settings.notification_lease_seconds,
                ids=ids,
            )
            notifier_ids = {r.notifier_id for r in rows}
            notifiers = (
                {
                    n.id: n
                    for n in await session.scalars(
                        select(ConnectorInstance).where(ConnectorInstance.id.in_(notifier_ids))
                    )
                }
                if notifier_ids
                else {}
            )
        if not rows:
            return total

        await asyncio.gather(
            *(_deliver(runtime, r, notifiers.get(r.notifier_id), claimer, semaphore) for r in rows)
        )
        total += len(rows)
        if ids is not None or len(rows) < settings.notification_batch_size:
            return total
