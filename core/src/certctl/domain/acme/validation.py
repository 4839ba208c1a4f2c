"""Challenge validation by the server: http-01, dns-01 (RFC 8555 §8.3-8.4), tls-alpn-01 (RFC 8737).

Names are resolved once and every address is checked by :mod:`addresses` before a connection;
the connection then goes to that checked address (the Host header or SNI carries the name), so
a DNS answer that changes between check and connect cannot redirect it. At most one IPv6 and
one IPv4 address are tried, IPv6 first. Each network step is bounded by
``CERTCTL_ACME_SERVER_VALIDATION_TIMEOUT`` (a timeout is a ``connection`` problem), a whole
validation by :func:`validation_deadline`, and the validations in flight per type by
``CERTCTL_ACME_SERVER_<TYPE>_CONCURRENCY``. Every failure is an :class:`AcmeProblem` whose
detail says what was seen — but never the body of a response, since the address policy lets
an account point the validator at internal hosts.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import ipaddress
import socket
import ssl
from typing import TYPE_CHECKING

import dns.asyncresolver
import dns.exception
import dns.resolver
import httpx
from cryptography import x509
from cryptography.x509.oid import ObjectIdentifier

from certctl.domain.acme.addresses import IPAddress, parse_resolver, refusal
from certctl.domain.acme.problems import AcmeProblem

if TYPE_CHECKING:
    import dns.rdata

    from certctl.settings import Settings

__all__ = ["ACME_IDENTIFIER_OID", "ALPN", "Validator", "validation_deadline"]

ACME_IDENTIFIER_OID = ObjectIdentifier("1.3.6.1.5.5.7.1.31")
"""id-pe-acmeIdentifier (RFC 8737 §6.1)."""
ALPN = "acme-tls/1"
MAX_REDIRECTS = 10
MAX_BODY = 8192
"""A key authorization is under 200 bytes; anything this large is not one."""
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_DEFAULT_PORTS = {"http": 80, "https": 443}


def validation_deadline(settings: Settings) -> float:
    """Seconds one validation may take in all (every redirect of an http-01 included)."""
    return settings.acme_validation_timeout_seconds * (MAX_REDIRECTS + 2)


def _digest(key_authorization: str) -> bytes:
    return hashlib.sha256(key_authorization.encode()).digest()


def _client_context(*, alpn: str | None) -> ssl.SSLContext:
    """A client context that checks no chain: neither RFC 8555 §8.3 nor RFC 8737 §3 asks it."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.TLSv1_2  # RFC 8737 §4
    if alpn:
        context.set_alpn_protocols([alpn])
    return context


