"""Appending to the hash chain at the last moment of the writing transaction.

:func:`stage` parks a row on the session (``session.info``) instead of inserting it. When the
session commits, a ``before_commit`` hook flushes every other pending change first, then locks
the chain head, numbers and hashes the parked rows, inserts them and advances the head:

* PostgreSQL, one row (a request's usual share): a single statement locks the head
  (``SELECT … FOR UPDATE`` in a CTE), hashes with ``sha256()``, inserts and advances;
* PostgreSQL, several rows: ``SELECT … FOR UPDATE``, hashing here, one INSERT, one UPDATE;
* SQLite: an ``UPDATE … RETURNING`` of the head takes the database write lock and reads the
  head under it, then the same INSERT and UPDATE.

So:

* the head is the last lock a transaction takes and is held only for those statements and the
  commit: writers queue on it but never deadlock through it;
* rows enter the chain in commit order, gapless, whichever replica writes them, and a
  transaction that rolls back leaves neither rows nor a hole;
* an audit row still commits or rolls back with the change it records (savepoints included:
  rows staged inside a savepoint that rolls back are dropped).

The hooks are registered on SQLAlchemy's ``Session`` class, not on one sessionmaker, so that
every session that can reach :func:`certctl.domain.audit.service.record` chains its rows: a
row staged on a session without the hook would otherwise be silently lost.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import JSON, Connection, Table, bindparam, event, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

from certctl.db.base import UTCDateTime, utcnow
from certctl.db.models import AuditChainHead, AuditEvent
from certctl.domain.audit.canonical import BODY_FIELDS, body_json, json_value, row_hash
from certctl.domain.audit.redact import redact

__all__ = ["AuditChainError", "append", "prepare", "stage"]

_PENDING = "certctl.audit.pending"
_NO_HEAD = "audit_chain_head has no row: the audit chain cannot be extended"
_HEAD_ID = 1
_EVENTS = cast(Table, AuditEvent.__table__)
_HEAD = cast(Table, AuditChainHead.__table__)
_ADVANCE = (
    update(_HEAD)
    .where(_HEAD.c.id == _HEAD_ID)
    .values(last_seq=bindparam("head_seq"), last_hash=bindparam("head_hash"))
)
_PG_APPEND_ONE = text(
    """
    WITH head AS (
        SELECT last_seq + 1 AS seq, last_hash AS prev
        FROM audit_chain_head WHERE id = 1 FOR UPDATE
    ), link AS (
        SELECT seq, prev, encode(sha256(convert_to(
            '["certctl-audit/1",' || seq || ',' || to_json(prev)::text || ','
            || CAST(:body AS text) || ']', 'UTF8')), 'hex') AS row_hash
        FROM head
    ), appended AS (
        INSERT INTO audit_events (id, "timestamp", actor, actor_type, action, resource_type,
                                  resource_id, outcome, category, details,
                                  seq, prev_hash, row_hash)
        SELECT :id, CAST(:timestamp AS timestamptz), :actor, :actor_type, :action,
               :resource_type, :resource_id, :outcome, :category, CAST(:details AS json),
               seq, prev, row_hash
        FROM link
        RETURNING seq, prev_hash, row_hash
    )
    UPDATE audit_chain_head SET last_seq = appended.seq, last_hash = appended.row_hash
    FROM appended WHERE audit_chain_head.id = 1
    RETURNING appended.seq, appended.prev_hash, appended.row_hash
    """
).bindparams(
    bindparam("timestamp", type_=UTCDateTime()),
    bindparam("details", type_=JSON()),
)
"""PostgreSQL, one row (the common case: one per request): lock the head, hash, insert and
advance in a single statement, so the head is held for that statement and the commit only.
The hashed document is spliced exactly as :func:`certctl.domain.audit.canonical.chain_input`
does, and the result is checked against it before commit."""


class AuditChainError(RuntimeError):
    """The chain cannot be extended (its head row is missing)."""


@dataclass(slots=True)
class _Staged:
    values: dict[str, Any]
    body: str
    transaction: SessionTransaction | None
    event: AuditEvent | None


def prepare(values: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """Redact and normalise ``details`` and serialise the body, outside any lock."""
    clean = {name: values[name] for name in BODY_FIELDS}
    clean["details"] = json_value(redact(values.get("details") or {}))
    return clean, body_json(clean)


def _sync(session: AsyncSession | Session) -> Session:
    return session.sync_session if isinstance(session, AsyncSession) else session


def stage(
    session: AsyncSession | Session, values: dict[str, Any], event: AuditEvent | None = None
) -> None:
    """Park one row on ``session``; it is chained and inserted when the session commits."""
    clean, body = prepare(values)
    if event is not None:
        event.details = clean["details"]
    sync = _sync(session)
    transaction = sync.get_nested_transaction() or sync.get_transaction()
    sync.info.setdefault(_PENDING, []).append(_Staged(clean, body, transaction, event))


def append(conn: Connection, staged: list[tuple[dict[str, Any], str]]) -> list[dict[str, Any]]:
    """Lock the head, insert ``(values, body)`` rows as the next links, advance the head.

    Call it as the last statement before COMMIT: the head stays locked until then.
    """
    if conn.dialect.name == "postgresql" and len(staged) == 1:
        return [_append_one_postgres(conn, *staged[0])]
    where = _HEAD.c.id == _HEAD_ID
    if conn.dialect.name == "sqlite":
        # SQLite has no row locks: a write takes the database write lock, and the head is read
        # by that same statement, under the lock.
        head = conn.execute(
            update(_HEAD)
            .where(where)
            .values(last_seq=_HEAD.c.last_seq)
            .returning(_HEAD.c.last_seq, _HEAD.c.last_hash)
        ).one_or_none()
    else:
        head = conn.execute(
            select(_HEAD.c.last_seq, _HEAD.c.last_hash).where(where).with_for_update()
        ).one_or_none()
    if head is None:
        raise AuditChainError(_NO_HEAD)
    seq, prev = int(head[0]), str(head[1])
    rows = []
    for values, body in staged:
        seq += 1
        digest = row_hash(seq, prev, body)
        rows.append({**values, "seq": seq, "prev_hash": prev, "row_hash": digest})
        prev = digest
    conn.execute(insert(_EVENTS), rows)
    conn.execute(_ADVANCE, {"head_seq": seq, "head_hash": prev})
    return rows


def _append_one_postgres(conn: Connection, values: dict[str, Any], body: str) -> dict[str, Any]:
    link = conn.execute(_PG_APPEND_ONE, {**values, "body": body}).one_or_none()
    if link is None:
        raise AuditChainError(_NO_HEAD)
    seq, prev, digest = int(link[0]), str(link[1]), str(link[2])
    if digest != row_hash(seq, prev, body):  # the SQL and Python encodings must never drift
        raise AuditChainError(f"the database hashed audit row seq {seq} differently")
    return {**values, "seq": seq, "prev_hash": prev, "row_hash": digest}


def _within(transaction: SessionTransaction | None, ended: SessionTransaction) -> bool:
    """Whether ``transaction`` is ``ended`` or nested inside it."""
    while transaction is not None:
        if transaction is ended:
            return True
        transaction = transaction.parent
    return False


@event.listens_for(Session, "before_flush")
def _hold_back_direct_adds(session: Session, _context: Any, _instances: Any) -> None:
    """An AuditEvent added with ``session.add`` is staged too, never flushed unchained."""
    for obj in list(session.new):
        if isinstance(obj, AuditEvent):
            session.expunge(obj)
            if getattr(obj, "timestamp", None) is None:  # the column default applies at INSERT
                obj.timestamp = utcnow()
            values = {name: getattr(obj, name) for name in BODY_FIELDS}
            stage(session, values, obj)


@event.listens_for(Session, "before_commit")
def _chain_staged(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint is released; the rows wait for the outer commit
    if not session.info.get(_PENDING) and not any(
        isinstance(obj, AuditEvent) for obj in session.new
    ):
        return
    session.flush()  # every other change takes its locks before the head
    staged: list[_Staged] | None = session.info.pop(_PENDING, None)
    if not staged:
        return
    rows = append(session.connection(), [(s.values, s.body) for s in staged])
    for item, row in zip(staged, rows, strict=True):
        if item.event is not None:
            item.event.seq = row["seq"]
            item.event.prev_hash = row["prev_hash"]
            item.event.row_hash = row["row_hash"]


@event.listens_for(Session, "after_soft_rollback")
def _drop_rolled_back(session: Session, previous_transaction: SessionTransaction) -> None:
    staged: list[_Staged] | None = session.info.get(_PENDING)
    if staged:
        staged[:] = [s for s in staged if not _within(s.transaction, previous_transaction)]


@event.listens_for(Session, "after_transaction_end")
def _forget(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        session.info.pop(_PENDING, None)
