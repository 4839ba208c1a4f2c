"""Token buckets (local and shared), leases, client addresses behind proxies."""

import asyncio
import logging

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from certctl.db.migrate import migrate
from certctl.lib.ratelimit import (
    Budget,
    LocalBuckets,
    LocalLimiter,
    RateLimiter,
    bucket_key,
    lease_size,
)
from certctl.lib.ratelimit_http import address_key, client_address, parse_networks


class FakeClock:
    def __init__(self) -> None:
        self.now = 5_000.0

    def __call__(self) -> float:
        return self.now


def _scope(peer, *forwarded):
    return {
        "client": (peer, 1234),
        "headers": [(b"x-forwarded-for", value.encode()) for value in forwarded],
    }


TRUSTED = parse_networks(["10.0.0.0/8", "fd00::/8", "127.0.0.1"])


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("192.0.2.1", ["203.0.113.9"], "192.0.2.1"),  # untrusted peer: header ignored
        ("10.0.0.1", [], "10.0.0.1"),  # a trusted proxy that forwarded nothing
        ("10.0.0.1", ["203.0.113.9"], "203.0.113.9"),
        ("10.0.0.1", ["1.1.1.1, 203.0.113.9"], "203.0.113.9"),  # right-most untrusted wins
        ("10.0.0.1", ["203.0.113.9, 10.2.2.2"], "203.0.113.9"),  # chain of proxies
        ("10.0.0.1", ["1.1.1.1", "203.0.113.9"], "203.0.113.9"),  # repeated headers, in order
        ("10.0.0.1", ["203.0.113.9:4711"], "203.0.113.9"),  # with a port
        ("10.0.0.1", ["[2001:db8::5]:443"], "2001:db8::5"),
        ("fd00::1", ["2001:db8::7"], "2001:db8::7"),
        ("10.0.0.1", ["::ffff:203.0.113.9"], "203.0.113.9"),  # IPv4-mapped
        ("10.0.0.1", ["garbage, 10.3.3.3"], "10.3.3.3"),  # stop at the last vouched-for hop
        ("10.0.0.1", ["10.3.3.3, 10.4.4.4"], "10.3.3.3"),  # only proxies: the farthest
        ("127.0.0.1", ["203.0.113.9"], "203.0.113.9"),  # a single address as a network
    ],
)
def test_client_address(peer, forwarded, expected):
    assert client_address(_scope(peer, *forwarded), TRUSTED) == expected


def test_client_address_without_trusted_proxies_or_peer():
    assert client_address(_scope("10.0.0.1", "203.0.113.9"), ()) == "10.0.0.1"
    assert client_address({"headers": []}, TRUSTED) == "unknown"


def test_parse_networks_names_the_bad_entry():
    with pytest.raises(ValueError, match=r"'10\.0\.0\.0/33'"):
        parse_networks(["10.0.0.0/8", "10.0.0.0/33"])


def test_address_key_groups_ipv6_by_64():
    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:bbbb::2")
    assert address_key("2001:db8:1:2::1") == "2001:db8:1:2::/64"
    assert address_key("2001:db8:1:3::1") != address_key("2001:db8:1:2::1")
    assert address_key("192.0.2.1") == "192.0.2.1"
    assert address_key("not-an-ip") == "not-an-ip"


