"""One-time challenge passwords, Intune signed challenges and the SCEP admin API."""

from __future__ import annotations

import base64
import json
import time
from datetime import timedelta
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from sqlalchemy import select, update

from certctl.db.base import utcnow
from certctl.db.models import ScepChallenge
from certctl.domain.scep.settings import IntuneSettings
from certctl_sdk.models import KeyType
from certctl_sdk.testing import TestCA

AUDIENCE = "https://certctl.test.local/scep/devices"


async def test_one_time_password_is_single_use_and_stored_hashed(
    scep_app, kit, admin_headers, viewer_headers
):
    app = await scep_app()
    url = "/api/v1/admin/scep/challenges"
    r = await app.client.post(url, json={"profile": "devices"}, headers=viewer_headers)
    assert r.status_code == 403
    r = await app.client.post(url, json={"profile": "nope"}, headers=admin_headers)
    assert r.status_code == 404
    r = await app.client.post(
        url, json={"profile": "devices", "expires_in_seconds": 10**9}, headers=admin_headers
    )
    assert r.status_code == 400
    r = await app.client.post(
        url, json={"profile": "devices", "label": "laptop-7"}, headers=admin_headers
    )
    assert r.status_code == 201, r.text
    otp = r.json()["challenge"]
    assert len(otp) >= 32
    first = kit.Device()
    assert (await app.enrol(first, first.pkcs_req(app.ra, challenge=otp))).status == "0"
    second = kit.Device()
    reply = await app.enrol(second, second.pkcs_req(app.ra, challenge=otp))
    assert (reply.status, reply.fail_info) == ("2", "2")
    r = await app.client.get(url, headers=admin_headers)
    (listed,) = r.json()["data"]
    assert listed["status"] == "used" and listed["used_by"] == first.transaction_id
    assert otp not in r.text
    async with app.client.runtime.sessions() as session:
        row = (await session.scalars(select(ScepChallenge))).one()
        assert otp not in json.dumps([str(getattr(row, c.key)) for c in row.__table__.columns])
    r = await app.client.get("/api/v1/admin/scep/profiles", headers=admin_headers)
    assert r.status_code == 200
    assert kit.CHALLENGE not in r.text and r.json()["data"][0]["path"] == "/scep/devices"


