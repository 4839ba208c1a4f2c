"""The EST routes (RFC 7030 §3.2.2) and the two admin routes.

``/.well-known/est/<op>`` serves the legacy profile, ``/.well-known/est/<label>/<op>`` a
labelled one and ``/.well-known/est-mtls/<label>/<op>`` its mTLS twin. The EST routes are public
to the API-key guard (EST authenticates in :mod:`certctl.domain.est.auth`); every answer goes
through :func:`_answer`, which turns an :class:`EstError`, an oversized body and any other
failure into a plain-text reason with its status, never a bare 500.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, cast

import msgspec
from litestar import Controller, Request, Response, get, post

from certctl.domain.audit.service import record
from certctl.domain.est.auth import Principal, Route
from certctl.domain.est.service import EnrollmentRequest, EstService, Operation
from certctl.domain.est.settings import EstProfileSettings
from certctl.domain.est.wire import (
    CERTS_ONLY,
    CSRATTRS,
    EstError,
    certs_only,
    decode_csr,
    multipart,
)
from certctl.lib.deps import ActorDep, SessionDep
from certctl.lib.peer_tls import peer_tls
from certctl.lib.ratelimit_http import client_address

__all__ = ["EST_PATHS", "EstAdminController", "EstController"]

_log = logging.getLogger("certctl.est")

PLAIN = "/.well-known/est"
LABELLED = "/.well-known/est/{label:str}"
MTLS = "/.well-known/est-mtls/{label:str}"
EST_PATHS = (PLAIN, LABELLED, MTLS)
_BASE64 = {"Content-Transfer-Encoding": "base64"}

Handler = Callable[[EstService, EstProfileSettings, Route], Awaitable[Response[bytes]]]


def _paths(operation: str) -> list[str]:
    return [f"{base}/{operation}" for base in EST_PATHS]


def _text(status: int, reason: str, headers: dict[str, str] | None = None) -> Response[bytes]:
    return Response(
        content=(reason + "\n").encode(),
        status_code=status,
        media_type="text/plain; charset=utf-8",
        headers={"Cache-Control": "no-store", **(headers or {})},
    )


def _route(request: Request[Any, Any, Any]) -> Route:
    return "mtls" if request.url.path.startswith("/.well-known/est-mtls/") else "plain"


def _profile(service: EstService, request: Request[Any, Any, Any]) -> EstProfileSettings:
    label = str(request.path_params.get("label", ""))
    profile = service.settings.profile(label)
    if profile is None or (_route(request) == "mtls" and not profile.mtls_enabled):
        raise EstError(404, "no EST profile is served at this address")
    return profile


async def _answer(request: Request[Any, Any, Any], handler: Handler) -> Response[bytes]:
    service: EstService = request.app.state.est
    try:
        return await handler(service, _profile(service, request), _route(request))
    except EstError as error:
        return _text(error.status, error.reason, error.headers)
    except Exception:  # noqa: BLE001 - logged; the client gets a reason, not a traceback
        _log.exception("EST request %s %s failed", request.method, request.url.path)
        return _text(500, "the EST server failed; try again")


async def _body(request: Request[Any, Any, Any], limit: int) -> bytes:
    """The body, refused with 413 as soon as it passes ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise EstError(413, f"the request body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def _principal(
    service: EstService,
    request: Request[Any, Any, Any],
    profile: EstProfileSettings,
    route: Route,
    *,
    enrollment: bool,
) -> Principal:
    return await service.auth.authenticate(
        profile,
        route,
        authorization=request.headers.get("authorization", ""),
        address=_address(service, request),
        peer=peer_tls(cast("dict[str, Any]", request.scope)),
        enrollment=enrollment,
    )


def _address(service: EstService, request: Request[Any, Any, Any]) -> str:
    return client_address(request.scope, service.runtime.rate_limits.trusted_proxies)