def test_local_bucket_refills_continuously_up_to_the_burst():
    clock = FakeClock()
    buckets = LocalBuckets(clock=clock)
    budget = Budget(rate=2.0, burst=3)
    assert [buckets.take("k", budget) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("k", budget) == pytest.approx(0.5)
    clock.now += 0.25
    assert buckets.take("k", budget) == pytest.approx(0.25)
    clock.now += 0.25
    assert buckets.take("k", budget) == 0.0
    clock.now += 100
    assert sum(buckets.take("k", budget) == 0.0 for _ in range(5)) == 3
    assert buckets.take("other", budget) == 0.0


def test_local_buckets_forget_idle_and_least_recently_used_keys():
    clock = FakeClock()
    buckets = LocalBuckets(clock=clock, max_keys=3)
    budget = Budget(rate=1.0, burst=1)
    for key in ("a", "b", "c"):
        buckets.take(key, budget)
    clock.now += 10
    buckets.take("a", budget)  # a is now the most recently used
    buckets.take("d", budget)  # over the cap: b (least recently used) goes
    assert len(buckets) == 3
    assert buckets.take("b", budget) == 0.0  # forgotten, so full again
    clock.now += 5
    assert buckets.prune(idle=5) == 3  # a, d, b were last used 5 s ago
    assert len(buckets) == 0


def test_local_limiter_rounds_waits_up_and_zero_means_off():
    clock = FakeClock()
    limiter = LocalLimiter.per_minute(2, clock=clock)
    assert [limiter.acquire("ip"), limiter.acquire("ip")] == [0, 0]
    assert limiter.acquire("ip") == 30
    clock.now += 29.5
    assert limiter.acquire("ip") == 1
    off = LocalLimiter.per_minute(0)
    assert all(off.acquire("ip") == 0 for _ in range(100))


def test_lease_size_is_bounded_by_burst_and_refill():
    assert lease_size(Budget(50.0, 100), 10) == 10
    assert lease_size(Budget(50.0, 100), 1) == 1
    assert lease_size(Budget(50.0, 30), 10) == 3  # a tenth of the burst
    assert lease_size(Budget(2.0, 100), 10) == 2  # what refills within the lease's life
    assert lease_size(Budget.per_minute(5), 10) == 1


def test_bucket_key_digests_long_keys():
    assert bucket_key("ip", "192.0.2.1") == "ip:192.0.2.1"
    long = bucket_key("actor", "User", "x" * 300)
    assert long.startswith("actor:sha256:") and len(long) < 255
    assert long != bucket_key("actor", "User", "x" * 301)


@pytest.fixture
async def postgres_url(database_url):
    if not database_url.startswith("postgresql"):
        pytest.skip("shared buckets exist on PostgreSQL only")
    return database_url


async def test_concurrent_replicas_never_exceed_the_shared_budget(postgres_url):
    clock = FakeClock()
    replicas = [RateLimiter(postgres_url, clock=clock, lease=10) for _ in range(3)]
    budget = Budget(rate=50.0, burst=100)  # the clock stands still: no refill
    try:
        waits = await asyncio.gather(
            *(replicas[i % 3].take("actor:APIKey:ops", budget) for i in range(300))
        )
        assert sum(w == 0 for w in waits) == 100
        assert all(w > 0 for w in waits if w)
    finally:
        for replica in replicas:
            await replica.aclose()


async def test_shared_bucket_refills_from_the_stored_timestamp(postgres_url):
    clock = FakeClock()
    one, two = (RateLimiter(postgres_url, clock=clock, lease=1) for _ in range(2))
    budget = Budget(rate=1.0, burst=2)
    try:
        assert [await one.take("k", budget), await two.take("k", budget)] == [0.0, 0.0]
        assert await two.take("k", budget) == pytest.approx(1.0)
        clock.now += 1.5
        assert await one.take("k", budget) == 0.0
        assert await two.take("k", budget) == pytest.approx(0.5)
    finally:
        await one.aclose()
        await two.aclose()


async def test_a_refusal_is_remembered_without_asking_the_database(postgres_url):
    clock = FakeClock()
    limiter = RateLimiter(postgres_url, clock=clock, lease=1)
    budget = Budget(rate=0.5, burst=1)
    engine = create_async_engine(postgres_url)

    async def stamp():
        async with engine.connect() as conn:
            return await conn.scalar(sa.text("SELECT updated_at FROM rate_limit_buckets"))

    try:
        assert await limiter.take("k", budget) == 0.0
        assert await limiter.take("k", budget) == pytest.approx(2.0)
        refused_at = await stamp()
        clock.now += 1.0
        assert await limiter.take("k", budget) == pytest.approx(1.0)  # from memory
        assert await stamp() == refused_at
        clock.now += 1.0
        assert await limiter.take("k", budget) == 0.0  # asked again, and refilled
        assert await stamp() == refused_at + 2.0
    finally:
        await limiter.aclose()
        await engine.dispose()


async def test_database_failure_falls_back_to_per_process_buckets(caplog):
    clock = FakeClock()
    limiter = RateLimiter("postgresql+asyncpg://nobody@127.0.0.1:1/none", clock=clock, lease=1)
    budget = Budget(rate=0.1, burst=2)
    try:
        with caplog.at_level(logging.WARNING, logger="certctl.ratelimit"):
            waits = [await limiter.take("k", budget) for _ in range(3)]
        assert waits[:2] == [0.0, 0.0] and waits[2] > 0
        assert sum("limiting per process" in r.message for r in caplog.records) == 1
    finally:
        await limiter.aclose()


async def test_shared_statement_on_a_freshly_migrated_database(postgres_url):
    """The table is UNLOGGED and the statement runs against the migration's schema."""
    engine = create_async_engine(postgres_url)
    try:
        await migrate(engine)
        async with engine.connect() as conn:
            persistence = await conn.scalar(
                sa.text(
                    "SELECT relpersistence::text FROM pg_class WHERE relname = 'rate_limit_buckets'"
                )
            )
        assert persistence == "u"
    finally:
        await engine.dispose()
