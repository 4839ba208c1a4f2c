"""await_issuance: the bounded wait EST and SCEP use, against the real job engine."""

from __future__ import annotations

import asyncio

import sqlalchemy as sa

from certctl.db.models import Job
from certctl.domain.certificates.waiting import await_issuance
from certctl.domain.jobs import completion


async def _certificate(client, headers, *, approval: bool = False) -> str:
    issuer = (
        await client.post(
            "/api/v1/issuers", json={"name": "ca", "type": "local", "config": {}}, headers=headers
        )
    ).json()["id"]
    body = {"common_name": "wait.example.test", "issuer_id": issuer}
    if approval:
        profile = await client.post(
            "/api/v1/profiles",
            json={"name": "gated", "issuer_id": issuer, "requires_approval": True},
            headers=headers,
        )
        assert profile.status_code == 201, profile.text
        body["profile_id"] = profile.json()["id"]
    created = await client.post("/api/v1/certificates", json=body, headers=headers)
    assert created.status_code in (201, 202), created.text
    job_id = created.json()["job"]["id"]
    assert job_id
    return str(job_id)


async def test_pending_until_the_worker_signs_then_issued(client, admin_headers) -> None:
    sessions = client.runtime.sessions
    job_id = await _certificate(client, admin_headers)
    waited = await await_issuance(sessions, job_id, wait_seconds=0.1)
    assert waited.state == "pending"
    await client.runtime.worker.drain()
    issued = await await_issuance(sessions, job_id, wait_seconds=5)
    assert issued.state == "issued"
    assert issued.version is not None
    assert "BEGIN CERTIFICATE" in issued.version.certificate_pem


async def test_failed_and_missing_jobs_say_why(client, admin_headers) -> None:
    sessions = client.runtime.sessions
    job_id = await _certificate(client, admin_headers)
    async with sessions() as session:
        await session.execute(
            sa.update(Job).where(Job.id == job_id).values(status="failed", last_error="CA offline")
        )
        await session.commit()
    failed = await await_issuance(sessions, job_id, wait_seconds=5)
    assert (failed.state, failed.error) == ("failed", "CA offline")
    missing = await await_issuance(sessions, "job-none", wait_seconds=5)
    assert missing.state == "failed"
    assert missing.error == "the issuance job no longer exists"


async def test_awaiting_approval_returns_at_once(client, admin_headers) -> None:
    job_id = await _certificate(client, admin_headers, approval=True)
    outcome = await await_issuance(client.runtime.sessions, job_id, wait_seconds=30)
    assert outcome.state == "awaiting_approval"


async def test_a_waiter_is_answered_while_the_worker_runs(client, admin_headers) -> None:
    job_id = await _certificate(client, admin_headers)
    waiting = asyncio.create_task(await_issuance(client.runtime.sessions, job_id, wait_seconds=30))
    await asyncio.sleep(0)
    await client.runtime.worker.drain()
    outcome = await asyncio.wait_for(waiting, 30)
    assert outcome.state == "issued"
    assert not completion._waiters  # the watch is gone with the waiter


async def test_the_worker_rings_only_for_its_jobs() -> None:
    with completion.watch("job-a") as a, completion.watch("job-b") as b:
        completion.notify(["job-a", "job-unwatched"])
        assert a.is_set()
        assert not b.is_set()
    assert "job-a" not in completion._waiters and "job-b" not in completion._waiters
