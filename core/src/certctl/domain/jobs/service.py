"""The durable job queue: idempotent enqueue, claiming with leases, retry with back-off.

Claiming differs by database: PostgreSQL uses ``FOR UPDATE SKIP LOCKED`` so replicas never
wait on each other; SQLite (one process) claims with a conditional UPDATE. Either way a job
whose worker died is claimable again once its lease expires, and a job's results are written
in the same transaction that marks it completed *only if this worker still holds it*, so a
reclaimed job can never record its work twice.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from certctl.db.base import new_id, utcnow
from certctl.db.engine import dialect_insert
from certctl.db.models import Job
from certctl.errors import Conflict

__all__ = [
    "OPEN_STATUSES",
    "backoff_delay",
    "cancel",
    "claim",
    "enqueue",
    "finish",
    "release_for_retry",
]

OPEN_STATUSES = ("pending", "running", "awaiting_approval")
"""Statuses of jobs that have not finished. Only ``pending`` (and lease-expired ``running``)
jobs are ever claimed: ``awaiting_approval`` waits for a decision (see ``domain/approvals``)."""


def _dialect(session: AsyncSession) -> str:
    bind = session.bind
    assert bind is not None, "sessions are always bound to the runtime's engine"
    return bind.dialect.name


def job_values(
    *,
    type: str,
    idempotency_key: str,
    certificate_id: str | None,
    requested_by: str,
    max_attempts: int,
    target_id: str | None = None,
    version_id: str | None = None,
    run_at: datetime | None = None,
    now: datetime | None = None,
    status: str = "pending",
) -> dict[str, Any]:
    """The column values of a new job (``pending`` unless held for approval)."""
    now = now or utcnow()
    return {
        "id": new_id("job"),
        "type": type,
        "status": status,
        "certificate_id": certificate_id,
        "target_id": target_id,
        "version_id": version_id,
        "idempotency_key": idempotency_key,
        "attempts": 0,
        "max_attempts": max_attempts,
        "next_run_at": run_at or now,
        "result": {},
        "requested_by": requested_by,
        "created_at": now,
    }


async def insert_many(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Insert jobs; rows whose idempotency key exists are skipped.

    ``INSERT … ON CONFLICT DO NOTHING`` decides atomically on both databases, so concurrent
    callers with one key end up with exactly one job. The rows go as one executemany (a cached
    statement sent in batches): a multi-VALUES statement of hundreds of rows costs more to
    compile than to run.
    """
    if not rows:
        return
    insert = dialect_insert(session)
    await session.flush()
    table = Job.__table__
    assert isinstance(table, Table)
    await session.execute(
        insert(table).on_conflict_do_nothing(index_elements=["idempotency_key"]), rows
    )


async def enqueue(
    session: AsyncSession,
    *,
    type: str,
    idempotency_key: str,
    certificate_id: str | None,
    requested_by: str,
    max_attempts: int,
    target_id: str | None = None,
    version_id: str | None = None,
    run_at: datetime | None = None,
    status: str = "pending",
) -> Job:
    """Add a job, or return the existing job with the same idempotency key."""
    values = job_values(
        status=status,
        type=type,
        idempotency_key=idempotency_key,
        certificate_id=certificate_id,
        requested_by=requested_by,
        max_attempts=max_attempts,
        target_id=target_id,
        version_id=version_id,
        run_at=run_at,
    )
    await insert_many(session, [values])
    job = await session.scalar(select(Job).where(Job.idempotency_key == idempotency_key))
    assert job is not None
    return job


async def still_held(session: AsyncSession, job_ids: list[str], worker_id: str) -> set[str]:
    """Which of ``job_ids`` this worker still holds; on PostgreSQL they stay locked until commit."""
    query = select(Job.id).where(
        Job.id.in_(job_ids), Job.claimed_by == worker_id, Job.status == "running"
    )
    if _dialect(session) == "postgresql":
        query = query.with_for_update()
    return set(await session.scalars(query))


