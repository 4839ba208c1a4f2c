"""The session GC loop: ended sessions, signing key rotation, other features' sweeps."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import delete, or_

from certctl.db.models import BrowserSession

if TYPE_CHECKING:
    from certctl.runtime import Runtime

__all__ = ["ENDED_SESSION_GRACE", "collect_sessions"]

_log = logging.getLogger("certctl.sessions")

ENDED_SESSION_GRACE = timedelta(hours=1)
"""Ended sessions stay this long before their rows are deleted (nothing reads them; the
grace only keeps the sweep from racing a request that is checking the session right now)."""


async def collect_sessions(runtime: Runtime) -> int:
    """Delete ended sessions, rotate and prune signing keys, run registered sweeps."""
    manager = runtime.browser_sessions
    now = manager.clock()
    cutoff = now - ENDED_SESSION_GRACE
    async with runtime.sessions() as session:
        result = await session.execute(
            delete(BrowserSession).where(
                or_(
                    BrowserSession.expires_at < cutoff,
                    BrowserSession.revoked_at < cutoff,
                    BrowserSession.last_seen_at < cutoff - manager.idle_timeout,
                )
            )
        )
        await session.commit()
    removed = int(getattr(result, "rowcount", 0) or 0)
    if await manager.keys.rotate():
        _log.info("session signing key rotated")
    removed += await manager.keys.prune()
    for name, sweep in manager.sweeps:
        try:
            removed += await sweep(runtime)
        except Exception:  # noqa: BLE001 - one feature's broken sweep must not stop the others
            _log.exception("session GC sweep %s failed", name)
    return removed
