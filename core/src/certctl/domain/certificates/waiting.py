"""Waiting for an issuance job: the protocol servers whose clients expect the certificate inline.

EST and SCEP clients send a CSR and wait for the certificate in the same exchange; both
protocols also define a "come back later" answer (EST's 202 + Retry-After, SCEP's PENDING).
:func:`await_issuance` lets such a server wait a bounded time for the job engine (the request
itself never signs: policy, approvals and retries stay in one place) and then answer with what
it has. Polling the job row keeps this correct when another replica's worker runs the job.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from certctl.db.models import CertificateVersion, Job
from certctl.domain.jobs import completion

__all__ = ["IssuanceOutcome", "await_issuance", "issuance_outcome"]

OutcomeState = Literal["issued", "pending", "awaiting_approval", "failed"]

_FIRST_POLL = 0.02
_MAX_POLL = 0.25


@dataclass(frozen=True, slots=True)
class IssuanceOutcome:
    """Where a job stands; ``version`` is set when issued, ``error`` when failed."""

    state: OutcomeState
    version: CertificateVersion | None = None
    error: str | None = None


async def issuance_outcome(session: AsyncSession, job_id: str) -> IssuanceOutcome:
    """The job's state now, read in ``session``."""
    job = await session.scalar(
        select(Job).where(Job.id == job_id).execution_options(populate_existing=True)
    )
    if job is None:
        return IssuanceOutcome("failed", error="the issuance job no longer exists")
    if job.status == "completed":
        version_id = str(job.result.get("version_id") or "")
        version = await session.get(CertificateVersion, version_id) if version_id else None
        if version is None:
            return IssuanceOutcome("failed", error="the job completed without a certificate")
        return IssuanceOutcome("issued", version=version)
    if job.status in ("failed", "cancelled"):
        return IssuanceOutcome(
            "failed", error=job.last_error or f"the issuance job was {job.status}"
        )
    if job.status == "awaiting_approval":
        return IssuanceOutcome("awaiting_approval")
    return IssuanceOutcome("pending")


async def await_issuance(
    sessions: async_sessionmaker[AsyncSession], job_id: str, *, wait_seconds: float
) -> IssuanceOutcome:
    """Poll ``job_id`` until it is issued, failed or awaiting approval, or ``wait_seconds`` pass.

    A job awaiting approval is returned at once: a human decides, and no client waits for one.
    """
    deadline = time.monotonic() + wait_seconds
    delay = _FIRST_POLL
    with completion.watch(job_id) as settled:
        while True:
            async with sessions() as session:
                outcome = await issuance_outcome(session, job_id)
            remaining = deadline - time.monotonic()
            if outcome.state != "pending" or remaining <= 0:
                return outcome
            # This process's worker rings when it settles the job; another replica's doesn't,
            # so the poll interval still bounds the wait.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(delay, remaining)):
                    await settled.wait()
            settled.clear()
            delay = min(delay * 2, _MAX_POLL)
