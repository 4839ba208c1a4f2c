"""``/api/v1/auth/sessions`` (list and revoke) and ``POST /auth/logout``.

Sessions belong to users. Everyone with ``auth.session.list`` / ``auth.session.revoke`` sees
and ends their own; other users' sessions also need ``auth.session.list.all`` (whoever may see
everybody's sessions may end them). A session someone may not see answers 404, like one that
does not exist.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, delete, get, post
from litestar.params import FromPath, FromQuery, QueryParameter
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from certctl.db.models import BrowserSession, User
from certctl.domain.audit.service import record
from certctl.domain.auth.actor import Actor
from certctl.domain.sessions.cookies import SESSION_COOKIE
from certctl.domain.sessions.manager import SessionRejected, check_csrf
from certctl.domain.sessions.schemas import RevokedOut, SessionOut
from certctl.domain.sessions.service import clear_session_cookies, revoke_sessions
from certctl.errors import Forbidden, NotFound
from certctl.lib.deps import ActorDep, RuntimeDep, SessionDep
from certctl.lib.pagination import Page, page_window

__all__ = ["LogoutController", "SessionsController"]

LIST_ALL = "auth.session.list.all"


def _own_user_id(actor: Actor) -> str | None:
    """The caller's user id; API keys have no sessions (and a key's name is not a user id)."""
    return actor.name if actor.type == "User" else None


def _live(runtime: RuntimeDep) -> list[Any]:
    manager = runtime.browser_sessions
    now = manager.clock()
    return [
        BrowserSession.revoked_at.is_(None),
        BrowserSession.expires_at > now,
        BrowserSession.last_seen_at > now - manager.idle_timeout,
    ]


class SessionsController(Controller):
    """List and revoke browser sessions."""

    path = "/api/v1/auth/sessions"
    tags = ["Auth"]

    @get("/", opt={"permission": "auth.session.list"})
    async def list_sessions(
        self,
        runtime: RuntimeDep,
        session: SessionDep,
        actor: ActorDep,
        actor_id: FromQuery[str | None] = None,
        all_users: Annotated[bool, QueryParameter(name="all")] = False,
        page: FromQuery[int] = 1,
        per_page: FromQuery[int] = 50,
    ) -> Page[SessionOut]:
        """Your live sessions; others' (``?actor_id=usr-…``, ``?all=true``) need list.all."""
        offset, limit = page_window(page, per_page)
        own = _own_user_id(actor)
        if (all_users or (actor_id is not None and actor_id != own)) and not actor.can(LIST_ALL):
            raise Forbidden(f"other users' sessions need the {LIST_ALL!r} permission")
        query = (
            select(BrowserSession, User.display_name)
            .join(User, User.id == BrowserSession.user_id)
            .where(*_live(runtime))
        )
        if not all_users:
            query = query.where(BrowserSession.user_id == (actor_id or own or ""))
        total = await session.scalar(select(func.count()).select_from(query.subquery()))
        rows = await session.execute(
            query.order_by(BrowserSession.created_at.desc(), BrowserSession.id)
            .offset(offset)
            .limit(limit)
        )
        idle = runtime.settings.session_idle_timeout
        data = [
            SessionOut(
                id=s.id,
                user_id=s.user_id,
                display_name=name,
                provider_id=s.provider_id,
                auth_method=s.auth_method,
                created_at=s.created_at,
                last_seen_at=s.last_seen_at,
                expires_at=s.expires_at,
                idle_timeout_seconds=idle,
                client_ip=s.client_ip,
                user_agent=s.user_agent,
                current=s.id == actor.session_id,
            )
            for s, name in rows
        ]
        return Page(data=data, total=int(total or 0), page=page, per_page=per_page)

    @delete("/", opt={"permission": "auth.session.revoke"}, status_code=200)
    async def revoke_other_sessions(
        self, runtime: RuntimeDep, session: SessionDep, actor: ActorDep
    ) -> RevokedOut:
        """End all your sessions except the one making this request."""
        own = _own_user_id(actor)
        if own is None:
            return RevokedOut(revoked=0)
        count = await revoke_sessions(
            session,
            user_id=own,
            except_session_id=actor.session_id,
            reason="revoked by the user (all other sessions)",
            now=runtime.browser_sessions.clock(),
        )
        if count:
            record(
                session,
                actor,
                "auth.session.revoke",
                resource_type="user",
                resource_id=own,
                category="auth",
                details={"sessions": count, "kept": actor.session_id},
            )
            await session.commit()
            runtime.auth_generation.invalidate()
        return RevokedOut(revoked=count)

    @delete("/{session_id:str}", opt={"permission": "auth.session.revoke"}, status_code=204)
    async def revoke_session(
        self,
        runtime: RuntimeDep,
        session: SessionDep,
        actor: ActorDep,
        session_id: FromPath[str],
    ) -> Response[None]:
        """End one session (yours, or anyone's with ``auth.session.list.all``)."""
        row = await session.scalar(
            select(BrowserSession).where(BrowserSession.id == session_id, *_live(runtime))
        )
        if row is None or (row.user_id != _own_user_id(actor) and not actor.can(LIST_ALL)):
            raise NotFound(f"session {session_id!r} not found")
        await revoke_sessions(
            session,
            session_id=row.id,
            reason=f"revoked by {actor.name}",
            now=runtime.browser_sessions.clock(),
        )
        record(
            session,
            actor,
            "auth.session.revoke",
            resource_type="session",
            resource_id=row.id,
            category="auth",
            details={"user_id": row.user_id},
        )
        await session.commit()
        runtime.auth_generation.invalidate()
        response: Response[None] = Response(None, status_code=204)
        if row.id == actor.session_id:
            clear_session_cookies(response, runtime.settings)
        return response


class LogoutController(Controller):
    """``POST /auth/logout``: public, so a browser with a dead session can still clear it."""

    path = "/auth/logout"
    tags = ["Auth"]

    @post("/", opt={"public": True}, status_code=204)
    async def logout(
        self, request: Request[Any, Any, Any], runtime: RuntimeDep, session: SessionDep
    ) -> Response[None]:
        """End the current session (CSRF-checked) and clear the cookies; 204 in every case."""
        raw = request.cookies.get(SESSION_COOKIE)
        if raw:
            await _end_current(request, runtime, session, raw)
        response: Response[None] = Response(None, status_code=204)
        clear_session_cookies(response, runtime.settings)
        return response


async def _end_current(
    request: Request[Any, Any, Any], runtime: RuntimeDep, session: AsyncSession, raw: str
) -> None:
    manager = runtime.browser_sessions
    try:
        valid = await manager.validate(raw, manager.clock())
    except SessionRejected:
        return  # already dead: clearing the cookies is all there is to do
    check_csrf(request, valid)  # a cross-site form must not sign the user out
    ended = await revoke_sessions(
        session, session_id=valid.session_id, reason="signed out", now=manager.clock()
    )
    if ended:
        user = Actor(
            name=valid.user_id,
            type="User",
            display_name=valid.display_name,
            session_id=valid.session_id,
        )
        record(
            session,
            user,
            "auth.session.logout",
            resource_type="session",
            resource_id=valid.session_id,
            category="auth",
        )
        await session.commit()
        runtime.auth_generation.invalidate()
    manager.forget(raw)
