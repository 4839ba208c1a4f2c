"""The audit trail: append-only in the database, written for changes and refusals, readable."""

import hashlib
import json
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from certctl.db.base import new_id, utcnow
from certctl.db.engine import create_engine, make_sessionmaker
from certctl.db.migrate import migrate
from certctl.domain.audit.service import record
from certctl.domain.auth.actor import Actor


async def audit(client, headers, **params):
    r = await client.get("/api/v1/audit", params={"per_page": 500, **params}, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


# --- append-only ---------------------------------------------------------------------------


async def test_update_and_delete_are_refused_by_the_database(database_url):
    engine = create_engine(database_url)
    await migrate(engine)
    try:
        async with make_sessionmaker(engine).begin() as session:
            event = record(
                session,
                Actor(name="tester", type="APIKey"),
                "profile.create",
                resource_type="profile",
                resource_id="prof-1",
            )
        for statement in (
            "UPDATE audit_events SET actor = 'someone-else'",
            "UPDATE audit_events SET outcome = 'success' WHERE id = :id",
            "DELETE FROM audit_events WHERE id = :id",
            "DELETE FROM audit_events",
            *(["TRUNCATE audit_events"] if engine.dialect.name == "postgresql" else []),
        ):
            with pytest.raises(sa.exc.DBAPIError, match="append-only"):
                async with engine.begin() as conn:
                    await conn.execute(sa.text(statement), {"id": event.id})
        async with engine.connect() as conn:
            rows = (await conn.execute(sa.text("SELECT id, actor FROM audit_events"))).all()
        assert [tuple(r) for r in rows] == [(event.id, "tester")]
        # Appending still works.
        async with make_sessionmaker(engine).begin() as session:
            record(
                session,
                Actor.system("t"),
                "x",
                resource_type="y",
                resource_id="z",
            )
        async with engine.connect() as conn:
            assert await conn.scalar(sa.text("SELECT count(*) FROM audit_events")) == 2
    finally:
        await engine.dispose()


# --- what is recorded ----------------------------------------------------------------------


async def test_changes_are_recorded_with_actor_action_and_resource(client, admin_headers):
    r = await client.post("/api/v1/profiles", json={"name": "audited"}, headers=admin_headers)
    assert r.status_code == 201
    profile_id = r.json()["id"]
    r = await client.put(
        f"/api/v1/profiles/{profile_id}", json={"description": "changed"}, headers=admin_headers
    )
    assert r.status_code == 200
    r = await client.delete(f"/api/v1/profiles/{profile_id}", headers=admin_headers)
    assert r.status_code == 204

    events = (await audit(client, admin_headers, resource_id=profile_id))["data"]
    assert [(e["action"], e["outcome"]) for e in events] == [
        ("profile.delete", "success"),
        ("profile.update", "success"),
        ("profile.create", "success"),
    ]
    for event in events:
        assert event["actor"] == "admin"
        assert event["actor_type"] == "APIKey"
        assert event["resource_type"] == "profile"
        assert event["category"] == "config"
        assert event["timestamp"].endswith("Z")
    assert events[1]["details"] == {"fields": ["description"]}


async def test_refused_and_failed_changes_are_recorded_without_the_body(
    client, admin_headers, viewer_headers, database_url
):
    secret = "a-value-that-must-not-be-stored-0123456789"
    cases = [
        # (headers, method, path, body, status, outcome)
        ({}, "POST", "/api/v1/profiles", {"name": secret}, 401, "denied"),
        (viewer_headers, "POST", "/api/v1/profiles", {"name": secret}, 403, "denied"),
        (
            admin_headers,
            "POST",
            "/api/v1/profiles",
            {"name": "x", "colour": secret},
            400,
            "failure",
        ),
        (admin_headers, "DELETE", "/api/v1/profiles/prof-missing", None, 404, "failure"),
        (
            admin_headers,
            "PUT",
            "/api/v1/profiles/prof-missing",
            {"description": secret},
            404,
            "failure",
        ),
        (admin_headers, "POST", "/api/v1/jobs/job-missing/cancel", None, 404, "failure"),
    ]
    for headers, method, path, body, status, outcome in cases:
        content = json.dumps(body).encode() if body is not None else b""
        r = await client.request(
            method, path, content=content, headers={**headers, "content-type": "application/json"}
        )
        assert r.status_code == status, (method, path, r.text)

        [event] = (
            await audit(client, admin_headers, resource_id=path, action=f"api.{method.lower()}")
        )["data"][:1]
        assert event["resource_type"] == "api"
        assert event["outcome"] == outcome
        assert event["category"] == ("auth" if status in (401, 403) else "config")
        assert event["details"] == {
            "status": status,
            "body_sha256": hashlib.sha256(content).hexdigest(),
        }
        expected_actor = {401: "127.0.0.1", 403: "viewer"}.get(status, "admin")
        assert event["actor"] == expected_actor

    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(sa.text("SELECT * FROM audit_events"))).all()
    finally:
        await engine.dispose()
    assert len(rows) == len(cases)
    assert not any(secret in repr(tuple(row)) for row in rows)


