"""The single gate in front of every route: authenticate, then check the route's permission.

A route declares ``opt={"permission": "<name>"}``, ``opt={"public": True}`` or, for the few
routes any valid key may call, ``opt={"authenticated": True}``. A route that declares none of
them is refused (403) even to admins: forgetting the declaration must not open the route. The
public ones must also be listed in :data:`PUBLIC_ROUTES` (and in docs/security.md), which a
test compares against the application's route table so no route is exempt by accident.

Two kinds of handler belong to Litestar rather than to certctl: the OpenAPI document and its
UIs under ``/schema`` (public, like the reference's spec) and the automatic ``OPTIONS``
handlers (any valid key).
"""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from certctl.domain.auth.actor import Actor
from certctl.errors import Forbidden, Unauthorized

__all__ = ["PUBLIC_ROUTES", "authorize", "current_actor"]

PUBLIC_ROUTES: frozenset[str] = frozenset(
    {
        "/health",
        "/ready",
        "/api/v1/version",
        "/api/v1/auth/bootstrap",
        "/api/v1/auth/info",
        "/schema",
        "/.well-known/pki/ca/{issuer_id}",
        "/.well-known/pki/crl/{issuer_id}",
        "/.well-known/pki/ocsp/{issuer_id}",
        "/.well-known/pki/ocsp/{issuer_id}/serial/{serial}",
        "/.well-known/pki/ocsp/{issuer_id}/{encoded}",
        # browser sessions
        "/auth/logout",
        # guard: break-glass sign-in (a route only while CERTCTL_BREAKGLASS_ENABLED)
        "/auth/breakglass/login",
        # SSO (oidc)
        "/auth/oidc/login",
        "/auth/oidc/callback",
        "/auth/oidc/back-channel-logout",
        # ACME server: authenticated by JWS (domain/acme)
        "/acme/profile/{profile_id}/directory",
        "/acme/directory",
        "/acme/profile/{profile_id}/new-nonce",
        "/acme/new-nonce",
        "/acme/profile/{profile_id}/new-account",
        "/acme/new-account",
        "/acme/profile/{profile_id}/account/{account_id}",
        "/acme/account/{account_id}",
        "/acme/profile/{profile_id}/account/{account_id}/orders",
        "/acme/account/{account_id}/orders",
        "/acme/profile/{profile_id}/key-change",
        "/acme/key-change",
        "/acme/profile/{profile_id}/new-order",
        "/acme/new-order",
        "/acme/profile/{profile_id}/order/{order_id}",
        "/acme/order/{order_id}",
        "/acme/profile/{profile_id}/order/{order_id}/finalize",
        "/acme/order/{order_id}/finalize",
        "/acme/profile/{profile_id}/authz/{authz_id}",
        "/acme/authz/{authz_id}",
        "/acme/profile/{profile_id}/challenge/{challenge_id}",
        "/acme/challenge/{challenge_id}",
        "/acme/profile/{profile_id}/cert/{version_id}",
        "/acme/cert/{version_id}",
        "/acme/profile/{profile_id}/revoke-cert",
        "/acme/revoke-cert",
        "/acme/profile/{profile_id}/renewal-info/{cert_id}",
        "/acme/renewal-info/{cert_id}",
        # EST server: authenticated per profile by Basic, client certificate or not at all
        "/.well-known/est/cacerts",
        "/.well-known/est/simpleenroll",
        "/.well-known/est/simplereenroll",
        "/.well-known/est/csrattrs",
        "/.well-known/est/serverkeygen",
        "/.well-known/est/{label}/cacerts",
        "/.well-known/est/{label}/simpleenroll",
        "/.well-known/est/{label}/simplereenroll",
        "/.well-known/est/{label}/csrattrs",
        "/.well-known/est/{label}/serverkeygen",
        "/.well-known/est-mtls/{label}/cacerts",
        "/.well-known/est-mtls/{label}/simpleenroll",
        "/.well-known/est-mtls/{label}/simplereenroll",
        "/.well-known/est-mtls/{label}/csrattrs",
        "/.well-known/est-mtls/{label}/serverkeygen",
        # SCEP server: challenge password, renewed certificate or client certificate (domain/scep)
        "/scep",
        "/scep/pkiclient.exe",
        "/cgi-bin/pkiclient.exe",
        "/scep/{profile}",
        "/scep/{profile}/pkiclient.exe",
        "/scep-mtls",
        "/scep-mtls/pkiclient.exe",
        "/scep-mtls/{profile}",
        "/scep-mtls/{profile}/pkiclient.exe",
    }
)
"""Paths answered without credentials (``/schema`` covers the OpenAPI document and its UIs).

Paths with parameters are spelled as in docs/security.md (``{issuer_id}``); the guard itself
decides by the handler's ``opt={"public": True}``, this set is what a test checks it against.
"""


def _litestar_handler(handler: BaseRouteHandler) -> str | None:
    """``"openapi"`` or ``"options"`` for the handlers Litestar adds itself, else None."""
    module = getattr(handler.fn, "__module__", "") or ""
    if module.startswith(("litestar._openapi", "litestar.openapi")):
        return "openapi"
    if module == "litestar.routes.http" and handler.handler_name == "options_handler":
        return "options"
    return None


def current_actor(connection: ASGIConnection[Any, Any, Any, Any]) -> Actor:
    """The actor the guard authenticated for this request."""
    actor = connection.scope.get("certctl_actor")
    if not isinstance(actor, Actor):
        raise Unauthorized("authentication required")
    return actor


async def authorize(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    """Litestar guard: 401 without valid credentials, 403 without the route's permission.

    Every request is charged to the rate limit first (429 when over): by actor once
    authenticated, else by source address (see :mod:`certctl.lib.ratelimit_http`).

    A route may also declare ``opt={"scope": ("profile", "profile_id")}``: the permission is
    then also satisfied by a grant scoped to the profile (or issuer) the path names.
    """
    opt = handler.opt
    internal = _litestar_handler(handler)
    runtime = connection.app.state.runtime
    if opt.get("public") or internal == "openapi":
        await runtime.rate_limits.check(connection, None)  # by source address
        return
    try:
        actor = await runtime.auth.authenticate(connection)
    except (Unauthorized, Forbidden):
        await runtime.rate_limits.check(connection, None)  # failed credentials cost budget too
        raise
    connection.scope["certctl_actor"] = actor  # type: ignore[typeddict-unknown-key]
    await runtime.rate_limits.check(connection, actor)
    permission = opt.get("permission")
    if permission is None:
        if opt.get("authenticated") or internal == "options":
            return  # any valid credentials (e.g. /api/v1/auth/check)
        raise Forbidden("this route declares no permission; it is closed until it does")
    scope = opt.get("scope")
    if scope is not None:
        scope_type, param = scope
        allowed = actor.can(permission, scope_type, str(connection.path_params.get(param, "")))
    else:
        allowed = actor.can(permission)
    if not allowed:
        raise Forbidden(f"this action needs the {permission!r} permission")
