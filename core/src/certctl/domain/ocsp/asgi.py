"""The OCSP endpoints as a raw ASGI layer in front of Litestar's router.

OCSP is public, unauthenticated and hot (every TLS handshake of a relying party may ask), so
its requests skip routing, the guard, dependency injection and the audit middleware: per
request that is about ten times less work than a Litestar handler. Behaviour is
:mod:`certctl.domain.ocsp.http`'s, shared with the Litestar routes that document the endpoints
(and answer when the router is called directly); anything that is not an OCSP form (another
method, a path without an issuer) goes on to Litestar, which answers it as before.
"""

from __future__ import annotations

import logging
from typing import Any, cast

from cryptography.x509 import ocsp
from litestar.types import (
    ASGIApp,
    HTTPResponseBodyEvent,
    HTTPResponseStartEvent,
    Receive,
    Scope,
    Send,
)

from certctl.domain.ocsp.http import (
    MAX_REQUEST_BYTES,
    PREFIX,
    RESPONSE_MEDIA_TYPE,
    Reply,
    answer,
    route,
)
from certctl.domain.ocsp.service import OcspResponderService, unsuccessful
from certctl.lib.ratelimit_http import client_address

__all__ = ["OcspFastPath"]

_log = logging.getLogger("certctl.ocsp")
_CONTENT_TYPE = (b"content-type", RESPONSE_MEDIA_TYPE.encode())


class OcspFastPath:
    """ASGI app: OCSP requests answered here, everything else passed to ``app``."""

    def __init__(self, app: ASGIApp, service: OcspResponderService) -> None:
        self.app = app
        self.service = service

    async def __call__(self, asgi_scope: Scope, receive: Receive, send: Send) -> None:
        scope = cast(dict[str, Any], asgi_scope)
        path: str = scope.get("path", "")
        root = scope.get("root_path") or ""
        if root and path.startswith(root):
            path = path[len(root) :]
        where = (
            route(scope["method"], path[len(PREFIX) :])
            if scope["type"] == "http" and path.startswith(PREFIX)
            else None
        )
        if where is None:
            await self.app(asgi_scope, receive, send)
            return
        content_type = ""
        content_length: str | None = None
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value.decode("latin-1")
            elif name == b"content-length":
                content_length = value.decode("latin-1")

        async def read_body() -> bytes | None:
            chunks: list[bytes] = []
            size = 0
            while True:
                message = cast(dict[str, Any], await receive())
                if message["type"] != "http.request":
                    return None  # the client went away
                chunk: bytes = message.get("body", b"")
                size += len(chunk)
                if size > MAX_REQUEST_BYTES:
                    return None
                chunks.append(chunk)
                if not message.get("more_body", False):
                    return b"".join(chunks)

        try:
            reply = await answer(
                self.service,
                where,
                client=client_address(scope, self.service.runtime.rate_limits.trusted_proxies),
                content_type=content_type,
                content_length=content_length,
                read_body=read_body,
            )
        except Exception:  # noqa: BLE001 - the database failed: an OCSP error, not a traceback
            # RFC 6960 internalError in the body; 503 + Retry-After tells caches and clients
            # the failure is ours and passing, never the request's fault.
            _log.exception("answering OCSP for issuer %s failed", where.issuer_id)
            reply = Reply(
                503,
                unsuccessful(ocsp.OCSPResponseStatus.INTERNAL_ERROR),
                (("cache-control", "no-store"), ("retry-after", "5")),
            )
        headers: list[tuple[bytes, bytes]] = [
            _CONTENT_TYPE,
            (b"content-length", str(len(reply.body)).encode()),
            *((k.encode(), v.encode()) for k, v in reply.headers),
        ]
        start: HTTPResponseStartEvent = {
            "type": "http.response.start",
            "status": reply.status,
            "headers": headers,
        }
        await send(start)
        body: HTTPResponseBodyEvent = {
            "type": "http.response.body",
            "body": reply.body,
            "more_body": False,
        }
        await send(body)
