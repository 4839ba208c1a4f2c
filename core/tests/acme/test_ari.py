"""ACME Renewal Information (RFC 9773) and the operator's scheduled mass replacement.

Certificates are obtained through the app in ``trust_authenticated`` mode with an EAB-bound
account; the renewal window is read with the unauthenticated ``renewal-info`` GET.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from jwcrypto import jwk, jws
from sqlalchemy import select, update

from certctl.db.models import AcmeOrder, AuditEvent
from certctl.domain.acme.ari import ari_cert_id
from certctl.domain.acme.problems import ACME_ERROR


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _problem(r: Any, kind: str, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json"), r.text
    body: dict[str, Any] = r.json()
    assert body["type"] == ACME_ERROR + kind, body
    return body


async def _enrolled(client: Any, admin_headers: Any, profile_id: str, acme: Any) -> Any:
    """Register ``acme`` (started) with a fresh EAB key of ``profile_id``."""
    r = await client.post(
        "/api/v1/acme/eab-keys", json={"profile_id": profile_id}, headers=admin_headers
    )
    assert r.status_code == 201, r.text
    key = r.json()
    token = jws.JWS(json.dumps(acme.key.public_jwk).encode())
    token.add_signature(
        jwk.JWK(kty="oct", k=key["hmac_key"]),
        alg="HS256",
        protected=json.dumps(
            {"alg": "HS256", "kid": key["id"], "url": acme.directory["newAccount"]}
        ),
    )
    binding = json.loads(token.serialize(compact=False))
    r = await acme.register(externalAccountBinding=binding)
    assert r.status_code == 201, r.text
    return acme


async def _setup(
    client: Any, admin_headers: Any, acme_setup: Any, signer: Any, acme_client: Any
) -> tuple[Any, str, str]:
    url, issuer, profile_id = await acme_setup(acme_auth_mode="trust_authenticated")
    acme = await acme_client(client, url, signer()).start()
    return await _enrolled(client, admin_headers, profile_id, acme), issuer, profile_id


def _csr(*names: str) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), False)
        .sign(key, hashes.SHA256())
    )
    return _b64(csr.public_bytes(serialization.Encoding.DER))


async def _order(acme: Any, name: str, **extra: Any) -> Any:
    return await acme.post(
        acme.directory["newOrder"], {"identifiers": [{"type": "dns", "value": name}], **extra}
    )


async def _issue(acme: Any, name: str, **extra: Any) -> x509.Certificate:
    """new-order (with ``extra`` members) → finalize → the worker → the leaf."""
    r = await _order(acme, name, **extra)
    assert r.status_code == 201, r.text
    order_url = r.headers["Location"]
    r = await acme.post(r.json()["finalize"], {"csr": _csr(name)})
    assert r.status_code == 200, r.text
    await acme.http.runtime.worker.drain()
    order = (await acme.post(order_url, None)).json()
    assert order["status"] == "valid", order
    chain = (await acme.post(order["certificate"], None)).text
    return x509.load_pem_x509_certificates(chain.encode())[0]


async def _renewal_info(acme: Any, cert_id: str) -> Any:
    return await acme.http.get(f"{acme.directory['renewalInfo']}/{cert_id}")


async def _certificate_id(client: Any, admin_headers: Any, leaf: x509.Certificate) -> str:
    r = await client.get("/api/v1/certificates", headers=admin_headers)
    serial = format(leaf.serial_number, "x")
    return str(next(c["id"] for c in r.json()["data"] if c["serial_number"] == serial))


def test_cert_id_follows_rfc_9773_example() -> None:
    """RFC 9773 §4.1: keyIdentifier 69:88:5B:…:D4 and serial 0x87654321 (DER 00 87 65 43 21)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ari.example")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(0x87654321)
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.AuthorityKeyIdentifier(
                bytes.fromhex("69885B6B87464041E1B37B847BA0AE2CDE01C8D4"), None, None
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    assert ari_cert_id(cert) == "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE"


async def test_window_of_an_issued_certificate(
    client, admin_headers, acme_setup, signer, acme_client
):
    acme, _, _ = await _setup(client, admin_headers, acme_setup, signer, acme_client)
    leaf = await _issue(acme, "ari.acme.test")
    r = await _renewal_info(acme, ari_cert_id(leaf))  # no JWS, no API key
    assert r.status_code == 200, r.text
    assert r.headers["Retry-After"] == str(client.runtime.settings.acme_ari_poll_interval_seconds)
    window = r.json()["suggestedWindow"]
    start, end = _time(window["start"]), _time(window["end"])
    born, dies = leaf.not_valid_before_utc, leaf.not_valid_after_utc
    assert born < start < end < dies
    # The renewal loop's default: open at two thirds of the lifetime, close at five sixths.
    second = timedelta(seconds=1)
    assert abs(start - (born + (dies - born) * 2 / 3)) <= second
    assert abs(end - (born + (dies - born) * 5 / 6)) <= second
    assert "explanationURL" not in r.json()


async def test_malformed_and_unknown_ids(client, admin_headers, acme_setup, signer, acme_client):
    acme, _, _ = await _setup(client, admin_headers, acme_setup, signer, acme_client)
    leaf = await _issue(acme, "known.acme.test")
    aki, serial = ari_cert_id(leaf).split(".")
    for bad in ("no-dot-here", f"{aki}.{serial}.{serial}", f"{aki}.", f"!!{aki}.{serial}"):
        _problem(await _renewal_info(acme, bad), "malformed", 400)
    _problem(await _renewal_info(acme, f"{aki}.gA"), "malformed", 400)  # serial 0x80: negative
    _problem(await _renewal_info(acme, f"{aki}.AAE"), "malformed", 400)  # 00 01: not DER
    _problem(await _renewal_info(acme, f"{aki}.A"), "malformed", 400)  # no whole byte
    _problem(await _renewal_info(acme, f"{aki}.AQID"), "malformed", 404)  # no such serial
    _problem(await _renewal_info(acme, f"{_b64(b'other-key-id')}.{serial}"), "malformed", 404)
    # Another profile's directory does not know this certificate.
    other_url, _, _ = await acme_setup(acme_auth_mode="trust_authenticated")
    other = await acme_client(client, other_url, signer()).start()
    _problem(await _renewal_info(other, ari_cert_id(leaf)), "malformed", 404)


async def test_revoked_certificate_is_due_at_once(
    client, admin_headers, acme_setup, signer, acme_client
):
    acme, _, _ = await _setup(client, admin_headers, acme_setup, signer, acme_client)
    leaf = await _issue(acme, "revoked.acme.test")
    der = leaf.public_bytes(serialization.Encoding.DER)
    r = await acme.post(acme.directory["revokeCert"], {"certificate": _b64(der), "reason": 4})
    assert r.status_code == 200, r.text
    window = (await _renewal_info(acme, ari_cert_id(leaf))).json()["suggestedWindow"]
    assert _time(window["end"]) < datetime.now(UTC), "a window in the past: renew now"


async def test_scheduled_replacement_closes_the_window_at_the_deadline(
    client, admin_headers, viewer_headers, acme_setup, signer, acme_client
):
    acme, _, _ = await _setup(client, admin_headers, acme_setup, signer, acme_client)
    leaf = await _issue(acme, "fleet.acme.test")
    cert_id = await _certificate_id(client, admin_headers, leaf)
    deadline = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)
    body = {
        "certificate_ids": [cert_id],
        "replace_by": deadline.isoformat(),
        "reason": "CA rotation",
        "explanation_url": "https://status.example.test/rotation",
    }
    path = "/api/v1/certificates/replacements"
    assert (await client.post(path, json=body, headers=viewer_headers)).status_code == 403
    r = await client.post(path, json=body, headers=admin_headers)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["certificate_ids"] == [cert_id]
    assert out["renewals_scheduled"] == 0, "an ACME client renews its own certificate"
    assert out["explanation_url"] == body["explanation_url"]
    assert _time(out["replace_by"]) == deadline

    before = datetime.now(UTC)
    window = (await _renewal_info(acme, ari_cert_id(leaf))).json()["suggestedWindow"]
    assert _time(window["start"]) <= before.replace(microsecond=0) + timedelta(seconds=1)
    assert _time(window["end"]) == deadline
    cert = (await client.get(f"/api/v1/certificates/{cert_id}", headers=admin_headers)).json()
    assert _time(cert["replace_by"]) == deadline

    async with client.runtime.sessions() as session:
        rows = list(
            await session.scalars(
                select(AuditEvent).where(AuditEvent.action == "certificate.replacement.schedule")
            )
        )
    assert len(rows) == 1
    assert rows[0].details["count"] == 1
    assert rows[0].details["reason"] == "CA rotation"
    assert rows[0].details["explanation_url"] == body["explanation_url"]


