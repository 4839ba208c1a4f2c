"""``GET /api/v1/scheduler`` and ``POST /api/v1/scheduler/loops/{name}/run``."""

from __future__ import annotations

from litestar import Controller, get, post
from litestar.params import FromPath

from certctl.domain.audit.service import record
from certctl.domain.scheduler.schemas import RunNowOut, SchedulerOut
from certctl.domain.scheduler.service import scheduler_status
from certctl.errors import Conflict, NotFound, ServiceUnavailable
from certctl.lib.deps import ActorDep, RuntimeDep, SessionDep
from certctl.scheduler.runner import NotLeader

__all__ = ["SchedulerController"]


class SchedulerController(Controller):
    """The named loops of every replica and the elected leader."""

    path = "/api/v1/scheduler"
    tags = ["Scheduler"]

    @get("/", opt={"permission": "scheduler.read"})
    async def status(self, runtime: RuntimeDep, session: SessionDep) -> SchedulerOut:
        """Each loop (interval, last run, last error per replica), the replicas, the leader."""
        return await scheduler_status(runtime, session)

    @post("/loops/{name:str}/run", opt={"permission": "scheduler.run"}, status_code=200)
    async def run_now(
        self, runtime: RuntimeDep, session: SessionDep, actor: ActorDep, name: FromPath[str]
    ) -> RunNowOut:
        """Run a loop now on this replica (a leader-only loop only on the leader)."""
        scheduler = runtime.scheduler
        if scheduler is None:
            raise Conflict("this replica runs no background work (CERTCTL_WORKER_ENABLED=false)")
        if name not in scheduler.specs:
            raise NotFound(f"no loop named {name!r}")
        try:
            handled = await scheduler.run_now(name)
        except NotLeader:
            raise Conflict(
                f"{name} runs on the scheduler leader only and this replica does not lead; "
                "see GET /api/v1/scheduler for the leader"
            ) from None
        except Exception as exc:  # noqa: BLE001 - reported to the caller, logged by the scheduler
            raise ServiceUnavailable(f"{name} failed: {type(exc).__name__}: {exc}"[:500]) from None
        record(
            session,
            actor,
            "scheduler.run",
            resource_type="scheduler_loop",
            resource_id=name,
            category="system",
            details={"handled": handled, "replica_id": scheduler.replica_id},
        )
        await session.commit()
        return RunNowOut(loop=name, replica_id=scheduler.replica_id, handled=handled)