async def test_unread_body_is_hashed_in_full(client, admin_headers):
    """The guard refuses before the handler reads the body; the row still hashes all of it."""
    chunks = [b'{"name": "', b"x" * 5000, b'"}']

    async def stream():
        for chunk in chunks:
            yield chunk

    r = await client.post(
        "/api/v1/profiles", content=stream(), headers={"content-type": "application/json"}
    )
    assert r.status_code == 401
    [event] = (await audit(client, admin_headers, action="api.post"))["data"]
    assert event["details"] == {
        "status": 401,
        "body_sha256": hashlib.sha256(b"".join(chunks)).hexdigest(),
    }


async def test_oversized_body_is_not_hashed(app_factory, admin_headers):
    client = await app_factory(max_body_size=2048)
    for headers, status in (({}, 401), (admin_headers, 413)):
        r = await client.post(
            "/api/v1/profiles",
            content=b'{"name": "' + b"y" * 10_000 + b'"}',
            headers={**headers, "content-type": "application/json"},
        )
        assert r.status_code == status
    events = (await audit(client, admin_headers, action="api.post"))["data"]
    assert [e["details"] for e in events] == [
        {"status": 413, "body_sha256": None, "body_too_large": True},
        {"status": 401, "body_sha256": None, "body_too_large": True},
    ]


async def test_reads_and_successes_add_no_middleware_rows(client, admin_headers):
    await client.get("/api/v1/profiles", headers=admin_headers)
    await client.get("/api/v1/profiles/prof-missing", headers=admin_headers)  # a 404 read
    await client.post("/api/v1/profiles", json={"name": "fine"}, headers=admin_headers)
    events = (await audit(client, admin_headers))["data"]
    assert [e["action"] for e in events] == ["profile.create"]


async def test_query_string_is_not_recorded(client):
    r = await client.post("/api/v1/profiles?token=leak-me-0123", json={})
    assert r.status_code == 401
    async with client.runtime.sessions() as session:
        rows = (await session.scalars(sa.text("SELECT resource_id FROM audit_events"))).all()
    assert rows == ["/api/v1/profiles"]


# --- reading -------------------------------------------------------------------------------


@pytest.fixture
async def populated(client, admin_headers, viewer_headers):
    """Three profile changes by admin and two refusals for viewer."""
    ids = []
    for name in ("alpha", "beta", "gamma"):
        r = await client.post("/api/v1/profiles", json={"name": name}, headers=admin_headers)
        ids.append(r.json()["id"])
    for _ in range(2):
        r = await client.post("/api/v1/profiles", json={"name": "nope"}, headers=viewer_headers)
        assert r.status_code == 403
    return ids


