"""The named loops every certctl process runs, with their default intervals.

``leader_only`` loops have side effects that must not repeat (signing, sending, sweeping with
audit rows) and run on the elected leader alone; the others are safe everywhere because their
work is claimed row by row (``FOR UPDATE SKIP LOCKED``) and they spread load across replicas.
An interval can be changed with ``CERTCTL_SCHEDULER_<NAME>_INTERVAL`` (``renewal-check`` →
``CERTCTL_SCHEDULER_RENEWAL_CHECK_INTERVAL``), and a loop switched off with
``CERTCTL_SCHEDULER_DISABLED_LOOPS``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from certctl.settings import SettingsError

if TYPE_CHECKING:
    from certctl.runtime import Runtime

__all__ = ["LoopSpec", "builtin_loops", "check_loop_names", "env_name"]

LoopFunction = Callable[["Runtime"], Awaitable[int]]


@dataclass(frozen=True, kw_only=True)
class LoopSpec:
    """One periodic task. ``run`` returns how many items it handled."""

    name: str
    description: str
    run: LoopFunction
    interval: float
    """Seconds between the end of one run and the start of the next (±jitter)."""
    leader_only: bool
    timeout: float
    """A run taking longer is cancelled and recorded as failed."""
    run_at_start: bool = True
    wakeable: bool = False
    """Runs early when something calls :meth:`Scheduler.wake` with its name."""


def env_name(loop: str) -> str:
    """The variable that overrides ``loop``'s interval."""
    return f"CERTCTL_SCHEDULER_{loop.upper().replace('-', '_')}_INTERVAL"


async def _process_jobs(runtime: Runtime) -> int:
    return await runtime.worker.run_until_idle()


async def _renewal_check(runtime: Runtime) -> int:
    from certctl.worker.renewal import scan_for_renewals

    return await scan_for_renewals(runtime)


async def _reap_jobs(runtime: Runtime) -> int:
    from certctl.worker.reaper import reap_jobs

    return await reap_jobs(runtime)


async def _collect_garbage(runtime: Runtime) -> int:
    from certctl.worker.reaper import collect_garbage

    return await collect_garbage(runtime)


async def _acme_gc(runtime: Runtime) -> int:
    from certctl.domain.acme.gc import collect

    return sum((await collect(runtime)).values())


async def _dispatch_notifications(runtime: Runtime) -> int:
    from certctl.domain.notifications.queue import dispatch_notifications

    return await dispatch_notifications(runtime)


async def _expiry_alerts(runtime: Runtime) -> int:
    from certctl.domain.notifications.expiry import scan_expiry_alerts

    queued = await scan_expiry_alerts(runtime)
    if queued:
        runtime.scheduler_wake("notification-process")
    return queued


async def _digest(runtime: Runtime) -> int:
    from certctl.domain.digest.service import send_digest

    return await send_digest(runtime)


async def _crl_generation(runtime: Runtime) -> int:
    from certctl.domain.revocation.service import regenerate_crls

    return await regenerate_crls(runtime)


async def _ocsp_rotation(runtime: Runtime) -> int:
    from certctl.domain.ocsp.service import rotate_ocsp_responders

    return await rotate_ocsp_responders(runtime)


async def _approval_expiry(runtime: Runtime) -> int:
    from certctl.domain.approvals.service import expire_stale_approvals

    return await expire_stale_approvals(runtime)


async def _compliance(runtime: Runtime) -> int:
    from certctl.domain.compliance.service import evaluate_compliance

    return await evaluate_compliance(runtime)


async def _session_gc(runtime: Runtime) -> int:
    from certctl.domain.sessions.gc import collect_sessions

    return await collect_sessions(runtime)


# guard (issue 4)
async def _rate_limit_janitor(runtime: Runtime) -> int:
    return await runtime.rate_limits.prune()


# audit: the hash-chain check
async def _audit_chain_verify(runtime: Runtime) -> int:
    from certctl.domain.audit.monitor import verify_chain_and_report

    return await verify_chain_and_report(runtime)


