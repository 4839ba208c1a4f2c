"""The challenge validators against real servers on 127.0.0.1: HTTP, UDP DNS and TLS-ALPN.

Every name the validator resolves is answered by the DNS server of this file, which also
counts the queries, so a test can tell that a connection went to the checked address (the
system resolver knows none of these names) and that no second resolution happened.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import ipaddress
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from certctl.domain.acme.addresses import parse_resolver, refusal
from certctl.domain.acme.problems import AcmeProblem
from certctl.domain.acme.validation import ACME_IDENTIFIER_OID, Validator
from certctl.settings import Settings

TOKEN = "tok3n_-AbC"
KEY_AUTH = f"{TOKEN}.thumbprint-of-the-account-key"
DIGEST = hashlib.sha256(KEY_AUTH.encode()).digest()
TXT_VALUE = base64.urlsafe_b64encode(DIGEST).rstrip(b"=").decode()
CHALLENGE_PATH = f"/.well-known/acme-challenge/{TOKEN}"


# --- a tiny authoritative-and-recursive DNS server ------------------------------------


class DnsServer(asyncio.DatagramProtocol):
    """Answers from ``records`` like a recursive resolver would: CNAMEs chased in one answer."""

    def __init__(self) -> None:
        self.records: dict[tuple[str, str], list[str]] = {}
        self.cnames: dict[str, str] = {}
        self.servfail: set[str] = set()
        self.silent: set[str] = set()
        self.queries: list[tuple[str, str]] = []
        self.transport: asyncio.DatagramTransport | None = None
        self.port = 0

    def add(self, name: str, rdtype: str, *values: str) -> None:
        self.records.setdefault((name, rdtype), []).extend(values)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a datagram one

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        query = dns.message.from_wire(data)
        question = query.question[0]
        name = question.name.to_text(omit_final_dot=True).lower()
        rdtype = dns.rdatatype.to_text(question.rdtype)
        self.queries.append((name, rdtype))
        if name in self.silent:
            return
        response = dns.message.make_response(query)
        if name in self.servfail:
            response.set_rcode(dns.rcode.SERVFAIL)
        else:
            owner = name
            while owner in self.cnames:
                target = self.cnames[owner]
                response.answer.append(
                    dns.rrset.from_text(owner + ".", 60, "IN", "CNAME", target + ".")
                )
                owner = target
            values = self.records.get((owner, rdtype))
            if values:
                response.answer.append(dns.rrset.from_text(owner + ".", 60, "IN", rdtype, *values))
            elif not any(key[0] == owner for key in self.records):
                response.set_rcode(dns.rcode.NXDOMAIN)
        assert self.transport is not None
        self.transport.sendto(response.to_wire(), addr)

    def count(self, name: str) -> int:
        return sum(1 for queried, _ in self.queries if queried == name)


@pytest.fixture
async def dns_server() -> AsyncIterator[DnsServer]:
    server = DnsServer()
    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
        lambda: server, local_addr=("127.0.0.1", 0)
    )
    server.port = transport.get_extra_info("sockname")[1]
    yield server
    transport.close()


# --- a tiny HTTP/1.1 server ------------------------------------------------------------


@dataclass
class Route:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    hold: asyncio.Event | None = None
    """Answer only once this is set (the request is recorded at once)."""


@dataclass
class Request:
    path: str
    host: str
    headers: dict[str, str]


class WebServer:
    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[Request] = []
        self.arrived = asyncio.Condition()
        self.sni: list[str | None] = []
        self.port = 0

    def answer(self, path: str, body: str | bytes, status: int = 200) -> None:
        self.routes[path] = Route(status, body.encode() if isinstance(body, str) else body)

    def redirect(self, path: str, location: str, status: int = 302) -> None:
        self.routes[path] = Route(status, b"", {"Location": location})

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            line, *rest = head.split("\r\n")
            _, path, _ = line.split(" ", 2)
            headers = {
                k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in rest if h)
            }
            async with self.arrived:
                self.requests.append(Request(path, headers.get("host", ""), headers))
                self.arrived.notify_all()
            route = self.routes.get(path, Route(404, b"no such page"))
            if route.hold is not None:
                await route.hold.wait()
            extra = "".join(f"{k}: {v}\r\n" for k, v in route.headers.items())
            writer.write(
                f"HTTP/1.1 {route.status} Whatever\r\nContent-Length: {len(route.body)}\r\n"
                f"Connection: close\r\n{extra}\r\n".encode()
                + route.body
            )
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            writer.close()

    async def wait_for_request(self, path: str) -> None:
        async with self.arrived:
            await self.arrived.wait_for(lambda: any(r.path == path for r in self.requests))


@pytest.fixture
async def web_servers() -> AsyncIterator[Callable[..., Awaitable[WebServer]]]:
    servers: list[asyncio.Server] = []

    async def start(tls: ssl.SSLContext | None = None) -> WebServer:
        web = WebServer()
        if tls is not None:
            tls.sni_callback = lambda _obj, name, _ctx: web.sni.append(name)
        server = await asyncio.start_server(web.handle, "127.0.0.1", 0, ssl=tls)
        servers.append(server)
        web.port = server.sockets[0].getsockname()[1]
        return web

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


@pytest.fixture
async def web(web_servers: Callable[..., Awaitable[WebServer]]) -> WebServer:
    return await web_servers()


def settings_for(dns_server: DnsServer, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "acme_dns_resolver": f"127.0.0.1:{dns_server.port}",
        "acme_validation_allow_loopback": True,
        "acme_validation_timeout_seconds": 5.0,
        **overrides,
    }
    return Settings(**values)


async def validate(settings: Settings, kind: str, identifier: str, **kw: str) -> None:
    await Validator(settings).validate(
        challenge_type=kind,
        identifier_type=kw.pop("identifier_type", "dns"),
        identifier=identifier,
        token=kw.pop("token", TOKEN),
        key_authorization=kw.pop("key_authorization", KEY_AUTH),
    )


async def refused(settings: Settings, kind: str, identifier: str, **kw: str) -> AcmeProblem:
    with pytest.raises(AcmeProblem) as caught:
        await validate(settings, kind, identifier, **kw)
    return caught.value


def free_port() -> int:
    """A port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- http-01 -----------------------------------------------------------------------------