async def test_expired_and_withdrawn_passwords_are_refused(scep_app, kit, admin_headers):
    app = await scep_app()
    url = "/api/v1/admin/scep/challenges"
    made = [
        (await app.client.post(url, json={"profile": "devices"}, headers=admin_headers)).json()
        for _ in range(2)
    ]
    async with app.client.runtime.sessions() as session:
        await session.execute(
            update(ScepChallenge)
            .where(ScepChallenge.id == made[0]["id"])
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
        await session.commit()
    r = await app.client.delete(f"{url}/{made[1]['id']}", headers=admin_headers)
    assert r.status_code == 204
    for created in made:
        device = kit.Device()
        reply = await app.enrol(device, device.pkcs_req(app.ra, challenge=created["challenge"]))
        assert (reply.status, reply.fail_info) == ("2", "2")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _token(key, alg: str = "RS256", **claims) -> str:
    now = int(time.time())
    body = {"ver": 1, "iss": "connector-1", "sub": "device-42", "aud": AUDIENCE,
            "iat": now, "exp": now + 600, "cn": "device-1", **claims}  # fmt: skip
    body = {k: v for k, v in body.items() if v is not None}
    head = _b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    payload = _b64(json.dumps(body).encode())
    signed = f"{head}.{payload}".encode()
    if alg == "RS256":
        signature = key.sign(signed, padding.PKCS1v15(), hashes.SHA256())
    elif alg == "ES256":
        r, s = decode_dss_signature(key.sign(signed, ec.ECDSA(hashes.SHA256())))
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    else:
        signature = b""
    return f"{head}.{payload}.{_b64(signature)}"


async def _intune_app(scep_app, tmp_path: Path, limit: int = 3):
    ca = TestCA.create(common_name="Intune connector CA")
    rsa_leaf = ca.issue("connector RSA", key_type=KeyType.RSA_2048)
    ec_leaf = ca.issue("connector EC", key_type=KeyType.ECDSA_P256)
    bundle = tmp_path / "connector.pem"
    bundle.write_text(rsa_leaf.certificate_pem + ec_leaf.certificate_pem)
    intune = IntuneSettings(enabled=True, connector_cert_path=str(bundle), audience=AUDIENCE,
                            challenge_validity_seconds=3600, per_device_limit_24h=limit)  # fmt: skip
    app = await scep_app(profile={"intune": intune})
    keys = [serialization.load_pem_private_key(leaf.key_pem.encode(), None)
            for leaf in (rsa_leaf, ec_leaf)]  # fmt: skip
    return app, keys[0], keys[1], bundle


async def test_intune_challenge_rules(scep_app, kit, admin_headers, tmp_path):
    app, rsa_key, ec_key, _ = await _intune_app(scep_app, tmp_path, limit=3)
    assert isinstance(rsa_key, rsa.RSAPrivateKey)

    async def attempt(token: str, cn: str = "device-1") -> tuple[str, str | None]:
        device = kit.Device()
        reply = await app.enrol(device, device.pkcs_req(app.ra, cn=cn, challenge=token))
        return reply.status, reply.fail_info

    good = _token(rsa_key)
    assert await attempt(good) == ("0", None)
    assert await attempt(good) == ("2", "2")  # replay
    assert await attempt(_token(ec_key, "ES256", sub="device-43")) == ("0", None)
    refused = [
        _token(rsa_key, "none"),
        _token(rsa_key, "HS256"),
        _token(rsa_key, aud="https://elsewhere/scep"),
        _token(rsa_key, iat=int(time.time()) - 7200, exp=int(time.time()) - 3600),
        _token(rsa_key, exp=int(time.time()) + 7200),  # beyond the validity cap
        _token(rsa_key, iat=int(time.time()) + 600, exp=int(time.time()) + 900),
        _token(rsa_key, cn="another-device"),
        _token(rsa_key, cn=None),
        _token(rsa_key, ver=2),
        _token(ec.generate_private_key(ec.SECP256R1()), "ES256"),  # not in the bundle
    ]
    for token in refused:
        assert await attempt(token) == ("2", "2"), token
    # The static password still works beside Intune.
    assert await attempt(kit.CHALLENGE) == ("0", None)
    r = await app.client.get("/api/v1/audit", params={"action": "scep_pkcsreq_intune"},
                             headers=admin_headers)  # fmt: skip
    assert len(r.json()["data"]) == 2
    r = await app.client.get("/api/v1/admin/scep/intune/stats", headers=admin_headers)
    counters = r.json()["profiles"]["devices"]["counters"]
    assert counters["accepted"] == 2 and counters["replayed"] == 1
    assert counters["rejected"] + counters.get("expired", 0) == len(refused)


async def test_intune_per_device_limit_and_trust_reload(scep_app, kit, admin_headers, tmp_path):
    app, rsa_key, _, bundle = await _intune_app(scep_app, tmp_path, limit=1)

    async def attempt(token: str) -> tuple[str, str | None]:
        device = kit.Device()
        reply = await app.enrol(device, device.pkcs_req(app.ra, challenge=token))
        return reply.status, reply.fail_info

    assert await attempt(_token(rsa_key)) == ("0", None)
    assert await attempt(_token(rsa_key, iat=int(time.time()) - 1)) == ("2", "2")  # limit 1/24h
    assert await attempt(_token(rsa_key, sub="other-device")) == ("0", None)
    bundle.write_text("not a bundle")
    r = await app.client.post("/api/v1/admin/scep/intune/reload-trust", headers=admin_headers)
    assert r.status_code == 200
    assert r.json()["profiles"]["devices"]["reloaded"] is False  # the old bundle stays
    assert await attempt(_token(rsa_key, sub="third-device")) == ("0", None)
