"""What the TLS connection says about the client: its certificate and RFC 9266 channel binding.

uvicorn does not pass TLS details to the application, so the listener's protocol
(:func:`tls_aware_protocol`) reads them from the connection once the handshake is done and puts
them in every request's ASGI scope under ``extensions["tls"]``, the key the ASGI TLS extension
names. Handlers read them back with :func:`peer_tls`. A request that did not arrive over TLS
(the in-process test client, a plain-HTTP listener) has none, and the function returns None.

The client certificate was already verified by the listener against the union of the trust
bundles the protocol servers configure (:func:`certctl.tls.client_trust_bundles`); a handler must
still check it against its own profile's bundle.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, cast

import msgspec

from certctl.lib import tls_exporter

__all__ = ["PeerTLS", "peer_tls", "tls_aware_protocol"]

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]

_SCOPE_KEY = "certctl.peer"
_TLS_VERSIONS = {"TLSv1.2": 0x0303, "TLSv1.3": 0x0304}


class PeerTLS(msgspec.Struct, frozen=True, kw_only=True):
    """The client side of one TLS connection."""

    version: str
    """As :meth:`ssl.SSLObject.version` names it: ``TLSv1.3`` or ``TLSv1.2``."""
    client_certificate: bytes | None = None
    """DER of the leaf certificate the client presented, if any."""
    channel_binding: bytes | None = None
    """``tls-exporter`` (RFC 9266): 32 bytes exported with label ``EXPORTER-Channel-Binding``.

    Only on TLS 1.3, where the exporter is bound to the whole handshake (RFC 9266 §3).
    """

    def __repr__(self) -> str:
        has_cert = self.client_certificate is not None
        return f"PeerTLS(version={self.version!r}, client_certificate={has_cert})"


def peer_tls(scope: Scope) -> PeerTLS | None:
    """The TLS facts of the connection that carried this request; None without TLS."""
    extension = (scope.get("extensions") or {}).get("tls")
    if not isinstance(extension, dict):
        return None
    peer = extension.get(_SCOPE_KEY)
    return peer if isinstance(peer, PeerTLS) else None


def read_connection(ssl_object: Any) -> PeerTLS:
    """The facts of a finished handshake on ``ssl_object`` (an :class:`ssl.SSLObject`)."""
    version = str(ssl_object.version() or "")
    binding = tls_exporter.channel_binding(ssl_object) if version == "TLSv1.3" else None
    return PeerTLS(
        version=version,
        client_certificate=ssl_object.getpeercert(binary_form=True) or None,
        channel_binding=binding,
    )


def _extension(peer: PeerTLS, chain: list[str]) -> dict[str, Any]:
    # The ASGI TLS extension's own keys, for any middleware that knows them, plus ours.
    return {
        "client_cert_chain": chain,
        "tls_version": _TLS_VERSIONS.get(peer.version),
        _SCOPE_KEY: peer,
    }


def tls_aware_protocol(base: type[asyncio.Protocol]) -> type[asyncio.Protocol]:
    """A subclass of uvicorn's HTTP protocol ``base`` that adds :class:`PeerTLS` to each scope."""

    class TLSAwareProtocol(base):  # type: ignore[valid-type,misc]
        def connection_made(self, transport: asyncio.Transport) -> None:
            super().connection_made(transport)
            ssl_object = transport.get_extra_info("ssl_object")
            if ssl_object is None:
                return
            peer = read_connection(ssl_object)
            chain: list[str] = []
            if peer.client_certificate is not None:
                import ssl

                chain = [ssl.DER_cert_to_PEM_cert(peer.client_certificate)]
            extension = _extension(peer, chain)
            app = cast(ASGIApp, getattr(self, "app"))  # noqa: B009 - set by uvicorn's __init__

            async def with_tls(scope: Scope, receive: Any, send: Any) -> None:
                scope.setdefault("extensions", {})["tls"] = extension
                await app(scope, receive, send)

            self.app = with_tls

    TLSAwareProtocol.__name__ = f"TLSAware{base.__name__}"
    TLSAwareProtocol.__qualname__ = TLSAwareProtocol.__name__
    return TLSAwareProtocol
