"""ACME rate limits: new orders per account and per client address, open orders, failed validations.

They are counted from the rows themselves (orders, challenges), so every replica on one
PostgreSQL database shares one budget — the Go certctl keeps its counters in process memory,
which lets N replicas accept N times the limit. A refusal is ``rateLimited`` (429) with a
``Retry-After`` of when the oldest counted row leaves the one-hour window.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import func, select

from certctl.db.models import AcmeAuthorization, AcmeChallenge, AcmeOrder
from certctl.domain.acme.problems import AcmeProblem

if TYPE_CHECKING:
    from sqlalchemy import ColumnElement
    from sqlalchemy.ext.asyncio import AsyncSession
    from sqlalchemy.orm import InstrumentedAttribute

    from certctl.settings import Settings

__all__ = ["WINDOW", "check_new_order", "check_validation_attempt"]

WINDOW = timedelta(hours=1)
_OPEN = ("pending", "ready", "processing")
_OPEN_RETRY_AFTER = 60
"""An open order closes when its client finalizes or it expires; a minute is a fair wait."""


async def check_new_order(
    session: AsyncSession, settings: Settings, *, account_id: str, client_ip: str, now: datetime
) -> None:
    """Refuse a new order beyond the hourly budgets or the open-order limit."""
    since = now - WINDOW
    await _within(
        session,
        AcmeOrder.created_at,
        (AcmeOrder.account_id == account_id, AcmeOrder.created_at > since),
        settings.acme_orders_per_hour_per_account,
        now,
        "new orders per hour for this account",
    )
    if client_ip:
        await _within(
            session,
            AcmeOrder.created_at,
            (AcmeOrder.client_ip == client_ip, AcmeOrder.created_at > since),
            settings.acme_orders_per_hour_per_ip,
            now,
            "new orders per hour from this address",
        )
    open_orders = await session.scalar(
        select(func.count())
        .select_from(AcmeOrder)
        .where(
            AcmeOrder.account_id == account_id,
            AcmeOrder.status.in_(_OPEN),
            AcmeOrder.expires_at > now,
        )
    )
    if (open_orders or 0) >= settings.acme_pending_orders_per_account:
        raise AcmeProblem.rate_limited(
            f"the account has {open_orders} open orders "
            f"(limit {settings.acme_pending_orders_per_account}): finalize or let them expire",
            _OPEN_RETRY_AFTER,
        )


async def check_validation_attempt(
    session: AsyncSession, settings: Settings, *, account_id: str, now: datetime
) -> None:
    """Refuse a challenge response once the account failed too many validations this hour.

    Checked before the validation starts, so a refused response leaves the challenge pending
    for a later try.
    """
    await _within(
        session,
        AcmeChallenge.updated_at,
        (
            AcmeAuthorization.account_id == account_id,
            AcmeChallenge.status == "invalid",
            # A validation ran (the response counted an attempt): the challenges invalidated
            # beside a failed one were never tried. Not ``error IS NOT NULL``: a JSON column
            # may hold a JSON null, which is not SQL NULL.
            AcmeChallenge.attempts > 0,
            AcmeChallenge.updated_at > now - WINDOW,
        ),
        settings.acme_failed_validations_per_hour_per_account,
        now,
        "failed validations per hour for this account",
        join=True,
    )


async def _within(
    session: AsyncSession,
    stamp: InstrumentedAttribute[datetime],
    conditions: tuple[ColumnElement[bool], ...],
    limit: int,
    now: datetime,
    what: str,
    *,
    join: bool = False,
) -> None:
    query = select(func.count(), func.min(stamp))  # the oldest row leaves the window first
    if join:
        query = query.select_from(AcmeChallenge).join(
            AcmeAuthorization, AcmeAuthorization.id == AcmeChallenge.authz_id
        )
    else:
        query = query.select_from(AcmeOrder)
    count, oldest = (await session.execute(query.where(*conditions))).one()
    if count < limit:
        return
    retry = (oldest + WINDOW - now).total_seconds() if oldest is not None else WINDOW.seconds
    raise AcmeProblem.rate_limited(f"{what}: limit {limit} reached", math.ceil(retry))
