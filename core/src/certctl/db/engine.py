"""Async engine factory for SQLite (default) and PostgreSQL (asyncpg)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.dialects.postgresql import Insert as PgInsert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import Insert as SqliteInsert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry

__all__ = ["create_engine", "dialect_insert", "is_postgres", "make_sessionmaker"]


def is_postgres(engine: AsyncEngine) -> bool:
    """True on PostgreSQL, where row locks and advisory locks are available."""
    return engine.dialect.name == "postgresql"


def dialect_insert(session: AsyncSession) -> Callable[..., PgInsert | SqliteInsert]:
    """The session's ``insert`` with ``ON CONFLICT`` clauses (both databases have them)."""
    bind = session.bind
    assert bind is not None, "sessions are always bound to the runtime's engine"
    return pg_insert if bind.dialect.name == "postgresql" else sqlite_insert


def create_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    """Build the engine; SQLite gets WAL, foreign keys and a busy timeout on every connection."""
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(conn: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
            cursor = conn.cursor()
            for pragma in (
                "PRAGMA journal_mode=WAL",
                "PRAGMA foreign_keys=ON",
                "PRAGMA busy_timeout=30000",
                "PRAGMA synchronous=NORMAL",
            ):
                cursor.execute(pragma)
            cursor.close()

        return engine
    kwargs: dict[str, Any] = {
        "pool_size": pool_size,
        "max_overflow": pool_size,
        "pool_pre_ping": True,
    }
    return create_async_engine(url, **kwargs)


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded attributes after commit (responses are built after it)."""
    return async_sessionmaker(engine, expire_on_commit=False)
