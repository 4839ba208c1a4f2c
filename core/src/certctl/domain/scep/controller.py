"""``/scep[/{profile}]`` and ``/scep-mtls[/{profile}]``: the SCEP wire protocol (RFC 8894 §4).

These routes carry no API key: a PKCSReq proves itself with its challenge password (and on the
mTLS twin also with a client certificate), a RenewalReq with the certificate it renews. The
``/pkiclient.exe`` suffix many clients append (NDES' path) is accepted on every form.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import MutableMapping
from typing import Any, cast

from litestar import Request, Response, route
from litestar.params import FromPath

from certctl.domain.scep.cms import ScepMalformed
from certctl.domain.scep.mtls import check_client_certificate
from certctl.domain.scep.service import CA_CAPS, Endpoint, ScepService

__all__ = ["scep_handlers"]

PKI_MESSAGE = "application/x-pki-message"
_PUBLIC = {"public": True}
_METHODS: list[Any] = ["GET", "POST"]


def _text(status: int, message: str) -> Response[bytes]:
    return Response(content=message.encode() + b"\n", status_code=status, media_type="text/plain")


def _message_of(request: Request[Any, Any, Any], body: bytes) -> bytes:
    """PKIOperation's message: the POST body, or GET ``message=`` in (URL-safe) base64."""
    if request.method == "POST":
        return body
    raw = request.query_params.get("message") or ""
    cleaned = "".join(raw.split())
    try:
        if "-" in cleaned or "_" in cleaned:
            return base64.urlsafe_b64decode(cleaned + "=" * (-len(cleaned) % 4))
        return base64.b64decode(cleaned + "=" * (-len(cleaned) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ScepMalformed("the message parameter is not base64") from None


async def _serve(request: Request[Any, Any, Any], profile: str, *, mtls: bool) -> Response[bytes]:
    scep: ScepService = request.app.state.scep
    endpoint: Endpoint = scep.endpoint(profile, mtls=mtls)
    if mtls:
        check_client_certificate(cast("MutableMapping[str, Any]", request.scope), endpoint)
    operation = request.query_params.get("operation", "")
    if operation == "GetCACaps":
        return _text(200, "\n".join(CA_CAPS))
    if operation == "GetCACert":
        der, media_type = await scep.ca_certificates(endpoint)
        return Response(content=der, media_type=media_type)
    if operation != "PKIOperation":
        return _text(
            400, f"unknown operation {operation[:40]!r}: use GetCACaps, GetCACert or PKIOperation"
        )
    limit = scep.settings.max_message_bytes
    body = await request.body() if request.method == "POST" else b""
    if len(body) > limit or len(request.query_params.get("message") or "") > limit * 2:
        return _text(413, f"the PKIOperation message exceeds {limit} bytes")
    try:
        message = _message_of(request, body)
        reply = await scep.pki_operation(endpoint, message)
    except ScepMalformed as exc:
        return _text(400, f"malformed PKIOperation: {exc}")
    return Response(content=reply, media_type=PKI_MESSAGE)


_PLAIN = ["/scep", "/scep/pkiclient.exe", "/cgi-bin/pkiclient.exe"]
_NAMED = ["/scep/{profile:str}", "/scep/{profile:str}/pkiclient.exe"]
_MTLS_PLAIN = ["/scep-mtls", "/scep-mtls/pkiclient.exe"]
_MTLS_NAMED = ["/scep-mtls/{profile:str}", "/scep-mtls/{profile:str}/pkiclient.exe"]


@route(_PLAIN, http_method=_METHODS, opt=_PUBLIC, include_in_schema=False, status_code=200)
async def scep_legacy(request: Request[Any, Any, Any]) -> Response[bytes]:
    """The legacy un-named profile (``CERTCTL_SCEP_PROFILE_ID``)."""
    return await _serve(request, "", mtls=False)


@route(_NAMED, http_method=_METHODS, opt=_PUBLIC, include_in_schema=False, status_code=200)
async def scep_profile(request: Request[Any, Any, Any], profile: FromPath[str]) -> Response[bytes]:
    """A named profile of ``CERTCTL_SCEP_PROFILES``."""
    return await _serve(request, profile, mtls=False)


@route(_MTLS_PLAIN, http_method=_METHODS, opt=_PUBLIC, include_in_schema=False, status_code=200)
async def scep_mtls_legacy(request: Request[Any, Any, Any]) -> Response[bytes]:
    """The legacy profile, client certificate required."""
    return await _serve(request, "", mtls=True)


@route(_MTLS_NAMED, http_method=_METHODS, opt=_PUBLIC, include_in_schema=False, status_code=200)
async def scep_mtls_profile(
    request: Request[Any, Any, Any], profile: FromPath[str]
) -> Response[bytes]:
    """A named profile, client certificate required."""
    return await _serve(request, profile, mtls=True)


def scep_handlers() -> list[Any]:
    """The protocol route handlers (always registered: a disabled SCEP answers 404)."""
    return [scep_legacy, scep_profile, scep_mtls_legacy, scep_mtls_profile]
