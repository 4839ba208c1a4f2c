"""The test kit: offline CA, CSR builder, HTTP fake, context builders and pytest fixtures."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from certctl_sdk.config import Secret
from certctl_sdk.connector import ConnectorContext, SecretResolver, StateStore
from certctl_sdk.models import KeyType, SubjectAltNames
from certctl_sdk.pem import load_certificate, load_csr, load_private_key, sans_of, serial_hex
from certctl_sdk.testing import (
    FakeHttp,
    ManualClock,
    MemoryStateStore,
    PlainSecretResolver,
    TestCA,
    generate_private_key,
    make_context,
    make_csr,
    make_deploy_request,
    make_issue_request,
)

# --- certificates -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key_type", "cls", "size"),
    [
        (KeyType.ECDSA_P256, ec.EllipticCurvePrivateKey, 256),
        (KeyType.ECDSA_P384, ec.EllipticCurvePrivateKey, 384),
        (KeyType.RSA_2048, rsa.RSAPrivateKey, 2048),
        (KeyType.ED25519, ed25519.Ed25519PrivateKey, None),
    ],
)
def test_generate_private_key(key_type: KeyType, cls: type, size: int | None) -> None:
    key = generate_private_key(key_type)
    assert isinstance(key, cls)
    if size is not None:
        assert key.key_size == size  # type: ignore[union-attr]


@pytest.mark.parametrize("key_type", [KeyType.ECDSA_P256, KeyType.ECDSA_P384, KeyType.ED25519])
def test_ca_issues_leaves_that_verify(key_type: KeyType) -> None:
    ca = TestCA.create(key_type, common_name="Unit Root")
    sans = SubjectAltNames(
        dns=("a.test", "b.test"),
        ip=("192.0.2.1", "2001:db8::1"),
        email=("ops@a.test",),
        uri=("spiffe://a.test/x",),
    )
    leaf = ca.issue(
        "a.test", sans=sans, key_type=key_type, serial=0x1234, validity=timedelta(days=10)
    )

    cert = load_certificate(leaf.certificate_pem)
    root = load_certificate(ca.certificate_pem)
    cert.verify_directly_issued_by(root)
    root.verify_directly_issued_by(root)
    assert root.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert leaf.serial == "1234" == serial_hex(cert)
    assert sans_of(cert) == SubjectAltNames(
        dns=("a.test", "b.test"),
        ip=("192.0.2.1", "2001:db8::1"),
        email=("ops@a.test",),
        uri=("spiffe://a.test/x",),
    )
    assert leaf.not_after - leaf.not_before == timedelta(days=10, minutes=5)
    assert leaf.chain_pem == (ca.certificate_pem,)
    key = load_private_key(leaf.key_pem)
    assert key.public_key() == cert.public_key()  # type: ignore[comparison-overlap]
    assert "PRIVATE KEY" not in repr(leaf)
    assert "PRIVATE" not in repr(ca)


def test_leaf_validity_is_clamped_to_the_ca() -> None:
    ca = TestCA.create(validity=timedelta(days=30))
    leaf = ca.issue("a.test", validity=timedelta(days=365))
    assert leaf.not_after == load_certificate(ca.certificate_pem).not_valid_after_utc


def test_issue_at_a_given_time() -> None:
    then = datetime(2030, 1, 1, tzinfo=UTC)
    leaf = TestCA.create(now=then).issue("a.test", now=then, validity=timedelta(days=1))
    assert leaf.not_before == then - timedelta(minutes=5)
    assert leaf.not_after == then + timedelta(days=1)


def test_make_csr_and_sign_csr() -> None:
    sans = SubjectAltNames(dns=("x.test",), ip=("10.0.0.1",))
    csr_pem, key_pem = make_csr("x.test", sans, KeyType.RSA_2048)
    csr = load_csr(csr_pem)
    assert sans_of(csr) == sans
    assert isinstance(load_private_key(key_pem), rsa.RSAPrivateKey)

    leaf = TestCA.create().sign_csr(csr_pem)
    cert = load_certificate(leaf.certificate_pem)
    assert cert.public_key() == csr.public_key()
    assert sans_of(cert) == sans
    assert leaf.key_pem == ""
    with pytest.raises(ValueError, match="carries no key"):
        make_deploy_request(leaf)
    assert make_deploy_request(leaf, with_key=False).private_key is None


def test_make_issue_request_is_consistent() -> None:
    request, key_pem = make_issue_request("y.test", validity_seconds=3600)
    assert request.sans == SubjectAltNames(dns=("y.test",))
    assert sans_of(load_csr(request.csr_pem)) == request.sans
    assert request.validity_seconds == 3600
    assert load_private_key(key_pem)


def test_test_ca_is_not_collected_as_a_test_class() -> None:
    assert TestCA.__test__ is False


# --- HTTP fake ------------------------------------------------------------------------------------


async def test_fake_http_routes_records_and_404s() -> None:
    fake = FakeHttp()
    fake.get("https://ca.test/v1/certs/{serial}", httpx.Response(200, json={"ok": True}))
    fake.post("/v1/sign/{role}", lambda req: httpx.Response(201, json={"len": len(req.content)}))
    async with fake.client(base_url="https://ca.test") as client:
        first = await client.get("/v1/certs/abc")
        second = await client.get("/v1/certs/def")
        signed = await client.post("/v1/sign/web", content=b"12345")
        missing = await client.delete("/v1/certs/abc")

    assert first.json() == second.json() == {"ok": True}
    assert signed.status_code == 201
    assert signed.json() == {"len": 5}
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert "no fake route for DELETE https://ca.test/v1/certs/abc" in missing.json()["detail"]
    assert len(fake.requests) == 4
    assert [str(r.url) for r in fake.calls_to("GET", "/v1/certs/{serial}")] == [
        "https://ca.test/v1/certs/abc",
        "https://ca.test/v1/certs/def",
    ]
    assert fake.calls_to("POST", "/v1/sign/web")[0].content == b"12345"
    assert [r.method for r in fake.unmatched()] == ["DELETE"]
    assert len(fake.routes[0].calls) == 2


async def test_fake_http_sequences_async_handlers_and_queries() -> None:
    fake = FakeHttp()
    fake.get("/order/1", [httpx.Response(202), httpx.Response(200, text="done")])

    async def echo(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text=request.url.params["q"])

    fake.add("*", "/search?q={term}", echo)
    fake.get("/search", httpx.Response(400))
    async with fake.client() as client:
        statuses = [(await client.get("https://x.test/order/1")).status_code for _ in range(3)]
        found = await client.put("https://x.test/search?q=abc")
        plain = await client.get("https://x.test/search")

    assert statuses == [202, 200, 200]  # the last response repeats
    assert found.text == "abc"
    assert plain.status_code == 400


async def test_absolute_route_does_not_match_another_host() -> None:
    fake = FakeHttp()
    fake.get("https://a.test/x", httpx.Response(200))
    async with fake.client() as client:
        assert (await client.get("https://b.test/x")).status_code == 404
        assert (await client.get("https://a.test/x")).status_code == 200


# --- context ------------------------------------------------------------------------------------


async def test_make_context_defaults_are_offline_and_typed() -> None:
    context = make_context()
    assert isinstance(context.secrets, SecretResolver)
    assert isinstance(context.state, StateStore)
    assert context.clock().tzinfo is not None
    assert isinstance(context.logger, logging.Logger)
    response = await context.http.get("https://anything.test/")
    assert response.status_code == 404
    assert await context.secrets.resolve(Secret("pw")) == "pw"


async def test_make_context_takes_fakes_and_clients() -> None:
    fake = FakeHttp()
    fake.get("/ping", httpx.Response(204))
    state = MemoryStateStore({"k": b"v"})
    clock = ManualClock(datetime(2030, 1, 1, tzinfo=UTC))
    context = make_context(http=fake, clock=clock, instance_id="iss-1", state=state)

    assert (await context.http.get("https://h.test/ping")).status_code == 204
    assert context.instance_id == "iss-1"
    assert await context.state.get("k") == b"v"
    await context.state.set("n", b"1")
    await context.state.delete("k")
    await context.state.delete("absent")
    assert state.data == {"n": b"1"}
    with pytest.raises(TypeError):
        await state.set("bad", "text")  # type: ignore[arg-type]
    clock.advance(60)
    clock.advance(timedelta(hours=1))
    assert context.clock() == datetime(2030, 1, 1, 1, 1, tzinfo=UTC)


def test_manual_clock_needs_an_aware_time() -> None:
    with pytest.raises(ValueError):
        ManualClock(datetime(2030, 1, 1))  # noqa: DTZ001 - the point of the test


async def test_plain_secret_resolver_counts() -> None:
    resolver = PlainSecretResolver()
    await resolver.resolve(Secret("a"))
    await resolver.resolve(Secret("b"))
    assert resolver.resolved == 2


# --- pytest plugin fixtures ---------------------------------------------------------------------


async def test_plugin_fixtures_work_together(
    certctl_context: ConnectorContext, certctl_fake_http: FakeHttp, certctl_test_ca: TestCA
) -> None:
    certctl_fake_http.get("/health", httpx.Response(200, text="ok"))
    response = await certctl_context.http.get("https://svc.test/health")
    assert response.text == "ok"
    assert certctl_fake_http.calls_to("GET", "/health")
    assert load_certificate(certctl_test_ca.certificate_pem)


def test_plugin_module_has_no_import_side_effects() -> None:
    import importlib
    import sys

    before = set(sys.modules)
    module = importlib.reload(importlib.import_module("certctl_sdk.testing.pytest_plugin"))
    added = set(sys.modules) - before
    assert not {m for m in added if m.startswith(("pytest_asyncio", "certctl."))}
    assert {"certctl_fake_http", "certctl_context", "certctl_test_ca"} <= set(vars(module))
