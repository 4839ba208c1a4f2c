"""``POST /auth/breakglass/login`` and ``/api/v1/auth/breakglass/credentials``.

These routes exist only while ``CERTCTL_BREAKGLASS_ENABLED`` is true: :func:`breakglass_controllers`
returns none otherwise, so a disabled server answers them exactly like any unknown path (404
for every method, absent from the OpenAPI document).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from litestar import Controller, Request, Response, delete, get, post
from litestar.params import FromPath, FromQuery, JSONBody

from certctl.domain.breakglass.schemas import CredentialIn, CredentialOut, LoginIn, LoginOut
from certctl.domain.breakglass.service import credential_out
from certctl.domain.sessions.service import set_session_cookies
from certctl.errors import BadRequest
from certctl.lib.deps import ActorDep, RuntimeDep, SessionDep
from certctl.lib.pagination import Page, page_window

if TYPE_CHECKING:
    from litestar.types import ControllerRouterHandler

    from certctl.settings import Settings

__all__ = ["BreakglassAdminController", "BreakglassLoginController", "breakglass_controllers"]

ADMIN = {"permission": "auth.breakglass.admin"}


def breakglass_controllers(settings: Settings) -> list[ControllerRouterHandler]:
    """The break-glass routes, or none when the feature is off."""
    if not settings.breakglass_enabled:
        return []
    return [BreakglassLoginController, BreakglassAdminController]


class BreakglassLoginController(Controller):
    """Local sign-in for recovery."""

    path = "/auth/breakglass"
    tags = ["Auth"]

    @post("/login", opt={"public": True}, status_code=200)
    async def login(
        self, runtime: RuntimeDep, request: Request[Any, Any, Any], data: JSONBody[LoginIn]
    ) -> Response[LoginOut]:
        """Sign in with a break-glass password; starts a browser session (cookies).

        Public. ``application/json`` only, so no cross-site form can post it. Wrong password,
        unknown user and locked account all answer the same 401 in the same time; at most
        ``CERTCTL_BREAKGLASS_LOGIN_RATE_LIMIT_PER_MIN`` attempts per address and minute (429).
        """
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            raise BadRequest("send the credentials as application/json")
        user, issued = await runtime.breakglass.login(request, data.username, data.password)
        response = Response(
            LoginOut(
                user_id=user.id,
                username=user.subject,
                session_id=issued.session_id,
                expires_at=issued.expires_at,
            )
        )
        set_session_cookies(response, issued, runtime.settings)
        return response


class BreakglassAdminController(Controller):
    """Break-glass accounts: list, create or set password, unlock, remove."""

    path = "/api/v1/auth/breakglass/credentials"
    tags = ["Auth"]

    @get("/", opt=ADMIN)
    async def list_credentials(
        self,
        runtime: RuntimeDep,
        session: SessionDep,
        page: FromQuery[int] = 1,
        per_page: FromQuery[int] = 50,
    ) -> Page[CredentialOut]:
        """Every break-glass account (metadata: lock state, last sign-in; never the hash)."""
        offset, limit = page_window(page, per_page)
        rows = await runtime.breakglass.credentials(session)
        now = runtime.breakglass.clock()
        return Page(
            data=[credential_out(r, now) for r in rows[offset : offset + limit]],
            total=len(rows),
            page=page,
            per_page=per_page,
        )

    @post("/", opt=ADMIN, status_code=201)
    async def set_credential(
        self,
        runtime: RuntimeDep,
        session: SessionDep,
        actor: ActorDep,
        data: JSONBody[CredentialIn],
    ) -> Response[CredentialOut]:
        """Create an account (201, granting ``role_id``, default ``r-admin``) or set its password.

        Setting a new password (200) ends the account's sessions and lifts a lockout. Passwords
        must have ``CERTCTL_BREAKGLASS_MIN_PASSWORD_LENGTH`` (16) characters, at least six
        different ones, and must not contain the username.
        """
        row, created = await runtime.breakglass.set_password(
            session, actor, username=data.username, password=data.password, role_id=data.role_id
        )
        await session.commit()
        runtime.auth_generation.invalidate()
        out = credential_out(row, runtime.breakglass.clock())
        return Response(out, status_code=201 if created else 200)

    @post("/{actor_id:str}/unlock", opt=ADMIN, status_code=200)
    async def unlock(
        self, runtime: RuntimeDep, session: SessionDep, actor: ActorDep, actor_id: FromPath[str]
    ) -> CredentialOut:
        """Lift a lockout and forget the counted failures."""
        row = await runtime.breakglass.unlock(session, actor, actor_id)
        await session.commit()
        return credential_out(row, runtime.breakglass.clock())

    @delete("/{actor_id:str}", opt=ADMIN, status_code=204)
    async def remove(
        self, runtime: RuntimeDep, session: SessionDep, actor: ActorDep, actor_id: FromPath[str]
    ) -> None:
        """Remove the account: its credential, its grants and its sessions (the user row stays,
        deactivated, for the audit trail). 409 when it holds the last admin grant."""
        await runtime.breakglass.remove(session, actor, actor_id)
        await session.commit()
        runtime.auth_generation.invalidate()
