"""The OCSP fast path: the in-memory status index across processes, per-serial re-signing,
the raw ASGI layer (limits, bodies, parity with the Litestar routes) and responder rotation."""

from datetime import timedelta

import httpx
import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from sqlalchemy.ext.asyncio import create_async_engine

from certctl.db.models import CertificateRevocation, ManagedCertificate
from certctl.domain.ocsp.service import responder_service, rotate_ocsp_responders

REQ_TYPE = "application/ocsp-request"


async def _issuer(client, headers, name="ca"):
    r = await client.post(
        "/api/v1/issuers", json={"name": name, "type": "local", "config": {}}, headers=headers
    )
    assert r.status_code == 201, r.text
    return r.json()["id"]


async def _issued(client, headers, issuer, cn):
    r = await client.post(
        "/api/v1/certificates",
        json={"common_name": cn, "issuer_id": issuer, "validity_days": 10},
        headers=headers,
    )
    assert r.status_code == 202, r.text
    cert_id = r.json()["certificate"]["id"]
    await client.runtime.worker.drain()
    pem = (await client.get(f"/api/v1/certificates/{cert_id}/export/pem", headers=headers)).json()
    leaf = x509.load_pem_x509_certificate(pem["certificate_pem"].encode())
    ca = x509.load_pem_x509_certificate(pem["chain_pem"].encode())
    return cert_id, leaf, ca


def _request(leaf, ca, nonce=None):
    builder = ocsp.OCSPRequestBuilder().add_certificate(leaf, ca, hashes.SHA256())
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(serialization.Encoding.DER)


async def _post_raw(client, issuer, der):
    r = await client.post(
        f"/.well-known/pki/ocsp/{issuer}", content=der, headers={"Content-Type": REQ_TYPE}
    )
    assert r.status_code == 200, r.text
    return r.content


async def _status(client, issuer, leaf, ca):
    return ocsp.load_der_ocsp_response(
        await _post_raw(client, issuer, _request(leaf, ca))
    ).certificate_status


async def _revoke(client, headers, cert_id, reason="keyCompromise"):
    r = await client.post(
        f"/api/v1/certificates/{cert_id}/revoke", json={"reason": reason}, headers=headers
    )
    assert r.status_code == 200, r.text


async def test_revocation_by_another_process_is_seen_on_refresh(app_factory, admin_headers):
    # This process re-reads only when told to (an hour-long interval) ...
    here = await app_factory(ocsp_refresh_ms=3_600_000)
    # ... and another process shares the database.
    there = await app_factory()
    issuer = await _issuer(here, admin_headers)
    cert_id, leaf, ca = await _issued(here, admin_headers, issuer, "a.example.test")
    other_id, other, _ = await _issued(here, admin_headers, issuer, "b.example.test")
    assert await _status(here, issuer, leaf, ca) == ocsp.OCSPCertStatus.GOOD
    assert await _status(here, issuer, other, ca) == ocsp.OCSPCertStatus.GOOD

    await _revoke(there, admin_headers, cert_id, "superseded")
    # Within the interval this process still answers from memory (the documented bound).
    assert await _status(here, issuer, leaf, ca) == ocsp.OCSPCertStatus.GOOD
    assert await responder_service(here.runtime).refresh_all() == 1
    resp = ocsp.load_der_ocsp_response(await _post_raw(here, issuer, _request(leaf, ca)))
    assert resp.certificate_status == ocsp.OCSPCertStatus.REVOKED
    assert resp.revocation_reason == x509.ReasonFlags.superseded
    assert await _status(here, issuer, other, ca) == ocsp.OCSPCertStatus.GOOD

    # A certificate issued by the other process after the index was loaded is good here.
    _, late, _ = await _issued(there, admin_headers, issuer, "c.example.test")
    assert await _status(here, issuer, late, ca) == ocsp.OCSPCertStatus.GOOD
    await _revoke(there, admin_headers, other_id)
    await responder_service(here.runtime).refresh_all()
    assert await _status(here, issuer, other, ca) == ocsp.OCSPCertStatus.REVOKED


