"""``Replay-Nonce`` values (RFC 8555 §6.5): issued by any replica, accepted once by any replica.

A nonce is a row in ``acme_nonces``; consuming it is a single conditional ``DELETE``, so of
any number of concurrent requests carrying the same nonce (on one replica or many) exactly one
sees the row deleted and the others see nothing: the database's row lock decides, no
read-then-write race. Each of these runs on every ACME request, so each is one statement in
its own short transaction.
"""

from __future__ import annotations

import re
import secrets
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import CursorResult, delete, insert
from sqlalchemy.ext.asyncio import AsyncSession

from certctl.db.base import utcnow
from certctl.db.models import AcmeNonce

if TYPE_CHECKING:
    from certctl.runtime import Runtime

__all__ = ["consume_nonce", "new_nonce", "purge_nonces"]

NONCE_BYTES = 18
"""144 random bits: 24 base64url characters without padding."""

_MAX_LENGTH = 64
"""The column's width; anything longer was never ours."""
_SHAPE = re.compile(r"[A-Za-z0-9_-]+")


async def new_nonce(runtime: Runtime) -> str:
    """A fresh nonce, valid for ``acme_nonce_ttl_seconds``."""
    value = secrets.token_urlsafe(NONCE_BYTES)
    expires = utcnow() + timedelta(seconds=runtime.settings.acme_nonce_ttl_seconds)
    async with runtime.sessions.begin() as session:
        await session.execute(insert(AcmeNonce).values(value=value, expires_at=expires))
    return value


async def consume_nonce(runtime: Runtime, value: str) -> bool:
    """True exactly once for a nonce we issued and that has not expired; else False.

    A value that cannot be one of ours (too long, wrong alphabet) is refused without a query.
    """
    if not value or len(value) > _MAX_LENGTH or not _SHAPE.fullmatch(value):
        return False
    statement = (
        delete(AcmeNonce)
        .where(AcmeNonce.value == value, AcmeNonce.expires_at > utcnow())
        .execution_options(synchronize_session=False)
    )
    async with runtime.sessions.begin() as session:
        result = cast(CursorResult[Any], await session.execute(statement))
    return result.rowcount == 1


async def purge_nonces(session: AsyncSession, now: datetime) -> int:
    """Delete nonces expired at ``now``; the number deleted. The caller commits."""
    statement = (
        delete(AcmeNonce)
        .where(AcmeNonce.expires_at <= now)
        .execution_options(synchronize_session=False)
    )
    result = cast(CursorResult[Any], await session.execute(statement))
    return int(result.rowcount)
