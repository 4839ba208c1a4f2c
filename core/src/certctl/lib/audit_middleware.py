"""Records refused and failed mutating requests in the audit trail.

Successful changes are audited by their handlers, in the same transaction as the change and
with a domain action name. This middleware covers the rest: every POST/PUT/PATCH/DELETE that
ended in 4xx or 5xx (including 401/403 from the guard) gets a row, so an attacker probing the
API leaves a trace. The request body is never stored, only its SHA-256.

A request refused before its handler ran (the guard's 401/403) has not had its body read. So
that its hash describes the body that was sent, not an empty one, the rest of the body is read
and hashed when an error response starts, up to the server's maximum body size; beyond that
``body_sha256`` is null and ``body_too_large`` is true.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any, cast

from litestar.types import ASGIApp, Receive, Scope, Send

from certctl.domain.audit.service import record
from certctl.domain.auth.actor import Actor

__all__ = ["AuditFailuresMiddleware"]

_MUTATING = {"POST", "PUT", "PATCH", "DELETE"}
_log = logging.getLogger("certctl.audit")


def _audited(status: int) -> bool:
    """Refusals and failures are audited, except 429: the rate limit exists to shed a flood,
    and one audit row (with its hash-chain lock) per refused request would let the flood write
    to the database at the rate it is sent."""
    return status >= 400 and status != 429


class AuditFailuresMiddleware:
    """ASGI middleware; wraps the whole app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, asgi_scope: Scope, asgi_receive: Receive, send: Send) -> None:
        # Raw ASGI dictionaries: Litestar's TypedDicts do not cover both directions we touch.
        scope: dict[str, Any] = cast(dict[str, Any], asgi_scope)
        receive: Any = asgi_receive
        if scope["type"] != "http" or scope.get("method") not in _MUTATING:
            await self.app(asgi_scope, asgi_receive, send)
            return
        status = 500
        digest = hashlib.sha256()
        size = 0
        body_done = False  # nothing more to receive
        body_complete = False  # ...because the whole body arrived
        limit = int(scope["app"].state.runtime.settings.max_body_size)

        def consume(message: dict[str, Any]) -> None:
            nonlocal size, body_done, body_complete
            if message["type"] == "http.request":
                chunk = message.get("body", b"")
                size += len(chunk)
                if size <= limit:
                    digest.update(chunk)
                body_complete = body_done = not message.get("more_body", False)
            else:  # http.disconnect: nothing more will come
                body_done = True

        async def receive_wrapper() -> Any:
            message = await receive()
            consume(message)
            return message

        async def send_wrapper(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                # Hash what the handler never read, while the request can still be received.
                while _audited(status) and not body_done and size <= limit:
                    consume(await receive())
            await send(message)

        try:
            await self.app(asgi_scope, receive_wrapper, send_wrapper)
        finally:
            if _audited(status):
                details: dict[str, Any] = {"status": status, "body_sha256": None}
                if size > limit:
                    details["body_too_large"] = True
                elif body_complete:
                    details["body_sha256"] = digest.hexdigest()
                await self._record(scope, status, details)

    async def _record(self, scope: dict[str, Any], status: int, details: dict[str, Any]) -> None:
        actor = scope.get("certctl_actor")
        if not isinstance(actor, Actor):
            client = scope.get("client")
            actor = Actor.anonymous(client[0] if client else "unknown")
        runtime: Any = scope["app"].state.runtime
        try:
            async with runtime.sessions.begin() as session:
                record(
                    session,
                    actor,
                    f"api.{str(scope['method']).lower()}",
                    resource_type="api",
                    resource_id=str(scope["path"])[:255],
                    outcome="denied" if status in (401, 403) else "failure",
                    category="auth" if status in (401, 403) else "config",
                    details=details,
                )
        except Exception:  # noqa: BLE001 - never turn a 4xx into a crash because audit failed
            _log.exception("could not audit a failed request")
