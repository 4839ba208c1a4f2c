"""Single sign-on: pre-login rows of OIDC logins in flight, and used logout-token ids.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 08:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('oidc_pending_logins',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('state_hash', sa.String(length=64), nullable=False),
    sa.Column('binding_hash', sa.String(length=64), nullable=False),
    sa.Column('provider_id', sa.String(length=40), nullable=False),
    sa.Column('secrets_enc', sa.Text(), nullable=False),
    sa.Column('redirect_after', sa.String(length=2048), nullable=False),
    sa.Column('user_agent_hash', sa.String(length=64), nullable=True),
    sa.Column('client_ip', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['provider_id'], ['connectors.id'], name=op.f('fk_oidc_pending_logins_provider_id_connectors'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_oidc_pending_logins')),
    sa.UniqueConstraint('state_hash', name=op.f('uq_oidc_pending_logins_state_hash'))
    )
    with op.batch_alter_table('oidc_pending_logins', schema=None) as batch_op:
        batch_op.create_index('ix_oidc_pending_logins_expires_at', ['expires_at'], unique=False)
    op.create_table('oidc_logout_jtis',
    sa.Column('provider_id', sa.String(length=40), nullable=False),
    sa.Column('jti', sa.String(length=255), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['provider_id'], ['connectors.id'], name=op.f('fk_oidc_logout_jtis_provider_id_connectors'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('provider_id', 'jti', name=op.f('pk_oidc_logout_jtis'))
    )
    with op.batch_alter_table('oidc_logout_jtis', schema=None) as batch_op:
        batch_op.create_index('ix_oidc_logout_jtis_expires_at', ['expires_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('oidc_logout_jtis', schema=None) as batch_op:
        batch_op.drop_index('ix_oidc_logout_jtis_expires_at')
    op.drop_table('oidc_logout_jtis')
    with op.batch_alter_table('oidc_pending_logins', schema=None) as batch_op:
        batch_op.drop_index('ix_oidc_pending_logins_expires_at')
    op.drop_table('oidc_pending_logins')
