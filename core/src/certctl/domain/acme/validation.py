"""Challenge validation by the server: http-01, dns-01 (RFC 8555 §8.3-8.4), tls-alpn-01 (RFC 8737).

Names are resolved once and every address is checked by :mod:`addresses` before a connection;
the connection then goes to that checked address (the Host header or SNI carries the name), so
a DNS answer that changes between check and connect cannot redirect it. Each network step is
bounded by ``CERTCTL_ACME_SERVER_VALIDATION_TIMEOUT`` and the number of validations in flight
per type by ``CERTCTL_ACME_SERVER_<TYPE>_CONCURRENCY``. Every failure is an
:class:`AcmeProblem` whose detail says what was seen, which the client shows its user.
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
    from certctl.settings import Settings

__all__ = ["ACME_IDENTIFIER_OID", "Validator", "validation_deadline"]

ACME_IDENTIFIER_OID = ObjectIdentifier("1.3.6.1.5.5.7.1.31")
"""id-pe-acmeIdentifier (RFC 8737 §6.1)."""
ALPN = "acme-tls/1"
MAX_REDIRECTS = 10
MAX_BODY = 8192
"""A key authorization is under 200 bytes; anything this large is not one."""
_REDIRECTS = {301, 302, 303, 307, 308}


def validation_deadline(settings: Settings) -> float:
    """Seconds one validation may take in all (every redirect of an http-01 included)."""
    return settings.acme_validation_timeout_seconds * (MAX_REDIRECTS + 2)


def _digest(key_authorization: str) -> bytes:
    return hashlib.sha256(key_authorization.encode()).digest()


class Validator:
    """Performs one challenge's validation; shared by all validations of a process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.timeout = settings.acme_validation_timeout_seconds
        self.allow_loopback = settings.acme_validation_allow_loopback
        self.nameserver = parse_resolver(settings.acme_dns_resolver)
        self._slots = {
            "http-01": asyncio.Semaphore(settings.acme_http01_concurrency),
            "dns-01": asyncio.Semaphore(settings.acme_dns01_concurrency),
            "tls-alpn-01": asyncio.Semaphore(settings.acme_tlsalpn01_concurrency),
        }

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
        if identifier_type == "ip" and challenge_type == "dns-01":
            raise AcmeProblem("malformed", "dns-01 cannot prove an IP address (RFC 8738)")
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
        if self.nameserver is None:
            resolver = dns.asyncresolver.Resolver()
        else:
            resolver = dns.asyncresolver.Resolver(configure=False)
            resolver.nameservers = [self.nameserver[0]]
            resolver.port = self.nameserver[1]
        resolver.lifetime = self.timeout
        return resolver

    async def _addresses(self, identifier_type: str, name: str) -> list[IPAddress]:
        """The checked addresses of ``name``, IPv6 first (as the RFC 8555 §8.3 note suggests)."""
        if identifier_type == "ip":
            found: list[IPAddress] = [ipaddress.ip_address(name)]
        else:
            try:
                found = [ipaddress.ip_address(name)]
            except ValueError:
                found = await self._lookup(name)
        allowed = [a for a in found if refusal(a, allow_loopback=self.allow_loopback) is None]
        if not allowed:
            reason = refusal(found[0], allow_loopback=self.allow_loopback)
            raise AcmeProblem(
                "rejectedIdentifier" if identifier_type == "ip" else "connection",
                f"{name} resolves to {reason} ({found[0]}), which certctl does not connect to",
            )
        return sorted(allowed, key=lambda a: a.version, reverse=True)

    async def _lookup(self, name: str) -> list[IPAddress]:
        if self.nameserver is None:  # the system's view, /etc/hosts included
            try:
                infos = await asyncio.wait_for(
                    asyncio.get_running_loop().getaddrinfo(name, None, type=socket.SOCK_STREAM),
                    self.timeout,
                )
            except (OSError, TimeoutError) as exc:
                raise AcmeProblem("dns", f"cannot resolve {name}: {exc}") from None
            return list(dict.fromkeys(ipaddress.ip_address(i[4][0]) for i in infos))
        resolver = self._resolver()
        found: list[IPAddress] = []
        for rdtype in ("AAAA", "A"):
            try:
                answer = await resolver.resolve(name, rdtype)
            except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
                continue
            except dns.exception.DNSException as exc:
                raise AcmeProblem("dns", f"cannot resolve {name}: {exc}") from None
            found += [ipaddress.ip_address(r.address) for r in answer]
        if not found:
            raise AcmeProblem("dns", f"{name} has no A or AAAA record")
        return found

    # --- http-01 -----------------------------------------------------------------------

    async def _http01(
        self, identifier_type: str, name: str, token: str, key_authorization: str
    ) -> None:
        host = f"[{name}]" if identifier_type == "ip" and ":" in name else name
        url = httpx.URL(
            f"http://{host}:{self.settings.acme_http01_port}/.well-known/acme-challenge/{token}"
        )
        ports = {80, 443, self.settings.acme_http01_port}
        async with httpx.AsyncClient(
            verify=False,  # noqa: S501 - RFC 8555 §8.3: an https redirect's certificate is not checked
            trust_env=False,
            follow_redirects=False,
            timeout=self.timeout,
        ) as client:
            for _ in range(MAX_REDIRECTS + 1):
                status, location, body = await self._fetch(client, url)
                if status in _REDIRECTS and location:
                    url = self._redirect(url, location, ports)
                    continue
                if status != 200:
                    raise AcmeProblem(
                        "incorrectResponse",
                        f"{url} answered HTTP {status}, not the key authorization",
                    )
                if len(body) > MAX_BODY:
                    raise AcmeProblem("incorrectResponse", f"{url} answered over {MAX_BODY} bytes")
                if body.decode("utf-8", "replace").rstrip() != key_authorization:
                    raise AcmeProblem(
                        "incorrectResponse",
                        f"{url} answered {body[:100].decode('utf-8', 'replace')!r}, "
                        "not the key authorization",
                    )
                return
        raise AcmeProblem("connection", f"more than {MAX_REDIRECTS} redirects")

    def _redirect(self, current: httpx.URL, location: str, ports: set[int]) -> httpx.URL:
        try:
            target = current.join(location)
        except httpx.InvalidURL:
            raise AcmeProblem("connection", f"bad redirect {location[:100]!r}") from None
        if target.scheme not in ("http", "https") or not target.host:
            raise AcmeProblem("connection", f"redirect to {str(target)[:100]} is not http(s)")
        port = target.port or (443 if target.scheme == "https" else 80)
        if port not in ports:
            raise AcmeProblem("connection", f"redirect to port {port}: only 80 and 443")
        return target

    async def _fetch(self, client: httpx.AsyncClient, url: httpx.URL) -> tuple[int, str, bytes]:
        """GET ``url`` from one of its host's checked addresses; (status, Location, body)."""
        name = url.host
        sni = url.scheme == "https" and not _is_ip(name)
        port = url.port or (443 if url.scheme == "https" else 80)
        error: Exception | None = None
        for address in await self._addresses("dns", name):
            pinned = url.copy_with(host=str(address), port=port)
            extensions = {"sni_hostname": name} if sni else {}
            try:
                async with client.stream(
                    "GET",
                    pinned,
                    headers={"Host": url.netloc.decode(), "User-Agent": "certctl-acme-validator"},
                    extensions=extensions,
                ) as response:
                    body = b""
                    async for chunk in response.aiter_bytes():
                        body += chunk
                        if len(body) > MAX_BODY:
                            break
                    return response.status_code, response.headers.get("location", ""), body
            except (httpx.TransportError, OSError, ssl.SSLError) as exc:
                error = exc
        raise AcmeProblem("connection", f"cannot fetch {url}: {error}")

    # --- dns-01 ------------------------------------------------------------------------

    async def _dns01(self, name: str, key_authorization: str) -> None:
        record = f"_acme-challenge.{name}"
        expected = base64.urlsafe_b64encode(_digest(key_authorization)).rstrip(b"=").decode()
        try:
            answer = await self._resolver().resolve(record, "TXT")
        except dns.resolver.NXDOMAIN:
            raise AcmeProblem("dns", f"{record} does not exist") from None
        except dns.resolver.NoAnswer:
            raise AcmeProblem("dns", f"{record} has no TXT record") from None
        except dns.exception.DNSException as exc:
            raise AcmeProblem("dns", f"cannot look up {record}: {exc}") from None
        values = [b"".join(r.strings).decode("utf-8", "replace") for r in answer]
        if expected not in values:
            shown = ", ".join(repr(v[:60]) for v in values[:3])
            raise AcmeProblem(
                "incorrectResponse", f"{record} has {shown}, not the key authorization digest"
            )

    # --- tls-alpn-01 -------------------------------------------------------------------

    async def _tls_alpn01(self, identifier_type: str, name: str, key_authorization: str) -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # RFC 8737 §3: the chain is not validated
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.set_alpn_protocols([ALPN])
        sni = ipaddress.ip_address(name).reverse_pointer if identifier_type == "ip" else name
        port = self.settings.acme_tlsalpn01_port
        error: Exception | None = None
        for address in await self._addresses(identifier_type, name):
            try:
                _, writer = await asyncio.wait_for(
                    asyncio.open_connection(str(address), port, ssl=context, server_hostname=sni),
                    self.timeout,
                )
            except (OSError, ssl.SSLError, TimeoutError) as exc:
                error = exc
                continue
            try:
                tls = writer.get_extra_info("ssl_object")
                protocol = tls.selected_alpn_protocol() if tls else None
                der = tls.getpeercert(binary_form=True) if tls else None
            finally:
                writer.close()
            if protocol != ALPN:
                raise AcmeProblem("tls", f"{name}:{port} did not negotiate ALPN {ALPN}")
            if not der:
                raise AcmeProblem("tls", f"{name}:{port} presented no certificate")
            _check_alpn_certificate(der, identifier_type, name, key_authorization)
            return
        raise AcmeProblem("tls", f"cannot complete a TLS handshake with {name}:{port}: {error}")


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _check_alpn_certificate(
    der: bytes, identifier_type: str, name: str, key_authorization: str
) -> None:
    """RFC 8737 §3: one SAN, the identifier; a critical acmeIdentifier with the digest."""
    try:
        cert = x509.load_der_x509_certificate(der)
        sans = list(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        raise AcmeProblem("incorrectResponse", "the certificate has no subjectAltName") from None
    except ValueError as exc:
        raise AcmeProblem("tls", f"the certificate cannot be parsed: {exc}") from None
    wanted: x509.GeneralName = (
        x509.IPAddress(ipaddress.ip_address(name))
        if identifier_type == "ip"
        else x509.DNSName(name)
    )
    if len(sans) != 1 or _lower(sans[0]) != _lower(wanted):
        raise AcmeProblem(
            "incorrectResponse", f"the certificate must name exactly {name}, not {len(sans)} SANs"
        )
    try:
        extension = cert.extensions.get_extension_for_oid(ACME_IDENTIFIER_OID)
    except x509.ExtensionNotFound:
        raise AcmeProblem("incorrectResponse", "the certificate has no acmeIdentifier") from None
    if not extension.critical:
        raise AcmeProblem("incorrectResponse", "the acmeIdentifier extension is not critical")
    value = getattr(extension.value, "value", b"")
    if value != b"\x04\x20" + _digest(key_authorization):
        raise AcmeProblem(
            "incorrectResponse", "the acmeIdentifier is not the key authorization digest"
        )


def _lower(general: x509.GeneralName) -> object:
    return general.value.lower() if isinstance(general, x509.DNSName) else general.value
