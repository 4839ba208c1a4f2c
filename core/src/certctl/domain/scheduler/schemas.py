"""Wire types of the scheduler status API."""

from __future__ import annotations

from datetime import datetime

import msgspec

__all__ = ["LoopOut", "LoopRunOut", "ReplicaOut", "RunNowOut", "SchedulerOut"]


class ReplicaOut(msgspec.Struct, kw_only=True):
    """A server or worker process sharing this database."""

    id: str
    hostname: str
    pid: int
    role: str
    is_leader: bool
    alive: bool
    """Its heartbeat is recent (within three heartbeat intervals)."""
    started_at: datetime
    heartbeat_at: datetime
    leader_since: datetime | None


class LoopRunOut(msgspec.Struct, kw_only=True):
    """One replica's record of a loop (as of that replica's last heartbeat)."""

    replica_id: str
    runs: int
    failures: int
    last_started_at: datetime | None
    last_finished_at: datetime | None
    last_duration_ms: int | None
    last_handled: int | None
    last_error: str | None
    last_error_at: datetime | None


class LoopOut(msgspec.Struct, kw_only=True):
    """A named loop, its schedule and how it last ran on each replica."""

    name: str
    description: str
    interval_seconds: float
    timeout_seconds: float
    leader_only: bool
    """Runs on the elected leader alone (its side effects must not repeat)."""
    env: str
    """The variable that overrides the interval."""
    last_run_at: datetime | None
    last_error: str | None
    """The most recent run's error on any replica, if that run failed."""
    replicas: list[LoopRunOut]


class SchedulerOut(msgspec.Struct, kw_only=True):
    """The whole fleet's scheduling state, the same from every replica."""

    replica_id: str | None
    """The replica answering; None when it runs no background work."""
    leader: ReplicaOut | None
    replicas: list[ReplicaOut]
    loops: list[LoopOut]


class RunNowOut(msgspec.Struct, kw_only=True):
    """The outcome of running a loop on demand."""

    loop: str
    replica_id: str
    handled: int
