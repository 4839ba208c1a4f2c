"""Apply Alembic migrations; concurrent migrators on PostgreSQL serialise on an advisory lock.

Two replicas booting together both call :func:`migrate`; the second waits on the lock, then
finds every revision already recorded in ``alembic_version`` and does nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

if TYPE_CHECKING:
    from alembic.config import Config

# Alembic is imported inside the functions: it adds a fifth of a second to every start-up and
# is needed only while migrating or checking the revision.

__all__ = [
    "MIGRATION_LOCK_ID",
    "SCHEMA_HEAD",
    "current_revision",
    "head_revision",
    "migrate",
    "schema_is_current",
]

SCHEMA_HEAD = "0016"
"""The newest revision, kept here so a start at head needs no Alembic (a test checks it)."""

MIGRATION_LOCK_ID = 7_283_164_759_461_502_341
"""pg_advisory_lock key held while migrating."""

_SCRIPT_LOCATION = str(Path(__file__).parent / "migrations")


def _config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", _SCRIPT_LOCATION)
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    """The newest revision shipped with this version of certctl."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def _upgrade(connection: Connection) -> None:
    from alembic import command

    command.upgrade(_config(connection), "head")


def _current(connection: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


async def current_revision(engine: AsyncEngine) -> str | None:
    """The revision the database is at, or None when it was never migrated."""
    async with engine.connect() as conn:
        return await conn.run_sync(_current)


async def _at_head(engine: AsyncEngine) -> bool:
    """A plain query, so that starting (or probing /ready) at head never imports Alembic."""
    async with engine.connect() as conn:
        try:
            rows = (await conn.execute(text("SELECT version_num FROM alembic_version"))).all()
        except DBAPIError:
            return False  # no version table yet
    return [r[0] for r in rows] == [SCHEMA_HEAD]


async def schema_is_current(engine: AsyncEngine) -> bool:
    """Whether the database is at :data:`SCHEMA_HEAD` (for readiness probes)."""
    return await _at_head(engine)


async def migrate(engine: AsyncEngine) -> str:
    """Bring the schema to head and return the revision."""
    if await _at_head(engine):
        return SCHEMA_HEAD
    async with engine.connect() as conn:
        postgres = conn.dialect.name == "postgresql"
        if postgres:
            await conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK_ID})
            await conn.commit()
        try:
            await conn.run_sync(_upgrade)
            await conn.commit()
            revision = await conn.run_sync(_current)
        finally:
            if postgres:
                # After a failed upgrade the transaction is aborted and would refuse the unlock,
                # hiding the real error and leaving the lock held by a pooled connection.
                await conn.rollback()
                await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK_ID})
                await conn.commit()
    assert revision is not None
    return revision
