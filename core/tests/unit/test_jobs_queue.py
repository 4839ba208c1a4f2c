"""The durable job queue on SQLite and PostgreSQL: enqueue, claim, leases, finish, cancel."""

import asyncio
import secrets
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy import select, update

from certctl.db.base import utcnow
from certctl.db.engine import create_engine, make_sessionmaker
from certctl.db.migrate import migrate
from certctl.db.models import Job
from certctl.domain.jobs import service as jobs
from certctl.errors import Conflict


@pytest.fixture
async def sessions(database_url):
    engine = create_engine(database_url)
    await migrate(engine)
    yield make_sessionmaker(engine)
    await engine.dispose()


async def add_job(sessions, key: str, **kwargs) -> Job:
    async with sessions() as session:
        job = await jobs.enqueue(
            session,
            type=kwargs.pop("type", "issue"),
            idempotency_key=key,
            certificate_id=None,
            requested_by="test",
            max_attempts=kwargs.pop("max_attempts", 5),
            **kwargs,
        )
        await session.commit()
        return job


async def load(sessions, job_id: str) -> Job:
    async with sessions() as session:
        job = await session.get(Job, job_id)
        assert job is not None
        return job


async def claim(sessions, worker: str, *, limit: int = 10, lease: int = 300) -> list[Job]:
    async with sessions() as session:
        return await jobs.claim(session, worker_id=worker, limit=limit, lease_seconds=lease)


async def expire_lease(sessions, job_id: str) -> None:
    async with sessions.begin() as session:
        await session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(lease_expires_at=utcnow() - timedelta(seconds=1))
        )


# --- enqueue -------------------------------------------------------------------------------


async def test_enqueue_with_the_same_idempotency_key_returns_the_same_job(sessions):
    first = await add_job(sessions, "issue:mc-1:1")
    again = await add_job(sessions, "issue:mc-1:1", type="renew")
    other = await add_job(sessions, "issue:mc-1:2")
    assert again.id == first.id
    assert again.type == "issue"
    assert other.id != first.id
    async with sessions() as session:
        rows = list(await session.scalars(select(Job).order_by(Job.idempotency_key)))
    assert [r.idempotency_key for r in rows] == ["issue:mc-1:1", "issue:mc-1:2"]
    assert all(r.status == "pending" and r.attempts == 0 for r in rows)


async def test_enqueue_inside_a_larger_transaction_keeps_it_usable(sessions):
    async with sessions() as session:
        a = await jobs.enqueue(
            session,
            type="issue",
            idempotency_key="k-a",
            certificate_id=None,
            requested_by="t",
            max_attempts=3,
        )
        b = await jobs.enqueue(
            session,
            type="issue",
            idempotency_key="k-a",
            certificate_id=None,
            requested_by="t",
            max_attempts=3,
        )
        assert a is b
        await session.commit()
    assert (await load(sessions, a.id)).max_attempts == 3


# --- claim ---------------------------------------------------------------------------------


async def test_claim_marks_running_with_a_lease_and_counts_the_attempt(sessions):
    job = await add_job(sessions, "k1")
    before = utcnow()
    [claimed] = await claim(sessions, "worker-a", lease=120)
    assert claimed.id == job.id
    row = await load(sessions, job.id)
    assert row.status == "running"
    assert row.claimed_by == "worker-a"
    assert row.attempts == 1
    assert row.started_at is not None
    assert row.started_at >= before
    assert row.lease_expires_at == row.started_at + timedelta(seconds=120)
    # A running job with a live lease is not claimable by anyone, including its own worker.
    assert await claim(sessions, "worker-b") == []
    assert await claim(sessions, "worker-a") == []


async def test_claim_respects_limit_and_next_run_at(sessions):
    for i in range(3):
        await add_job(sessions, f"now-{i}")
    later = await add_job(sessions, "later", run_at=utcnow() + timedelta(hours=1))
    first = await claim(sessions, "w", limit=2)
    second = await claim(sessions, "w", limit=2)
    assert len(first) == 2
    assert len(second) == 1
    assert later.id not in {j.id for j in first + second}
    assert (await load(sessions, later.id)).status == "pending"