async def test_http01_connects_to_the_checked_address_with_the_name_as_host(dns_server, web):
    dns_server.add("web.test", "A", "127.0.0.1")
    web.answer(CHALLENGE_PATH, KEY_AUTH + "\r\n\t ")  # trailing whitespace is ignored
    await validate(settings_for(dns_server, acme_http01_port=web.port), "http-01", "web.test")
    [request] = web.requests
    assert request.path == CHALLENGE_PATH
    assert request.host == f"web.test:{web.port}"
    # Resolved once (A and AAAA), then pinned: nobody asked again at connect time.
    assert sorted(dns_server.queries) == [("web.test", "A"), ("web.test", "AAAA")]


async def test_http01_ip_identifier_sends_the_address_as_host(dns_server, web):
    web.answer(CHALLENGE_PATH, KEY_AUTH)
    settings = settings_for(dns_server, acme_http01_port=web.port)
    await validate(settings, "http-01", "127.0.0.1", identifier_type="ip")
    assert web.requests[0].host == f"127.0.0.1:{web.port}"
    assert dns_server.queries == []


async def test_http01_falls_back_from_ipv6_to_ipv4(dns_server, web):
    # Nothing of ours listens on ::1 (the server binds 127.0.0.1 only).
    dns_server.add("dual.test", "AAAA", "::1")
    dns_server.add("dual.test", "A", "127.0.0.1")
    web.answer(CHALLENGE_PATH, KEY_AUTH)
    await validate(settings_for(dns_server, acme_http01_port=web.port), "http-01", "dual.test")
    assert len(web.requests) == 1


async def test_http01_system_resolver_resolves_localhost(web):
    web.answer(CHALLENGE_PATH, KEY_AUTH)
    settings = Settings(acme_http01_port=web.port, acme_validation_allow_loopback=True)
    await validate(settings, "http-01", "localhost")


