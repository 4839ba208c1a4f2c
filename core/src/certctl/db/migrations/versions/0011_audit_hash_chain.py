"""Audit hash chain: seq / prev_hash / row_hash on audit_events, and the audit_chain_head row.

Existing rows are chained in (timestamp, id) order. The append-only triggers refuse the
back-fill's UPDATEs, so they are switched off around it: on PostgreSQL the row trigger is
disabled and re-enabled inside this migration's transaction (DDL is transactional, so a
failure leaves it enabled); on SQLite the triggers are dropped, the table is rebuilt with the
new NOT NULL columns, and the triggers are created again. The head row cannot move backwards
or be deleted.

The canonical encoding below is a frozen copy of ``certctl.domain.audit.canonical`` (a
migration must not change when the code does; a test checks that back-filled rows verify).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 08:00:00.000000
"""

from collections.abc import Mapping, Sequence
from datetime import UTC
import hashlib
import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None

GENESIS = '0' * 64
BODY = ('id', 'timestamp', 'actor', 'actor_type', 'action', 'resource_type', 'resource_id',
        'outcome', 'category', 'details')
PAGE = 1000

_audit = sa.table(
    'audit_events',
    sa.column('id', sa.String()),
    sa.column('timestamp', sa.DateTime(timezone=True)),
    sa.column('actor', sa.String()),
    sa.column('actor_type', sa.String()),
    sa.column('action', sa.String()),
    sa.column('resource_type', sa.String()),
    sa.column('resource_id', sa.String()),
    sa.column('outcome', sa.String()),
    sa.column('category', sa.String()),
    sa.column('details', sa.JSON()),
    sa.column('seq', sa.BigInteger()),
    sa.column('prev_hash', sa.String()),
    sa.column('row_hash', sa.String()),
)


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(',', ':'), ensure_ascii=True, allow_nan=False)


def _row_hash(seq: int, prev: str, row: Mapping[Any, Any]) -> str:
    body = {name: row[name] for name in BODY}
    stamp = row['timestamp']
    stamp = stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)
    body['timestamp'] = stamp.strftime('%Y-%m-%dT%H:%M:%S.%fZ')
    return hashlib.sha256(_dumps(['certctl-audit/1', seq, prev, body]).encode()).hexdigest()


def _backfill(bind: sa.Connection) -> tuple[int, str]:
    """Chain every existing row in (timestamp, id) order; returns the last (seq, hash)."""
    seq, prev = 0, GENESIS
    after: tuple[Any, str] | None = None
    columns = [_audit.c[name] for name in BODY]
    update = (
        _audit.update()
        .where(_audit.c.id == sa.bindparam('b_id'))
        .values(seq=sa.bindparam('b_seq'), prev_hash=sa.bindparam('b_prev'),
                row_hash=sa.bindparam('b_hash'))
    )
    while True:
        query = sa.select(*columns).order_by(_audit.c.timestamp, _audit.c.id).limit(PAGE)
        if after is not None:
            query = query.where(
                sa.or_(_audit.c.timestamp > after[0],
                       sa.and_(_audit.c.timestamp == after[0], _audit.c.id > after[1]))
            )
        rows = bind.execute(query).mappings().all()
        if not rows:
            return seq, prev
        params = []
        for row in rows:
            seq += 1
            digest = _row_hash(seq, prev, row)
            params.append({'b_id': row['id'], 'b_seq': seq, 'b_prev': prev, 'b_hash': digest})
            prev = digest
        bind.execute(update, params)
        after = (rows[-1]['timestamp'], rows[-1]['id'])


def _sqlite_audit_triggers() -> None:
    for verb in ('UPDATE', 'DELETE'):
        op.execute(
            f"CREATE TRIGGER audit_events_no_{verb.lower()} BEFORE {verb} ON audit_events "
            "BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END"
        )


def _drop_sqlite_audit_triggers() -> None:
    for verb in ('update', 'delete'):
        op.execute(f"DROP TRIGGER IF EXISTS audit_events_no_{verb}")


def upgrade() -> None:
    bind = op.get_bind()
    postgres = bind.dialect.name == 'postgresql'
    if not postgres:
        _drop_sqlite_audit_triggers()
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('seq', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('prev_hash', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('row_hash', sa.String(length=64), nullable=True))
    if postgres:
        op.execute('ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_change')
    last_seq, last_hash = _backfill(bind)
    if postgres:
        op.execute('ALTER TABLE audit_events ENABLE TRIGGER audit_events_no_change')
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.alter_column('seq', existing_type=sa.BigInteger(), nullable=False)
        batch_op.alter_column('prev_hash', existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column('row_hash', existing_type=sa.String(length=64), nullable=False)
        batch_op.create_index('ix_audit_events_seq', ['seq'], unique=True)
    if not postgres:
        _sqlite_audit_triggers()

    head = op.create_table('audit_chain_head',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('last_seq', sa.BigInteger(), nullable=False),
    sa.Column('last_hash', sa.String(length=64), nullable=False),
    sa.CheckConstraint('id = 1', name=op.f('ck_audit_chain_head_singleton')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_chain_head'))
    )
    op.bulk_insert(head, [{'id': 1, 'last_seq': last_seq, 'last_hash': last_hash}])
    if postgres:
        op.execute(
            "CREATE FUNCTION audit_chain_head_forward_only() RETURNS trigger AS $$ BEGIN "
            "IF TG_OP = 'UPDATE' THEN "
            "IF NEW.id = OLD.id AND NEW.last_seq >= OLD.last_seq THEN RETURN NEW; END IF; "
            "END IF; "
            "RAISE EXCEPTION 'audit_chain_head only moves forward'; END; $$ LANGUAGE plpgsql"
        )
        op.execute(
            "CREATE TRIGGER audit_chain_head_forward BEFORE UPDATE OR DELETE ON audit_chain_head "
            "FOR EACH ROW EXECUTE FUNCTION audit_chain_head_forward_only()"
        )
        op.execute(
            "CREATE TRIGGER audit_chain_head_no_truncate BEFORE TRUNCATE ON audit_chain_head "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_chain_head_forward_only()"
        )
    else:
        op.execute(
            "CREATE TRIGGER audit_chain_head_forward BEFORE UPDATE ON audit_chain_head "
            "WHEN NEW.id != OLD.id OR NEW.last_seq < OLD.last_seq "
            "BEGIN SELECT RAISE(ABORT, 'audit_chain_head only moves forward'); END"
        )
        op.execute(
            "CREATE TRIGGER audit_chain_head_no_delete BEFORE DELETE ON audit_chain_head "
            "BEGIN SELECT RAISE(ABORT, 'audit_chain_head only moves forward'); END"
        )


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == 'postgresql'
    if postgres:
        op.execute('DROP TRIGGER IF EXISTS audit_chain_head_forward ON audit_chain_head')
        op.execute('DROP TRIGGER IF EXISTS audit_chain_head_no_truncate ON audit_chain_head')
        op.execute('DROP FUNCTION IF EXISTS audit_chain_head_forward_only()')
    op.drop_table('audit_chain_head')
    if not postgres:
        _drop_sqlite_audit_triggers()
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_events_seq')
        batch_op.drop_column('row_hash')
        batch_op.drop_column('prev_hash')
        batch_op.drop_column('seq')
    if not postgres:
        _sqlite_audit_triggers()