async def _enrollment(
    service: EstService,
    request: Request[Any, Any, Any],
    profile: EstProfileSettings,
    route: Route,
    operation: Operation,
) -> EnrollmentRequest:
    principal = await _principal(service, request, profile, route, enrollment=True)
    body = await _body(request, service.settings.max_request_bytes)
    csr, der = decode_csr(body, request.headers.get("content-type", ""))
    return EnrollmentRequest(
        profile=profile,
        operation=operation,
        csr=csr,
        csr_der=der,
        principal=principal,
        client_ip=_address(service, request),
        peer=peer_tls(cast("dict[str, Any]", request.scope)),
        via_mtls=route == "mtls",
    )


class EstController(Controller):
    """RFC 7030 operations of every EST profile."""

    tags = ["EST"]

    @get(_paths("cacerts"), opt={"public": True})
    async def cacerts(self, request: Request[Any, Any, Any]) -> Response[bytes]:
        """The issuing CA chain, certs-only PKCS#7 in base64 (RFC 7030 §4.1)."""

        async def handle(
            service: EstService, profile: EstProfileSettings, route: Route
        ) -> Response[bytes]:
            await _principal(service, request, profile, route, enrollment=False)
            chain = await service.ca_certificates(profile)
            return Response(content=certs_only(chain), media_type=CERTS_ONLY, headers=dict(_BASE64))

        return await _answer(request, handle)

    @get(_paths("csrattrs"), opt={"public": True})
    async def csrattrs(self, request: Request[Any, Any, Any]) -> Response[bytes]:
        """What the CSR should carry (RFC 7030 §4.5); 204 when the profile asks for nothing."""

        async def handle(
            service: EstService, profile: EstProfileSettings, route: Route
        ) -> Response[bytes]:
            await _principal(service, request, profile, route, enrollment=False)
            attributes = await service.csr_attributes(profile)
            if attributes is None:
                return Response(content=b"", status_code=204)
            return Response(content=attributes, media_type=CSRATTRS, headers=dict(_BASE64))

        return await _answer(request, handle)

    async def _enroll(
        self, request: Request[Any, Any, Any], operation: Operation
    ) -> Response[bytes]:
        async def handle(
            service: EstService, profile: EstProfileSettings, route: Route
        ) -> Response[bytes]:
            enrollment = await _enrollment(service, request, profile, route, operation)
            certificate = await service.enroll(enrollment)
            return Response(
                content=certs_only([certificate]), media_type=CERTS_ONLY, headers=dict(_BASE64)
            )

        return await _answer(request, handle)

    @post(_paths("simpleenroll"), opt={"public": True}, status_code=200)
    async def simpleenroll(self, request: Request[Any, Any, Any]) -> Response[bytes]:
        """Enroll a CSR (RFC 7030 §4.2.1): the certificate, or 202 + Retry-After."""
        return await self._enroll(request, "simpleenroll")

    @post(_paths("simplereenroll"), opt={"public": True}, status_code=200)
    async def simplereenroll(self, request: Request[Any, Any, Any]) -> Response[bytes]:
        """Renew the TLS client certificate with a CSR of the same names (RFC 7030 §4.2.2)."""
        return await self._enroll(request, "simplereenroll")

    @post(_paths("serverkeygen"), opt={"public": True}, status_code=200)
    async def serverkeygen(self, request: Request[Any, Any, Any]) -> Response[bytes]:
        """A key made by the server and its certificate, ``multipart/mixed`` (RFC 7030 §4.4)."""

        async def handle(
            service: EstService, profile: EstProfileSettings, route: Route
        ) -> Response[bytes]:
            if not profile.serverkeygen_enabled:
                raise EstError(404, "server-side key generation is not enabled for this profile")
            enrollment = await _enrollment(service, request, profile, route, "serverkeygen")
            media_type, body = multipart(await service.serverkeygen(enrollment))
            return Response(content=body, media_type=media_type)

        return await _answer(request, handle)


# --- admin ------------------------------------------------------------------------------------


