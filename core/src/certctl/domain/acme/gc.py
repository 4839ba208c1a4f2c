"""The ``acme-gc`` loop: expired nonces, stale orders and authorizations, lost validations.

Order state is also derived when an order is read (``orders.refresh_order``), so this loop is
housekeeping, not correctness: it keeps the tables small and the rate-limit counts (open orders)
true for orders nobody reads again. Each step is one guarded UPDATE or DELETE, so running it on
several replicas at once, or twice, changes nothing more.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import CursorResult, delete, select, update

from certctl.db.base import utcnow
from certctl.db.models import AcmeAuthorization, AcmeChallenge, AcmeOrder
from certctl.domain.acme.nonces import purge_nonces
from certctl.domain.acme.problems import ACME_ERROR
from certctl.domain.acme.validation import validation_deadline

if TYPE_CHECKING:
    from certctl.runtime import Runtime

__all__ = ["RETENTION", "collect"]

RETENTION = timedelta(days=30)
"""Invalid orders (and their authorizations and challenges) are kept this long for support."""
_LOST_MARGIN = timedelta(seconds=60)


def _rows(result: Any) -> int:
    return int(cast(CursorResult[Any], result).rowcount)


async def collect(runtime: Runtime) -> dict[str, int]:
    """Run every step once; how many rows each changed."""
    settings = runtime.settings
    now = utcnow()
    counts: dict[str, int] = {}
    async with runtime.sessions.begin() as session:
        counts["nonces"] = await purge_nonces(session, now)
        counts["orders_expired"] = _rows(
            await session.execute(
                update(AcmeOrder)
                .where(AcmeOrder.status.in_(("pending", "ready")), AcmeOrder.expires_at <= now)
                .values(
                    status="invalid",
                    error={"type": ACME_ERROR + "malformed", "detail": "the order expired"},
                    updated_at=now,
                )
                .execution_options(synchronize_session=False)
            )
        )
        counts["authorizations_expired"] = _rows(
            await session.execute(
                update(AcmeAuthorization)
                .where(AcmeAuthorization.status == "pending", AcmeAuthorization.expires_at <= now)
                .values(status="expired")
                .execution_options(synchronize_session=False)
            )
        )
        # A validation runs as a task of the process that accepted the response; one that
        # died with its process leaves the challenge processing. Give the client another go.
        lost_before = now - timedelta(seconds=validation_deadline(settings))
        counts["validations_lost"] = _rows(
            await session.execute(
                update(AcmeChallenge)
                .where(
                    AcmeChallenge.status == "processing",
                    AcmeChallenge.updated_at <= lost_before - _LOST_MARGIN,
                )
                .values(status="pending", updated_at=now)
                .execution_options(synchronize_session=False)
            )
        )
        dead = select(AcmeOrder.id).where(
            AcmeOrder.status == "invalid", AcmeOrder.updated_at <= now - RETENTION
        )
        dead_ids = list(await session.scalars(dead.limit(1000)))
        if dead_ids:
            # Foreign keys cascade on PostgreSQL; SQLite enforces them only when asked, so the
            # children are deleted explicitly on both.
            authz_ids = select(AcmeAuthorization.id).where(AcmeAuthorization.order_id.in_(dead_ids))
            await session.execute(
                delete(AcmeChallenge)
                .where(AcmeChallenge.authz_id.in_(authz_ids))
                .execution_options(synchronize_session=False)
            )
            await session.execute(
                delete(AcmeAuthorization)
                .where(AcmeAuthorization.order_id.in_(dead_ids))
                .execution_options(synchronize_session=False)
            )
            await session.execute(
                delete(AcmeOrder)
                .where(AcmeOrder.id.in_(dead_ids))
                .execution_options(synchronize_session=False)
            )
        counts["orders_deleted"] = len(dead_ids)
    return counts