@pytest.mark.parametrize(
    ("route", "detail"),
    [
        (Route(200, b"SECRET-internal-page"), "bytes that are not the key authorization"),
        (Route(200, b"x" * 9000), "more than 8192 bytes"),
        (Route(200, KEY_AUTH.encode() + b" " * 9000), "more than 8192 bytes"),
        (Route(500, KEY_AUTH.encode()), "HTTP 500"),
        (Route(302, KEY_AUTH.encode()), "HTTP 302"),  # a redirect without Location
    ],
)
async def test_http01_wrong_answers_are_incorrect_responses(dns_server, web, route, detail):
    dns_server.add("web.test", "A", "127.0.0.1")
    web.routes[CHALLENGE_PATH] = route
    problem = await refused(
        settings_for(dns_server, acme_http01_port=web.port), "http-01", "web.test"
    )
    assert problem.kind == "incorrectResponse"
    assert detail in problem.detail
    assert "SECRET" not in problem.detail  # the body of what answered is never echoed


async def test_http01_missing_token_is_404(dns_server, web):
    dns_server.add("web.test", "A", "127.0.0.1")
    problem = await refused(
        settings_for(dns_server, acme_http01_port=web.port), "http-01", "web.test"
    )
    assert (problem.kind, "HTTP 404" in problem.detail) == ("incorrectResponse", True)


async def test_http01_follows_redirects_to_other_hosts_and_https(dns_server, web_servers, tmp_path):
    plain = await web_servers()
    secure = await web_servers(server_context(tmp_path, self_signed(["other.test"])))
    dns_server.add("web.test", "A", "127.0.0.1")
    dns_server.add("other.test", "A", "127.0.0.1")
    plain.redirect(CHALLENGE_PATH, "/moved", 301)
    plain.redirect("/moved", f"http://other.test:{plain.port}/again", 307)
    plain.redirect("/again", f"https://other.test:{secure.port}/final")
    secure.answer("/final", KEY_AUTH)
    settings = settings_for(
        dns_server, acme_http01_port=plain.port, acme_tlsalpn01_port=secure.port
    )
    await validate(settings, "http-01", "web.test")
    assert [(r.path, r.host) for r in plain.requests] == [
        (CHALLENGE_PATH, f"web.test:{plain.port}"),
        ("/moved", f"web.test:{plain.port}"),
        ("/again", f"other.test:{plain.port}"),
    ]
    assert [(r.path, r.host) for r in secure.requests] == [("/final", f"other.test:{secure.port}")]
    assert secure.sni == ["other.test"]  # the certificate itself is not verified


async def test_http01_follows_ten_redirects_but_not_eleven(dns_server, web):
    dns_server.add("web.test", "A", "127.0.0.1")
    web.redirect(CHALLENGE_PATH, "/hop/1")
    for hop in range(1, 10):
        web.redirect(f"/hop/{hop}", f"/hop/{hop + 1}")
    web.answer("/hop/10", KEY_AUTH)
    settings = settings_for(dns_server, acme_http01_port=web.port)
    await validate(settings, "http-01", "web.test")
    assert len(web.requests) == 11
    web.redirect("/hop/10", "/hop/11")
    web.answer("/hop/11", KEY_AUTH)
    problem = await refused(settings, "http-01", "web.test")
    assert (problem.kind, problem.detail) == ("connection", "more than 10 redirects")
    assert web.requests[-1].path == "/hop/10"  # /hop/11 was never fetched


async def test_http01_redirect_loop_ends(dns_server, web):
    dns_server.add("web.test", "A", "127.0.0.1")
    web.redirect(CHALLENGE_PATH, CHALLENGE_PATH)
    problem = await refused(
        settings_for(dns_server, acme_http01_port=web.port), "http-01", "web.test"
    )
    assert problem.kind == "connection" and "redirects" in problem.detail
    assert len(web.requests) == 11


