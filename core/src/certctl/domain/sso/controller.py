"""The browser side of SSO: ``/auth/oidc/login``, ``/callback`` and ``/back-channel-logout``.

All three are public (no API key, no session): a browser that is signing in has neither, and
the IdP's back-channel call authenticates with its signature. The Go certctl never routed
``/auth/*`` to a handler chain that could serve them; these are reachable by construction
and a test proves it.
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.params import FromQuery
from litestar.response import Redirect

from certctl.domain.sessions.service import set_session_cookies
from certctl.domain.sso.flow import begin_login, finish_login
from certctl.domain.sso.logout import back_channel_logout
from certctl.domain.sso.pending import PENDING_COOKIE, PENDING_TTL, safe_redirect
from certctl.errors import BadRequest, CertctlError
from certctl.lib.deps import RuntimeDep
from certctl.lib.problem import problem_response

__all__ = ["SsoBrowserController"]

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _pending_cookie(value: str, max_age: int) -> Cookie:
    # __Host-: Secure, Path=/, no Domain. Lax, because the IdP's redirect back is a
    # cross-site top-level navigation, which Strict would strip the cookie from.
    return Cookie(
        key=PENDING_COOKIE,
        value=value,
        path="/",
        secure=True,
        httponly=True,
        samesite="lax",
        max_age=max_age,
    )


class SsoBrowserController(Controller):
    """``/auth/oidc``: the redirect flow and the IdP's back channel."""

    path = "/auth/oidc"
    tags = ["SSO"]

    @get("/login", opt={"public": True})
    async def login(
        self,
        request: Request[Any, Any, Any],
        runtime: RuntimeDep,
        provider: FromQuery[str | None] = None,
        redirect_to: FromQuery[str | None] = None,
    ) -> Response[Any]:
        """Send the browser to the IdP (302) with state, nonce and a PKCE S256 challenge."""
        target = safe_redirect(redirect_to)
        url, binding = await begin_login(
            runtime, request, provider_id=provider, redirect_after=target
        )
        response = Redirect(url, status_code=302, headers=_NO_STORE)
        response.set_cookie(_pending_cookie(binding, int(PENDING_TTL.total_seconds())))
        return response

    @get("/callback", opt={"public": True})
    async def callback(
        self,
        request: Request[Any, Any, Any],
        runtime: RuntimeDep,
    ) -> Response[Any]:
        """Finish the login: validate, start the session, 303 to where the login began.

        Query: ``state``, ``code``, ``iss`` (RFC 9207) or ``error`` (read from the query
        directly: ``state`` is a reserved parameter name in Litestar).
        """
        query = request.query_params
        done = await finish_login(
            runtime,
            request,
            state=query.get("state"),
            code=query.get("code"),
            iss=query.get("iss"),
            error=query.get("error"),
        )
        response = Redirect(done.redirect_after, status_code=303, headers=_NO_STORE)
        set_session_cookies(response, done.session, runtime.settings)
        response.set_cookie(_pending_cookie("", 0))
        return response

    @post("/back-channel-logout", opt={"public": True}, status_code=200)
    async def back_channel_logout(
        self,
        request: Request[Any, Any, Any],
        runtime: RuntimeDep,
        provider: FromQuery[str | None] = None,
    ) -> Response[Any]:
        """End the sessions a signed logout token names (200), or say why not (400)."""
        try:
            content_type = request.headers.get("content-type", "").split(";")[0].strip()
            if content_type != "application/x-www-form-urlencoded":
                raise BadRequest("send logout_token as application/x-www-form-urlencoded")
            token = (await request.form()).get("logout_token")
            if not isinstance(token, str) or not token:
                raise BadRequest("logout_token is missing")
            await back_channel_logout(runtime, token, provider_id=provider)
        except CertctlError as exc:
            response = problem_response(exc.status, exc.detail, title=exc.title)
            response.headers.update(_NO_STORE)
            return response
        return Response(content=b"", status_code=200, headers=_NO_STORE)
