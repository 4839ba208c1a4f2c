"""CA hierarchy: intermediate and issuing CAs below a Local CA issuer's own CA.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 15:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0013'
down_revision: str | None = '0012'
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('intermediate_cas',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('issuer_id', sa.String(length=40), nullable=False),
    sa.Column('parent_id', sa.String(length=40), nullable=True),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('issuing', sa.Boolean(), nullable=False),
    sa.Column('algorithm', sa.String(length=16), nullable=False),
    sa.Column('certificate_pem', sa.Text(), nullable=False),
    sa.Column('key_store', sa.String(length=16), nullable=False),
    sa.Column('private_key_enc', sa.Text(), nullable=False),
    sa.Column('serial_number', sa.String(length=64), nullable=False),
    sa.Column('not_before', sa.DateTime(timezone=True), nullable=False),
    sa.Column('not_after', sa.DateTime(timezone=True), nullable=False),
    sa.Column('path_len_constraint', sa.Integer(), nullable=True),
    sa.Column('permitted_dns', sa.JSON(), nullable=False),
    sa.Column('excluded_dns', sa.JSON(), nullable=False),
    sa.Column('ocsp_responder_url', sa.Text(), nullable=True),
    sa.Column('metadata', sa.JSON(), nullable=False),
    sa.Column('retire_note', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['issuer_id'], ['connectors.id'], name=op.f('fk_intermediate_cas_issuer_id_connectors'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['parent_id'], ['intermediate_cas.id'], name=op.f('fk_intermediate_cas_parent_id_intermediate_cas'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_intermediate_cas'))
    )
    op.create_index('ix_intermediate_cas_issuer_id', 'intermediate_cas', ['issuer_id'], unique=False)
    op.create_index('ix_intermediate_cas_parent_id', 'intermediate_cas', ['parent_id'], unique=False)
    op.create_index('uq_intermediate_cas_issuing', 'intermediate_cas', ['issuer_id'], unique=True, sqlite_where=sa.text('issuing'), postgresql_where=sa.text('issuing'))


def downgrade() -> None:
    op.drop_index('uq_intermediate_cas_issuing', table_name='intermediate_cas', sqlite_where=sa.text('issuing'), postgresql_where=sa.text('issuing'))
    op.drop_index('ix_intermediate_cas_parent_id', table_name='intermediate_cas')
    op.drop_index('ix_intermediate_cas_issuer_id', table_name='intermediate_cas')
    op.drop_table('intermediate_cas')