async def test_zero_interval_reads_the_change_token_on_every_request(app_factory, admin_headers):
    here = await app_factory(ocsp_refresh_ms=0)
    there = await app_factory()
    issuer = await _issuer(here, admin_headers)
    cert_id, leaf, ca = await _issued(here, admin_headers, issuer, "a.example.test")
    assert await _status(here, issuer, leaf, ca) == ocsp.OCSPCertStatus.GOOD
    await _revoke(there, admin_headers, cert_id)
    assert await _status(here, issuer, leaf, ca) == ocsp.OCSPCertStatus.REVOKED


async def test_late_committed_revocations_are_caught_by_the_count(
    app_factory, admin_headers, database_url
):
    here = await app_factory(ocsp_refresh_ms=3_600_000)
    issuer = await _issuer(here, admin_headers)
    cert_id, leaf, ca = await _issued(here, admin_headers, issuer, "a.example.test")
    first_id, first, _ = await _issued(here, admin_headers, issuer, "b.example.test")
    await _revoke(here, admin_headers, first_id)
    assert await _status(here, issuer, first, ca) == ocsp.OCSPCertStatus.REVOKED
    # A row stamped a day before the newest known one (a transaction that committed late):
    # the incremental read misses it, the count does not.
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as conn:
            version = (
                await conn.execute(
                    sa.select(ManagedCertificate.current_version_id).where(
                        ManagedCertificate.id == cert_id
                    )
                )
            ).scalar_one()
            await conn.execute(
                sa.insert(CertificateRevocation).values(
                    id="rev-late",
                    certificate_id=cert_id,
                    version_id=version,
                    issuer_id=issuer,
                    serial_number=format(leaf.serial_number, "x"),
                    reason=1,
                    revoked_at=leaf.not_valid_before_utc - timedelta(days=1),
                    revoked_by="test",
                    issuer_notified=False,
                )
            )
    finally:
        await engine.dispose()
    await responder_service(here.runtime).refresh_all()
    assert await _status(here, issuer, leaf, ca) == ocsp.OCSPCertStatus.REVOKED


async def test_cached_answers_are_re_signed_per_serial(client, admin_headers):
    issuer = await _issuer(client, admin_headers)
    cert_id, leaf, ca = await _issued(client, admin_headers, issuer, "a.example.test")
    _, other, _ = await _issued(client, admin_headers, issuer, "b.example.test")
    first = await _post_raw(client, issuer, _request(leaf, ca))
    other_first = await _post_raw(client, issuer, _request(other, ca))
    assert await _post_raw(client, issuer, _request(leaf, ca)) == first
    await _revoke(client, admin_headers, cert_id)
    after = await _post_raw(client, issuer, _request(leaf, ca))
    assert after != first
    assert ocsp.load_der_ocsp_response(after).certificate_status == ocsp.OCSPCertStatus.REVOKED
    assert await _post_raw(client, issuer, _request(leaf, ca)) == after
    # The other serial's status did not change: its signed answer is still the cached one.
    assert await _post_raw(client, issuer, _request(other, ca)) == other_first
    # A nonce is still echoed, each time signed anew.
    for nonce in (b"\x05" * 16, b"\x06" * 16):
        resp = ocsp.load_der_ocsp_response(
            await _post_raw(client, issuer, _request(leaf, ca, nonce))
        )
        assert resp.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == nonce
        assert resp.certificate_status == ocsp.OCSPCertStatus.REVOKED


