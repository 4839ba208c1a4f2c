"""Creating users at sign-in, and deactivating them (which ends their sessions)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from certctl.db.base import new_id, utcnow
from certctl.db.engine import dialect_insert
from certctl.db.models import User
from certctl.domain.sessions.service import revoke_sessions
from certctl.errors import BadRequest, NotFound

__all__ = ["BREAKGLASS_PROVIDER", "deactivate_user", "reactivate_user", "upsert_federated_user"]

BREAKGLASS_PROVIDER = "breakglass"
"""``provider_id`` of local break-glass accounts."""


async def upsert_federated_user(
    db: AsyncSession,
    *,
    provider_id: str,
    subject: str,
    email: str | None,
    display_name: str,
    groups: tuple[str, ...],
) -> User:
    """The user for ``(provider_id, subject)``, created at first sign-in, refreshed at each.

    Email, display name and groups are overwritten with what the provider says now, and
    ``last_login_at`` is set. One statement (``INSERT … ON CONFLICT DO UPDATE``), so two
    first sign-ins racing on two replicas make one row. A deactivated user stays deactivated:
    :func:`~certctl.domain.sessions.service.start_session` refuses them.
    """
    if not provider_id or not subject:
        raise BadRequest("a user needs a provider id and a subject")
    now = utcnow()
    values = {
        "email": email,
        "display_name": display_name[:255],
        "groups": sorted(set(groups)),
        "last_login_at": now,
    }
    await db.execute(
        dialect_insert(db)(User)
        .values(
            id=new_id("usr"),
            provider_id=provider_id,
            subject=subject,
            created_at=now,
            deactivated_at=None,
            **values,
        )
        .on_conflict_do_update(index_elements=["provider_id", "subject"], set_=values)
    )
    user = await db.scalar(
        select(User)
        .where(User.provider_id == provider_id, User.subject == subject)
        .execution_options(populate_existing=True)
    )
    assert user is not None
    return user


async def deactivate_user(
    db: AsyncSession, user_id: str, *, reason: str
) -> tuple[User, int | None]:
    """Mark the user deactivated and end their sessions (caller commits and invalidates).

    Returns the user and how many sessions ended, or None when the user was already
    deactivated (nothing changed).
    """
    user = await db.get(User, user_id)
    if user is None:
        raise NotFound(f"user {user_id!r} not found")
    if user.deactivated_at is not None:
        return user, None
    user.deactivated_at = utcnow()
    # A session started concurrently is refused anyway: the cookie check joins the user row.
    return user, await revoke_sessions(db, user_id=user.id, reason=reason)


async def reactivate_user(db: AsyncSession, user_id: str) -> tuple[User, bool]:
    """Allow the user to sign in again (their ended sessions stay ended); True if it changed."""
    user = await db.get(User, user_id)
    if user is None:
        raise NotFound(f"user {user_id!r} not found")
    if user.deactivated_at is None:
        return user, False
    user.deactivated_at = None
    return user, True
