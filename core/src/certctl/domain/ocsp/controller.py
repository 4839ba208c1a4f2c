"""The public OCSP endpoints (RFC 6960 Appendix A.1 and a serial-number convenience form).

These routes declare the endpoints (route table, OpenAPI, the guard's public list); requests
arriving through the server are answered earlier by :class:`certctl.domain.ocsp.asgi.OcspFastPath`
with the same behaviour (:mod:`certctl.domain.ocsp.http`), and these handlers answer when the
Litestar router is called directly.
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.params import FromPath

from certctl.domain.ocsp.http import (
    MAX_REQUEST_BYTES,
    PREFIX,
    RESPONSE_MEDIA_TYPE,
    Route,
    answer,
)
from certctl.domain.ocsp.service import OcspResponderService
from certctl.lib.ratelimit_http import client_address

__all__ = ["MAX_REQUEST_BYTES", "OcspController"]


async def _respond(request: Request[Any, Any, Any], where: Route) -> Response[bytes]:
    service: OcspResponderService = request.app.state.ocsp

    async def read_body() -> bytes | None:
        return await request.body()

    reply = await answer(
        service,
        where,
        client=client_address(request.scope, service.runtime.rate_limits.trusted_proxies),
        content_type=request.headers.get("content-type", ""),
        content_length=request.headers.get("content-length"),
        read_body=read_body,
    )
    return Response(
        content=reply.body,
        status_code=reply.status,
        media_type=RESPONSE_MEDIA_TYPE,
        headers=dict(reply.headers),
    )


class OcspController(Controller):
    """RFC 6960 OCSP responder per issuer; responses are signed by a delegated responder."""

    path = PREFIX.rstrip("/")
    tags = ["PKI"]

    @post("/{issuer_id:str}", opt={"public": True}, status_code=200)
    async def post_request(
        self, request: Request[Any, Any, Any], issuer_id: FromPath[str]
    ) -> Response[bytes]:
        """Answer a DER ``OCSPRequest`` (``application/ocsp-request``).

        Public. Errors are OCSP responses with HTTP 200: ``malformedRequest`` for anything that
        is not one well-formed request, ``unauthorized`` for an issuer this server does not
        answer for. Over the per-address limit: HTTP 429 (``tryLater``) with ``Retry-After``.
        """
        return await _respond(request, Route("post", issuer_id, ""))

    @get("/{issuer_id:str}/serial/{serial:str}", opt={"public": True})
    async def by_serial(
        self, request: Request[Any, Any, Any], issuer_id: FromPath[str], serial: FromPath[str]
    ) -> Response[bytes]:
        """The status of a hexadecimal serial, as a DER OCSP response (convenience form).

        Public; not part of RFC 6960. The CertID uses SHA-1 over the issuer's CA.
        """
        return await _respond(request, Route("serial", issuer_id, serial))

    @get("/{issuer_id:str}/{encoded:path}", opt={"public": True})
    async def get_request(
        self, request: Request[Any, Any, Any], issuer_id: FromPath[str], encoded: FromPath[str]
    ) -> Response[bytes]:
        """RFC 6960 A.1 GET form: the URL-encoded base64 of a DER ``OCSPRequest``.

        Public. Standard and URL-safe base64 are accepted, with or without padding.
        """
        return await _respond(request, Route("get", issuer_id, encoded))