class Validator:
    """Performs one challenge's validation; shared by all validations of a process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.timeout = settings.acme_validation_timeout_seconds
        self.allow_loopback = settings.acme_validation_allow_loopback
        self.nameserver = parse_resolver(settings.acme_dns_resolver)
        self.redirect_ports = frozenset(
            {80, 443, settings.acme_http01_port, settings.acme_tlsalpn01_port}
        )
        self._slots = {
            "http-01": asyncio.Semaphore(settings.acme_http01_concurrency),
            "dns-01": asyncio.Semaphore(settings.acme_dns01_concurrency),
            "tls-alpn-01": asyncio.Semaphore(settings.acme_tlsalpn01_concurrency),
        }
        self._https = _client_context(alpn=None)
        self._alpn = _client_context(alpn=ALPN)
        self._dns: dns.asyncresolver.Resolver | None = None

    async def validate(
        self,
        *,
        challenge_type: str,
        identifier_type: str,
        identifier: str,
        token: str,
        key_authorization: str,
    ) -> None:
        """Return when the challenge is met; raise :class:`AcmeProblem` saying why not."""
        slot = self._slots.get(challenge_type)
        if slot is None:
            raise AcmeProblem("malformed", f"unknown challenge type {challenge_type!r}")
        if identifier_type == "ip":
            try:
                ipaddress.ip_address(identifier)
            except ValueError:
                raise AcmeProblem("malformed", f"{identifier!r} is not an IP address") from None
            if challenge_type == "dns-01":
                raise AcmeProblem("malformed", "dns-01 cannot prove an IP address (RFC 8738 §7)")
        elif identifier_type != "dns" or not identifier:
            raise AcmeProblem("malformed", f"cannot validate a {identifier_type!r} identifier")
        async with slot:
            try:
                async with asyncio.timeout(validation_deadline(self.settings)):
                    if challenge_type == "http-01":
                        await self._http01(identifier_type, identifier, token, key_authorization)
                    elif challenge_type == "dns-01":
                        await self._dns01(identifier, key_authorization)
                    else:
                        await self._tls_alpn01(identifier_type, identifier, key_authorization)
            except TimeoutError:
                raise AcmeProblem("connection", f"validating {identifier} took too long") from None

    # --- name resolution -------------------------------------------------------------

    def _resolver(self) -> dns.asyncresolver.Resolver:
        if self._dns is None:
            try:
                if self.nameserver is None:
                    resolver = dns.asyncresolver.Resolver()  # /etc/resolv.conf
                else:
                    resolver = dns.asyncresolver.Resolver(configure=False)
                    resolver.nameservers = [self.nameserver[0]]
                    resolver.port = self.nameserver[1]
            except dns.exception.DNSException as exc:
                raise AcmeProblem("dns", f"no DNS resolver is usable: {exc}") from None
            resolver.timeout = resolver.lifetime = self.timeout
            self._dns = resolver
        return self._dns

    async def _addresses(self, name: str, *, identifier: bool) -> list[IPAddress]:
        """The addresses to try for ``name``: all must pass the policy; one per family.

        ``identifier`` says ``name`` is the identifier itself (not a redirect's host), so a
        refused IP literal is a ``rejectedIdentifier``.
        """
        try:
            found: list[IPAddress] = [ipaddress.ip_address(name)]
            literal = True
        except ValueError:
            found = await self._lookup(name)
            literal = False
        for address in found:
            reason = refusal(address, allow_loopback=self.allow_loopback)
            if reason is None:
                continue
            if literal:
                raise AcmeProblem(
                    "rejectedIdentifier" if identifier else "connection",
                    f"{name} is {reason}, which certctl does not connect to",
                )
            raise AcmeProblem(
                "connection", f"{name} resolves to {reason}, which certctl does not connect to"
            )
        v6 = [a for a in found if a.version == 6][:1]
        v4 = [a for a in found if a.version == 4][:1]
        return v6 + v4

    async def _lookup(self, name: str) -> list[IPAddress]:
        if self.nameserver is None:  # the system's view, /etc/hosts included
            try:
                async with asyncio.timeout(self.timeout):
                    infos = await asyncio.get_running_loop().getaddrinfo(
                        name, None, type=socket.SOCK_STREAM
                    )
            except TimeoutError:
                raise AcmeProblem("connection", f"resolving {name} timed out") from None
            except (OSError, UnicodeError) as exc:
                raise AcmeProblem("dns", f"cannot resolve {name}: {exc}") from None
            found = [ipaddress.ip_address(str(info[4][0])) for info in infos]
        else:
            found = [
                ipaddress.ip_address(str(getattr(record, "address", "")))
                for rdtype in ("AAAA", "A")
                for record in await self._query(name, rdtype)
            ]
        if not found:
            raise AcmeProblem("dns", f"{name} has no A or AAAA record")
        return list(dict.fromkeys(found))

    async def _query(self, name: str, rdtype: str) -> list[dns.rdata.Rdata]:
        """The records of ``name``; [] when it has none of ``rdtype``, problems otherwise."""
        try:
            return list(await self._resolver().resolve(name, rdtype))
        except dns.resolver.NoAnswer:
            return []
        except dns.resolver.NXDOMAIN:
            raise AcmeProblem("dns", f"{name} does not exist (NXDOMAIN)") from None
        except dns.exception.Timeout:
            raise AcmeProblem("connection", f"the DNS query for {name} timed out") from None
        except dns.resolver.NoNameservers:
            raise AcmeProblem(
                "dns", f"no DNS server answered for {name} (SERVFAIL or refused)"
            ) from None
        except dns.exception.DNSException as exc:
            raise AcmeProblem("dns", f"cannot look up {name}: {exc}") from None

    # --- http-01 -----------------------------------------------------------------------

    async def _http01(
        self, identifier_type: str, name: str, token: str, key_authorization: str
    ) -> None:
        host = f"[{name}]" if identifier_type == "ip" and ":" in name else name
        url = httpx.URL(
            f"http://{host}:{self.settings.acme_http01_port}/.well-known/acme-challenge/{token}"
        )
        async with httpx.AsyncClient(
            verify=self._https, trust_env=False, follow_redirects=False, timeout=self.timeout
        ) as client:
            for hop in range(MAX_REDIRECTS + 1):
                status, location, body = await self._fetch(client, url, first=hop == 0)
                if status in _REDIRECTS and location:
                    url = self._redirect(url, location)
                    continue
                if status != 200:
                    raise AcmeProblem("incorrectResponse", f"{url} answered HTTP {status}")
                if len(body) > MAX_BODY:
                    raise AcmeProblem(
                        "incorrectResponse", f"{url} answered more than {MAX_BODY} bytes"
                    )
                if body.decode("utf-8", "replace").rstrip() != key_authorization:
                    raise AcmeProblem(
                        "incorrectResponse",
                        f"{url} answered {len(body)} bytes that are not the key authorization",
                    )
                return
        raise AcmeProblem("connection", f"more than {MAX_REDIRECTS} redirects")

    def _redirect(self, current: httpx.URL, location: str) -> httpx.URL:
        try:
            target = current.join(location)
        except (httpx.InvalidURL, ValueError):
            raise AcmeProblem("connection", f"bad redirect {location[:100]!r}") from None
        if target.scheme not in _DEFAULT_PORTS or not target.host or target.userinfo:
            raise AcmeProblem("connection", f"redirect to {str(target)[:100]!r} is not http(s)")
        port = target.port or _DEFAULT_PORTS[target.scheme]
        if port not in self.redirect_ports:
            raise AcmeProblem(
                "connection", f"redirect to port {port}: only 80 and 443 are followed"
            )
        return target

    async def _fetch(
        self, client: httpx.AsyncClient, url: httpx.URL, *, first: bool
    ) -> tuple[int, str, bytes]:
        """GET ``url`` from a checked address of its host: (status, Location, capped body)."""
        name = url.host
        port = url.port or _DEFAULT_PORTS[url.scheme]
        sni = url.scheme == "https" and not _is_ip(name)
        failure = "no address"
        for address in await self._addresses(name, identifier=first):
            pinned = url.copy_with(host=str(address), port=port)
            try:
                async with (
                    asyncio.timeout(self.timeout),
                    client.stream(
                        "GET",
                        pinned,
                        headers={
                            "Host": url.netloc.decode("ascii"),
                            "User-Agent": "certctl-acme-validator",
                            "Accept-Encoding": "identity",
                        },
                        extensions={"sni_hostname": name} if sni else {},
                    ) as response,
                ):
                    body = bytearray()
                    async for chunk in response.aiter_raw():
                        body += chunk
                        if len(body) > MAX_BODY:
                            break
                    return response.status_code, response.headers.get("location", ""), bytes(body)
            except (TimeoutError, httpx.TimeoutException):
                failure = "timed out"
            except (httpx.HTTPError, OSError, ssl.SSLError) as exc:
                failure = str(exc) or type(exc).__name__
        raise AcmeProblem("connection", f"cannot fetch {url}: {failure}")

    # --- dns-01 ------------------------------------------------------------------------

    async def _dns01(self, name: str, key_authorization: str) -> None:
        record = f"_acme-challenge.{name}"
        expected = base64.urlsafe_b64encode(_digest(key_authorization)).rstrip(b"=")
        answers = await self._query(record, "TXT")
        if not answers:
            raise AcmeProblem("dns", f"{record} has no TXT record")
        values = [b"".join(getattr(r, "strings", ())) for r in answers]
        if expected not in values:
            raise AcmeProblem(
                "incorrectResponse",
                f"none of the {len(values)} TXT records at {record} is the key authorization "
                "digest",
            )

    # --- tls-alpn-01 -------------------------------------------------------------------

    async def _tls_alpn01(self, identifier_type: str, name: str, key_authorization: str) -> None:
        # RFC 8738 §6: an IP address is named in SNI by its reverse-DNS name.
        sni = ipaddress.ip_address(name).reverse_pointer if identifier_type == "ip" else name
        port = self.settings.acme_tlsalpn01_port
        kind, failure = "connection", "no address"
        for address in await self._addresses(name, identifier=True):
            try:
                async with asyncio.timeout(self.timeout):
                    _, writer = await asyncio.open_connection(
                        str(address), port, ssl=self._alpn, server_hostname=sni
                    )
            except TimeoutError:
                kind, failure = "connection", "timed out"
                continue
            except ssl.SSLError as exc:
                kind, failure = "tls", f"the TLS handshake failed: {exc.reason or exc}"
                continue
            except OSError as exc:
                kind, failure = "connection", exc.strerror or str(exc)
                continue
            tls = writer.get_extra_info("ssl_object")
            protocol = tls.selected_alpn_protocol() if tls else None
            der = tls.getpeercert(binary_form=True) if tls else None
            writer.transport.abort()  # nothing more to say; no close_notify round trip
            if protocol != ALPN:
                raise AcmeProblem("tls", f"{name}:{port} did not negotiate ALPN {ALPN}")
            if not der:
                raise AcmeProblem("tls", f"{name}:{port} presented no certificate")
            _check_alpn_certificate(der, identifier_type, name, key_authorization)
            return
        raise AcmeProblem(kind, f"cannot validate {name}:{port} with tls-alpn-01: {failure}")


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _check_alpn_certificate(
    der: bytes, identifier_type: str, name: str, key_authorization: str
) -> None:
    """RFC 8737 §3: one SAN, the identifier; a critical acmeIdentifier holding the digest.

    A certificate of the wrong shape is an ``incorrectResponse``; a well-formed one for a
    different key authorization is ``unauthorized`` (it proves someone else's account).
    """
    try:
        cert = x509.load_der_x509_certificate(der)
        extensions = cert.extensions
    except ValueError as exc:
        raise AcmeProblem("tls", f"the certificate cannot be parsed: {exc}") from None
    try:
        sans = list(extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        raise AcmeProblem("incorrectResponse", "the certificate has no subjectAltName") from None
    wanted: x509.GeneralName = (
        x509.IPAddress(ipaddress.ip_address(name))
        if identifier_type == "ip"
        else x509.DNSName(name)
    )
    if len(sans) != 1:
        raise AcmeProblem(
            "incorrectResponse",
            f"the certificate must name only {name} but has {len(sans)} subjectAltNames",
        )
    if _folded(sans[0]) != _folded(wanted):
        raise AcmeProblem("incorrectResponse", f"the certificate does not name {name}")
    try:
        extension = extensions.get_extension_for_oid(ACME_IDENTIFIER_OID)
    except x509.ExtensionNotFound:
        raise AcmeProblem(
            "incorrectResponse", "the certificate has no acmeIdentifier extension"
        ) from None
    if not extension.critical:
        raise AcmeProblem("incorrectResponse", "the acmeIdentifier extension is not critical")
    value = getattr(extension.value, "value", b"")
    if len(value) != 34 or value[:2] != b"\x04\x20":
        raise AcmeProblem(
            "incorrectResponse", "the acmeIdentifier is not a 32-byte DER OCTET STRING"
        )
    if value[2:] != _digest(key_authorization):
        raise AcmeProblem(
            "unauthorized", "the acmeIdentifier is not the digest of this key authorization"
        )


def _folded(general: x509.GeneralName) -> tuple[type, object]:
    """A GeneralName comparable to another: its type, and DNS names case-folded."""
    value = general.value
    return type(general), value.lower() if isinstance(value, str) else value
