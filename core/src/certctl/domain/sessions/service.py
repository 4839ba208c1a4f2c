"""Starting and ending browser sessions: the API the sign-in flows (SSO, break-glass) call.

A sign-in flow resolves its user (``certctl.domain.users.service.upsert_federated_user``), then
in one transaction::

    issued = await start_session(runtime, db, user=user, request=request, groups=groups,
                                 auth_method="sso", provider_id=provider.id, idp_sid=sid)
    record_session_started(db, user, issued)
    await db.commit()
    response = Redirect("/")
    set_session_cookies(response, issued, runtime.settings)

Ending sessions (:func:`revoke_sessions`) bumps the auth generation in the caller's
transaction; after committing, the caller calls ``runtime.auth_generation.invalidate()`` so
this replica enforces it at once (the others within ``CERTCTL_AUTH_CACHE_MS``).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import msgspec
from litestar import Response
from litestar.connection import ASGIConnection
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from certctl.db.base import new_id, utcnow
from certctl.db.models import BrowserSession, User
from certctl.domain.audit.service import record
from certctl.domain.auth.actor import Actor
from certctl.domain.auth.generation import bump_generation
from certctl.domain.sessions.cookies import (
    clearing_cookies,
    csrf_cookie,
    encode_cookie,
    new_secret,
    session_cookie,
    sha256_hex,
)
from certctl.domain.sessions.manager import client_address, user_agent
from certctl.errors import Forbidden

if TYPE_CHECKING:
    from certctl.runtime import Runtime
    from certctl.settings import Settings

__all__ = [
    "IssuedSession",
    "clear_session_cookies",
    "group_actor_ids",
    "record_session_started",
    "revoke_sessions",
    "set_session_cookies",
    "start_session",
    "user_actor",
]


class IssuedSession(msgspec.Struct, frozen=True, kw_only=True):
    """A session just created: what goes into the browser's cookies.

    ``session_id`` is the public id (``ses-…``; lists, audit, ``Actor.session_id``);
    ``cookie_value`` and ``csrf_token`` are secrets that belong only in the cookies.
    """

    session_id: str
    cookie_value: str
    csrf_token: str
    user_id: str
    auth_method: str
    provider_id: str
    expires_at: datetime

    def __repr__(self) -> str:
        return f"IssuedSession(session_id={self.session_id!r}, user_id={self.user_id!r})"


def group_actor_ids(provider_id: str, groups: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Grant holders for a provider's groups: ``"<provider_id>:<group>"``."""
    return tuple(f"{provider_id}:{g}" for g in groups)


def user_actor(user: User) -> Actor:
    """The user as the actor of audit rows about their own sign-in (no permissions needed)."""
    return Actor(name=user.id, type="User", display_name=user.display_name)


async def start_session(
    runtime: Runtime,
    db: AsyncSession,
    *,
    user: User,
    request: ASGIConnection[Any, Any, Any, Any],
    groups: tuple[str, ...],
    auth_method: str,
    provider_id: str | None = None,
    idp_sid: str | None = None,
) -> IssuedSession:
    """Create a session for ``user`` in ``db``'s transaction (the caller commits).

    ``groups`` are the provider's group names as the identity provider sent them at this
    sign-in; the session's grants come from ``"<provider_id>:<group>"`` holders (and the
    user's own grants). ``provider_id`` defaults to the user's provider. A fresh token, CSRF
    token and public id are made at every sign-in (no session fixation). Refuses (403) a
    deactivated user.
    """
    # Read from the database: the caller's object may predate a deactivation.
    deactivated = await db.scalar(select(User.deactivated_at).where(User.id == user.id))
    if deactivated is not None:
        raise Forbidden("this user is deactivated; an administrator can reactivate them")
    manager = runtime.browser_sessions
    key_id, key = await manager.keys.signing_key(db)
    provider = provider_id or user.provider_id
    token, csrf = new_secret(), new_secret()
    now = manager.clock()
    row = BrowserSession(
        id=new_id("ses"),
        token_hash=sha256_hex(token),
        user_id=user.id,
        provider_id=provider,
        auth_method=auth_method,
        idp_sid=idp_sid,
        group_ids=list(group_actor_ids(provider, groups)),
        csrf_hash=sha256_hex(csrf),
        created_at=now,
        last_seen_at=now,
        expires_at=now + manager.absolute_timeout,
        client_ip=client_address(request),
        user_agent=user_agent(request),
    )
    db.add(row)
    await db.flush()
    return IssuedSession(
        session_id=row.id,
        cookie_value=encode_cookie(token, key_id, key),
        csrf_token=csrf,
        user_id=user.id,
        auth_method=auth_method,
        provider_id=provider,
        expires_at=row.expires_at,
    )


