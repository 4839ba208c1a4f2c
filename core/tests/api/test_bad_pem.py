"""Malformed PEM and key material in connector configuration: a 400 naming the field, no row."""

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from certctl_sdk.testing import TestCA


async def _connectors(database_url):
    engine = create_async_engine(database_url)
    async with engine.connect() as conn:
        n = (await conn.execute(sa.text("SELECT count(*) FROM connectors"))).scalar_one()
    await engine.dispose()
    return n


async def test_garbage_and_mismatched_ca_material_is_rejected(client, admin_headers, database_url):
    ca = TestCA.create(common_name="Supplied Sub-CA")
    other = TestCA.create(common_name="Someone Else")
    leaf = ca.issue("not-a-ca.example.test")
    cases = [
        (
            {
                "ca_certificate_pem": "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
                "ca_private_key": ca.key_pem,
            },
            "ca_certificate_pem",
        ),
        ({"ca_certificate_pem": "hello", "ca_private_key": ca.key_pem}, "ca_certificate_pem"),
        ({"ca_certificate_pem": leaf.certificate_pem, "ca_private_key": leaf.key_pem}, "CA"),
        ({"ca_certificate_pem": ca.certificate_pem}, "ca_private_key"),
        (
            {
                "ca_certificate_pem": ca.certificate_pem,
                "ca_private_key": ca.key_pem,
                "chain_pem": "\x00\xff garbage",
            },
            "chain_pem",
        ),
    ]
    for config, needle in cases:
        r = await client.post(
            "/api/v1/issuers",
            json={"name": "sub", "type": "local", "config": {"mode": "sub-ca", **config}},
            headers=admin_headers,
        )
        assert r.status_code == 400, (needle, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
        assert needle in r.json()["detail"], (needle, r.json())
        assert "PRIVATE KEY" not in r.text
    assert await _connectors(database_url) == 0

    # A key that does not match the certificate is caught when the issuer is tested or used.
    r = await client.post(
        "/api/v1/issuers",
        json={
            "name": "sub",
            "type": "local",
            "config": {
                "mode": "sub-ca",
                "ca_certificate_pem": ca.certificate_pem,
                "ca_private_key": other.key_pem,
            },
        },
        headers=admin_headers,
    )
    if r.status_code == 201:
        check = (
            await client.post(f"/api/v1/issuers/{r.json()['id']}/test", headers=admin_headers)
        ).json()
        assert check["ok"] is False and "match" in check["message"]
    else:
        assert r.status_code == 400 and "match" in r.json()["detail"]
