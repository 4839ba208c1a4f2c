"""OCSP: the delegated responder certificate and encrypted key kept per issuer.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 14:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('ocsp_responders',
    sa.Column('issuer_id', sa.String(length=40), nullable=False),
    sa.Column('certificate_pem', sa.Text(), nullable=False),
    sa.Column('private_key_enc', sa.Text(), nullable=False),
    sa.Column('not_after', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['issuer_id'], ['connectors.id'], name=op.f('fk_ocsp_responders_issuer_id_connectors'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('issuer_id', name=op.f('pk_ocsp_responders'))
    )


def downgrade() -> None:
    op.drop_table('ocsp_responders')