@pytest.mark.parametrize(
    ("location", "detail"),
    [
        ("http://169.254.169.254:{port}/latest/meta-data/", "is a link-local address"),
        ("http://metadata.test:{port}/", "resolves to a link-local address"),
        ("http://mixed.test:{port}/", "resolves to a multicast address"),
        ("http://[::ffff:169.254.169.254]:{port}/", "is a link-local address"),
        ("http://127.0.0.1:22/", "port 22"),
        ("ftp://web.test/file", "is not http(s)"),
        ("http://user:pw@web.test:{port}/", "is not http(s)"),
    ],
)
async def test_http01_refused_redirects_are_not_followed(dns_server, web, location, detail):
    dns_server.add("web.test", "A", "127.0.0.1")
    dns_server.add("metadata.test", "A", "169.254.169.254")
    dns_server.add("mixed.test", "A", "127.0.0.1", "224.0.0.1")  # every address must pass
    web.redirect(CHALLENGE_PATH, location.format(port=web.port))
    web.answer("/", KEY_AUTH)
    problem = await refused(
        settings_for(dns_server, acme_http01_port=web.port), "http-01", "web.test"
    )
    assert problem.kind == "connection"
    assert detail in problem.detail
    assert [r.path for r in web.requests] == [CHALLENGE_PATH]


async def test_http01_redirect_to_a_missing_name_is_a_dns_problem(dns_server, web):
    dns_server.add("web.test", "A", "127.0.0.1")
    web.redirect(CHALLENGE_PATH, f"http://nowhere.test:{web.port}/")
    problem = await refused(
        settings_for(dns_server, acme_http01_port=web.port), "http-01", "web.test"
    )
    assert (problem.kind, problem.detail) == ("dns", "nowhere.test does not exist (NXDOMAIN)")


async def test_http01_loopback_is_refused_by_default(dns_server, web):
    dns_server.add("web.test", "A", "127.0.0.1")
    web.answer(CHALLENGE_PATH, KEY_AUTH)
    settings = settings_for(
        dns_server, acme_http01_port=web.port, acme_validation_allow_loopback=False
    )
    problem = await refused(settings, "http-01", "web.test")
    assert problem.kind == "connection"
    assert (
        problem.detail
        == "web.test resolves to a loopback address, which certctl does not connect to"
    )
    problem = await refused(settings, "http-01", "127.0.0.1", identifier_type="ip")
    assert problem.kind == "rejectedIdentifier"
    problem = await refused(settings, "tls-alpn-01", "::ffff:127.0.0.1", identifier_type="ip")
    assert (problem.kind, "loopback" in problem.detail) == ("rejectedIdentifier", True)
    assert web.requests == []


async def test_http01_name_without_addresses_is_a_dns_problem(dns_server):
    dns_server.add("txtonly.test", "TXT", '"hello"')
    settings = settings_for(dns_server)
    problem = await refused(settings, "http-01", "txtonly.test")
    assert (problem.kind, problem.detail) == ("dns", "txtonly.test has no A or AAAA record")
    problem = await refused(settings, "http-01", "missing.test")
    assert (problem.kind, problem.detail) == ("dns", "missing.test does not exist (NXDOMAIN)")


async def test_http01_nobody_listening_is_a_connection_problem(dns_server):
    dns_server.add("web.test", "A", "127.0.0.1")
    problem = await refused(
        settings_for(dns_server, acme_http01_port=free_port()), "http-01", "web.test"
    )
    assert problem.kind == "connection" and "cannot fetch" in problem.detail


async def test_http01_silent_server_times_out_as_a_connection_problem(dns_server):
    dns_server.add("web.test", "A", "127.0.0.1")
    with socket.socket() as silent:  # the kernel accepts; nobody ever answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        settings = settings_for(
            dns_server,
            acme_http01_port=silent.getsockname()[1],
            acme_validation_timeout_seconds=0.3,
        )
        problem = await refused(settings, "http-01", "web.test")
    assert (problem.kind, problem.detail.endswith("timed out")) == ("connection", True)


