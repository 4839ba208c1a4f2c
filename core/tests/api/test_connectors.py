"""Connector instances over REST: validation, secret masking, encryption at rest."""

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

SECRET = "hmac-secret-value-that-must-never-leak-1234"


async def _raw_rows(database_url: str, table: str) -> list[str]:
    engine = create_async_engine(database_url)
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.text(f"SELECT * FROM {table}"))).all()  # noqa: S608 - fixed table names
    await engine.dispose()
    return [repr(tuple(r)) for r in rows]


async def _create_webhook(client, auth_headers, **config):
    body = {
        "name": "hooks",
        "type": "webhook",
        "config": {"url": "https://hooks.example/x", "secret": SECRET, **config},
    }
    return await client.post("/api/v1/notifiers", json=body, headers=auth_headers)


async def test_kinds_carry_schema_and_capabilities(client, admin_headers):
    r = await client.get("/api/v1/notifier-kinds", headers=admin_headers)
    assert r.status_code == 200
    kinds = {k["type"]: k for k in r.json()}
    schema = kinds["webhook"]["config_schema"]
    definition = next(iter(schema["$defs"].values()))
    assert definition["properties"]["secret"]["writeOnly"] is True
    assert definition["additionalProperties"] is False
    assert kinds["webhook"]["distribution"] == "certctl-notifier-webhook"


async def test_secret_is_masked_and_encrypted_at_rest(client, admin_headers, database_url):
    r = await _create_webhook(client, admin_headers)
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["config"]["secret"] == "**********"
    assert SECRET not in r.text
    r = await client.get(f"/api/v1/notifiers/{created['id']}", headers=admin_headers)
    assert SECRET not in r.text and r.json()["config"]["url"] == "https://hooks.example/x"
    rows = await _raw_rows(database_url, "connectors") + await _raw_rows(
        database_url, "audit_events"
    )
    assert rows and not any(SECRET in row for row in rows)
    assert any("v1:" in row for row in rows)

    # Sending the mask back keeps the stored secret; the live connector still has the plaintext.
    r = await client.put(
        f"/api/v1/notifiers/{created['id']}",
        json={"config": {"url": "https://hooks.example/y", "secret": "**********"}},
        headers=admin_headers,
    )
    assert r.status_code == 200, r.text
    runtime = client.runtime
    async with runtime.sessions() as session:
        row = await runtime.connectors.get_row(session, "notifier", created["id"])
    config = runtime.connectors.open_config(row)
    from certctl_sdk import reveal

    assert reveal(config.secret) == SECRET
    assert config.url == "https://hooks.example/y"


async def test_wrong_encryption_key_fails_cleanly(app_factory, admin_headers):
    first = await app_factory()
    created = (await _create_webhook(first, admin_headers)).json()
    other = await app_factory(config_encryption_key="a-completely-different-key-0123456789-abcdef")
    r = await other.get(f"/api/v1/notifiers/{created['id']}", headers=admin_headers)
    assert r.status_code == 200  # masking needs no decryption
    r = await other.post(f"/api/v1/notifiers/{created['id']}/test", headers=admin_headers)
    assert r.status_code == 503
    assert "CERTCTL_CONFIG_ENCRYPTION_KEY" in r.json()["detail"]
    assert SECRET not in r.text


async def test_bad_connector_input_is_rejected_with_a_reason(client, admin_headers, database_url):
    cases = [
        ({"name": "x", "type": "nope", "config": {}}, "nope"),
        (
            {
                "name": "x",
                "type": "webhook",
                "config": {"url": "https://a", "secret": "s", "colour": 1},
            },
            "colour",
        ),
        ({"name": "x", "type": "webhook", "config": {"url": "https://a", "secret": 5}}, "secret"),
        ({"name": "x", "type": "webhook", "config": {"url": "https://a"}}, "secret"),
        (
            {
                "name": "x",
                "type": "webhook",
                "config": {"url": "https://a", "secret": "**********"},
            },
            "real values",
        ),
        ({"name": "", "type": "webhook", "config": {}}, "name"),
        ({"name": "x", "type": "webhook", "extra": True}, "extra"),
    ]
    for body, needle in cases:
        r = await client.post("/api/v1/notifiers", json=body, headers=admin_headers)
        assert r.status_code == 400, (body, r.text)
        problem = r.json()
        assert problem["status"] == 400 and needle in r.text, (needle, problem)
    r = await client.post(
        "/api/v1/notifiers",
        content=b"{not json",
        headers=admin_headers | {"content-type": "application/json"},
    )
    assert r.status_code == 400
    r = await client.get("/api/v1/notifiers", headers=admin_headers)
    assert r.json()["total"] == 0
    assert await _raw_rows(database_url, "connectors") == []


async def test_duplicate_name_conflicts(client, admin_headers):
    assert (await _create_webhook(client, admin_headers)).status_code == 201
    r = await _create_webhook(client, admin_headers)
    assert r.status_code == 409


async def test_viewer_cannot_change_connectors(client, viewer_headers):
    r = await _create_webhook(client, viewer_headers)
    assert r.status_code == 403
    assert "notification.edit" in r.json()["detail"]
    r = await client.get("/api/v1/notifiers", headers=viewer_headers)
    assert r.status_code == 200


async def test_oversized_body_is_413(app_factory, admin_headers):
    client = await app_factory(max_body_size=2048)
    r = await _create_webhook(client, admin_headers, headers={"x-pad": "a" * 5000})
    assert r.status_code == 413
    assert r.headers["content-type"].startswith("application/problem+json")


async def test_state_store_add_is_atomic_across_concurrent_callers(client, admin_headers):
    import asyncio

    from certctl.domain.connectors.state import DatabaseStateStore

    created = (await _create_webhook(client, admin_headers)).json()
    runtime = client.runtime
    stores = [DatabaseStateStore(created["id"], runtime.sessions, runtime.box) for _ in range(5)]
    won = await asyncio.gather(
        *(s.add("root", f"value-{i}".encode()) for i, s in enumerate(stores))
    )
    assert sum(won) == 1
    winner = won.index(True)
    assert await stores[0].get("root") == f"value-{winner}".encode()
    assert await stores[1].add("root", b"again") is False
    await stores[1].set("root", b"replaced")
    assert await stores[2].get("root") == b"replaced"
