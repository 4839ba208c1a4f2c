"""The SSO sweep of the session GC: expired pre-login rows and stale logout-token ids."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import delete

from certctl.db.base import utcnow
from certctl.db.models import OidcLogoutJti, OidcPendingLogin

if TYPE_CHECKING:
    from certctl.runtime import Runtime

__all__ = ["collect_sso_garbage"]


async def collect_sso_garbage(runtime: Runtime) -> int:
    """How many rows went. A swept jti can no longer be replayed: its token is stale by then."""
    now = utcnow()
    async with runtime.sessions.begin() as session:
        pending = await session.execute(
            delete(OidcPendingLogin).where(OidcPendingLogin.expires_at <= now)
        )
        jtis = await session.execute(delete(OidcLogoutJti).where(OidcLogoutJti.expires_at <= now))
    return int(getattr(pending, "rowcount", 0) or 0) + int(getattr(jtis, "rowcount", 0) or 0)
