"""Walking the hash chain: in the database (API, CLI, scheduler) or in an NDJSON export.

The walk is in ``seq`` order, one page at a time, so memory stays bounded however long the
trail is. It stops at the first link that does not hold and says which and why:

* a row whose contents no longer give its ``row_hash`` (changed after it was written);
* a row whose ``prev_hash`` is not the ``row_hash`` of the row before (the row before, or this
  one, was altered and re-hashed);
* a row whose ``seq`` skips positions (rows deleted before it);
* a head that points past the last row (rows deleted at the tail) or names another hash;
* optionally, a row that differs from an *anchor* (``seq:row_hash``) an auditor wrote down
  earlier: the only way to catch an attacker who rewrote the tail and the head together.

Verification of the database reads the head first and walks only up to it, so rows that
writers commit meanwhile are neither missed nor reported.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from certctl.db.models import AuditChainHead, AuditEvent
from certctl.domain.audit.canonical import GENESIS_HASH, body_json, row_hash
from certctl.domain.audit.schemas import ChainBreak, ChainReport

__all__ = [
    "Anchor",
    "ChainVerifier",
    "ChainWalker",
    "parse_anchor",
    "verify_database",
    "verify_export_lines",
]

PAGE_SIZE = 1000
_COLUMNS = tuple(AuditEvent.__table__.c)


class Anchor(msgspec.Struct, frozen=True):
    """A link recorded earlier (from a verification report or an export's headers)."""

    seq: int
    row_hash: str


def parse_anchor(text: str) -> Anchor:
    """``"1234:<64 hex>"`` → Anchor; ValueError with a reason otherwise."""
    seq_text, sep, digest = text.partition(":")
    if not sep or not seq_text.isdigit() or int(seq_text) < 1:
        raise ValueError("anchor must be <seq>:<row_hash>, seq a positive integer")
    digest = digest.lower()
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise ValueError("anchor row_hash must be 64 hexadecimal characters")
    return Anchor(seq=int(seq_text), row_hash=digest)


class ChainWalker:
    """Feed rows in ``seq`` order; :meth:`finish` compares the end with the head."""

    def __init__(self, anchor: Anchor | None = None) -> None:
        self.anchor = anchor
        self.checked = 0
        self.broken: ChainBreak | None = None
        self.last_seq = 0
        self.last_id: str | None = None
        self.last_hash = GENESIS_HASH

    def _break(self, seq: int | None, row_id: str | None, reason: str) -> bool:
        self.broken = ChainBreak(seq=seq, id=row_id, reason=reason)
        return False

    def feed(self, row: Mapping[Any, Any]) -> bool:
        """Check one row; False once the chain is broken (stop feeding)."""
        if self.broken is not None:
            return False
        seq, row_id = row["seq"], row["id"]
        expected = self.last_seq + 1
        if seq != expected:
            if isinstance(seq, int) and seq > expected:
                missing = f"seq {expected}" if seq == expected + 1 else f"seq {expected}..{seq - 1}"
                return self._break(seq, row_id, f"{missing} missing before this row (deleted)")
            return self._break(seq, row_id, f"out of order: expected seq {expected}")
        if row["prev_hash"] != self.last_hash:
            before = "the genesis value" if seq == 1 else f"the row_hash of seq {seq - 1}"
            return self._break(
                seq, row_id, f"prev_hash is not {before}: that row or this one was altered"
            )
        if row_hash(seq, self.last_hash, body_json(row)) != row["row_hash"]:
            return self._break(
                seq, row_id, "row_hash does not match the row's contents: changed after writing"
            )
        anchor = self.anchor
        if anchor is not None and seq == anchor.seq and row["row_hash"] != anchor.row_hash:
            return self._break(seq, row_id, "row_hash differs from the anchor")
        self.checked += 1
        self.last_seq, self.last_id, self.last_hash = seq, row_id, row["row_hash"]
        return True

    def feed_all(self, rows: Iterable[Mapping[Any, Any]]) -> bool:
        """Check rows in order; False as soon as one breaks the chain."""
        return all(self.feed(row) for row in rows)

    def finish(self, head_seq: int, head_hash: str) -> ChainReport:
        """The report, after the tail has been compared with the head."""
        if self.broken is None:
            if self.last_seq < head_seq:
                self._break(
                    self.last_seq + 1,
                    None,
                    f"the head records seq {head_seq} but the chain ends at seq "
                    f"{self.last_seq}: rows at the tail were deleted",
                )
            elif self.last_hash != head_hash:
                self._break(
                    self.last_seq, self.last_id, "the head's hash is not the last row's row_hash"
                )
            elif self.anchor is not None and self.anchor.seq > self.last_seq:
                self._break(
                    self.anchor.seq,
                    None,
                    f"the chain ends at seq {self.last_seq}, before the anchor: rows were "
                    "deleted and the head rewound",
                )
        return ChainReport(
            ok=self.broken is None,
            checked=self.checked,
            first_broken=self.broken,
            head_seq=head_seq,
            head_hash=head_hash,
        )


async def verify_database(
    engine: AsyncEngine, *, anchor: Anchor | None = None, page_size: int = PAGE_SIZE
) -> ChainReport:
    """Walk ``audit_events`` up to the head read at the start."""
    async with engine.connect() as conn:
        head = (
            await conn.execute(
                select(AuditChainHead.last_seq, AuditChainHead.last_hash).where(
                    AuditChainHead.id == 1
                )
            )
        ).one_or_none()
        await conn.rollback()
        if head is None:
            return ChainReport(
                ok=False,
                checked=0,
                first_broken=ChainBreak(seq=None, id=None, reason="the chain head row is missing"),
                head_seq=0,
                head_hash="",
            )
        head_seq, head_hash = int(head[0]), str(head[1])
        walker = ChainWalker(anchor)
        after = 0
        while after < head_seq:
            page = (
                (
                    await conn.execute(
                        select(*_COLUMNS)
                        .where(AuditEvent.seq > after, AuditEvent.seq <= head_seq)
                        .order_by(AuditEvent.seq)
                        .limit(page_size)
                    )
                )
                .mappings()
                .all()
            )
            await conn.rollback()  # no transaction is held open between pages
            # Hashing a page is CPU work: in a thread, so requests keep being served meanwhile.
            if not page or not await asyncio.to_thread(walker.feed_all, page):
                break
            after = int(page[-1]["seq"])
    return walker.finish(head_seq, head_hash)


class ChainVerifier:
    """The process's walks of the chain: one at a time, and callers asking for the same walk
    while it runs share its report, so repeated requests cannot multiply the CPU it costs."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._lock = asyncio.Lock()
        self._running: dict[Anchor | None, asyncio.Task[ChainReport]] = {}

    async def _walk(self, anchor: Anchor | None) -> ChainReport:
        async with self._lock:
            return await verify_database(self._engine, anchor=anchor)

    async def verify(self, anchor: Anchor | None = None) -> ChainReport:
        """Walk the chain (or join the walk already running with the same anchor)."""
        task = self._running.get(anchor)
        if task is None:
            task = asyncio.create_task(self._walk(anchor))
            self._running[anchor] = task
            task.add_done_callback(lambda _: self._running.pop(anchor, None))
        return await asyncio.shield(task)


def verify_export_lines(lines: Iterable[str | bytes], anchor: Anchor | None = None) -> ChainReport:
    """Verify an unfiltered NDJSON export offline; its last row stands in for the head."""
    walker = ChainWalker(anchor)
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            walker.feed(row)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            walker.broken = ChainBreak(seq=None, id=None, reason=f"line {number}: {exc}")
        if walker.broken is not None:
            break
    return walker.finish(walker.last_seq, walker.last_hash)
