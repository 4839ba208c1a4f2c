"""The OCSP endpoints' HTTP behaviour, once, for the fast ASGI path and the Litestar routes.

Layout under ``/.well-known/pki/ocsp/{issuer_id}``:

- ``POST /`` — body is a DER ``OCSPRequest`` (``Content-Type: application/ocsp-request``);
- ``GET /serial/{serial}`` — hexadecimal serial, answered for the issuer's CA with a SHA-1 CertID;
- ``GET /{request}`` — the RFC 6960 GET form: the request DER in base64 (standard or URL-safe,
  padding optional), URL-encoded; it may contain ``/`` and so takes the rest of the path.

A base64 ``OCSPRequest`` always starts with ``M`` (the DER SEQUENCE tag), so it never collides
with the static ``serial`` segment.

Errors are OCSP responses with HTTP 200: ``malformedRequest`` for anything that is not one
well-formed request, ``unauthorized`` for an issuer this server does not answer for. Over the
per-address limit: HTTP 429 (``tryLater``) with ``Retry-After``.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Awaitable, Callable
from typing import NamedTuple
from urllib.parse import unquote

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.x509 import ocsp

from certctl.db.base import utcnow
from certctl.domain.ocsp.service import OcspResponderService, Signed, unsuccessful

__all__ = [
    "MAX_REQUEST_BYTES",
    "PREFIX",
    "REQUEST_MEDIA_TYPE",
    "RESPONSE_MEDIA_TYPE",
    "Reply",
    "Route",
    "answer",
    "route",
]

PREFIX = "/.well-known/pki/ocsp/"
REQUEST_MEDIA_TYPE = "application/ocsp-request"
RESPONSE_MEDIA_TYPE = "application/ocsp-response"
MAX_REQUEST_BYTES = 8192
"""Larger bodies are answered malformedRequest; real requests are a few hundred bytes."""
_HEX = re.compile(r"[0-9a-fA-F]{1,64}")
_BASE64 = re.compile(r"[A-Za-z0-9+/]+")

ReadBody = Callable[[], Awaitable[bytes | None]]
"""Reads the request body; None when it is larger than :data:`MAX_REQUEST_BYTES`."""


class Reply(NamedTuple):
    """An HTTP answer: status, DER body and headers besides the content type."""

    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...]


class Route(NamedTuple):
    """Which OCSP form a path is: ``post``, ``serial`` or ``get``, and its arguments."""

    form: str
    issuer_id: str
    argument: str


def route(method: str, tail: str) -> Route | None:
    """The OCSP form of ``method`` and the path after :data:`PREFIX`; None when it is none."""
    issuer_id, _, rest = tail.partition("/")
    if not issuer_id:
        return None
    if method == "POST":
        return Route("post", issuer_id, "") if not rest.strip("/") else None
    if method != "GET" or not rest.strip("/"):
        return None
    serial = rest.removeprefix("serial/")
    if serial != rest and "/" not in serial.rstrip("/") and serial.rstrip("/"):
        return Route("serial", issuer_id, serial.rstrip("/"))
    return Route("get", issuer_id, rest)


def _reply(
    body: bytes, *, status: int = 200, max_age: int | None = None, retry_after: int | None = None
) -> Reply:
    cache = "no-store" if max_age is None else f"public, max-age={max_age}"
    if retry_after is None:
        return Reply(status, body, (("cache-control", cache),))
    return Reply(status, body, (("cache-control", cache), ("retry-after", str(retry_after))))


def _malformed() -> Reply:
    return _reply(unsuccessful(ocsp.OCSPResponseStatus.MALFORMED_REQUEST))


def _send(answer: Signed | bytes) -> Reply:
    if isinstance(answer, bytes):
        return _reply(answer)
    if answer.next_update is None:
        return _reply(answer.der)
    remaining = int((answer.next_update - utcnow()).total_seconds())
    return _reply(answer.der, max_age=max(0, remaining))


async def _answer_der(service: OcspResponderService, issuer_id: str, der: bytes | None) -> Reply:
    if not der or len(der) > MAX_REQUEST_BYTES:
        return _malformed()
    try:
        parsed = ocsp.load_der_ocsp_request(der)
        return _send(await service.respond(issuer_id, parsed))
    except (ValueError, NotImplementedError, UnsupportedAlgorithm):
        # Garbage DER, several requests in one, or an unsupported CertID hash algorithm.
        return _malformed()


def _decode_get(encoded: str) -> bytes | None:
    text = unquote(encoded.strip("/")).replace(" ", "+")
    text = text.replace("-", "+").replace("_", "/").rstrip("=")
    if not text or not _BASE64.fullmatch(text):
        return None
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None


async def answer(
    service: OcspResponderService,
    where: Route,
    *,
    client: str,
    content_type: str,
    content_length: str | None,
    read_body: ReadBody,
) -> Reply:
    """Answer one OCSP request: rate limit, then the form's checks, then the responder."""
    wait = service.limiter.acquire(client)
    if wait:
        return _reply(unsuccessful(ocsp.OCSPResponseStatus.TRY_LATER), status=429, retry_after=wait)
    if where.form == "serial":
        cleaned = where.argument.replace(":", "")
        if not _HEX.fullmatch(cleaned):
            return _malformed()
        return _send(await service.respond_serial(where.issuer_id, int(cleaned, 16)))
    if where.form == "get":
        return await _answer_der(service, where.issuer_id, _decode_get(where.argument))
    if content_type.split(";")[0].strip().lower() != REQUEST_MEDIA_TYPE:
        return _malformed()
    if content_length is not None and not (
        content_length.isdigit() and int(content_length) <= MAX_REQUEST_BYTES
    ):
        return _malformed()
    return await _answer_der(service, where.issuer_id, await read_body())