async def complete_many(session: AsyncSession, results: dict[str, dict[str, Any]]) -> None:
    """Mark held jobs completed with their results (check :func:`still_held` first)."""
    if not results:
        return
    now = utcnow()
    await session.execute(
        update(Job),
        [
            {
                "id": job_id,
                "status": "completed",
                "result": result,
                "last_error": None,
                "completed_at": now,
                "lease_expires_at": None,
            }
            for job_id, result in results.items()
        ],
    )


def _claimable(now: datetime) -> Any:
    # A lapsed lease with no attempts left is not retried: the reaper fails it with a reason.
    return or_(
        and_(Job.status == "pending", Job.next_run_at <= now),
        and_(
            Job.status == "running",
            Job.lease_expires_at < now,
            Job.attempts < Job.max_attempts,
        ),
    )


async def claim(
    session: AsyncSession, *, worker_id: str, limit: int, lease_seconds: int
) -> list[Job]:
    """Claim up to ``limit`` runnable jobs for ``worker_id`` in one statement and commit.

    PostgreSQL skips rows other replicas have locked (``FOR UPDATE SKIP LOCKED``); SQLite has a
    single writer, so the sub-select and update already run as one atomic step.
    """
    now = utcnow()
    candidates = select(Job.id).where(_claimable(now)).order_by(Job.next_run_at).limit(limit)
    if _dialect(session) == "postgresql":
        candidates = candidates.with_for_update(skip_locked=True)
    statement = (
        update(Job)
        .where(Job.id.in_(candidates.scalar_subquery()))
        .values(
            status="running",
            claimed_by=worker_id,
            lease_expires_at=now + timedelta(seconds=lease_seconds),
            attempts=Job.attempts + 1,
            started_at=now,
        )
        .returning(Job)
        .execution_options(synchronize_session=False)
    )
    jobs = list(await session.scalars(statement))
    await session.commit()
    return jobs


async def finish(
    session: AsyncSession,
    job: Job,
    *,
    worker_id: str,
    status: str,
    result: dict[str, Any],
    error: str | None = None,
) -> bool:
    """Mark ``job`` done in the caller's transaction; False when this worker lost the lease."""
    outcome = await session.execute(
        update(Job)
        .where(Job.id == job.id, Job.claimed_by == worker_id, Job.status == "running")
        .values(
            status=status,
            result=result,
            last_error=error,
            completed_at=utcnow(),
            lease_expires_at=None,
        )
    )
    return bool(outcome.rowcount)  # type: ignore[attr-defined]


def backoff_delay(attempt: int, base: float, retry_after: float | None = None) -> float:
    """Exponential back-off with full jitter, capped at an hour, never below ``retry_after``."""
    # The exponent is capped before it is computed: 2**n for a large attempt count would not
    # fit a float (OverflowError) long after the hour cap has been reached anyway.
    ceiling = min(3600.0, base * (2.0 ** min(max(0, attempt - 1), 64)))
    delay = random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not security
    return max(delay, retry_after or 0.0)


async def release_for_retry(
    session: AsyncSession, job: Job, *, worker_id: str, delay: float, error: str
) -> bool:
    """Put a claimed job back to pending after ``delay`` seconds."""
    outcome = await session.execute(
        update(Job)
        .where(Job.id == job.id, Job.claimed_by == worker_id, Job.status == "running")
        .values(
            status="pending",
            next_run_at=utcnow() + timedelta(seconds=delay),
            last_error=error,
            lease_expires_at=None,
            claimed_by=None,
        )
    )
    return bool(outcome.rowcount)  # type: ignore[attr-defined]


async def cancel(session: AsyncSession, job: Job) -> Job:
    """Cancel a job that has not started; running and finished jobs are a 409."""
    if job.status == "awaiting_approval":
        raise Conflict(f"job {job.id} is awaiting approval; reject its approval request instead")
    if job.status != "pending":
        raise Conflict(f"job {job.id} is {job.status}; only pending jobs can be cancelled")
    outcome = await session.execute(
        update(Job)
        .where(Job.id == job.id, Job.status == "pending")
        .values(status="cancelled", completed_at=utcnow())
    )
    if not outcome.rowcount:  # type: ignore[attr-defined]
        raise Conflict(f"job {job.id} was claimed by a worker meanwhile")
    await session.refresh(job)
    return job