class EstProfileOut(msgspec.Struct, kw_only=True):
    """One EST profile as an operator sees it; credentials are only said to exist."""

    label: str
    profile_id: str
    urls: list[str]
    auth_modes: list[str]
    basic_username: str | None
    basic_password_configured: bool
    mtls_enabled: bool
    trust_bundle_path: str | None
    trusted_cas: list[str]
    trust_loaded_at: datetime | None
    channel_binding_required: bool
    serverkeygen_enabled: bool
    rate_limit_per_principal_24h: int


class EstProfilesOut(msgspec.Struct, kw_only=True):
    enabled: bool
    profiles: list[EstProfileOut]


class ReloadOut(msgspec.Struct, kw_only=True):
    """Per label: CA certificates trusted after the reload, or the error that kept the old."""

    trusted_cas: dict[str, int]
    errors: dict[str, str]
    listener_cas: int | None
    """CA certificates the listener asks client certificates against; None without a listener."""
    listener_error: str | None = None


def _urls(base: str, profile: EstProfileSettings) -> list[str]:
    urls = [f"{base}{PLAIN}/{profile.label}/" if profile.label else f"{base}{PLAIN}/"]
    if profile.mtls_enabled:
        urls.append(f"{base}/.well-known/est-mtls/{profile.label}/")
    return urls


class EstAdminController(Controller):
    """``/api/v1/admin/est``: what EST serves, and reloading its client-CA trust."""

    path = "/api/v1/admin/est"
    tags = ["EST"]

    @get("/profiles", opt={"permission": "est.admin"})
    async def profiles(self, request: Request[Any, Any, Any]) -> EstProfilesOut:
        """Every EST profile with its URLs, authentication and trusted client CAs."""
        service: EstService = request.app.state.est
        base = service.runtime.settings.effective_public_url
        out = []
        for p in service.settings.profiles if service.settings.enabled else ():
            anchors = service.auth.trust.anchors(p.label) if p.mtls_enabled else ()
            out.append(
                EstProfileOut(
                    label=p.label,
                    profile_id=p.profile_id,
                    urls=_urls(base, p),
                    auth_modes=sorted(p.auth_modes) or ["anonymous"],
                    basic_username=(p.username or None) if "basic" in p.auth_modes else None,
                    basic_password_configured=bool(p.password_hash),
                    mtls_enabled=p.mtls_enabled,
                    trust_bundle_path=p.trust_bundle_path or None,
                    trusted_cas=[a.subject.rfc4514_string() for a in anchors],
                    trust_loaded_at=service.auth.trust.loaded_at(p.label),
                    channel_binding_required=p.channel_binding_required,
                    serverkeygen_enabled=p.serverkeygen_enabled,
                    rate_limit_per_principal_24h=p.rate_limit_per_principal_24h,
                )
            )
        return EstProfilesOut(enabled=service.settings.enabled, profiles=out)

    @post("/reload-trust", opt={"permission": "est.admin"}, status_code=200)
    async def reload_trust(
        self, request: Request[Any, Any, Any], session: SessionDep, actor: ActorDep
    ) -> ReloadOut:
        """Re-read every profile's client-CA bundle and the listener's; a bad bundle keeps the
        previous trust (reported in ``errors``)."""
        service: EstService = request.app.state.est
        errors = service.auth.trust.reload()
        listener = getattr(request.app.state, "listener_tls", None)
        listener_cas: int | None = None
        listener_error: str | None = None
        if listener is not None:
            try:
                listener_cas = int(listener.reload())
            except Exception as exc:  # noqa: BLE001 - TLSBundleError and OSError: reported
                listener_error = str(exc)
        trusted = {
            p.label: len(service.auth.trust.anchors(p.label))
            for p in service.settings.profiles
            if p.mtls_enabled
        }
        record(
            session,
            actor,
            "est.trust.reload",
            resource_type="est",
            resource_id="trust",
            details={"trusted_cas": trusted, "errors": errors, "listener_error": listener_error},
        )
        await session.commit()
        return ReloadOut(
            trusted_cas=trusted,
            errors=errors,
            listener_cas=listener_cas,
            listener_error=listener_error,
        )