async def test_validations_beyond_the_limit_wait_their_turn(dns_server, web):
    dns_server.add("web.test", "A", "127.0.0.1")
    release = asyncio.Event()
    web.routes["/.well-known/acme-challenge/first"] = Route(200, b"first.k", hold=release)
    web.answer("/.well-known/acme-challenge/second", "second.k")
    validator = Validator(
        settings_for(dns_server, acme_http01_port=web.port, acme_http01_concurrency=1)
    )

    def start(token: str) -> asyncio.Task[None]:
        return asyncio.create_task(
            validator.validate(
                challenge_type="http-01",
                identifier_type="dns",
                identifier="web.test",
                token=token,
                key_authorization=f"{token}.k",
            )
        )

    first = start("first")
    await web.wait_for_request("/.well-known/acme-challenge/first")
    second = start("second")
    done, _ = await asyncio.wait({second}, timeout=0.3)  # a chance to overtake; it must not
    assert done == set()
    assert [r.path.rsplit("/", 1)[1] for r in web.requests] == ["first"]
    release.set()
    await asyncio.gather(first, second)
    assert [r.path.rsplit("/", 1)[1] for r in web.requests] == ["first", "second"]


# --- dns-01 ------------------------------------------------------------------------------


async def test_dns01_finds_the_digest_among_several_records(dns_server):
    dns_server.add("_acme-challenge.site.test", "TXT", '"stale-value"', f'"{TXT_VALUE}"')
    await validate(settings_for(dns_server), "dns-01", "site.test")
    assert dns_server.queries == [("_acme-challenge.site.test", "TXT")]


async def test_dns01_follows_cnames_and_joins_txt_strings(dns_server):
    dns_server.cnames["_acme-challenge.site.test"] = "delegated.test"
    dns_server.cnames["delegated.test"] = "validation.other.test"
    half = len(TXT_VALUE) // 2
    dns_server.add("validation.other.test", "TXT", f'"{TXT_VALUE[:half]}" "{TXT_VALUE[half:]}"')
    await validate(settings_for(dns_server), "dns-01", "site.test")


@pytest.mark.parametrize(
    ("setup", "kind", "detail"),
    [
        (
            lambda s: s.add("_acme-challenge.site.test", "TXT", '"wrong"', f'"{TXT_VALUE}x"'),
            "incorrectResponse",
            "none of the 2 TXT records at _acme-challenge.site.test is the key authorization digest",
        ),
        (lambda s: None, "dns", "_acme-challenge.site.test does not exist (NXDOMAIN)"),
        (
            lambda s: s.add("_acme-challenge.site.test", "A", "10.0.0.1"),
            "dns",
            "_acme-challenge.site.test has no TXT record",
        ),
        (
            lambda s: s.cnames.update({"_acme-challenge.site.test": "gone.test"}),
            "dns",
            "does not exist (NXDOMAIN)",
        ),
        (
            lambda s: s.servfail.add("_acme-challenge.site.test"),
            "dns",
            "no DNS server answered for _acme-challenge.site.test (SERVFAIL or refused)",
        ),
    ],
)
async def test_dns01_failures(dns_server, setup, kind, detail):
    setup(dns_server)
    problem = await refused(settings_for(dns_server), "dns-01", "site.test")
    assert problem.kind == kind
    assert detail in problem.detail


async def test_dns01_unanswered_query_is_a_connection_problem(dns_server):
    dns_server.silent.add("_acme-challenge.site.test")
    settings = settings_for(dns_server, acme_validation_timeout_seconds=0.3)
    problem = await refused(settings, "dns-01", "site.test")
    assert problem.kind == "connection" and "timed out" in problem.detail


async def test_bad_requests_are_malformed(dns_server):
    settings = settings_for(dns_server)
    for kind, identifier, identifier_type in [
        ("dns-01", "10.0.0.1", "ip"),  # RFC 8738: no dns-01 for addresses
        ("http-01", "not-an-address", "ip"),
        ("http-99", "site.test", "dns"),
        ("http-01", "site.test", "email"),
    ]:
        problem = await refused(settings, kind, identifier, identifier_type=identifier_type)
        assert problem.kind == "malformed", (kind, identifier_type)
    assert dns_server.queries == []


# --- tls-alpn-01 ---------------------------------------------------------------------------


