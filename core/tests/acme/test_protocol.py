"""The ACME server end to end through the app: accounts, orders, finalize, download, revoke.

The client half is the ``signer`` test key (flattened JWS); real ACME clients run against a real
server process in tests/integration/acme.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID
from jwcrypto import jwk, jws
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from certctl.domain.acme.problems import ACME_ERROR


def csr_for(*names: str, key: Any = None) -> tuple[str, Any]:
    """A base64url DER CSR naming ``names`` (DNS, or IP when it parses as one)."""
    import ipaddress

    key = key or ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = []
    for name in names:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            sans.append(x509.DNSName(name))
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .sign(key, hashes.SHA256())
    )
    der = csr.public_bytes(serialization.Encoding.DER)
    return base64.urlsafe_b64encode(der).rstrip(b"=").decode(), key


def eab_binding(kid: str, hmac_b64: str, account_jwk: dict[str, Any], url: str) -> dict[str, Any]:
    key = jwk.JWK(kty="oct", k=hmac_b64)
    token = jws.JWS(json.dumps(account_jwk).encode())
    token.add_signature(
        key, alg="HS256", protected=json.dumps({"alg": "HS256", "kid": kid, "url": url})
    )
    return dict(json.loads(token.serialize(compact=False)))


def forge(protected: dict[str, Any], payload: Any) -> bytes:
    """A flattened JWS with any header and a signature that is just bytes (HMAC of nothing)."""

    def enc(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    return json.dumps(
        {
            "protected": enc(json.dumps(protected).encode()),
            "payload": enc(json.dumps(payload).encode()),
            "signature": enc(b"\x00" * 32),
        }
    ).encode()


def problem(r: Any, kind: str, status: int | None = None) -> dict[str, Any]:
    assert r.headers["content-type"].startswith("application/problem+json"), r.text
    body = r.json()
    assert body["type"] == ACME_ERROR + kind, body
    if status is not None:
        assert r.status_code == status, body
    assert r.headers.get("Replay-Nonce"), "every problem carries a fresh nonce"
    return dict(body)


async def new_eab(client: Any, admin_headers: dict[str, str], profile_id: str) -> dict[str, Any]:
    r = await client.post(
        "/api/v1/acme/eab-keys", json={"profile_id": profile_id}, headers=admin_headers
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


async def enrolled(
    client: Any,
    admin_headers: dict[str, str],
    acme_setup: Any,
    signer: Any,
    acme_client: Any,
    **profile: Any,
) -> tuple[Any, str, str]:
    """A trust_authenticated directory and an account bound by EAB."""
    url, issuer, profile_id = await acme_setup(acme_auth_mode="trust_authenticated", **profile)
    acme = await acme_client(client, url, signer()).start()
    key = await new_eab(client, admin_headers, profile_id)
    binding = eab_binding(
        key["id"], key["hmac_key"], acme.key.public_jwk, acme.directory["newAccount"]
    )
    r = await acme.register(externalAccountBinding=binding)
    assert r.status_code == 201, r.text
    return acme, issuer, profile_id


async def issue(acme: Any, *names: str) -> tuple[dict[str, Any], str, Any]:
    """new-order → finalize → (worker) → the order, its PEM chain and the certificate key."""
    r = await acme.post(
        acme.directory["newOrder"], {"identifiers": [{"type": "dns", "value": n} for n in names]}
    )
    assert r.status_code == 201, r.text
    order_url = r.headers["Location"]
    assert r.json()["status"] == "ready"
    csr, key = csr_for(*names)
    r = await acme.post(r.json()["finalize"], {"csr": csr})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "processing"
    assert r.headers["Retry-After"]
    await acme.http.runtime.worker.drain()
    r = await acme.post(order_url, None)
    order = r.json()
    assert order["status"] == "valid", order
    r = await acme.post(order["certificate"], None)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/pem-certificate-chain")
    return order, r.text, key


async def test_directory_is_public_and_names_every_resource(client, acme_setup):
    url, _, _ = await acme_setup()
    r = await client.get(url)  # no API key
    assert r.status_code == 200, r.text
    body = r.json()
    assert {"newNonce", "newAccount", "newOrder", "revokeCert", "keyChange", "renewalInfo"} <= set(
        body
    )
    assert body["meta"]["externalAccountRequired"] is False
    r = await client.head(body["newNonce"])
    assert r.status_code == 200 and r.headers["Replay-Nonce"]
    r = await client.get(body["newNonce"])
    assert r.status_code == 204 and r.headers["Replay-Nonce"]


async def test_unknown_profile_and_missing_default(client):
    problem(await client.get("/acme/profile/prof-nope/directory"), "malformed", 404)
    problem(await client.get("/acme/directory"), "userActionRequired", 403)


async def test_shorthand_layout_serves_the_default_profile(
    app_factory, admin_headers, signer, acme_client
):
    app = await app_factory()
    r = await app.post(
        "/api/v1/issuers", json={"name": "ca", "type": "local", "config": {}}, headers=admin_headers
    )
    issuer = r.json()["id"]
    r = await app.post(
        "/api/v1/profiles", json={"name": "p", "issuer_id": issuer}, headers=admin_headers
    )
    profile_id = r.json()["id"]
    app2 = await app_factory(acme_default_profile_id=profile_id)
    acme = await acme_client(app2, "/acme/directory", signer()).start()
    assert acme.directory["newAccount"].endswith("/acme/new-account")
    r = await acme.register()
    assert r.status_code == 201, r.text
    assert "/acme/account/" in r.headers["Location"]


async def test_trust_authenticated_issues_with_eab_and_audits(
    client, admin_headers, acme_setup, signer, acme_client, database_url
):
    acme, issuer, profile_id = await enrolled(
        client, admin_headers, acme_setup, signer, acme_client
    )
    _, chain, _ = await issue(acme, "www.acme.test", "api.acme.test")
    certs = x509.load_pem_x509_certificates(chain.encode())
    assert len(certs) >= 2
    san = certs[0].extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sorted(san.get_values_for_type(x509.DNSName)) == ["api.acme.test", "www.acme.test"]
    certs[0].verify_directly_issued_by(certs[1])
    r = await client.get(f"/api/v1/certificates?issuer_id={issuer}", headers=admin_headers)
    listed = r.json()["data"] if isinstance(r.json(), dict) else r.json()
    assert [c["status"] for c in listed] == ["active"]

    engine = create_async_engine(database_url)
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text("SELECT actor, details FROM audit_events WHERE action = 'certificate.issued'")
            )
        ).one()
        key_location = (
            await conn.execute(text("SELECT key_location, renew_at FROM managed_certificates"))
        ).one()
    await engine.dispose()
    details = row[1] if isinstance(row[1], dict) else json.loads(row[1])
    assert row[0].startswith("acct-")
    assert details["profile_id"] == profile_id and details["source"] == "acme"
    assert sorted(details["sans"]) == ["api.acme.test", "www.acme.test"]
    assert key_location == ("client", None)  # the client renews; certctl holds no key


async def test_trust_authenticated_requires_eab(client, acme_setup, signer, acme_client):
    url, _, _ = await acme_setup(acme_auth_mode="trust_authenticated")
    acme = await acme_client(client, url, signer()).start()
    assert acme.directory["meta"]["externalAccountRequired"] is True
    problem(await acme.register(), "externalAccountRequired", 400)


async def test_eab_key_binds_once(client, admin_headers, acme_setup, signer, acme_client):
    url, _, profile_id = await acme_setup(acme_eab_required=True)
    key = await new_eab(client, admin_headers, profile_id)
    first = await acme_client(client, url, signer()).start()
    r = await first.register(
        externalAccountBinding=eab_binding(
            key["id"], key["hmac_key"], first.key.public_jwk, first.directory["newAccount"]
        )
    )
    assert r.status_code == 201, r.text
    second = await acme_client(client, url, signer()).start()
    r = await second.register(
        externalAccountBinding=eab_binding(
            key["id"], key["hmac_key"], second.key.public_jwk, second.directory["newAccount"]
        )
    )
    problem(r, "unauthorized")


async def test_existing_account_and_only_return_existing(client, acme_setup, signer, acme_client):
    url, _, _ = await acme_setup()
    acme = await acme_client(client, url, signer()).start()
    problem(
        await acme.post(acme.directory["newAccount"], {"onlyReturnExisting": True}),
        "accountDoesNotExist",
    )
    assert (await acme.register(contact=["mailto:ops@example.com"])).status_code == 201
    location = acme.key.kid
    r = await acme.post(acme.directory["newAccount"], {"onlyReturnExisting": True}, use_jwk=True)
    assert r.status_code == 200 and r.headers["Location"] == location
    r = await acme.post(location, {"contact": ["mailto:pki@example.com"]})
    assert r.json()["contact"] == ["mailto:pki@example.com"]
    problem(await acme.post(location, {"contact": ["tel:+1555"]}), "unsupportedContact")
    r = await acme.post(location, {"status": "deactivated"})
    assert r.json()["status"] == "deactivated"
    problem(await acme.post(acme.directory["newOrder"], {"identifiers": []}), "unauthorized", 403)


async def test_hostile_jws_is_refused_with_the_rfc_error(client, acme_setup, signer, acme_client):
    url, _, _ = await acme_setup()
    acme = await acme_client(client, url, signer()).start()
    await acme.register()
    new_order = acme.directory["newOrder"]
    payload = {"identifiers": [{"type": "dns", "value": "a.acme.test"}]}
    nonce = await acme.nonce()
    assert (await acme.post(new_order, payload, nonce=nonce)).status_code == 201
    problem(await acme.post(new_order, payload, nonce=nonce), "badNonce", 400)  # replayed
    problem(await acme.post(new_order, payload, nonce="bm9wZQ"), "badNonce", 400)
    problem(
        await acme.post(new_order, payload, signed_url=acme.directory["newAccount"]),
        "unauthorized",
    )
    for alg in ("none", "HS256"):
        forged = forge(
            {"alg": alg, "kid": acme.key.kid, "url": new_order, "nonce": await acme.nonce()},
            payload,
        )
        r = await client.post(
            new_order, content=forged, headers={"Content-Type": "application/jose+json"}
        )
        assert "ES256" in problem(r, "badSignatureAlgorithm")["algorithms"]
    # A signature by another key under this account's kid.
    other = signer()
    other.kid = acme.key.kid
    problem(await acme.post(new_order, payload, key=other), "malformed")
    # Unknown account.
    stranger = signer()
    stranger.kid = acme.key.kid.rsplit("/", 1)[0] + "/acct-nope"
    problem(await acme.post(new_order, payload, key=stranger), "accountDoesNotExist")
    # Not JOSE, not JSON, too big.
    r = await client.post(new_order, content=b"{}", headers={"Content-Type": "application/json"})
    problem(r, "malformed", 415)
    r = await client.post(
        new_order, content=b"{not json", headers={"Content-Type": "application/jose+json"}
    )
    problem(r, "malformed", 400)
    r = await client.post(
        new_order,
        content=b"{" + b" " * (2 * 1024 * 1024) + b"}",
        headers={"Content-Type": "application/jose+json"},
    )
    assert r.status_code == 413 and r.json()["type"] == ACME_ERROR + "malformed"


async def test_identifiers_outside_policy_and_bad_csrs_issue_nothing(
    client, admin_headers, acme_setup, signer, acme_client, database_url
):
    acme, _, _ = await enrolled(
        client, admin_headers, acme_setup, signer, acme_client, allowed_san_patterns=["*.corp.test"]
    )
    body = problem(
        await acme.post(
            acme.directory["newOrder"],
            {"identifiers": [{"type": "dns", "value": "www.evil.test"}]},
        ),
        "rejectedIdentifier",
    )
    assert body["subproblems"][0]["identifier"]["value"] == "www.evil.test"
    problem(
        await acme.post(
            acme.directory["newOrder"], {"identifiers": [{"type": "email", "value": "a@b.test"}]}
        ),
        "unsupportedIdentifier",
    )
    r = await acme.post(
        acme.directory["newOrder"], {"identifiers": [{"type": "dns", "value": "a.corp.test"}]}
    )
    order = r.json()
    extra, _ = csr_for("a.corp.test", "b.corp.test")
    problem(await acme.post(order["finalize"], {"csr": extra}), "badCSR")
    problem(await acme.post(order["finalize"], {"csr": "AAAA"}), "badCSR")
    problem(await acme.post(order["finalize"], {"csr": "!!"}), "malformed")
    same, _ = csr_for("a.corp.test", key=acme.key.key.get_op_key("sign"))
    problem(await acme.post(order["finalize"], {"csr": same}), "badCSR")
    engine = create_async_engine(database_url)
    async with engine.connect() as conn:
        count = (await conn.execute(text("SELECT count(*) FROM managed_certificates"))).scalar()
    await engine.dispose()
    assert count == 0
    r = await acme.post(r.headers["Location"], None)
    assert r.json()["status"] == "ready"  # still finalizable with a right CSR


async def test_key_rollover(client, acme_setup, signer, acme_client):
    url, _, _ = await acme_setup()
    acme = await acme_client(client, url, signer()).start()
    await acme.register()
    taken = await acme_client(client, url, signer("RSA")).start()
    await taken.register()
    key_change = acme.directory["keyChange"]

    def inner(new: Any) -> dict[str, Any]:
        return new.sign_inner(
            {"account": acme.key.kid, "oldKey": acme.key.public_jwk}, url=key_change
        )

    r = await acme.post(key_change, inner(taken.key))
    body = problem(r, "malformed", 409)
    assert body
    fresh = signer()  # same type as the old key, so only the signature tells them apart
    r = await acme.post(key_change, inner(fresh))
    assert r.status_code == 200, r.text
    fresh.kid = acme.key.kid
    assert (await acme.post(acme.key.kid, None, key=fresh)).status_code == 200
    problem(await acme.post(acme.key.kid, None), "malformed")  # the old key no longer signs


async def test_revocation_by_account_and_by_certificate_key(
    client, admin_headers, acme_setup, signer, acme_client
):
    acme, issuer, _ = await enrolled(client, admin_headers, acme_setup, signer, acme_client)
    _, chain, _ = await issue(acme, "rev.acme.test")
    leaf = x509.load_pem_x509_certificates(chain.encode())[0]
    der = base64.urlsafe_b64encode(leaf.public_bytes(serialization.Encoding.DER)).rstrip(b"=")
    revoke = acme.directory["revokeCert"]
    problem(
        await acme.post(revoke, {"certificate": der.decode(), "reason": 2}), "badRevocationReason"
    )
    stranger = await acme_client(client, acme.directory_url, signer()).start()
    r = await acme.post(revoke, {"certificate": der.decode(), "reason": 1}, key=stranger.key)
    problem(r, "unauthorized")  # an unregistered key with jwk: not the certificate's key
    r = await acme.post(revoke, {"certificate": der.decode(), "reason": 1})
    assert r.status_code == 200, r.text
    problem(await acme.post(revoke, {"certificate": der.decode()}), "alreadyRevoked")
    r = await client.get(f"/.well-known/pki/ocsp/{issuer}/serial/{format(leaf.serial_number, 'x')}")
    assert r.status_code == 200
    assert ocsp.load_der_ocsp_response(r.content).certificate_status == ocsp.OCSPCertStatus.REVOKED
    # The certificate's own key may revoke it too, without any account.
    _, chain, cert_key = await issue(acme, "own.acme.test")
    own = x509.load_pem_x509_certificates(chain.encode())[0]
    der = base64.urlsafe_b64encode(own.public_bytes(serialization.Encoding.DER)).rstrip(b"=")
    r = await acme.post(revoke, {"certificate": der.decode()}, key=signer.from_key(cert_key))
    assert r.status_code == 200, r.text
    problem(await acme.post(revoke, {"certificate": der.decode()}), "alreadyRevoked")


class _Http01(BaseHTTPRequestHandler):
    answers: dict[str, str] = {}

    def do_GET(self) -> None:
        token = self.path.rsplit("/", 1)[-1]
        body = self.answers.get(token, "wrong").encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def http01() -> Iterator[tuple[int, dict[str, str]]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Http01)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], _Http01.answers
    server.shutdown()
    _Http01.answers.clear()


async def test_http01_challenge_is_validated_by_the_server(
    app_factory, admin_headers, signer, acme_client, http01
):
    port, answers = http01
    app = await app_factory(acme_http01_port=port, acme_validation_allow_loopback=True)
    r = await app.post(
        "/api/v1/issuers", json={"name": "ca", "type": "local", "config": {}}, headers=admin_headers
    )
    r = await app.post(
        "/api/v1/profiles",
        json={"name": "p", "issuer_id": r.json()["id"], "acme_auth_mode": "challenge"},
        headers=admin_headers,
    )
    url = f"/acme/profile/{r.json()['id']}/directory"
    acme = await acme_client(app, url, signer()).start()
    await acme.register()
    r = await acme.post(
        acme.directory["newOrder"], {"identifiers": [{"type": "dns", "value": "localhost"}]}
    )
    order_url, order = r.headers["Location"], r.json()
    assert order["status"] == "pending"
    authz = (await acme.post(order["authorizations"][0], None)).json()
    assert {c["type"] for c in authz["challenges"]} == {"http-01", "dns-01", "tls-alpn-01"}
    http = next(c for c in authz["challenges"] if c["type"] == "http-01")
    answers[http["token"]] = f"{http['token']}.{acme.key.thumbprint()}"
    r = await acme.post(http["url"], {})
    assert r.status_code == 200 and r.json()["status"] in ("processing", "valid")
    await app.app.state.acme.wait_idle()
    authz = (await acme.post(order["authorizations"][0], None)).json()
    assert authz["status"] == "valid", authz
    assert (await acme.post(order_url, None)).json()["status"] == "ready"


async def test_failed_http01_invalidates_the_order(
    app_factory, admin_headers, signer, acme_client, http01
):
    port, _ = http01  # answers nothing right
    app = await app_factory(acme_http01_port=port, acme_validation_allow_loopback=True)
    r = await app.post(
        "/api/v1/issuers", json={"name": "ca", "type": "local", "config": {}}, headers=admin_headers
    )
    r = await app.post(
        "/api/v1/profiles", json={"name": "p", "issuer_id": r.json()["id"]}, headers=admin_headers
    )
    acme = await acme_client(app, f"/acme/profile/{r.json()['id']}/directory", signer()).start()
    await acme.register()
    r = await acme.post(
        acme.directory["newOrder"], {"identifiers": [{"type": "dns", "value": "localhost"}]}
    )
    order_url, order = r.headers["Location"], r.json()
    authz = (await acme.post(order["authorizations"][0], None)).json()
    http = next(c for c in authz["challenges"] if c["type"] == "http-01")
    await acme.post(http["url"], {})
    await app.app.state.acme.wait_idle()
    challenge = (await acme.post(http["url"], None)).json()
    assert challenge["status"] == "invalid"
    assert challenge["error"]["type"] == ACME_ERROR + "incorrectResponse"
    order = (await acme.post(order_url, None)).json()
    assert order["status"] == "invalid"
    problem(await acme.post(order["finalize"], {"csr": csr_for("localhost")[0]}), "orderNotReady")
