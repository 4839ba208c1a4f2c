"""The scheduler: leader election on both databases, loop status, run-now, sweeps."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import select, text

from certctl.db.base import new_id, utcnow
from certctl.db.models import Job, Notification, SchedulerReplica
from certctl.runtime import Runtime
from certctl.scheduler import Scheduler
from certctl.scheduler.leader import LEADER_LOCK_ID
from certctl.scheduler.loops import LoopSpec
from certctl.settings import SettingsError
from certctl.worker.reaper import collect_garbage, reap_jobs

QUIET = {"scheduler_heartbeat_interval": 3600.0, "leader_lease_seconds": 7200.0}
"""Heartbeats driven by the test (``_heartbeat()``), never by the clock."""


async def _replicas(settings_factory, count: int, **overrides) -> list[Runtime]:
    runtimes = []
    for _ in range(count):
        runtime = Runtime(settings_factory(**(QUIET | overrides)))
        await runtime.start(background=False)
        runtime.scheduler = Scheduler(runtime)
        runtimes.append(runtime)
    return runtimes


async def _stop(runtimes: list[Runtime]) -> None:
    for runtime in runtimes:
        await runtime.stop()


async def test_exactly_one_replica_leads_and_the_lead_moves_when_it_leaves(settings_factory):
    runtimes = await _replicas(settings_factory, 3)
    try:
        schedulers = [r.scheduler for r in runtimes]
        for scheduler in schedulers:
            await scheduler.start()
        for _ in range(3):  # more rounds change nothing: the lead is held
            for scheduler in schedulers:
                await scheduler._heartbeat()
            assert sum(s.is_leader for s in schedulers) == 1
        leader = next(s for s in schedulers if s.is_leader)
        assert leader is schedulers[0]  # the first to start took it
        await leader.stop()  # clean stop hands the lead over at once
        rest = schedulers[1:]
        for scheduler in rest:
            await scheduler._heartbeat()
        assert sum(s.is_leader for s in rest) == 1
        async with runtimes[1].sessions() as session:
            rows = list(await session.scalars(select(SchedulerReplica)))
        assert {r.id for r in rows} == {s.replica_id for s in rest}
        assert [r.id for r in rows if r.is_leader] == [s.replica_id for s in rest if s.is_leader]
    finally:
        await _stop(runtimes)


@pytest.mark.postgres
async def test_postgres_leader_whose_connection_dies_is_replaced(settings_factory):
    if not settings_factory().effective_database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL-only: the lead is an advisory lock tied to a connection")
    runtimes = await _replicas(settings_factory, 2)
    try:
        first, second = (r.scheduler for r in runtimes)
        await first.start()
        await second.start()
        assert first.is_leader and not second.is_leader
        # What kill -9 does to the leader's session: the server ends it, the lock goes with it.
        async with runtimes[1].engine.connect() as conn:
            killed = await conn.scalar(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_locks "
                    "WHERE locktype = 'advisory' AND objid = (:k & 4294967295) AND granted "
                    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                ),
                {"k": LEADER_LOCK_ID},
            )
            await conn.commit()
        assert killed == 1
        for _ in range(50):
            await second._heartbeat()
            if second.is_leader:
                break
            await asyncio.sleep(0.05)
        assert second.is_leader
        await first._heartbeat()  # the old leader notices its lost connection and steps down
        assert not first.is_leader
    finally:
        await _stop(runtimes)


async def test_a_silent_sqlite_leader_loses_its_lease(settings_factory):
    if settings_factory().effective_database_url.startswith("postgresql"):
        pytest.skip("SQLite-only: PostgreSQL's lead is a lock, not a lease")
    runtimes = await _replicas(
        settings_factory, 2, scheduler_heartbeat_interval=0.05, leader_lease_seconds=0.2
    )
    try:
        first, second = (r.scheduler for r in runtimes)
        await first._heartbeat()
        await second._heartbeat()
        assert first.is_leader and not second.is_leader
        await asyncio.sleep(0.3)  # first stops beating (as if killed): its lease runs out
        await second._heartbeat()
        assert second.is_leader
        await first._heartbeat()
        assert not first.is_leader
    finally:
        await _stop(runtimes)


async def test_status_shows_loops_runs_errors_and_the_leader(
    app_factory, admin_headers, viewer_headers
):
    client = await app_factory(background=True, **QUIET)
    scheduler = client.runtime.scheduler

    async def broken(_runtime) -> int:
        raise RuntimeError("issuer unreachable")

    scheduler.specs["renewal-check"] = LoopSpec(
        name="renewal-check",
        description="broken on purpose",
        run=broken,
        interval=3600,
        leader_only=True,
        timeout=5,
    )
    r = await client.post("/api/v1/scheduler/loops/job-reaper/run", headers=admin_headers)
    assert r.status_code == 200, r.text
    assert r.json() == {"loop": "job-reaper", "replica_id": scheduler.replica_id, "handled": 0}
    r = await client.post("/api/v1/scheduler/loops/renewal-check/run", headers=admin_headers)
    assert r.status_code == 503
    assert "issuer unreachable" in r.json()["detail"]
    await scheduler._heartbeat()

    r = await client.get("/api/v1/scheduler", headers=viewer_headers)
    assert r.status_code == 200
    body = r.json()
    assert body["replica_id"] == scheduler.replica_id
    assert body["leader"]["id"] == scheduler.replica_id
    assert [rep["id"] for rep in body["replicas"]] == [scheduler.replica_id]
    loops = {loop["name"]: loop for loop in body["loops"]}
    assert set(loops) == {
        "job-processor",
        "renewal-check",
        "job-reaper",
        "notification-process",
        "expiry-alerts",
        "digest",
        "crl-generation",
        "ocsp-responder-rotation",
        "approval-expiry",
        "compliance-evaluation",
        "garbage-collection",
        "session-gc",
        "rate-limit-janitor",
        "audit-chain-verify",
        "acme-gc",
    }
    assert [name for name, loop in loops.items() if not loop["leader_only"]] == [
        "job-processor",
        "rate-limit-janitor",  # each replica forgets its own in-process buckets
    ]
    assert loops["renewal-check"]["leader_only"] is True
    assert loops["job-processor"]["leader_only"] is False
    assert loops["renewal-check"]["env"] == "CERTCTL_SCHEDULER_RENEWAL_CHECK_INTERVAL"
    assert loops["renewal-check"]["last_error"] == "RuntimeError: issuer unreachable"
    reaper = loops["job-reaper"]
    assert reaper["last_error"] is None and reaper["last_run_at"] is not None
    assert reaper["replicas"][0]["runs"] >= 1
    assert reaper["replicas"][0]["last_handled"] == 0

    assert (
        await client.post("/api/v1/scheduler/loops/job-reaper/run", headers=viewer_headers)
    ).status_code == 403
    assert (
        await client.post("/api/v1/scheduler/loops/no-such-loop/run", headers=admin_headers)
    ).status_code == 404


async def test_leader_only_loops_refuse_to_run_on_a_follower(app_factory, admin_headers):
    leader = await app_factory(background=True, **QUIET)
    follower = await app_factory(background=True, **QUIET)
    assert leader.runtime.scheduler.is_leader
    assert not follower.runtime.scheduler.is_leader
    r = await follower.post("/api/v1/scheduler/loops/renewal-check/run", headers=admin_headers)
    assert r.status_code == 409
    assert "leader" in r.json()["detail"]
    # Loops that claim their work row by row run anywhere.
    r = await follower.post("/api/v1/scheduler/loops/job-processor/run", headers=admin_headers)
    assert r.status_code == 200
    body = (await follower.get("/api/v1/scheduler", headers=admin_headers)).json()
    assert body["leader"]["id"] == leader.runtime.scheduler.replica_id
    assert len(body["replicas"]) == 2


async def test_without_background_work_the_api_still_reports(client, admin_headers):
    body = (await client.get("/api/v1/scheduler", headers=admin_headers)).json()
    assert body["replica_id"] is None and body["leader"] is None
    assert any(loop["name"] == "renewal-check" for loop in body["loops"])
    r = await client.post("/api/v1/scheduler/loops/renewal-check/run", headers=admin_headers)
    assert r.status_code == 409


async def test_unknown_loop_names_in_settings_refuse_start(settings_factory):
    runtime = Runtime(settings_factory(loop_intervals={"renewal-chekc": 5.0}))
    try:
        with pytest.raises(SettingsError, match="renewal-chekc"):
            Scheduler(runtime)
    finally:
        await runtime.stop()


async def test_interval_overrides_and_disabled_loops_apply(settings_factory):
    runtime = Runtime(
        settings_factory(
            loop_intervals={"renewal-check": 5.0}, disabled_loops=("garbage-collection",)
        )
    )
    try:
        scheduler = Scheduler(runtime)
        assert scheduler.specs["renewal-check"].interval == 5.0
        assert "garbage-collection" not in scheduler.specs
    finally:
        await runtime.stop()


def _job(status: str, *, attempts: int, lease_delta: timedelta | None, completed_ago=None):
    now = utcnow()
    return Job(
        id=new_id("job"),
        type="deployment",
        status=status,
        idempotency_key=new_id("k"),
        attempts=attempts,
        max_attempts=3,
        next_run_at=now,
        lease_expires_at=None if lease_delta is None else now + lease_delta,
        claimed_by="dead-worker" if status == "running" else None,
        result={},
        created_at=now,
        completed_at=None if completed_ago is None else now - completed_ago,
    )


async def test_reaper_fails_lost_jobs_on_their_last_attempt_only(client):
    runtime = client.runtime
    lost_last = _job("running", attempts=3, lease_delta=timedelta(seconds=-5))
    lost_early = _job("running", attempts=1, lease_delta=timedelta(seconds=-5))
    healthy = _job("running", attempts=3, lease_delta=timedelta(minutes=5))
    async with runtime.sessions.begin() as session:
        session.add_all([lost_last, lost_early, healthy])
    assert await reap_jobs(runtime) == 1
    assert await reap_jobs(runtime) == 0
    async with runtime.sessions() as session:
        rows = {j.id: j for j in await session.scalars(select(Job))}
    assert rows[lost_last.id].status == "failed"
    assert "lease expired" in (rows[lost_last.id].last_error or "")
    assert rows[lost_early.id].status == "running"  # still has attempts: a worker reclaims it
    assert rows[healthy.id].status == "running"
    from certctl.domain.jobs import service as jobs

    async with runtime.sessions() as session:
        claimed = await jobs.claim(session, worker_id="w2", limit=10, lease_seconds=60)
    assert [j.id for j in claimed] == [lost_early.id]


async def test_garbage_collection_keeps_recent_and_open_jobs(client):
    runtime = client.runtime
    old = _job("completed", attempts=1, lease_delta=None, completed_ago=timedelta(days=40))
    recent = _job("completed", attempts=1, lease_delta=None, completed_ago=timedelta(days=1))
    pending = _job("pending", attempts=0, lease_delta=None)
    gone = SchedulerReplica(
        id="dead:1:r",
        hostname="dead",
        pid=1,
        role="serve",
        is_leader=False,
        started_at=utcnow() - timedelta(days=3),
        heartbeat_at=utcnow() - timedelta(days=2),
    )

    def notification(status: str, sent_ago: timedelta | None) -> Notification:
        return Notification(
            id=new_id("ntf"),
            event="certificate.issued",
            severity="info",
            subject="s",
            body="b",
            data={},
            notifier_id="ntf-x",
            status=status,
            dedup_key=new_id("d"),
            sent_at=None if sent_ago is None else utcnow() - sent_ago,
        )

    delivered_long_ago = notification("sent", timedelta(days=40))
    delivered = notification("sent", timedelta(days=2))
    dead = notification("dead", None)
    async with runtime.sessions.begin() as session:
        session.add_all([old, recent, pending, gone, delivered_long_ago, delivered, dead])
    assert await collect_garbage(runtime) == 3
    async with runtime.sessions() as session:
        left = set(await session.scalars(select(Job.id)))
        replicas = set(await session.scalars(select(SchedulerReplica.id)))
        kept = set(await session.scalars(select(Notification.id)))
    assert left == {recent.id, pending.id}
    assert "dead:1:r" not in replicas
    assert kept == {delivered.id, dead.id}  # the dead-letter queue waits for an operator


async def test_background_loops_issue_without_being_driven(app_factory, admin_headers):
    client = await app_factory(background=True)
    issuer = (
        await client.post(
            "/api/v1/issuers",
            json={"name": "ca", "type": "local", "config": {}},
            headers=admin_headers,
        )
    ).json()["id"]
    cert = (
        await client.post(
            "/api/v1/certificates",
            json={"common_name": "loop.test", "issuer_id": issuer},
            headers=admin_headers,
        )
    ).json()["certificate"]
    for _ in range(200):
        got = (await client.get(f"/api/v1/certificates/{cert['id']}", headers=admin_headers)).json()
        if got["status"] == "active":
            break
        await asyncio.sleep(0.05)
    assert got["status"] == "active"
