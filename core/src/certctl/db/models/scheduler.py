"""The scheduler's shared state: live replicas, the SQLite leader lease, and per-loop runs.

Every replica writes its own rows, so ``GET /api/v1/scheduler`` on any replica shows the whole
fleet: which processes are alive, which one leads, and how each loop last went.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from certctl.db.base import Base, UTCDateTime, utcnow


class SchedulerReplica(Base):
    """One running server or worker process, refreshed by its heartbeat."""

    __tablename__ = "scheduler_replicas"

    id: Mapped[str] = mapped_column(String(96), primary_key=True)
    hostname: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(16))
    """``serve`` or ``worker``: which command started the process."""
    is_leader: Mapped[bool] = mapped_column(Boolean, default=False)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    leader_since: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class SchedulerLease(Base):
    """A named lease (the leader lease on SQLite; PostgreSQL uses an advisory lock instead)."""

    __tablename__ = "scheduler_leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(96))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    acquired_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SchedulerLoopRun(Base):
    """How a loop last ran on one replica (leader-only loops have rows only where they led)."""

    __tablename__ = "scheduler_loop_runs"

    loop: Mapped[str] = mapped_column(String(64), primary_key=True)
    replica_id: Mapped[str] = mapped_column(String(96), primary_key=True)
    runs: Mapped[int] = mapped_column(Integer, default=0)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_duration_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_handled: Mapped[int | None] = mapped_column(Integer, nullable=True)
    """What the run returned: how many items (jobs, notifications, certificates) it handled."""
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
