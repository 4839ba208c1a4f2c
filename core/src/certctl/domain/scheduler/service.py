"""Reading the scheduler's status rows into the API's view of the fleet."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from certctl.db.base import utcnow
from certctl.db.models import SchedulerLoopRun, SchedulerReplica
from certctl.domain.scheduler.schemas import LoopOut, LoopRunOut, ReplicaOut, SchedulerOut
from certctl.scheduler.loops import builtin_loops, env_name

if TYPE_CHECKING:
    from certctl.runtime import Runtime

__all__ = ["scheduler_status"]


async def scheduler_status(runtime: Runtime, session: AsyncSession) -> SchedulerOut:
    """Replicas (alive or not yet collected), the leader, and every loop's runs per replica."""
    now = utcnow()
    horizon = now - timedelta(seconds=3 * runtime.settings.scheduler_heartbeat_interval)
    replicas = [
        ReplicaOut(
            id=row.id,
            hostname=row.hostname,
            pid=row.pid,
            role=row.role,
            is_leader=row.is_leader and row.heartbeat_at >= horizon,
            alive=row.heartbeat_at >= horizon,
            started_at=row.started_at,
            heartbeat_at=row.heartbeat_at,
            leader_since=row.leader_since if row.is_leader else None,
        )
        for row in await session.scalars(
            select(SchedulerReplica).order_by(SchedulerReplica.started_at)
        )
    ]
    runs: dict[str, list[LoopRunOut]] = {}
    for run in await session.scalars(select(SchedulerLoopRun)):
        runs.setdefault(run.loop, []).append(
            LoopRunOut(
                replica_id=run.replica_id,
                runs=run.runs,
                failures=run.failures,
                last_started_at=run.last_started_at,
                last_finished_at=run.last_finished_at,
                last_duration_ms=run.last_duration_ms,
                last_handled=run.last_handled,
                last_error=run.last_error,
                last_error_at=run.last_error_at,
            )
        )
    loops = []
    for spec in builtin_loops(runtime):
        mine = runs.get(spec.name, [])
        latest = max(
            (r for r in mine if r.last_finished_at is not None),
            key=lambda r: r.last_finished_at or now,
            default=None,
        )
        failed_last = latest is not None and latest.last_error_at == latest.last_finished_at
        loops.append(
            LoopOut(
                name=spec.name,
                description=spec.description,
                interval_seconds=spec.interval,
                timeout_seconds=spec.timeout,
                leader_only=spec.leader_only,
                env=env_name(spec.name),
                last_run_at=latest.last_finished_at if latest else None,
                last_error=latest.last_error if latest and failed_last else None,
                replicas=sorted(mine, key=lambda r: r.replica_id),
            )
        )
    leader = next((r for r in replicas if r.is_leader), None)
    scheduler = runtime.scheduler
    return SchedulerOut(
        replica_id=scheduler.replica_id if scheduler else None,
        leader=leader,
        replicas=replicas,
        loops=loops,
    )