async def test_filters(client, admin_headers, populated):
    assert (await audit(client, admin_headers))["total"] == 5
    assert (await audit(client, admin_headers, actor="admin"))["total"] == 3
    assert (await audit(client, admin_headers, actor="viewer"))["total"] == 2
    assert (await audit(client, admin_headers, actor="nobody"))["total"] == 0
    assert (await audit(client, admin_headers, action="profile.create"))["total"] == 3
    assert (await audit(client, admin_headers, action="api.post"))["total"] == 2
    assert (await audit(client, admin_headers, resource_type="profile"))["total"] == 3
    assert (await audit(client, admin_headers, resource_type="api"))["total"] == 2
    one = await audit(client, admin_headers, resource_id=populated[1])
    assert one["total"] == 1
    assert one["data"][0]["details"] == {"name": "beta"}
    assert (await audit(client, admin_headers, outcome="denied"))["total"] == 2
    assert (await audit(client, admin_headers, category="auth"))["total"] == 2
    both = await audit(client, admin_headers, actor="admin", resource_id=populated[0])
    assert both["total"] == 1


async def test_since_and_until(client, admin_headers, populated):
    events = (await audit(client, admin_headers))["data"]
    times = sorted(e["timestamp"] for e in events)
    first, last = times[0], times[-1]
    assert (await audit(client, admin_headers, since=first))["total"] == 5
    assert (await audit(client, admin_headers, until=last))["total"] == 5
    assert (await audit(client, admin_headers, since=first, until=first))["total"] == times.count(
        first
    )
    assert (await audit(client, admin_headers, since=last))["total"] == times.count(last)
    later = (utcnow() + timedelta(hours=1)).isoformat()
    earlier = (utcnow() - timedelta(hours=1)).isoformat()
    assert (await audit(client, admin_headers, since=later))["total"] == 0
    assert (await audit(client, admin_headers, until=earlier))["total"] == 0
    assert (await audit(client, admin_headers, since=earlier, until=later))["total"] == 5
    # Offsets other than Z are understood.
    plus_two = (utcnow() + timedelta(hours=1)).astimezone().isoformat()
    assert (await audit(client, admin_headers, until=plus_two))["total"] == 5


async def test_timestamps_without_offset_are_400(client, admin_headers):
    for param in ("since", "until"):
        r = await client.get(
            "/api/v1/audit", params={param: "2026-01-01T00:00:00"}, headers=admin_headers
        )
        assert r.status_code == 400, r.text
        assert param in r.json()["detail"]
    r = await client.get("/api/v1/audit", params={"since": "yesterday"}, headers=admin_headers)
    assert r.status_code == 400


async def test_paging(client, admin_headers, populated):
    seen = []
    for page in (1, 2, 3):
        body = (
            await client.get(
                "/api/v1/audit", params={"per_page": 2, "page": page}, headers=admin_headers
            )
        ).json()
        assert (body["total"], body["page"], body["per_page"]) == (5, page, 2)
        seen.extend(e["id"] for e in body["data"])
    assert len(seen) == 5 == len(set(seen))
    everything = [e["id"] for e in (await audit(client, admin_headers))["data"]]
    assert seen == everything
    stamps = [e["timestamp"] for e in (await audit(client, admin_headers))["data"]]
    assert stamps == sorted(stamps, reverse=True)
    empty = (await client.get("/api/v1/audit", params={"page": 9}, headers=admin_headers)).json()
    assert (empty["data"], empty["total"]) == ([], 5)
    for bad in ({"page": 0}, {"per_page": 0}, {"per_page": 501}):
        r = await client.get("/api/v1/audit", params=bad, headers=admin_headers)
        assert r.status_code == 400


async def test_get_one_event(client, admin_headers, viewer_headers, populated):
    listed = (await audit(client, admin_headers))["data"][0]
    r = await client.get(f"/api/v1/audit/{listed['id']}", headers=viewer_headers)
    assert r.status_code == 200
    assert r.json() == listed
    r = await client.get(f"/api/v1/audit/{new_id('aud')}", headers=admin_headers)
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/problem+json")
    assert (await client.get(f"/api/v1/audit/{listed['id']}")).status_code == 401