def self_signed(
    names: list[str],
    *,
    acme_value: bytes | None = None,
    critical: bool = True,
) -> tuple[bytes, bytes]:
    """(certificate PEM, key PEM) naming ``names``, with an acmeIdentifier when given."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    sans: list[x509.GeneralName] = []
    for name in names:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            sans.append(x509.DNSName(name))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "acme tls/1 test")])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
    )
    if acme_value is not None:
        builder = builder.add_extension(
            x509.UnrecognizedExtension(ACME_IDENTIFIER_OID, acme_value), critical=critical
        )
    cert = builder.sign(key, hashes.SHA256())
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def server_context(
    tmp_path: Path, pair: tuple[bytes, bytes], alpn: list[str] | None = None
) -> ssl.SSLContext:
    cert_file, key_file = tmp_path / f"{id(pair)}.crt", tmp_path / f"{id(pair)}.key"
    cert_file.write_bytes(pair[0])
    key_file.write_bytes(pair[1])
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    if alpn:
        context.set_alpn_protocols(alpn)
    return context


@dataclass
class AlpnServer:
    port: int
    sni: list[str | None]


@pytest.fixture
async def alpn_server(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[AlpnServer]]]:
    servers: list[asyncio.Server] = []

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, ssl.SSLError):
            await reader.read(1)
        writer.close()

    async def start(pair: tuple[bytes, bytes], alpn: list[str] | None = None) -> AlpnServer:
        context = server_context(tmp_path, pair, ["acme-tls/1"] if alpn is None else alpn)
        sni: list[str | None] = []
        context.sni_callback = lambda _obj, name, _ctx: sni.append(name)
        server = await asyncio.start_server(hang_up, "127.0.0.1", 0, ssl=context)
        servers.append(server)
        return AlpnServer(server.sockets[0].getsockname()[1], sni)

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


GOOD_VALUE = b"\x04\x20" + DIGEST


async def test_tls_alpn01_accepts_the_right_certificate(dns_server, alpn_server):
    dns_server.add("tls.test", "A", "127.0.0.1")
    server = await alpn_server(self_signed(["TLS.test"], acme_value=GOOD_VALUE))
    await validate(
        settings_for(dns_server, acme_tlsalpn01_port=server.port), "tls-alpn-01", "tls.test"
    )
    assert server.sni == ["tls.test"]


async def test_tls_alpn01_ip_identifier_uses_the_reverse_name_as_sni(dns_server, alpn_server):
    server = await alpn_server(self_signed(["127.0.0.1"], acme_value=GOOD_VALUE))
    settings = settings_for(dns_server, acme_tlsalpn01_port=server.port)
    await validate(settings, "tls-alpn-01", "127.0.0.1", identifier_type="ip")
    assert server.sni == ["1.0.0.127.in-addr.arpa"]


@pytest.mark.parametrize(
    ("names", "value", "critical", "alpn", "kind", "detail"),
    [
        (
            ["tls.test"],
            b"\x04\x20" + hashlib.sha256(b"someone else").digest(),
            True,
            None,
            "unauthorized",
            "not the digest of this key authorization",
        ),
        (["tls.test"], GOOD_VALUE, False, None, "incorrectResponse", "is not critical"),
        (
            ["tls.test", "extra.test"],
            GOOD_VALUE,
            True,
            None,
            "incorrectResponse",
            "2 subjectAltNames",
        ),
        (["other.test"], GOOD_VALUE, True, None, "incorrectResponse", "does not name tls.test"),
        (["127.0.0.1"], GOOD_VALUE, True, None, "incorrectResponse", "does not name tls.test"),
        (["tls.test"], None, True, None, "incorrectResponse", "no acmeIdentifier extension"),
        (["tls.test"], DIGEST, True, None, "incorrectResponse", "32-byte DER OCTET STRING"),
        (["tls.test"], GOOD_VALUE, True, ["http/1.1"], "tls", "did not negotiate ALPN acme-tls/1"),
        (["tls.test"], GOOD_VALUE, True, [], "tls", "did not negotiate ALPN acme-tls/1"),
    ],
)
async def test_tls_alpn01_wrong_certificates(
    dns_server, alpn_server, names, value, critical, alpn, kind, detail
):
    dns_server.add("tls.test", "A", "127.0.0.1")
    server = await alpn_server(self_signed(names, acme_value=value, critical=critical), alpn)
    settings = settings_for(dns_server, acme_tlsalpn01_port=server.port)
    problem = await refused(settings, "tls-alpn-01", "tls.test")
    assert problem.kind == kind
    assert detail in problem.detail


async def test_tls_alpn01_without_a_server(dns_server):
    dns_server.add("tls.test", "A", "127.0.0.1")
    settings = settings_for(dns_server, acme_tlsalpn01_port=free_port())
    problem = await refused(settings, "tls-alpn-01", "tls.test")
    assert problem.kind == "connection" and "tls.test" in problem.detail


async def test_tls_alpn01_plain_tcp_peer_is_a_tls_problem(dns_server):
    async def not_tls(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(not_tls, "127.0.0.1", 0)
    dns_server.add("tls.test", "A", "127.0.0.1")
    settings = settings_for(dns_server, acme_tlsalpn01_port=server.sockets[0].getsockname()[1])
    try:
        problem = await refused(settings, "tls-alpn-01", "tls.test")
    finally:
        server.close()
    assert problem.kind == "tls" and "handshake failed" in problem.detail


# --- address policy and resolver setting ---------------------------------------------------


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "a loopback address"),
        ("127.8.9.10", "a loopback address"),
        ("::1", "a loopback address"),
        ("::ffff:127.0.0.1", "a loopback address"),
        ("169.254.169.254", "a link-local address"),
        ("::ffff:169.254.169.254", "a link-local address"),
        ("64:ff9b::a9fe:a9fe", "a link-local address"),  # NAT64 of the metadata endpoint
        ("fe80::1", "a link-local address"),
        ("fd00:ec2::254", "a cloud metadata address"),
        ("100.100.100.200", "a cloud metadata address"),
        ("0.0.0.0", "an unspecified address"),
        ("0.1.2.3", "an unspecified address"),
        ("::", "an unspecified address"),
        ("224.0.0.251", "a multicast address"),
        ("ff02::1", "a multicast address"),
        ("255.255.255.255", "a broadcast address"),
        ("240.0.0.1", "a reserved address"),
        ("fec0::1", "a reserved address"),
        ("::7f00:1", "a reserved address"),  # IPv4-compatible, deprecated
    ],
)
def test_refused_addresses(address, reason):
    assert refusal(ipaddress.ip_address(address), allow_loopback=False) == reason


@pytest.mark.parametrize(
    "address",
    [
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "100.64.0.1",
        "fd12:3456::1",
        "8.8.8.8",
        "2001:4860:4860::8888",
        "::ffff:10.0.0.1",
        "64:ff9b::808:808",
    ],
)
def test_private_and_public_addresses_are_allowed(address):
    assert refusal(ipaddress.ip_address(address), allow_loopback=False) is None


def test_loopback_only_when_allowed():
    for address in ("127.0.0.1", "::1", "::ffff:127.0.0.1"):
        assert refusal(ipaddress.ip_address(address), allow_loopback=True) is None
    # The switch opens loopback only, not the metadata service.
    assert refusal(ipaddress.ip_address("169.254.169.254"), allow_loopback=True) is not None


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("", None),
        ("  ", None),
        ("10.0.0.53", ("10.0.0.53", 53)),
        ("127.0.0.1:5353", ("127.0.0.1", 5353)),
        ("::1", ("::1", 53)),
        ("[::1]", ("::1", 53)),
        ("[fd00::53]:5300", ("fd00::53", 5300)),
    ],
)
def test_parse_resolver(value, parsed):
    assert parse_resolver(value) == parsed


@pytest.mark.parametrize(
    "value",
    [
        "dns.example",
        "dns.example:53",
        "10.0.0.53:",
        "10.0.0.53:0",
        "10.0.0.53:65536",
        "10.0.0.53:x",
        "[::1",
        "[::1]53",
        "[10.0.0.1]:53",
        "1.2.3.4:5:6x",
    ],
)
def test_parse_resolver_refuses_non_literals(value):
    with pytest.raises(ValueError):
        parse_resolver(value)
