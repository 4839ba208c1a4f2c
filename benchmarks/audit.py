"""What the audit hash chain costs: ``uv run python benchmarks/audit.py``.

Prints, for SQLite and PostgreSQL, audit rows committed per second through ``record()`` /
``record_many()`` (chained: the head row is locked from the commit's last flush to COMMIT)
beside the same rows inserted into an identical table without a chain (what the trail cost
before the chain), for:

  * one writer, one row per transaction (no contention);
  * several writers in one process, each on its own connection (contention on the head);
  * several processes (replicas) with several writers each, on one PostgreSQL database;
  * transactions of 256 rows (the worker's issuance batches use ``record_many``);

and how fast ``GET /api/v1/audit/verify`` walks the chain. Every chained phase ends with a
verification that must report the chain intact.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from certctl.db.base import UTCDateTime
from certctl.db.engine import create_engine, make_sessionmaker
from certctl.db.migrate import migrate
from certctl.domain.audit.service import audit_row, record, record_many
from certctl.domain.audit.verify import verify_database
from certctl.domain.auth.actor import Actor

ACTOR = Actor(name="bench", type="APIKey")
BATCH = 256


class _PlainBase(DeclarativeBase):
    pass


class PlainEvent(_PlainBase):
    """``audit_events`` as it was before the chain, written as the old code wrote it."""

    __tablename__ = "audit_plain"
    __table_args__ = (
        sa.Index("ix_audit_plain_timestamp", "timestamp"),
        sa.Index("ix_audit_plain_resource", "resource_type", "resource_id"),
        sa.Index("ix_audit_plain_actor", "actor"),
    )

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(sa.String(128))
    actor_type: Mapped[str] = mapped_column(sa.String(16))
    action: Mapped[str] = mapped_column(sa.String(64))
    resource_type: Mapped[str] = mapped_column(sa.String(32))
    resource_id: Mapped[str] = mapped_column(sa.String(255))
    outcome: Mapped[str] = mapped_column(sa.String(16))
    category: Mapped[str] = mapped_column(sa.String(24))
    details: Mapped[dict[str, Any]] = mapped_column(sa.JSON)


def _values(i: int) -> dict[str, Any]:
    return audit_row(
        ACTOR,
        "certificate.issued",
        resource_type="certificate",
        resource_id=f"mc-{i:08d}",
        category="cert_lifecycle",
        details={"job_id": f"job-{i}", "version": 1, "serial": f"{i:032x}", "targets": []},
    )


async def _writer(engine: AsyncEngine, transactions: int, rows: int, chained: bool) -> int:
    """Commit ``transactions`` transactions of ``rows`` audit rows each (chained or as before)."""
    sessions = make_sessionmaker(engine)
    for t in range(transactions):
        async with sessions.begin() as session:
            if not chained and rows == 1:  # the old record(): an ORM add
                session.add(PlainEvent(**_values(t)))
            elif not chained:  # the old record_many(): one bulk INSERT
                await session.execute(
                    sa.insert(PlainEvent), [_values(t * rows + k) for k in range(rows)]
                )
            elif rows == 1:
                values = _values(t)
                record(
                    session,
                    ACTOR,
                    values["action"],
                    resource_type=values["resource_type"],
                    resource_id=values["resource_id"],
                    category=values["category"],
                    details=values["details"],
                )
            else:
                await record_many(session, [_values(t * rows + k) for k in range(rows)])
    return transactions * rows


async def _phase(url: str, *, writers: int, transactions: int, rows: int, chained: bool) -> float:
    """Rows per second committed by ``writers`` concurrent tasks of this process."""
    engine = create_engine(url, pool_size=max(writers, 1))
    try:
        start = time.perf_counter()
        counts = await asyncio.gather(
            *(_writer(engine, transactions, rows, chained) for _ in range(writers))
        )
        return sum(counts) / (time.perf_counter() - start)
    finally:
        await engine.dispose()


def _replicas(url: str, *, processes: int, writers: int, transactions: int, chained: bool) -> float:
    """Rows per second committed by ``processes`` processes of ``writers`` tasks each."""
    start_at = time.time() + 3.0  # every child connected and waiting before the clock starts
    children = [
        subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--child",
                url,
                str(writers),
                str(transactions),
                "1" if chained else "0",
                str(start_at),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    ends = []
    for child in children:
        out, _ = child.communicate(timeout=600)
        if child.returncode != 0:
            raise RuntimeError("a benchmark child failed")
        ends.append(float(json.loads(out)["end"]))
    return processes * writers * transactions / (max(ends) - start_at)


async def _child(url: str, writers: int, transactions: int, chained: bool, start_at: float) -> None:
    engine = create_engine(url, pool_size=writers)
    try:
        async with engine.connect() as conn:  # open the connections before the start
            await conn.execute(sa.text("SELECT 1"))
        await asyncio.sleep(max(0.0, start_at - time.time()))
        await asyncio.gather(*(_writer(engine, transactions, 1, chained) for _ in range(writers)))
        print(json.dumps({"end": time.time()}))
    finally:
        await engine.dispose()


async def _prepare(url: str) -> None:
    engine = create_engine(url)
    try:
        await migrate(engine)
        async with engine.begin() as conn:
            await conn.run_sync(_PlainBase.metadata.create_all)
    finally:
        await engine.dispose()


async def _verify(url: str) -> tuple[int, float]:
    engine = create_engine(url)
    try:
        start = time.perf_counter()
        report = await verify_database(engine)
        elapsed = time.perf_counter() - start
    finally:
        await engine.dispose()
    if not report.ok:
        raise RuntimeError(f"chain broken after the benchmark: {report.first_broken}")
    return report.checked, report.checked / elapsed


async def _pg(admin: str, statement: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def _postgres_admin_url() -> str | None:
    url = os.environ.get(
        "CERTCTL_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )

    async def probe() -> bool:
        try:
            await _pg(url, "SELECT 1")
        except Exception:  # any failure means "no server"
            return False
        return True

    return url if asyncio.run(probe()) else None


def _line(label: str, chained: float, plain: float) -> str:
    return (
        f"  {label}: {chained:,.0f} rows/s chained, {plain:,.0f} rows/s without the chain "
        f"({chained / plain:.0%} of it)"
    )


def _best(rounds: int, measure: Callable[[bool], float]) -> dict[bool, float]:
    """Chained and unchained, alternated ``rounds`` times; the best of each (a shared machine
    only ever makes a run slower)."""
    best = {True: 0.0, False: 0.0}
    for _ in range(rounds):
        for chained in (True, False):
            best[chained] = max(best[chained], measure(chained))
    return best


def run_backend(name: str, url: str, args: argparse.Namespace) -> None:
    asyncio.run(_prepare(url))
    print(f"\n[{name}]")
    n, writers, rounds = args.transactions, args.writers, args.rounds

    def local(writers: int, transactions: int, rows: int) -> Callable[[bool], float]:
        return lambda chained: asyncio.run(
            _phase(url, writers=writers, transactions=transactions, rows=rows, chained=chained)
        )

    one = _best(rounds, local(1, n, 1))
    print(_line("1 writer, 1 row per transaction", one[True], one[False]))
    many = _best(rounds, local(writers, max(1, n // writers), 1))
    print(
        _line(f"{writers} writers in one process, 1 row per transaction", many[True], many[False])
    )
    if name == "postgresql":
        per = max(1, n // (args.processes * writers))
        replicas = _best(
            rounds,
            lambda chained: _replicas(
                url, processes=args.processes, writers=writers, transactions=per, chained=chained
            ),
        )
        label = f"{args.processes} processes x {writers} writers (replicas), 1 row per transaction"
        print(_line(label, replicas[True], replicas[False]))
    batch = _best(rounds, local(2, max(1, args.batch_rows // BATCH // 2), BATCH))
    print(_line(f"2 writers, {BATCH} rows per transaction", batch[True], batch[False]))
    checked, rate = asyncio.run(_verify(url))
    print(f"  verification: {rate:,.0f} rows/s ({checked:,} rows walked, chain intact)")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        url, writers, transactions, chained, start_at = sys.argv[2:7]
        asyncio.run(_child(url, int(writers), int(transactions), chained == "1", float(start_at)))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transactions", type=int, default=2000, help="per phase")
    parser.add_argument("--writers", type=int, default=8, help="concurrent writers per process")
    parser.add_argument("--processes", type=int, default=3, help="replicas (PostgreSQL)")
    parser.add_argument("--batch-rows", type=int, default=20_480, help="rows in 256-row batches")
    parser.add_argument("--rounds", type=int, default=2, help="alternated runs; best is shown")
    parser.add_argument("--only", default="", help="sqlite or postgresql")
    args = parser.parse_args()
    backends = [b for b in ("sqlite", "postgresql") if args.only in ("", b)]
    for name in backends:
        if name == "sqlite":
            with tempfile.TemporaryDirectory(prefix="certctl-bench-audit-") as base:
                run_backend(name, f"sqlite+aiosqlite:///{Path(base) / 'audit.db'}", args)
            continue
        admin = _postgres_admin_url()
        if admin is None:
            print("\n[postgresql]\n  skipped (no server; set CERTCTL_TEST_POSTGRES_URL)")
            continue
        db = f"certctl_bench_audit_{secrets.token_hex(3)}"
        asyncio.run(_pg(admin, f'CREATE DATABASE "{db}"'))
        try:
            url = "postgresql+asyncpg://" + admin.split("://", 1)[1].rsplit("/", 1)[0] + "/" + db
            run_backend(name, url, args)
        finally:
            asyncio.run(_pg(admin, f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