async def test_replacement_requests_are_checked(client, admin_headers, acme_setup):
    _, issuer, profile_id = await acme_setup()
    r = await client.post(
        "/api/v1/certificates",
        json={"common_name": "held.example.test", "issuer_id": issuer},
        headers=admin_headers,
    )
    known = r.json()["certificate"]["id"]
    path = "/api/v1/certificates/replacements"
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    bodies: tuple[dict[str, Any], ...] = (
        {"certificate_ids": [known], "replace_by": past},
        {"certificate_ids": [known], "replace_by": "2030-01-01T00:00:00"},  # no time zone
        {"replace_by": future},  # no selector
        {"certificate_ids": []},
        {"certificate_ids": [known], "explanation_url": "javascript:alert(1)"},
        {"certificate_ids": [known], "surprise": True},
    )
    for body in bodies:
        r = await client.post(path, json=body, headers=admin_headers)
        assert r.status_code == 400, (body, r.text)
    r = await client.post(
        path, json={"certificate_ids": [known, "mc-nope", "mc-gone"]}, headers=admin_headers
    )
    assert r.status_code == 404, r.text
    assert r.json()["missing"] == ["mc-gone", "mc-nope"]
    for selector in ({"profile_id": "prof-nope"}, {"issuer_id": profile_id}):
        assert (await client.post(path, json=selector, headers=admin_headers)).status_code == 404
    cert = (await client.get(f"/api/v1/certificates/{known}", headers=admin_headers)).json()
    assert cert["replace_by"] is None, "a refused request changes nothing"