async def test_expired_lease_is_reclaimed(sessions):
    job = await add_job(sessions, "k1")
    await claim(sessions, "worker-a")
    await expire_lease(sessions, job.id)

    [reclaimed] = await claim(sessions, "worker-b", lease=60)
    assert reclaimed.id == job.id
    row = await load(sessions, job.id)
    assert row.claimed_by == "worker-b"
    assert row.attempts == 2
    assert row.lease_expires_at > utcnow()


async def test_finish_by_a_worker_that_lost_the_lease_writes_nothing(sessions):
    job = await add_job(sessions, "k1")
    [held_by_a] = await claim(sessions, "worker-a")
    await expire_lease(sessions, job.id)
    await claim(sessions, "worker-b")

    async with sessions() as session:
        ok = await jobs.finish(
            session, held_by_a, worker_id="worker-a", status="completed", result={"by": "a"}
        )
        await session.commit()
    assert ok is False
    row = await load(sessions, job.id)
    assert (row.status, row.claimed_by, row.result, row.completed_at) == (
        "running",
        "worker-b",
        {},
        None,
    )

    async with sessions() as session:
        ok = await jobs.finish(
            session, row, worker_id="worker-b", status="completed", result={"by": "b"}
        )
        await session.commit()
    assert ok is True
    row = await load(sessions, job.id)
    assert (row.status, row.result, row.lease_expires_at) == ("completed", {"by": "b"}, None)
    assert row.completed_at is not None

    # Finished is final: neither worker can finish it again.
    async with sessions() as session:
        assert not await jobs.finish(session, row, worker_id="worker-b", status="failed", result={})
        await session.commit()
    assert (await load(sessions, job.id)).status == "completed"


async def test_release_for_retry_puts_the_job_back_later(sessions):
    job = await add_job(sessions, "k1")
    [claimed] = await claim(sessions, "worker-a")
    async with sessions() as session:
        assert not await jobs.release_for_retry(
            session, claimed, worker_id="worker-x", delay=60, error="not mine"
        )
        assert await jobs.release_for_retry(
            session, claimed, worker_id="worker-a", delay=3600, error="CA busy"
        )
        await session.commit()
    row = await load(sessions, job.id)
    assert (row.status, row.claimed_by, row.lease_expires_at, row.last_error) == (
        "pending",
        None,
        None,
        "CA busy",
    )
    assert row.next_run_at > utcnow() + timedelta(minutes=30)
    assert await claim(sessions, "worker-b") == []


async def test_concurrent_claimers_get_disjoint_jobs_covering_all(sessions):
    ids = {(await add_job(sessions, f"k{i}")).id for i in range(24)}

    async def claimer(name: str) -> list[str]:
        got: list[str] = []
        while True:
            batch = await claim(sessions, name, limit=3)
            if not batch:
                return got
            got.extend(j.id for j in batch)

    results = await asyncio.gather(*(claimer(f"worker-{n}") for n in range(4)))
    claimed = [job_id for batch in results for job_id in batch]
    assert len(claimed) == len(set(claimed)), "a job was claimed twice"
    assert set(claimed) == ids
    async with sessions() as session:
        rows = list(await session.scalars(select(Job)))
    assert all(r.status == "running" and r.attempts == 1 for r in rows)
    owner = {job_id: f"worker-{n}" for n, batch in enumerate(results) for job_id in batch}
    assert all(r.claimed_by == owner[r.id] for r in rows)


async def test_two_sessions_claiming_at_once_split_the_jobs(sessions, database_url):
    """On PostgreSQL, SKIP LOCKED hands the second claimer the rows the first did not lock.

    SQLite (one process) serialises writers: the loser of a race may get nothing this round,
    but never a job the winner holds.
    """
    postgres = database_url.startswith("postgresql")
    ids = {(await add_job(sessions, f"k{i}")).id for i in range(20)}
    for _ in range(3):
        a, b = await asyncio.gather(claim(sessions, "a", limit=10), claim(sessions, "b", limit=10))
        got_a, got_b = {j.id for j in a}, {j.id for j in b}
        assert not got_a & got_b
        assert got_a | got_b <= ids
        if postgres:
            assert got_a | got_b == ids
            assert (len(got_a), len(got_b)) == (10, 10)
        # Put everything back for the next round.
        async with sessions.begin() as session:
            await session.execute(
                update(Job).values(status="pending", claimed_by=None, lease_expires_at=None)
            )


