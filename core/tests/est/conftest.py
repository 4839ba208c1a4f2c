"""EST test fixtures: a running app with a Local CA, EST profiles, and a TLS-facts injector.

The in-process client has no TLS, so :class:`PeerInjector` plays the listener's part: it puts
the facts a TLS connection would carry (client certificate DER, version, tls-exporter value)
into each request's scope exactly where ``certctl.lib.peer_tls`` reads them. Everything behind
it (the handlers, the job engine, the Local CA) is the real thing; tests/integration/est runs
the same flows through a real listener with curl and openssl.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID

from certctl.domain.est.settings import EstSettings
from certctl.lib.peer_tls import PeerTLS

ADMIN = {"Authorization": "Bearer admin-test-key-0123456789"}
PASSWORD = "enroll-secret-123"


class PeerInjector:
    """ASGI wrapper adding ``peer`` (when set) as the request's TLS facts."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.peer: PeerTLS | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and self.peer is not None:
            scope.setdefault("extensions", {})["tls"] = {"certctl.peer": self.peer}
        await self.app(scope, receive, send)


def make_csr(
    cn: str = "dev1.example.com",
    *,
    key: Any = None,
    sans: list[str] | None = None,
    challenge: bytes | None = None,
    attributes: list[tuple[x509.ObjectIdentifier, bytes, Any]] | None = None,
) -> tuple[bytes, Any]:
    """(DER CSR, private key)."""
    from cryptography.x509.name import _ASN1Type

    key = key or ec.generate_private_key(ec.SECP256R1())
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    )
    if sans:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(s) for s in sans]), critical=False
        )
    if challenge is not None:
        builder = builder.add_attribute(
            x509.oid.AttributeOID.CHALLENGE_PASSWORD, challenge, _tag=_ASN1Type.UTF8String
        )
    for oid, value, tag in attributes or ():
        builder = builder.add_attribute(oid, value, _tag=tag or _ASN1Type.OctetString)
    csr = builder.sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.DER), key


def b64(der: bytes) -> bytes:
    """Base64 in 64-character CRLF lines, as EST clients send it."""
    text = base64.b64encode(der)
    return b"\r\n".join(text[i : i + 64] for i in range(0, len(text), 64)) + b"\r\n"


def certs_of(response: httpx.Response) -> list[x509.Certificate]:
    """The certificates of a certs-only answer."""
    assert response.headers["content-type"] == "application/pkcs7-mime; smime-type=certs-only"
    assert response.headers["content-transfer-encoding"] == "base64"
    return pkcs7.load_der_pkcs7_certificates(base64.b64decode(response.content))


def basic(user: str = "device", password: str = PASSWORD) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


PKCS10 = {"Content-Type": "application/pkcs10", "Content-Transfer-Encoding": "base64"}


@dataclass
class Est:
    """An app serving EST, its Local CA issuer and the TLS facts its requests carry."""

    http: httpx.AsyncClient
    api: httpx.AsyncClient
    injector: PeerInjector
    issuer_id: str
    profile_ids: dict[str, str]
    ca_pem: Path
    runtime: Any = field(repr=False, default=None)

    def present(self, cert: x509.Certificate | None, *, binding: bytes | None = None,
                version: str = "TLSv1.3") -> None:  # fmt: skip
        """Make the following requests arrive over TLS with ``cert`` as client certificate."""
        der = cert.public_bytes(serialization.Encoding.DER) if cert is not None else None
        self.injector.peer = PeerTLS(version=version, client_certificate=der,
                                     channel_binding=binding)  # fmt: skip

    async def enroll(self, csr_der: bytes, *, path: str = "/.well-known/est/simpleenroll",
                     headers: dict[str, str] | None = None) -> httpx.Response:  # fmt: skip
        return await self.http.post(
            path, content=b64(csr_der), headers={**PKCS10, **(headers or {})}
        )

    async def rows(self) -> tuple[int, int]:
        """(managed certificates, jobs) in the database."""
        from sqlalchemy import func, select

        from certctl.db.models import Job, ManagedCertificate

        async with self.runtime.sessions() as session:
            certs = await session.scalar(select(func.count()).select_from(ManagedCertificate))
            jobs = await session.scalar(select(func.count()).select_from(Job))
        return int(certs or 0), int(jobs or 0)


@pytest.fixture
async def est(app_factory: Callable[..., Any], tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    """``await est(env, profiles={"name": {...profile fields}})`` → :class:`Est`.

    The app runs its worker, so enrollments are issued inline as in production; EST finds
    its certificate profiles by name, so they are made after the app starts.
    """

    async def make(
        env: dict[str, str], profiles: dict[str, dict[str, Any]] | None = None,
        bundle_extra: str = "", **overrides: Any,
    ) -> Est:  # fmt: skip
        from certctl_sdk.testing import TestCA

        # The mTLS bundle must exist when the settings are read; it gets the Local CA (made
        # below) through the admin reload, which is what an operator does too.
        ca_pem = tmp_path / "est-ca.pem"
        ca_pem.write_text(TestCA.create(common_name="placeholder").certificate_pem)
        environment = {k: v.replace("{bundle}", str(ca_pem)) for k, v in env.items()}
        settings = EstSettings.from_env({"CERTCTL_EST_ENABLED": "true", **environment})
        app = await app_factory(
            background=True, rate_limit_enabled=False, est=settings, **overrides
        )
        r = await app.post(
            "/api/v1/issuers",
            json={"name": f"est-ca-{len(clients)}", "type": "local", "config": {}},
            headers=ADMIN,
        )
        assert r.status_code == 201, r.text
        issuer_id = r.json()["id"]
        ids = {}
        for name, fields in (profiles or {"est-devices": {}}).items():
            body = {"name": name, "issuer_id": issuer_id, "allowed_ekus": ["clientAuth"], **fields}
            r = await app.post("/api/v1/profiles", json=body, headers=ADMIN)
            assert r.status_code == 201, r.text
            ids[name] = r.json()["id"]
        r = await app.get(f"/.well-known/pki/ca/{issuer_id}")
        assert r.status_code == 200
        ca = x509.load_der_x509_certificate(r.content)
        ca_pem.write_bytes(ca.public_bytes(serialization.Encoding.PEM) + bundle_extra.encode())
        r = await app.post("/api/v1/admin/est/reload-trust", headers=ADMIN)
        assert r.status_code == 200, r.text
        assert r.json()["errors"] == {}, r.text
        injector = PeerInjector(app.app)
        http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=injector, client=("127.0.0.1", 40001)),
            base_url="https://certctl.test.local",
        )
        clients.append(http)
        return Est(http, app, injector, issuer_id, ids, ca_pem, app.runtime)

    clients: list[httpx.AsyncClient] = []
    yield make
    for http in clients:
        await http.aclose()


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def kit() -> Any:
    """The helpers above, for test modules (they cannot import a conftest)."""
    import types

    return types.SimpleNamespace(
        ADMIN=ADMIN, PASSWORD=PASSWORD, PKCS10=PKCS10, b64=b64, basic=basic,
        certs_of=certs_of, make_csr=make_csr, rsa_key=rsa_key,
    )  # fmt: skip
