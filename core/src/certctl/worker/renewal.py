"""The renewal scan: certificates past their renewal time get a renewal job."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from sqlalchemy import select

from certctl.db.base import utcnow
from certctl.db.models import ManagedCertificate
from certctl.domain.auth.actor import SYSTEM
from certctl.domain.certificates.service import request_renewal

if TYPE_CHECKING:
    from certctl.runtime import Runtime

__all__ = ["renewal_loop", "scan_for_renewals"]

_log = logging.getLogger("certctl.renewal")


async def scan_for_renewals(runtime: Runtime, batch: int = 500) -> int:
    """Enqueue renewals for due certificates; returns how many jobs were created or found.

    Renewal jobs are keyed by the version they replace, so concurrent scans (or replicas)
    enqueue each renewal once.
    """
    count = 0
    async with runtime.sessions() as session:
        due = list(
            await session.scalars(
                select(ManagedCertificate)
                .where(
                    ManagedCertificate.status == "active", ManagedCertificate.renew_at <= utcnow()
                )
                .order_by(ManagedCertificate.renew_at)
                .limit(batch)
            )
        )
        for cert in due:
            await request_renewal(
                session, cert, SYSTEM, max_attempts=runtime.settings.job_max_attempts, forced=False
            )
            count += 1
        await session.commit()
    if count:
        runtime.worker.wake()
    return count


async def renewal_loop(runtime: Runtime) -> None:
    """Scan on the configured interval until cancelled."""
    while True:
        try:
            found = await scan_for_renewals(runtime)
            if found:
                _log.info("renewal scan queued %d certificate(s)", found)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - keep scanning after a transient database error
            _log.exception("renewal scan failed")
        await asyncio.sleep(runtime.settings.renewal_check_interval)