@pytest.fixture
async def pg_sessions(postgres_admin_url, postgres_template):
    """A PostgreSQL database cloned from the migrated template, for PostgreSQL-only behaviour."""
    import asyncpg

    name = f"certctl_q_{secrets.token_hex(6)}"
    conn = await asyncpg.connect(postgres_admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{postgres_template}"')
    finally:
        await conn.close()
    base = postgres_admin_url.split("://", 1)[1].rsplit("/", 1)[0]
    engine = create_engine(f"postgresql+asyncpg://{base}/{name}")
    yield make_sessionmaker(engine)
    await engine.dispose()
    conn = await asyncpg.connect(postgres_admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.mark.postgres
async def test_claim_skips_rows_another_replica_has_locked(pg_sessions):
    """A claimer never waits for rows another transaction holds: it takes the others."""
    ids = [(await add_job(pg_sessions, f"k{i}")).id for i in range(6)]
    async with pg_sessions() as holder:
        locked = list(
            await holder.scalars(
                select(Job.id).order_by(Job.next_run_at).limit(3).with_for_update()
            )
        )
        assert locked == ids[:3]
        async with pg_sessions() as other:
            # Waiting for the held rows would fail at once instead of hanging the test.
            await other.execute(sa.text("SET LOCAL lock_timeout = '1ms'"))
            got = await jobs.claim(other, worker_id="other", limit=6, lease_seconds=60)
        assert sorted(j.id for j in got) == sorted(ids[3:])
        await holder.rollback()
    rest = await claim(pg_sessions, "late", limit=6)
    assert sorted(j.id for j in rest) == sorted(ids[:3])


# --- cancel --------------------------------------------------------------------------------


async def test_cancel_pending_job(sessions):
    job = await add_job(sessions, "k1")
    async with sessions() as session:
        row = await session.get(Job, job.id)
        cancelled = await jobs.cancel(session, row)
        await session.commit()
    assert cancelled.status == "cancelled"
    row = await load(sessions, job.id)
    assert row.status == "cancelled"
    assert row.completed_at is not None
    assert await claim(sessions, "w") == []


@pytest.mark.parametrize("state", ["running", "cancelled", "completed"])
async def test_cancel_of_a_job_that_is_not_pending_conflicts(sessions, state):
    job = await add_job(sessions, "k1")
    if state == "running":
        await claim(sessions, "w")
    else:
        async with sessions.begin() as session:
            await session.execute(update(Job).where(Job.id == job.id).values(status=state))
    async with sessions() as session:
        row = await session.get(Job, job.id)
        with pytest.raises(Conflict, match=state):
            await jobs.cancel(session, row)
    assert (await load(sessions, job.id)).status == state


async def test_cancel_loses_against_a_claim_that_came_first(sessions):
    job = await add_job(sessions, "k1")
    async with sessions() as session:
        stale = await session.get(Job, job.id)
        assert stale.status == "pending"
        await claim(sessions, "w")  # a worker claims it after we read it
        with pytest.raises(Conflict, match="claimed by a worker"):
            await jobs.cancel(session, stale)
    assert (await load(sessions, job.id)).status == "running"


# --- back-off ------------------------------------------------------------------------------


def test_backoff_grows_exponentially_within_jitter_bounds():
    base = 2.0
    for attempt in range(1, 11):
        ceiling = min(3600.0, base * 2 ** (attempt - 1))
        for _ in range(50):
            delay = jobs.backoff_delay(attempt, base)
            assert ceiling / 2 <= delay <= ceiling
    # The smallest delay of one attempt is at least the largest of the attempt before.
    assert min(jobs.backoff_delay(5, base) for _ in range(50)) >= 16.0
    assert max(jobs.backoff_delay(4, base) for _ in range(50)) <= 16.0


def test_backoff_is_capped_at_an_hour():
    for attempt in (13, 20, 64, 1000, 10**6):
        delay = jobs.backoff_delay(attempt, 5.0)
        assert 1800.0 <= delay <= 3600.0


def test_backoff_respects_retry_after():
    assert jobs.backoff_delay(1, 1.0, retry_after=120.0) == 120.0
    assert jobs.backoff_delay(3, 1.0, retry_after=0.5) >= 2.0
    assert jobs.backoff_delay(20, 5.0, retry_after=7200.0) == 7200.0
    assert 0.5 <= jobs.backoff_delay(1, 1.0, retry_after=None) <= 1.0
