"""``/api/v1/auth/users``: list, deactivate (ends their sessions), reactivate."""

from __future__ import annotations

from litestar import Controller, delete, get, post
from litestar.params import FromPath, FromQuery
from sqlalchemy import func, or_, select

from certctl.db.models import User
from certctl.domain.audit.service import record
from certctl.domain.users.schemas import UserOut, user_out
from certctl.domain.users.service import deactivate_user, reactivate_user
from certctl.errors import Conflict
from certctl.lib.deps import ActorDep, RuntimeDep, SessionDep
from certctl.lib.pagination import Page, page_window

__all__ = ["UsersController"]


class UsersController(Controller):
    """Users who signed in through SSO or break-glass."""

    path = "/api/v1/auth/users"
    tags = ["Auth"]

    @get("/", opt={"permission": "auth.user.read"})
    async def list_users(
        self,
        session: SessionDep,
        provider_id: FromQuery[str | None] = None,
        q: FromQuery[str | None] = None,
        deactivated: FromQuery[bool | None] = None,
        page: FromQuery[int] = 1,
        per_page: FromQuery[int] = 50,
    ) -> Page[UserOut]:
        """Users by name; filter by provider, ``deactivated`` and ``q`` (name, email, subject)."""
        offset, limit = page_window(page, per_page)
        query = select(User)
        if provider_id is not None:
            query = query.where(User.provider_id == provider_id)
        if deactivated is not None:
            query = query.where(
                User.deactivated_at.is_not(None) if deactivated else User.deactivated_at.is_(None)
            )
        if q:
            pattern = f"%{q.lower()}%"
            query = query.where(
                or_(
                    func.lower(User.display_name).like(pattern),
                    func.lower(User.email).like(pattern),
                    func.lower(User.subject).like(pattern),
                )
            )
        total = await session.scalar(select(func.count()).select_from(query.subquery()))
        rows = await session.scalars(
            query.order_by(User.display_name, User.id).offset(offset).limit(limit)
        )
        return Page(
            data=[user_out(u) for u in rows], total=int(total or 0), page=page, per_page=per_page
        )

    @delete("/{user_id:str}", opt={"permission": "auth.user.deactivate"}, status_code=204)
    async def deactivate(
        self, runtime: RuntimeDep, session: SessionDep, actor: ActorDep, user_id: FromPath[str]
    ) -> None:
        """Deactivate a user: their sessions end and they cannot sign in until reactivated."""
        if actor.type == "User" and actor.name == user_id:
            raise Conflict("you cannot deactivate yourself; ask another administrator")
        user, ended = await deactivate_user(
            session, user_id, reason=f"user deactivated by {actor.name}"
        )
        if ended is not None:
            record(
                session,
                actor,
                "auth.user.deactivate",
                resource_type="user",
                resource_id=user.id,
                category="auth",
                details={"provider_id": user.provider_id, "sessions_revoked": ended},
            )
            await session.commit()
            runtime.auth_generation.invalidate()

    @post("/{user_id:str}/reactivate", opt={"permission": "auth.user.deactivate"}, status_code=200)
    async def reactivate(
        self, session: SessionDep, actor: ActorDep, user_id: FromPath[str]
    ) -> UserOut:
        """Let a deactivated user sign in again (their ended sessions stay ended)."""
        user, changed = await reactivate_user(session, user_id)
        if changed:
            record(
                session,
                actor,
                "auth.user.reactivate",
                resource_type="user",
                resource_id=user.id,
                category="auth",
                details={"provider_id": user.provider_id},
            )
            await session.commit()
        return user_out(user)