def builtin_loops(runtime: Runtime) -> list[LoopSpec]:
    """The loops of this process, intervals resolved from its settings."""
    settings = runtime.settings
    specs = [
        LoopSpec(
            name="job-processor",
            description="claim runnable jobs (issuance, renewal, deployment) and run them",
            run=_process_jobs,
            interval=settings.worker_poll_interval,
            leader_only=False,
            timeout=max(float(settings.job_lease_seconds), 60.0),
            wakeable=True,
        ),
        LoopSpec(
            name="renewal-check",
            description="enqueue a renewal for every certificate past its renewal time",
            run=_renewal_check,
            interval=60.0,
            leader_only=True,
            timeout=300.0,
        ),
        LoopSpec(
            name="job-reaper",
            description="fail jobs whose worker died on their last attempt",
            run=_reap_jobs,
            interval=60.0,
            leader_only=True,
            timeout=120.0,
        ),
        LoopSpec(
            name="notification-process",
            description="send due notifications: retries with back-off, dead-letter at the limit",
            run=_dispatch_notifications,
            interval=30.0,
            leader_only=True,
            timeout=300.0,
            wakeable=True,
        ),
        LoopSpec(
            name="expiry-alerts",
            description="queue an alert for each certificate crossing an expiry threshold",
            run=_expiry_alerts,
            interval=3600.0,
            leader_only=True,
            timeout=300.0,
        ),
        LoopSpec(
            name="digest",
            description="send the daily digest once per day (CERTCTL_DIGEST_ENABLED)",
            run=_digest,
            interval=3600.0,
            leader_only=True,
            timeout=300.0,
        ),
        LoopSpec(
            name="crl-generation",
            description="re-sign each issuer's CRL before half its validity has passed",
            run=_crl_generation,
            interval=900.0,
            leader_only=True,
            timeout=300.0,
        ),
        LoopSpec(
            name="ocsp-responder-rotation",
            description="replace OCSP responder certificates inside CERTCTL_OCSP_ROTATION_GRACE",
            run=_ocsp_rotation,
            interval=3600.0,
            leader_only=True,
            timeout=300.0,
        ),
        LoopSpec(
            name="approval-expiry",
            description="expire approval requests (and fail their jobs) past their timeout",
            run=_approval_expiry,
            interval=600.0,
            leader_only=True,
            timeout=120.0,
        ),
        LoopSpec(
            name="compliance-evaluation",
            description="re-evaluate every certificate against the compliance rules",
            run=_compliance,
            interval=3600.0,
            leader_only=True,
            timeout=900.0,
            run_at_start=False,
        ),
        LoopSpec(
            name="garbage-collection",
            description=(
                "delete finished jobs and delivered notifications past CERTCTL_JOB_RETENTION, "
                "and departed replicas"
            ),
            run=_collect_garbage,
            interval=3600.0,
            leader_only=True,
            timeout=300.0,
            run_at_start=False,
        ),
        # browser sessions
        LoopSpec(
            name="session-gc",
            description=(
                "delete ended sessions, rotate and prune the session signing keys, and run the "
                "sign-in features' sweeps"
            ),
            run=_session_gc,
            interval=3600.0,
            leader_only=True,
            timeout=300.0,
        ),
        # guard (issue 4)
        LoopSpec(
            name="rate-limit-janitor",
            description=(
                "forget rate-limit buckets idle for CERTCTL_RATE_LIMIT_BUCKET_TTL (this "
                "process's, and on PostgreSQL the shared rows)"
            ),
            run=_rate_limit_janitor,
            interval=300.0,
            leader_only=False,
            timeout=60.0,
            run_at_start=False,
        ),
        # ACME server
        LoopSpec(
            name="acme-gc",
            description=(
                "purge expired ACME nonces, expire stale orders and authorizations, and free "
                "challenges whose validation died with its process"
            ),
            run=_acme_gc,
            interval=float(settings.acme_gc_interval_seconds),
            leader_only=True,
            timeout=120.0,
        ),
        # audit: the hash-chain check
        LoopSpec(
            name="audit-chain-verify",
            description="walk the audit hash chain; a broken link is logged (ERROR) and audited",
            run=_audit_chain_verify,
            interval=6 * 3600.0,
            leader_only=True,
            timeout=1800.0,
        ),
    ]
    known = {spec.name for spec in specs}
    check_loop_names(set(settings.loop_intervals) | set(settings.disabled_loops), known)
    return [
        _configured(spec, runtime) for spec in specs if spec.name not in settings.disabled_loops
    ]


def _configured(spec: LoopSpec, runtime: Runtime) -> LoopSpec:
    interval = runtime.settings.loop_intervals.get(spec.name)
    return spec if interval is None else replace(spec, interval=interval)


def check_loop_names(names: set[str], known: set[str]) -> None:
    """Refuse interval overrides or disabled entries naming no loop (always a typo)."""
    unknown = sorted(names - known)
    if unknown:
        raise SettingsError(
            f"{env_name(unknown[0])} / CERTCTL_SCHEDULER_DISABLED_LOOPS: no loop named "
            f"{unknown[0]!r} (loops: {', '.join(sorted(known))})"
        )