def record_session_started(db: AsyncSession, user: User, issued: IssuedSession) -> None:
    """The audit row of a sign-in (action ``auth.session.start``), in ``db``'s transaction."""
    record(
        db,
        user_actor(user),
        "auth.session.start",
        resource_type="session",
        resource_id=issued.session_id,
        category="auth",
        details={
            "user_id": user.id,
            "provider_id": issued.provider_id,
            "auth_method": issued.auth_method,
        },
    )


def set_session_cookies(response: Response[Any], issued: IssuedSession, settings: Settings) -> None:
    """Put the session and CSRF cookies on ``response`` (they expire with the session)."""
    max_age = settings.session_absolute_timeout
    response.set_cookie(
        session_cookie(issued.cookie_value, max_age=max_age, samesite=settings.session_samesite)
    )
    response.set_cookie(
        csrf_cookie(issued.csrf_token, max_age=max_age, samesite=settings.session_samesite)
    )


def clear_session_cookies(response: Response[Any], settings: Settings) -> None:
    """Delete both cookies in the browser."""
    for cookie in clearing_cookies(settings.session_samesite):
        response.set_cookie(cookie)


async def revoke_sessions(
    db: AsyncSession,
    *,
    user_id: str | None = None,
    provider_id: str | None = None,
    idp_sid: str | None = None,
    idp_sub: str | None = None,
    session_id: str | None = None,
    except_session_id: str | None = None,
    reason: str,
    now: datetime | None = None,
) -> int:
    """End the live sessions matching every given filter; how many ended.

    ``idp_sid`` matches the identity provider's session id, ``idp_sub`` the user's subject at
    ``provider_id`` (back-channel logout sends either). At least one filter is required, so a
    forgotten argument cannot sign everybody out. Bumps the auth generation when something
    ended; the caller commits, then calls ``runtime.auth_generation.invalidate()``.
    """
    if not any((user_id, provider_id, idp_sid, idp_sub, session_id)):
        raise ValueError("revoke_sessions needs at least one filter")
    if idp_sub is not None and provider_id is None:
        raise ValueError("idp_sub is only meaningful with provider_id")
    conditions: list[Any] = [BrowserSession.revoked_at.is_(None)]
    if user_id is not None:
        conditions.append(BrowserSession.user_id == user_id)
    if provider_id is not None:
        conditions.append(BrowserSession.provider_id == provider_id)
    if idp_sid is not None:
        conditions.append(BrowserSession.idp_sid == idp_sid)
    if idp_sub is not None:
        subjects = select(User.id).where(User.provider_id == provider_id, User.subject == idp_sub)
        conditions.append(BrowserSession.user_id.in_(subjects))
    if session_id is not None:
        conditions.append(BrowserSession.id == session_id)
    if except_session_id is not None:
        conditions.append(BrowserSession.id != except_session_id)
    stamp = now or utcnow()
    result = await db.execute(
        update(BrowserSession)
        .where(*conditions)
        .values(revoked_at=stamp, revoked_reason=reason[:255])
        .execution_options(synchronize_session=False)
    )
    count = int(getattr(result, "rowcount", 0) or 0)
    if count:
        await bump_generation(db)
    return count
