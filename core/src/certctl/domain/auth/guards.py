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
        "/schema",
        "/.well-known/pki/ca/{issuer_id}",
        "/.well-known/pki/crl/{issuer_id}",
        "/.well-known/pki/ocsp/{issuer_id}",
        "/.well-known/pki/ocsp/{issuer_id}/serial/{serial}",
        "/.well-known/pki/ocsp/{issuer_id}/{encoded}",
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
    """Litestar guard: 401 without a valid key, 403 without the route's permission."""
    opt = handler.opt
    internal = _litestar_handler(handler)
    if opt.get("public") or internal == "openapi":
        return
    runtime = connection.app.state.runtime
    if runtime.settings.auth_type == "none":
        connection.scope["certctl_actor"] = Actor(name="demo", type="Anonymous", role="admin")  # type: ignore[typeddict-unknown-key]
    else:
        header = connection.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("missing bearer API key")
        actor = await runtime.keys.authenticate(token.strip())
        if actor is None:
            raise Unauthorized("invalid or revoked API key")
        connection.scope["certctl_actor"] = actor  # type: ignore[typeddict-unknown-key]
    permission = opt.get("permission")
    if permission is None:
        if opt.get("authenticated") or internal == "options":
            return  # any valid key (e.g. /api/v1/auth/check)
        raise Forbidden("this route declares no permission; it is closed until it does")
    if not current_actor(connection).can(permission):
        raise Forbidden(f"this action needs the {permission!r} permission")
