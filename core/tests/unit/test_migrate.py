"""Migrations: head, idempotence, models in step with the schema, concurrent migrators."""

import asyncio

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

import certctl.db.models  # noqa: F401 - registers every table on the metadata
from certctl.db.base import Base
from certctl.db.engine import create_engine
from certctl.db.migrate import current_revision, head_revision, migrate


async def _version_rows(engine) -> list[str]:
    async with engine.connect() as conn:
        return list(
            (await conn.execute(sa.text("SELECT version_num FROM alembic_version"))).scalars()
        )


async def test_unmigrated_database_has_no_revision(empty_database_url):
    engine = create_engine(empty_database_url)
    try:
        assert await current_revision(engine) is None
    finally:
        await engine.dispose()


async def test_migrate_reaches_head_and_a_second_run_changes_nothing(empty_database_url):
    engine = create_engine(empty_database_url)
    try:
        assert await migrate(engine) == head_revision()
        assert await current_revision(engine) == head_revision()
        async with engine.begin() as conn:
            await conn.execute(
                sa.text(
                    "INSERT INTO system_flags (name, value, created_at) "
                    "VALUES ('sentinel', 'kept', CURRENT_TIMESTAMP)"
                )
            )
        assert await migrate(engine) == head_revision()
        assert await _version_rows(engine) == [head_revision()]
        async with engine.connect() as conn:
            value = await conn.scalar(
                sa.text("SELECT value FROM system_flags WHERE name = 'sentinel'")
            )
        assert value == "kept"
    finally:
        await engine.dispose()


async def test_models_and_migrations_agree(database_url):
    """Every model column, index and table exists in the migrated schema, and nothing else."""
    engine = create_engine(database_url)
    try:
        await migrate(engine)
        async with engine.connect() as conn:
            diff = await conn.run_sync(
                lambda sync: compare_metadata(
                    MigrationContext.configure(sync, opts={"compare_type": True}), Base.metadata
                )
            )
    finally:
        await engine.dispose()
    assert diff == []


async def test_concurrent_migrators_on_postgresql(database_url, empty_database_url):
    if "postgresql" not in database_url:
        pytest.skip("PostgreSQL-only: concurrent migrators serialise on an advisory lock")
    engines = [create_engine(empty_database_url) for _ in range(3)]
    try:
        revisions = await asyncio.gather(*(migrate(e) for e in engines))
        assert revisions == [head_revision()] * 3
        assert await _version_rows(engines[0]) == [head_revision()]
        async with engines[0].connect() as conn:
            triggers = await conn.scalar(
                sa.text(
                    "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'audit_events'::regclass "
                    "AND NOT tgisinternal"
                )
            )
            # this test's database only: other tests (in parallel workers) hold their own
            locks = await conn.scalar(
                sa.text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND database = "
                    "(SELECT oid FROM pg_database WHERE datname = current_database())"
                )
            )
        assert triggers == 2  # row UPDATE/DELETE and statement TRUNCATE
        assert locks == 0, "a migrator kept the advisory lock"
    finally:
        for engine in engines:
            await engine.dispose()


async def test_ready_is_503_when_the_schema_is_not_at_head(client):
    r = await client.get("/ready")
    assert r.status_code == 200
    assert r.json() == {"status": "ready", "database": "ok", "schema": head_revision()}
    async with client.runtime.engine.begin() as conn:
        await conn.execute(sa.text("UPDATE alembic_version SET version_num = 'older'"))
    r = await client.get("/ready")
    assert r.status_code == 503
    assert r.json()["database"] == "schema not migrated"
    async with client.runtime.engine.begin() as conn:
        await conn.execute(sa.text("DELETE FROM alembic_version"))
    r = await client.get("/ready")
    assert r.status_code == 503


def test_schema_head_constant_matches_the_migration_scripts():
    from certctl.db.migrate import SCHEMA_HEAD

    assert head_revision() == SCHEMA_HEAD
