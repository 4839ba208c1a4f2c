"""Revocation and CRLs: revoked serials per issuer and each issuer's current CRL.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 13:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('certificate_revocations',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('certificate_id', sa.String(length=40), nullable=False),
    sa.Column('version_id', sa.String(length=40), nullable=False),
    sa.Column('issuer_id', sa.String(length=40), nullable=False),
    sa.Column('serial_number', sa.String(length=64), nullable=False),
    sa.Column('reason', sa.Integer(), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_by', sa.String(length=128), nullable=False),
    sa.Column('issuer_notified', sa.Boolean(), nullable=False),
    sa.Column('issuer_error', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['certificate_id'], ['managed_certificates.id'], name=op.f('fk_certificate_revocations_certificate_id_managed_certificates')),
    sa.ForeignKeyConstraint(['issuer_id'], ['connectors.id'], name=op.f('fk_certificate_revocations_issuer_id_connectors')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_certificate_revocations')),
    sa.UniqueConstraint('issuer_id', 'serial_number', name=op.f('uq_certificate_revocations_issuer_id_serial_number'))
    )
    with op.batch_alter_table('certificate_revocations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_certificate_revocations_certificate_id'), ['certificate_id'], unique=False)

    op.create_table('crl_state',
    sa.Column('issuer_id', sa.String(length=40), nullable=False),
    sa.Column('crl_number', sa.Integer(), nullable=False),
    sa.Column('crl_der', sa.LargeBinary(), nullable=False),
    sa.Column('this_update', sa.DateTime(timezone=True), nullable=False),
    sa.Column('next_update', sa.DateTime(timezone=True), nullable=False),
    sa.Column('etag', sa.String(length=80), nullable=False),
    sa.Column('generated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['issuer_id'], ['connectors.id'], name=op.f('fk_crl_state_issuer_id_connectors'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('issuer_id', name=op.f('pk_crl_state'))
    )


def downgrade() -> None:
    op.drop_table('crl_state')
    with op.batch_alter_table('certificate_revocations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_certificate_revocations_certificate_id'))

    op.drop_table('certificate_revocations')