async def test_the_litestar_routes_answer_the_same(client, admin_headers):
    """Calling the router directly (past the fast path) gives the same statuses and limits."""
    issuer = await _issuer(client, admin_headers)
    _, leaf, ca = await _issued(client, admin_headers, issuer, "a.example.test")
    app = client.app

    async def router_only(scope, receive, send):
        scope["app"] = scope["litestar_app"] = app
        scope.setdefault("state", {})
        await app.asgi_router(scope, receive, send)

    direct = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=router_only), base_url="https://certctl.test.local"
    )
    async with direct:
        der = _request(leaf, ca, nonce=b"\x07" * 16)
        for target in (client, direct):
            resp = ocsp.load_der_ocsp_response(await _post_raw(target, issuer, der))
            assert resp.certificate_status == ocsp.OCSPCertStatus.GOOD
            assert resp.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == (
                b"\x07" * 16
            )
            r = await target.get(f"/.well-known/pki/ocsp/{issuer}/serial/{leaf.serial_number:x}")
            assert ocsp.load_der_ocsp_response(r.content).serial_number == leaf.serial_number
            r = await target.post(
                f"/.well-known/pki/ocsp/{issuer}", content=b"junk", headers={"Content-Type": "x"}
            )
            assert r.status_code == 200
            status = ocsp.load_der_ocsp_response(r.content).response_status
            assert status == ocsp.OCSPResponseStatus.MALFORMED_REQUEST
        # Other methods and paths are still Litestar's (405/404 problems, not OCSP).
        r = await client.delete(f"/.well-known/pki/ocsp/{issuer}")
        assert r.status_code == 405
        r = await client.get("/.well-known/pki/ocsp/")
        assert r.status_code in (404, 405)


async def test_rate_limit_and_body_limits_on_the_fast_path(app_factory, admin_headers):
    client = await app_factory(ocsp_rate_limit_per_ip_min=4)
    issuer = await _issuer(client, admin_headers)
    _, leaf, ca = await _issued(client, admin_headers, issuer, "a.example.test")
    url = f"/.well-known/pki/ocsp/{issuer}"

    async def chunks():
        yield _request(leaf, ca)
        for _ in range(3):
            yield b"\x00" * 4096

    # A streamed (chunked, no Content-Length) body over the limit, and a lying length.
    r = await client.post(url, content=chunks(), headers={"Content-Type": REQ_TYPE})
    assert r.status_code == 200
    resp = ocsp.load_der_ocsp_response(r.content)
    assert resp.response_status == ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    r = await client.post(
        url, content=b"\x30\x00", headers={"Content-Type": REQ_TYPE, "Content-Length": "-1"}
    )
    assert r.status_code in (200, 400)
    assert r.status_code != 500
    r = await client.post(url, content=_request(leaf, ca), headers={"Content-Type": REQ_TYPE})
    assert ocsp.load_der_ocsp_response(r.content).certificate_status == ocsp.OCSPCertStatus.GOOD
    r = await client.post(url, content=_request(leaf, ca), headers={"Content-Type": REQ_TYPE})
    assert r.status_code in (200, 429)
    r = await client.post(url, content=_request(leaf, ca), headers={"Content-Type": REQ_TYPE})
    assert r.status_code == 429
    assert int(r.headers["retry-after"]) >= 1
    resp = ocsp.load_der_ocsp_response(r.content)
    assert resp.response_status == ocsp.OCSPResponseStatus.TRY_LATER


async def test_rotate_ocsp_responders_replaces_those_due(client, admin_headers, database_url):
    issuer = await _issuer(client, admin_headers)
    _, leaf, ca = await _issued(client, admin_headers, issuer, "a.example.test")
    assert await rotate_ocsp_responders(client.runtime) == 0  # no responder yet
    first = ocsp.load_der_ocsp_response(await _post_raw(client, issuer, _request(leaf, ca)))
    assert await rotate_ocsp_responders(client.runtime) == 0  # fresh
    [responder] = first.certificates
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                sa.text("UPDATE ocsp_responders SET not_after = :t WHERE issuer_id = :i"),
                {"t": responder.not_valid_before_utc + timedelta(days=3), "i": issuer},
            )
    finally:
        await engine.dispose()
    assert await rotate_ocsp_responders(client.runtime) == 1
    assert await rotate_ocsp_responders(client.runtime) == 0
    await responder_service(client.runtime).refresh_all()
    nonce = _request(leaf, ca, nonce=b"\x08" * 8)
    [rotated] = ocsp.load_der_ocsp_response(await _post_raw(client, issuer, nonce)).certificates
    assert rotated.serial_number != responder.serial_number
    rotated.verify_directly_issued_by(ca)
