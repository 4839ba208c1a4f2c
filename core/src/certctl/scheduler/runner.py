"""Runs the named loops of one process and keeps their status in the database.

Each loop is one task: wait its interval (±``CERTCTL_SCHEDULER_JITTER``, so replicas drift
apart instead of firing together), run under a timeout, record the outcome. A run never
overlaps the previous one of the same loop. A heartbeat task renews this replica's row, keeps
or contests the leader role, and flushes loop statistics, so status costs one small
transaction per heartbeat rather than one per run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import delete, update

from certctl.db.base import new_id, utcnow
from certctl.db.engine import dialect_insert
from certctl.db.models import SchedulerLoopRun, SchedulerReplica
from certctl.scheduler.leader import Leadership, leadership_for
from certctl.scheduler.loops import LoopSpec, builtin_loops

if TYPE_CHECKING:
    from certctl.runtime import Runtime

__all__ = ["LoopStats", "NotLeader", "Scheduler"]

_log = logging.getLogger("certctl.scheduler")


class NotLeader(Exception):
    """A leader-only loop was asked to run on a replica that does not lead."""


@dataclass
class LoopStats:
    """What this replica knows of one loop since it started."""

    runs: int = 0
    failures: int = 0
    last_started_at: datetime | None = None
    last_finished_at: datetime | None = None
    last_duration_ms: int | None = None
    last_handled: int | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    dirty: bool = False
    running: bool = field(default=False)


class Scheduler:
    """The loops of one process; ``start`` launches them, ``stop`` cancels and steps down."""

    def __init__(self, runtime: Runtime, role: str = "serve") -> None:
        self.runtime = runtime
        self.role = role
        self.replica_id = f"{socket.gethostname()}:{os.getpid()}:{new_id('r')}"
        self.specs: dict[str, LoopSpec] = {spec.name: spec for spec in builtin_loops(runtime)}
        self.stats: dict[str, LoopStats] = {name: LoopStats() for name in self.specs}
        self.is_leader = False
        self._leader_since: datetime | None = None
        self._leadership: Leadership = leadership_for(
            runtime.engine,
            runtime.sessions,
            self.replica_id,
            runtime.settings.leader_lease_seconds,
        )
        self._wake: dict[str, asyncio.Event] = {name: asyncio.Event() for name in self.specs}
        self._locks: dict[str, asyncio.Lock] = {name: asyncio.Lock() for name in self.specs}
        self._tasks: list[asyncio.Task[None]] = []

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Register this replica, contest the lead once, then start every loop."""
        now = utcnow()
        async with self.runtime.sessions.begin() as session:
            session.add(
                SchedulerReplica(
                    id=self.replica_id,
                    hostname=socket.gethostname(),
                    pid=os.getpid(),
                    role=self.role,
                    is_leader=False,
                    started_at=now,
                    heartbeat_at=now,
                )
            )
        await self._heartbeat()
        self._tasks = [asyncio.create_task(self._heartbeat_loop(), name="certctl-heartbeat")]
        self._tasks += [
            asyncio.create_task(self._loop(spec), name=f"certctl-{spec.name}")
            for spec in self.specs.values()
        ]

    async def stop(self) -> None:
        """Cancel the loops, hand the lead over and remove this replica's row."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        try:
            if self.is_leader:
                await self._leadership.release()
            self.is_leader = False
            async with self.runtime.sessions.begin() as session:
                await session.execute(
                    delete(SchedulerLoopRun).where(SchedulerLoopRun.replica_id == self.replica_id)
                )
                await session.execute(
                    delete(SchedulerReplica).where(SchedulerReplica.id == self.replica_id)
                )
        except Exception:  # noqa: BLE001 - shutting down; the rows age out through GC
            _log.warning("could not deregister replica %s", self.replica_id, exc_info=True)

    def wake(self, name: str) -> None:
        """Run a wakeable loop now instead of at its next tick."""
        event = self._wake.get(name)
        if event is not None:
            event.set()

    # -- running ---------------------------------------------------------------------------

    async def run_now(self, name: str) -> int:
        """Run one loop at once on this replica (the API's run-now); waits for a running one."""
        spec = self.specs[name]
        if spec.leader_only and not self.is_leader:
            raise NotLeader(name)
        return await self._run(spec)

    async def _loop(self, spec: LoopSpec) -> None:
        first = True
        while True:
            if not (first and spec.run_at_start):
                await self._sleep(spec)
            first = False
            if spec.leader_only and not self.is_leader:
                continue
            with contextlib.suppress(Exception):
                await self._run(spec)

    async def _sleep(self, spec: LoopSpec) -> None:
        jitter = self.runtime.settings.scheduler_jitter
        delay = spec.interval * random.uniform(1 - jitter, 1 + jitter)  # noqa: S311 - spread only
        event = self._wake[spec.name]
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for loses a cancellation that
        # arrives as the event is set, and the loop would then outlive Scheduler.stop().
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await event.wait()
        event.clear()

    async def _run(self, spec: LoopSpec) -> int:
        stats = self.stats[spec.name]
        async with self._locks[spec.name]:
            stats.running = True
            stats.last_started_at = utcnow()
            started = time.perf_counter()
            try:
                async with asyncio.timeout(spec.timeout):
                    handled = await spec.run(self.runtime)
            except TimeoutError as exc:
                self._failed(spec, stats, f"timed out after {spec.timeout:g} s", started)
                raise exc
            except asyncio.CancelledError:
                stats.running = False
                raise
            except Exception as exc:
                _log.exception("loop %s failed", spec.name)
                self._failed(spec, stats, f"{type(exc).__name__}: {exc}"[:500], started)
                raise
            stats.running = False
            stats.runs += 1
            stats.last_finished_at = utcnow()
            stats.last_duration_ms = int((time.perf_counter() - started) * 1000)
            stats.last_handled = handled
            stats.dirty = True
            if handled and not spec.wakeable:
                _log.info("loop %s handled %d item(s)", spec.name, handled)
            return handled

    @staticmethod
    def _failed(spec: LoopSpec, stats: LoopStats, error: str, started: float) -> None:
        stats.running = False
        stats.runs += 1
        stats.failures += 1
        stats.last_finished_at = stats.last_error_at = utcnow()
        stats.last_duration_ms = int((time.perf_counter() - started) * 1000)
        stats.last_error = error
        stats.dirty = True

    # -- heartbeat and leadership ------------------------------------------------------------

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.runtime.settings.scheduler_heartbeat_interval)
            try:
                await self._heartbeat()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - keep beating through a database hiccup
                _log.warning("scheduler heartbeat failed", exc_info=True)
                if self.is_leader:
                    # Without the database we cannot prove we still hold the lock: step down.
                    self._set_leader(False)

    async def _heartbeat(self) -> None:
        self._set_leader(await self._leadership.check())
        now = utcnow()
        async with self.runtime.sessions.begin() as session:
            await session.execute(
                update(SchedulerReplica)
                .where(SchedulerReplica.id == self.replica_id)
                .values(heartbeat_at=now, is_leader=self.is_leader, leader_since=self._leader_since)
            )
            rows = []
            for name, stats in self.stats.items():
                if not stats.dirty:
                    continue
                stats.dirty = False
                rows.append(
                    {
                        "loop": name,
                        "replica_id": self.replica_id,
                        "runs": stats.runs,
                        "failures": stats.failures,
                        "last_started_at": stats.last_started_at,
                        "last_finished_at": stats.last_finished_at,
                        "last_duration_ms": stats.last_duration_ms,
                        "last_handled": stats.last_handled,
                        "last_error": stats.last_error,
                        "last_error_at": stats.last_error_at,
                    }
                )
            if rows:
                insert = dialect_insert(session)
                statement = insert(SchedulerLoopRun).values(rows)
                columns = {
                    key: statement.excluded[key]
                    for key in rows[0]
                    if key not in ("loop", "replica_id")
                }
                await session.execute(
                    statement.on_conflict_do_update(
                        index_elements=["loop", "replica_id"], set_=columns
                    )
                )

    def _set_leader(self, leading: bool) -> None:
        if leading and not self.is_leader:
            self._leader_since = utcnow()
            _log.info("replica %s is now the scheduler leader", self.replica_id)
            # Run the leader-only loops promptly after a fail-over instead of a full interval later.
            for name, spec in self.specs.items():
                if spec.leader_only:
                    self._wake[name].set()
        elif not leading and self.is_leader:
            self._leader_since = None
            _log.warning("replica %s is no longer the scheduler leader", self.replica_id)
        self.is_leader = leading
