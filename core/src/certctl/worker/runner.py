"""The in-process worker: claims jobs, runs them, retries or fails them by error class."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from typing import TYPE_CHECKING

from sqlalchemy import update

from certctl.db.base import new_id, utcnow
from certctl.db.models import Deployment, Job, ManagedCertificate
from certctl.domain.audit.service import record
from certctl.domain.auth.actor import SYSTEM
from certctl.domain.certificates.lifecycle import JobLost, execute_deployment, execute_issuances
from certctl.domain.events import publish
from certctl.domain.jobs import completion
from certctl.domain.jobs import service as jobs
from certctl_sdk import ConnectorError, EventType, LifecycleEvent

if TYPE_CHECKING:
    from certctl.runtime import Runtime

__all__ = ["Worker"]

_log = logging.getLogger("certctl.worker")


class Worker:
    """Runs jobs until stopped; ``run_once`` drives it step by step in tests and benchmarks."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{new_id('w')}"
        self._external = asyncio.Semaphore(runtime.settings.worker_concurrency)

    def wake(self) -> None:
        """Look for work now instead of at the next poll (called after enqueueing)."""
        self.runtime.scheduler_wake("job-processor")

    async def run_until_idle(self, max_rounds: int = 100) -> int:
        """Run rounds until nothing is runnable right now; return how many jobs ran.

        The ``job-processor`` loop calls this on every tick and whenever work is enqueued.
        """
        total = 0
        for _ in range(max_rounds):
            done = await self.run_once()
            if done == 0:
                break
            total += done
        return total

    async def run_once(self) -> int:
        """Claim one batch of runnable jobs and run them concurrently; return how many ran."""
        settings = self.runtime.settings
        async with self.runtime.sessions() as session:
            claimed = await jobs.claim(
                session,
                worker_id=self.worker_id,
                limit=settings.worker_batch_size,
                lease_seconds=settings.job_lease_seconds,
            )
        if claimed:
            issuances = [j for j in claimed if j.type in ("issuance", "renewal")]
            others = [j for j in claimed if j.type not in ("issuance", "renewal")]
            await asyncio.gather(self._run_issuances(issuances), *(self._run(j) for j in others))
        return len(claimed)

    async def drain(self, max_rounds: int = 100) -> None:
        """Run until no job is runnable right now (tests, demo seeding)."""
        await self.run_until_idle(max_rounds)

    async def _run_issuances(self, batch: list[Job]) -> None:
        if not batch:
            return
        outcomes = await execute_issuances(self.runtime, batch, self.worker_id)
        events: list[LifecycleEvent] = []
        for job, outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                await self._handle_error(job, outcome)
            elif outcome is not None:
                events.append(outcome)
        completion.notify(job.id for job in batch)
        await publish(self.runtime, *events)

    async def _run(self, job: Job) -> None:
        try:
            if job.type not in ("deployment", "removal"):
                raise ConnectorError(f"unknown job type {job.type!r}")
            async with self._external:
                event = await execute_deployment(self.runtime, job, self.worker_id)
        except Exception as exc:  # noqa: BLE001 - classified in _handle_error
            await self._handle_error(job, exc)
            return
        if event is not None:
            await publish(self.runtime, event)

    async def _handle_error(self, job: Job, exc: BaseException) -> None:
        """Retry or fail ``job`` according to the class of ``exc``."""
        if isinstance(exc, JobLost):
            _log.warning("job %s was reclaimed by another worker; results discarded", job.id)
        elif isinstance(exc, ConnectorError):
            await self._failed(
                job,
                exc.message,
                retryable=exc.retryable,
                retry_after=getattr(exc, "retry_after", None),
                rolled_back=getattr(exc, "rolled_back", None),
            )
        elif isinstance(exc, Exception):
            # A connector or database bug: retried a bounded number of times, traceback logged.
            _log.error("job %s (%s) raised unexpectedly", job.id, job.type, exc_info=exc)
            await self._failed(
                job,
                f"internal error: {type(exc).__name__}",
                retryable=True,
                retry_after=None,
                rolled_back=None,
            )
        else:
            raise exc  # CancelledError and friends propagate

    async def _failed(
        self,
        job: Job,
        error: str,
        *,
        retryable: bool,
        retry_after: float | None,
        rolled_back: bool | None,
    ) -> None:
        settings = self.runtime.settings
        will_retry = retryable and job.attempts < job.max_attempts
        async with self.runtime.sessions() as session:
            if will_retry:
                delay = jobs.backoff_delay(
                    job.attempts, settings.job_retry_base_seconds, retry_after
                )
                ok = await jobs.release_for_retry(
                    session, job, worker_id=self.worker_id, delay=delay, error=error
                )
            else:
                ok = await jobs.finish(
                    session,
                    job,
                    worker_id=self.worker_id,
                    status="failed",
                    result={"retryable": retryable},
                    error=error,
                )
            if not ok:
                await session.rollback()
                return
            if (
                job.type in ("deployment", "removal")
                and job.certificate_id
                and job.target_id
                and job.version_id
            ):
                session.add(
                    Deployment(
                        id=new_id("dep"),
                        certificate_id=job.certificate_id,
                        target_id=job.target_id,
                        version_id=job.version_id,
                        job_id=None,
                        status="failed",
                        changed=False,
                        message=error
                        + ("" if rolled_back is None else f" (rolled back: {rolled_back})"),
                        created_at=utcnow(),
                    )
                )
            elif job.certificate_id:
                values: dict[str, object] = {"last_error": error, "updated_at": utcnow()}
                if not will_retry:
                    cert = await session.get(ManagedCertificate, job.certificate_id)
                    if cert is not None and cert.current_version_id is None:
                        values["status"] = "failed"
                await session.execute(
                    update(ManagedCertificate)
                    .where(ManagedCertificate.id == job.certificate_id)
                    .values(**values)
                )
            record(
                session,
                SYSTEM,
                f"job.{'retry' if will_retry else 'failed'}",
                resource_type="job",
                resource_id=job.id,
                outcome="failure",
                category="cert_lifecycle",
                details={
                    "type": job.type,
                    "certificate_id": job.certificate_id,
                    "target_id": job.target_id,
                    "attempt": job.attempts,
                    "error": error,
                },
            )
            await session.commit()
        if not will_retry:
            event_type = (
                EventType.DEPLOYMENT_FAILED
                if job.type in ("deployment", "removal")
                else EventType.ISSUANCE_FAILED
            )
            await publish(
                self.runtime,
                LifecycleEvent(
                    type=event_type,
                    occurred_at=utcnow(),
                    certificate_id=job.certificate_id,
                    job_id=job.id,
                    details={"error": error, "message": error},
                ),
            )
