"""SCEP server: enrolment transactions and one-time / Intune challenges.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02 18:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0014'
down_revision: str | None = '0013'
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('scep_transactions',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('scep_profile', sa.String(length=64), nullable=False),
    sa.Column('transaction_id', sa.String(length=128), nullable=False),
    sa.Column('message_type', sa.String(length=4), nullable=False),
    sa.Column('request_digest', sa.String(length=64), nullable=False),
    sa.Column('requester_key', sa.String(length=64), nullable=False),
    sa.Column('certificate_id', sa.String(length=40), nullable=False),
    sa.Column('job_id', sa.String(length=40), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['certificate_id'], ['managed_certificates.id'], name=op.f('fk_scep_transactions_certificate_id_managed_certificates'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_scep_transactions')),
    sa.UniqueConstraint('scep_profile', 'transaction_id', 'request_digest', name=op.f('uq_scep_transactions_scep_profile_transaction_id_request_digest')),
    )
    op.create_table('scep_challenges',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('scep_profile', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('device', sa.String(length=255), nullable=False),
    sa.Column('created_by', sa.String(length=128), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('used_by', sa.String(length=128), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_scep_challenges')),
    sa.UniqueConstraint('digest', name=op.f('uq_scep_challenges_digest'))
    )
    op.create_index('ix_scep_challenges_device', 'scep_challenges', ['scep_profile', 'device', 'used_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_scep_challenges_device', table_name='scep_challenges')
    op.drop_table('scep_challenges')
    op.drop_table('scep_transactions')