async def test_server_held_certificate_renews_by_the_deadline(client, admin_headers, acme_setup):
    """certctl renews the certificates whose key it holds itself; the new version clears it."""
    _, issuer, _ = await acme_setup()
    r = await client.post(
        "/api/v1/certificates",
        json={"common_name": "server.example.test", "issuer_id": issuer},
        headers=admin_headers,
    )
    cert_id = r.json()["certificate"]["id"]
    await client.runtime.worker.drain()
    before = (await client.get(f"/api/v1/certificates/{cert_id}", headers=admin_headers)).json()
    deadline = datetime.now(UTC) + timedelta(hours=6)
    r = await client.post(
        "/api/v1/certificates/replacements",
        json={"issuer_id": issuer, "replace_by": deadline.isoformat()},
        headers=admin_headers,
    )
    assert r.status_code == 200, r.text
    assert r.json()["certificate_ids"] == [cert_id]
    assert r.json()["renewals_scheduled"] == 1
    cert = (await client.get(f"/api/v1/certificates/{cert_id}", headers=admin_headers)).json()
    renew_at = _time(cert["renew_at"])
    assert renew_at < _time(before["renew_at"])
    assert renew_at <= deadline - timedelta(hours=3), "inside the first half of the time left"

    r = await client.post(f"/api/v1/certificates/{cert_id}/renew", headers=admin_headers)
    assert r.status_code == 202, r.text
    await client.runtime.worker.drain()
    cert = (await client.get(f"/api/v1/certificates/{cert_id}", headers=admin_headers)).json()
    assert cert["serial_number"] != before["serial_number"]
    assert cert["replace_by"] is None, "the new version meets the replacement"


async def test_replaces_is_honoured_once_and_only_for_the_owner(
    client, admin_headers, acme_setup, signer, acme_client
):
    acme, _, profile_id = await _setup(client, admin_headers, acme_setup, signer, acme_client)
    leaf = await _issue(acme, "old.acme.test")
    replaced = ari_cert_id(leaf)

    stranger = await acme_client(client, acme.directory_url, signer()).start()
    await _enrolled(client, admin_headers, profile_id, stranger)
    _problem(await _order(stranger, "old.acme.test", replaces=replaced), "unauthorized", 403)
    _problem(await _order(acme, "old.acme.test", replaces=42), "malformed", 400)
    _problem(await _order(acme, "old.acme.test", replaces="AQ.AQ"), "malformed", 404)

    r = await _order(acme, "old.acme.test", replaces=replaced)
    assert r.status_code == 201, r.text
    assert r.json()["replaces"] == replaced
    first = r.headers["Location"].rsplit("/", 1)[1]
    _problem(await _order(acme, "old.acme.test", replaces=replaced), "alreadyReplaced", 409)

    # An order that failed does not count: the certificate may be replaced again.
    async with client.runtime.sessions() as session:
        await session.execute(
            update(AcmeOrder).where(AcmeOrder.id == first).values(status="invalid")
        )
        await session.commit()
    (old,) = [
        c
        for c in (await client.get("/api/v1/certificates", headers=admin_headers)).json()["data"]
        if c["serial_number"] == format(leaf.serial_number, "x")
    ]
    r = await client.post(
        "/api/v1/certificates/replacements",
        json={"certificate_ids": [old["id"]]},
        headers=admin_headers,
    )
    assert r.status_code == 200, r.text
    new = await _issue(acme, "old.acme.test", replaces=replaced)
    assert new.serial_number != leaf.serial_number
    _problem(await _order(acme, "old.acme.test", replaces=replaced), "alreadyReplaced", 409)
    old = (await client.get(f"/api/v1/certificates/{old['id']}", headers=admin_headers)).json()
    assert old["replace_by"] is None, "the replacing order met the scheduled replacement"
