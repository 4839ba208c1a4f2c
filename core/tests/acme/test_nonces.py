"""Replay nonces: single use across replicas, expiry, purge, and no query for junk values."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta

import pytest
from sqlalchemy import event, select, update

from certctl.db.base import utcnow
from certctl.db.models import AcmeNonce
from certctl.domain.acme.nonces import consume_nonce, new_nonce, purge_nonces


async def rows(runtime) -> dict[str, AcmeNonce]:
    async with runtime.sessions() as session:
        return {n.value: n for n in await session.scalars(select(AcmeNonce))}


async def test_a_nonce_is_random_base64url_stored_with_its_expiry(client):
    runtime = client.runtime
    before = utcnow()
    values = {await new_nonce(runtime) for _ in range(5)}
    after = utcnow()
    assert len(values) == 5
    for value in values:
        assert re.fullmatch(r"[A-Za-z0-9_-]{22,64}", value)
    stored = await rows(runtime)
    assert set(stored) == values
    ttl = timedelta(seconds=runtime.settings.acme_nonce_ttl_seconds)
    for row in stored.values():
        assert before + ttl <= row.expires_at <= after + ttl


async def test_a_nonce_is_accepted_once(client):
    value = await new_nonce(client.runtime)
    assert await consume_nonce(client.runtime, value) is True
    assert await consume_nonce(client.runtime, value) is False
    assert value not in await rows(client.runtime)


async def test_unknown_and_expired_nonces_are_refused(client):
    runtime = client.runtime
    assert await consume_nonce(runtime, "bm90LWEtbm9uY2Utb2Ytb3Vycw") is False
    value = await new_nonce(runtime)
    async with runtime.sessions.begin() as session:
        await session.execute(
            update(AcmeNonce)
            .where(AcmeNonce.value == value)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    assert await consume_nonce(runtime, value) is False


@pytest.mark.parametrize("junk", ["", "x" * 65, "x" * 100_000, "has space", "a/b+c=", "é"])
async def test_junk_values_never_reach_the_database(client, junk):
    statements: list[str] = []

    def count(_conn, _cursor, statement, *_args) -> None:
        statements.append(statement)

    engine = client.runtime.engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        assert await consume_nonce(client.runtime, junk) is False
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert statements == []


async def test_purge_deletes_only_expired_nonces(client):
    runtime = client.runtime
    live, old = await new_nonce(runtime), await new_nonce(runtime)
    async with runtime.sessions.begin() as session:
        await session.execute(
            update(AcmeNonce)
            .where(AcmeNonce.value == old)
            .values(expires_at=utcnow() - timedelta(minutes=1))
        )
    async with runtime.sessions() as session:
        assert await purge_nonces(session, utcnow()) == 1
        await session.commit()
    assert set(await rows(runtime)) == {live}
    async with runtime.sessions() as session:
        assert await purge_nonces(session, utcnow()) == 0


async def test_concurrent_consumers_on_two_replicas_accept_a_nonce_once(app_factory):
    """Two app runtimes on one database, 40 racing requests per nonce: one winner each."""
    first, second = await app_factory(), await app_factory()
    runtimes = [first.runtime, second.runtime]
    for _ in range(3):
        value = await new_nonce(runtimes[0])
        results = await asyncio.gather(*(consume_nonce(runtimes[i % 2], value) for i in range(40)))
        assert results.count(True) == 1
        assert results.count(False) == 39
