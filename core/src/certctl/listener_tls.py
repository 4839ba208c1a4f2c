"""The HTTPS listener's TLS context: the server certificate, and client certificates for mTLS.

EST and SCEP have mTLS routes (``/.well-known/est-mtls/…``, ``/scep-mtls/…``) on the same port
as everything else. When any profile configures a client-CA trust bundle, the listener asks
every client for a certificate but does not require one (``CERT_OPTIONAL``): browsers and API
clients carry on without, and a presented certificate must chain to the union of the bundles.
The bundles are listed by :func:`certctl.tls.client_trust_bundles`. Each protocol handler
then checks it against its own profile's bundle, so one profile's CA
cannot enrol into another.

Bundles can be re-read without a restart (:meth:`ListenerTLS.reload`): a fresh context is built
and handed to new handshakes from the SNI callback, which OpenSSL calls for every ClientHello,
with or without a server name. Connections already open keep the context they started with.
A bundle that fails to load leaves the previous trust in place.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from cryptography import x509

from certctl.tls import TLSBundleError

__all__ = ["ListenerTLS"]


def _read_bundle(path: Path) -> str:
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise TLSBundleError(f"cannot read client CA bundle {path}: {exc}") from None
    try:
        certificates = x509.load_pem_x509_certificates(text.encode())
    except ValueError as exc:
        raise TLSBundleError(f"client CA bundle {path} is not PEM certificates: {exc}") from None
    for certificate in certificates:
        try:
            is_ca = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        except x509.ExtensionNotFound:
            is_ca = False
        if not is_ca:
            raise TLSBundleError(
                f"client CA bundle {path} holds a non-CA certificate "
                f"({certificate.subject.rfc4514_string()})"
            )
    return text


class ListenerTLS:
    """Builds the listener's :class:`ssl.SSLContext` and swaps client trust on reload."""

    def __init__(
        self, cert_path: Path, key_path: Path, bundles: Callable[[], Sequence[Path]]
    ) -> None:
        self._cert_path = cert_path
        self._key_path = key_path
        self._bundles = bundles
        self._lock = threading.Lock()
        self.mtls = bool(bundles())
        self.context = self._build()
        self._current = self.context
        if self.mtls:
            self.context.sni_callback = self._select

    def _build(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self._cert_path, self._key_path)
        context.set_alpn_protocols(["http/1.1"])
        if self.mtls:
            pems = [_read_bundle(path) for path in self._bundles()]
            context.verify_mode = ssl.CERT_OPTIONAL
            # A bundle may hold an intermediate alone: trust it without its root.
            context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
            if pems:
                context.load_verify_locations(cadata="\n".join(pems))
        return context

    def _select(self, connection: ssl.SSLObject, _name: str | None, _ctx: ssl.SSLContext) -> None:
        current = self._current
        if current is not self.context:
            connection.context = current

    def reload(self) -> int:
        """Re-read the client-CA bundles; return how many CA certificates are now trusted.

        Raises :class:`TLSBundleError` (and keeps the old trust) when a bundle is unreadable.
        Without mTLS profiles at start there is nothing to reload: the listener never asks
        for client certificates, and turning that on needs a restart.
        """
        if not self.mtls:
            return 0
        with self._lock:
            fresh = self._build()
            self._current = fresh
            return len(fresh.get_ca_certs())
