"""Streaming the audit trail for auditors: NDJSON (verifiable offline) or CSV (spreadsheets).

Rows go out in ``seq`` order, a page per query on a short-lived connection, up to the head
read when the export started, so an export of millions of rows holds neither memory nor a
transaction. Every NDJSON line carries ``seq``, ``prev_hash`` and ``row_hash`` and the
timestamp exactly as it was hashed, so an unfiltered export can be verified link by link and
a filtered one row by row (docs/security.md has the recipe).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from certctl.db.models import AuditEvent
from certctl.domain.audit.canonical import canonical_timestamp
from certctl.domain.audit.service import AuditFilter

__all__ = ["EXPORT_FIELDS", "FORMATS", "export_stream"]

EXPORT_FIELDS = (
    "seq",
    "id",
    "timestamp",
    "actor",
    "actor_type",
    "action",
    "resource_type",
    "resource_id",
    "outcome",
    "category",
    "details",
    "prev_hash",
    "row_hash",
)
FORMATS = {"ndjson": "application/x-ndjson", "csv": "text/csv; charset=utf-8"}
PAGE_SIZE = 1000
_COLUMNS = tuple(AuditEvent.__table__.c[name] for name in EXPORT_FIELDS)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _export_row(row: Mapping[Any, Any]) -> dict[str, Any]:
    out = {name: row[name] for name in EXPORT_FIELDS}
    out["timestamp"] = canonical_timestamp(row["timestamp"])
    return out


async def _pages(
    engine: AsyncEngine, filters: AuditFilter, head_seq: int, page_size: int
) -> AsyncIterator[list[dict[str, Any]]]:
    after = 0
    while after < head_seq:
        query = (
            filters.apply(select(*_COLUMNS))
            .where(AuditEvent.seq > after, AuditEvent.seq <= head_seq)
            .order_by(AuditEvent.seq)
            .limit(page_size)
        )
        async with engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        if not rows:
            return
        yield [_export_row(row) for row in rows]
        after = int(rows[-1]["seq"])


def _csv_cell(value: Any) -> str:
    """Text a spreadsheet shows as text: a leading ``'`` defuses formula-like cells."""
    if isinstance(value, dict | list):
        value = json.dumps(value, sort_keys=True, separators=(",", ":"))
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def _csv(rows: list[list[Any]]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    return buffer.getvalue().encode()


async def export_stream(
    engine: AsyncEngine,
    filters: AuditFilter,
    *,
    head_seq: int,
    fmt: str,
    page_size: int = PAGE_SIZE,
) -> AsyncIterator[bytes]:
    """The export body, chunk by chunk (one chunk per page)."""
    if fmt == "csv":
        yield _csv([list(EXPORT_FIELDS)])
    async for page in _pages(engine, filters, head_seq, page_size):
        if fmt == "csv":
            yield _csv([[_csv_cell(row[name]) for name in EXPORT_FIELDS] for row in page])
        else:
            yield "".join(
                json.dumps(row, separators=(",", ":"), ensure_ascii=False) + "\n" for row in page
            ).encode()
