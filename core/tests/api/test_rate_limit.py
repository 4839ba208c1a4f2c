"""The request rate limit: token buckets per actor and per source address, 429 + Retry-After.

Time is a fake clock handed to the limiter (on PostgreSQL it replaces the database's clock in
the bucket statement too), so refills are tested without sleeping.
"""

import httpx
import msgspec
import pytest
import sqlalchemy as sa

from certctl.db.models import AuditEvent
from certctl.lib.ratelimit_http import RequestLimits

CHECK = "/api/v1/auth/check"
PUBLIC = "/api/v1/version"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock():
    return FakeClock()


async def _limit(client, clock, **changes):
    """Give ``client``'s app a limiter on ``clock`` (with settings ``changes``)."""
    runtime = client.runtime
    await runtime.rate_limits.aclose()
    runtime.settings = msgspec.structs.replace(runtime.settings, **changes)
    runtime.rate_limits = RequestLimits(runtime.settings, clock=clock)


async def _limited(app_factory, clock, **settings):
    """An app whose limiter runs on ``clock``."""
    client = await app_factory(**settings)
    await _limit(client, clock)
    return client


def _from(client, address):
    """Another client of the same app, connecting from ``address``."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=client.app, client=(address, 50000)),
        base_url="https://certctl.test.local",
    )


async def _admitted(client, n, url=CHECK, **kwargs):
    """How many of ``n`` requests were answered (not 429)."""
    codes = [(await client.get(url, **kwargs)).status_code for _ in range(n)]
    assert set(codes) <= {200, 401, 429}, codes
    return sum(code != 429 for code in codes)


async def test_buckets_per_actor_and_per_address_refill_and_retry_after(
    app_factory, clock, admin_headers, viewer_headers
):
    client = await _limited(
        app_factory,
        clock,
        rate_limit_rps=0.3,  # unauthenticated callers, per address
        rate_limit_burst=1,
        rate_limit_per_user_rps=0.5,  # each API key or user
        rate_limit_per_user_burst=5,
    )
    for _ in range(5):
        assert (await client.get(CHECK, headers=admin_headers)).status_code == 200
    r = await client.get(CHECK, headers=admin_headers)
    assert r.status_code == 429
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.headers["retry-after"] == "2"  # one token at 0.5/s
    body = r.json()
    assert body["status"] == 429 and body["retry_after_seconds"] == 2
    assert "request limit of this caller" in body["detail"]

    # Other keys and unauthenticated callers have buckets of their own, with their budgets.
    assert await _admitted(client, 7, headers=viewer_headers) == 5
    assert (await client.get(PUBLIC)).status_code == 200
    r = await client.get(PUBLIC)
    assert r.status_code == 429
    assert r.headers["retry-after"] == "4"  # 3.33 s, rounded up
    assert "request limit of this address" in r.json()["detail"]

    clock.advance(1.0)  # half a token: still refused, and told the rest
    r = await client.get(CHECK, headers=admin_headers)
    assert r.status_code == 429
    assert r.headers["retry-after"] == "1"
    clock.advance(1.0)
    assert (await client.get(CHECK, headers=admin_headers)).status_code == 200
    assert (await client.get(CHECK, headers=admin_headers)).status_code == 429

    clock.advance(3600)  # a long pause refills to the burst, not beyond
    assert await _admitted(client, 8, headers=admin_headers) == 5


async def test_unauthenticated_callers_by_address_and_forwarded_for(app_factory, clock):
    client = await _limited(
        app_factory,
        clock,
        rate_limit_rps=0.01,
        rate_limit_burst=2,
        trusted_proxies=("10.0.0.0/8",),
    )
    assert await _admitted(client, 3, url=PUBLIC) == 2
    async with _from(client, "192.0.2.10") as other:
        assert await _admitted(other, 3, url=PUBLIC) == 2
    # Failed authentication costs the address's budget: guessing keys is limited as well.
    async with _from(client, "192.0.2.11") as guesser:
        bad = {"Authorization": "Bearer not-a-key"}
        codes = [(await guesser.get(CHECK, headers=bad)).status_code for _ in range(4)]
        assert codes == [401, 401, 429, 429]
    # IPv6 callers are charged per /64.
    async with _from(client, "2001:db8:1:2::1") as a, _from(client, "2001:db8:1:2::99") as b:
        assert await _admitted(a, 2, url=PUBLIC) + await _admitted(b, 2, url=PUBLIC) == 2

    def xff(value):
        return {"headers": {"X-Forwarded-For": value}}

    async with _from(client, "10.1.2.3") as proxy, _from(client, "192.0.2.50") as direct:
        # Behind a trusted proxy, each client has its own bucket...
        assert await _admitted(proxy, 3, url=PUBLIC, **xff("203.0.113.1")) == 2
        assert await _admitted(proxy, 3, url=PUBLIC, **xff("203.0.113.2")) == 2
        # ...and what the client itself wrote to the left of the proxy's entry is ignored.
        assert await _admitted(proxy, 3, url=PUBLIC, **xff("198.51.100.9, 203.0.113.1")) == 0
        # Chains of trusted proxies are walked to the first untrusted hop.
        assert await _admitted(proxy, 3, url=PUBLIC, **xff("203.0.113.3, 10.9.9.9")) == 2
        # A caller that is not a trusted proxy cannot pick its address by header.
        assert await _admitted(direct, 1, url=PUBLIC, **xff("203.0.113.4")) == 1
        assert await _admitted(direct, 1, url=PUBLIC, **xff("203.0.113.5")) == 1
        assert await _admitted(direct, 1, url=PUBLIC, **xff("203.0.113.6")) == 0
        assert await _admitted(proxy, 1, url=PUBLIC, **xff("203.0.113.4")) == 1  # untouched


async def test_exemptions_off_switch_and_janitor(app_factory, clock, admin_headers, database_url):
    client = await _limited(
        app_factory,
        clock,
        rate_limit_rps=0.01,
        rate_limit_burst=1,
        rate_limit_bucket_ttl_seconds=60,
        ocsp_rate_limit_per_ip_min=3,
    )
    assert await _admitted(client, 5, url="/health") == 5
    assert await _admitted(client, 5, url="/ready") == 5
    # OCSP keeps its own budget (3 a minute here), untouched by the general one.
    assert await _admitted(client, 5, url="/.well-known/pki/ocsp/iss-none/serial/01") == 3
    assert await _admitted(client, 2, url=PUBLIC) == 1
    assert await _admitted(client, 2, headers=admin_headers) == 1

    # The janitor forgets idle buckets (here, in the table too), and a forgotten one is full.
    limits = client.runtime.rate_limits
    assert await limits.prune() == 0  # nothing idle yet
    clock.advance(101)  # past the TTL, and past the 100 s a token takes to come back
    assert await limits.prune() == 2
    if database_url.startswith("postgresql"):
        async with client.runtime.engine.connect() as conn:
            left = await conn.scalar(sa.text("SELECT count(*) FROM rate_limit_buckets"))
        assert left == 0
    assert await _admitted(client, 2, headers=admin_headers) == 1

    await _limit(client, clock, rate_limit_enabled=False)
    assert await _admitted(client, 5, headers=admin_headers) == 5
    assert await _admitted(client, 5, url=PUBLIC) == 5


async def test_two_replicas_share_one_budget_on_postgresql_only(
    app_factory, clock, admin_headers, viewer_headers, database_url
):
    """The point of the PostgreSQL buckets: N replicas must not allow N times the budget."""
    shared = database_url.startswith("postgresql")
    # The fake clock stands still, so nothing refills; 50/s and a burst of 100 mean leases of 10.
    settings = {"rate_limit_rps": 50.0, "rate_limit_burst": 100}
    first = await _limited(app_factory, clock, **settings)
    second = await _limited(app_factory, clock, **settings)
    assert first.runtime.rate_limits.limiter.is_shared is shared
    assert (await first.get(CHECK, headers=admin_headers)).status_code == 200
    if shared:
        async with first.runtime.engine.connect() as conn:
            row = (
                await conn.execute(sa.text("SELECT tokens, granted FROM rate_limit_buckets"))
            ).one()
        assert tuple(row) == (90.0, 10)  # one statement leased 10 tokens to the first replica
    admitted = 1
    for _ in range(120):
        for replica in (second, first):
            code = (await replica.get(CHECK, headers=admin_headers)).status_code
            assert code in (200, 429)
            admitted += code == 200
    # PostgreSQL: leases move tokens between replicas, never add any. SQLite: documented
    # per-process buckets, so two processes admit twice the burst.
    assert admitted == (100 if shared else 200)

    # Exact mode (one statement per request) shares a small budget as well.
    for replica in (first, second):
        await _limit(replica, clock, rate_limit_burst=7, rate_limit_lease=1)
    admitted = 0
    for _ in range(6):
        for replica in (first, second):
            admitted += (await replica.get(CHECK, headers=viewer_headers)).status_code == 200
    assert admitted == (7 if shared else 12)


async def test_refused_writes_are_audited_but_429s_are_not(app_factory, clock, viewer_headers):
    client = await _limited(
        app_factory, clock, rate_limit_per_user_rps=0.001, rate_limit_per_user_burst=3
    )
    codes = [
        (
            await client.post("/api/v1/profiles", json={"name": "x"}, headers=viewer_headers)
        ).status_code
        for _ in range(6)
    ]
    assert codes == [403, 403, 403, 429, 429, 429]
    async with client.runtime.sessions() as session:
        rows = (
            await session.execute(
                sa.select(AuditEvent.outcome, AuditEvent.details).where(
                    AuditEvent.action == "api.post", AuditEvent.actor == "viewer"
                )
            )
        ).all()
    assert sorted(d["status"] for _, d in rows) == [403, 403, 403]
