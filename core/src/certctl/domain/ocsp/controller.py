"""The public OCSP endpoints (RFC 6960 Appendix A.1 and a serial-number convenience form).

Layout under ``/.well-known/pki/ocsp/{issuer_id}``:

- ``POST /`` — body is a DER ``OCSPRequest`` (``Content-Type: application/ocsp-request``);
- ``GET /serial/{serial}`` — hexadecimal serial, answered for the issuer's CA with a SHA-1 CertID;
- ``GET /{request}`` — the RFC 6960 GET form: the request DER in base64 (standard or URL-safe,
  padding optional), URL-encoded; it may contain ``/`` and so takes the rest of the path.

A base64 ``OCSPRequest`` always starts with ``M`` (the DER SEQUENCE tag), so it never collides
with the static ``serial`` segment, which Litestar matches first.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any
from urllib.parse import unquote

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.x509 import ocsp
from litestar import Controller, Request, Response, get, post
from litestar.params import FromPath
from litestar.status_codes import HTTP_200_OK, HTTP_429_TOO_MANY_REQUESTS

from certctl.db.base import utcnow
from certctl.domain.ocsp.service import OcspResponderService, Signed, unsuccessful

__all__ = ["MAX_REQUEST_BYTES", "OcspController"]

REQUEST_MEDIA_TYPE = "application/ocsp-request"
RESPONSE_MEDIA_TYPE = "application/ocsp-response"
MAX_REQUEST_BYTES = 8192
"""Larger bodies are answered malformedRequest; real requests are a few hundred bytes."""
_HEX = re.compile(r"[0-9a-fA-F]{1,64}")


def _service(request: Request[Any, Any, Any]) -> OcspResponderService:
    service: OcspResponderService = request.app.state.ocsp
    return service


def _response(
    body: bytes,
    *,
    status_code: int = HTTP_200_OK,
    max_age: int | None = None,
    retry_after: int | None = None,
) -> Response[bytes]:
    headers = {"Cache-Control": "no-store" if max_age is None else f"public, max-age={max_age}"}
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return Response(
        content=body, status_code=status_code, media_type=RESPONSE_MEDIA_TYPE, headers=headers
    )


def _malformed() -> Response[bytes]:
    return _response(unsuccessful(ocsp.OCSPResponseStatus.MALFORMED_REQUEST))


def _rate_limited(request: Request[Any, Any, Any]) -> Response[bytes] | None:
    client = request.client.host if request.client else "unknown"
    wait = _service(request).limiter.acquire(client)
    if not wait:
        return None
    return _response(
        unsuccessful(ocsp.OCSPResponseStatus.TRY_LATER),
        status_code=HTTP_429_TOO_MANY_REQUESTS,
        retry_after=wait,
    )


def _send(answer: Signed | bytes) -> Response[bytes]:
    if isinstance(answer, bytes):
        return _response(answer)
    if answer.next_update is None:
        return _response(answer.der)
    remaining = int((answer.next_update - utcnow()).total_seconds())
    return _response(answer.der, max_age=max(0, remaining))


async def _answer_der(
    request: Request[Any, Any, Any], issuer_id: str, der: bytes
) -> Response[bytes]:
    if not der or len(der) > MAX_REQUEST_BYTES:
        return _malformed()
    try:
        parsed = ocsp.load_der_ocsp_request(der)
        return _send(await _service(request).respond(issuer_id, parsed))
    except (ValueError, NotImplementedError, UnsupportedAlgorithm):
        # Garbage DER, several requests in one, or an unsupported CertID hash algorithm.
        return _malformed()


def _decode_get(encoded: str) -> bytes | None:
    text = unquote(encoded.strip("/")).replace(" ", "+")
    text = text.replace("-", "+").replace("_", "/").rstrip("=")
    if not text or not re.fullmatch(r"[A-Za-z0-9+/]+", text):
        return None
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None


class OcspController(Controller):
    """RFC 6960 OCSP responder per issuer; responses are signed by a delegated responder."""

    path = "/.well-known/pki/ocsp"
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
        limited = _rate_limited(request)
        if limited is not None:
            return limited
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type != REQUEST_MEDIA_TYPE:
            return _malformed()
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > MAX_REQUEST_BYTES:
            return _malformed()
        return await _answer_der(request, issuer_id, await request.body())

    @get("/{issuer_id:str}/serial/{serial:str}", opt={"public": True})
    async def by_serial(
        self, request: Request[Any, Any, Any], issuer_id: FromPath[str], serial: FromPath[str]
    ) -> Response[bytes]:
        """The status of a hexadecimal serial, as a DER OCSP response (convenience form).

        Public; not part of RFC 6960. The CertID uses SHA-1 over the issuer's CA.
        """
        limited = _rate_limited(request)
        if limited is not None:
            return limited
        cleaned = serial.replace(":", "")
        if not _HEX.fullmatch(cleaned):
            return _malformed()
        return _send(await _service(request).respond_serial(issuer_id, int(cleaned, 16)))

    @get("/{issuer_id:str}/{encoded:path}", opt={"public": True})
    async def get_request(
        self, request: Request[Any, Any, Any], issuer_id: FromPath[str], encoded: FromPath[str]
    ) -> Response[bytes]:
        """RFC 6960 A.1 GET form: the URL-encoded base64 of a DER ``OCSPRequest``.

        Public. Standard and URL-safe base64 are accepted, with or without padding.
        """
        limited = _rate_limited(request)
        if limited is not None:
            return limited
        der = _decode_get(encoded)
        if der is None:
            return _malformed()
        return await _answer_der(request, issuer_id, der)
