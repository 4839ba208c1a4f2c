"""Migration 0011 chains the rows that existed before it and leaves the trail append-only."""

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from certctl.db.engine import create_engine, make_sessionmaker
from certctl.db.migrate import _config, migrate
from certctl.domain.audit.service import record
from certctl.domain.audit.verify import verify_database
from certctl.domain.auth.actor import Actor

REVISION = "0011"

OLD_EVENTS = sa.table(
    "audit_events",
    sa.column("id", sa.String()),
    sa.column("timestamp", sa.DateTime(timezone=True)),
    sa.column("actor", sa.String()),
    sa.column("actor_type", sa.String()),
    sa.column("action", sa.String()),
    sa.column("resource_type", sa.String()),
    sa.column("resource_id", sa.String()),
    sa.column("outcome", sa.String()),
    sa.column("category", sa.String()),
    sa.column("details", sa.JSON()),
)


def _down_revision() -> str:
    from alembic.script import ScriptDirectory

    revision = ScriptDirectory.from_config(_config()).get_revision(REVISION)
    assert revision is not None and isinstance(revision.down_revision, str)
    return revision.down_revision


async def _alembic(engine, verb: str, target: str) -> None:
    from alembic import command

    async with engine.connect() as conn:
        await conn.run_sync(lambda c: getattr(command, verb)(_config(c), target))
        await conn.commit()


async def test_existing_rows_are_chained_in_time_order(empty_database_url):
    engine = create_engine(empty_database_url)
    postgres = engine.dialect.name == "postgresql"
    try:
        await _alembic(engine, "upgrade", _down_revision())
        t0 = datetime(2026, 6, 1, 12, 0, 0, 123456, tzinfo=UTC)
        old = [
            # (id, timestamp): inserted out of order; two share a timestamp (id breaks the tie)
            ("aud-c", t0 + timedelta(seconds=2)),
            ("aud-b", t0),
            ("aud-a", t0),
            ("aud-d", t0 + timedelta(days=1, microseconds=7)),
        ]
        async with engine.begin() as conn:
            await conn.execute(
                sa.insert(OLD_EVENTS),
                [
                    {
                        "id": row_id,
                        "timestamp": stamp,
                        "actor": "a|b",
                        "actor_type": "APIKey",
                        "action": "profile.create",
                        "resource_type": "profile",
                        "resource_id": row_id,
                        "outcome": "success",
                        "category": "config",
                        "details": {"name": row_id, "nested": [1.5, {"ü": None}]},
                    }
                    for row_id, stamp in old
                ],
            )
        await migrate(engine)

        async with engine.connect() as conn:
            chained = (
                await conn.execute(sa.text("SELECT id, seq FROM audit_events ORDER BY seq"))
            ).all()
        assert [tuple(r) for r in chained] == [
            ("aud-a", 1),
            ("aud-b", 2),
            ("aud-c", 3),
            ("aud-d", 4),
        ]
        report = await verify_database(engine)
        assert (report.ok, report.checked, report.head_seq) == (True, 4, 4)

        # New rows continue the back-filled chain.
        async with make_sessionmaker(engine).begin() as session:
            record(session, Actor.system("t"), "after", resource_type="t", resource_id="1")
        report = await verify_database(engine)
        assert (report.ok, report.checked, report.head_seq) == (True, 5, 5)

        # The triggers are back in force.
        for statement in (
            "UPDATE audit_events SET actor = 'x'",
            "UPDATE audit_events SET seq = seq + 100 WHERE id = 'aud-d'",
            "DELETE FROM audit_events WHERE id = 'aud-a'",
            *(["TRUNCATE audit_events"] if postgres else []),
        ):
            with pytest.raises(sa.exc.DBAPIError, match="append-only"):
                async with engine.begin() as conn:
                    await conn.execute(sa.text(statement))

        # Down and up again: the triggers survive both ways and the chain is rebuilt.
        await _alembic(engine, "downgrade", _down_revision())
        with pytest.raises(sa.exc.DBAPIError, match="append-only"):
            async with engine.begin() as conn:
                await conn.execute(sa.text("DELETE FROM audit_events"))
        await migrate(engine)
        report = await verify_database(engine)
        assert (report.ok, report.checked) == (True, 5)
    finally:
        await engine.dispose()
