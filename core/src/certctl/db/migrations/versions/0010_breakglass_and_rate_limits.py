"""Break-glass credentials and the shared rate-limit buckets.

``rate_limit_buckets`` is UNLOGGED on PostgreSQL (rate-limit state is worth nothing after a
crash; skipping the WAL halves the cost of every update) with room on each page for HOT updates.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == 'postgresql'
    op.create_table('rate_limit_buckets',
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('tokens', sa.Double(), nullable=False),
    sa.Column('granted', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.Double(), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_rate_limit_buckets')),
    prefixes=['UNLOGGED'] if postgres else [],
    )
    if postgres:
        op.execute('ALTER TABLE rate_limit_buckets SET (fillfactor = 70)')
    op.create_table('breakglass_credentials',
    sa.Column('actor_id', sa.String(length=40), nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('failed_attempts', sa.Integer(), nullable=False),
    sa.Column('window_started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('locked_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('role_id', sa.String(length=40), nullable=False),
    sa.Column('created_by', sa.String(length=128), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('password_changed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_login_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['actor_id'], ['users.id'], name=op.f('fk_breakglass_credentials_actor_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('actor_id', name=op.f('pk_breakglass_credentials')),
    sa.UniqueConstraint('username', name=op.f('uq_breakglass_credentials_username'))
    )


def downgrade() -> None:
    op.drop_table('breakglass_credentials')
    op.drop_table('rate_limit_buckets')
