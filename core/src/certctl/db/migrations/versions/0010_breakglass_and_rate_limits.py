"""Break-glass credentials and the shared rate-limit buckets.

``rate_limit_buckets`` is UNLOGGED on PostgreSQL (rate-limit state is worth nothing after a
crash; skipping the WAL halves the cost of every update) with room on each page for HOT updates.

Revision ID: 0010
Revises: 0008
Create Date: 2026-12-02 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0010'
down_revision: str | None = '0008'
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


def downgrade() -> None:
    op.drop_table('rate_limit_buckets')
