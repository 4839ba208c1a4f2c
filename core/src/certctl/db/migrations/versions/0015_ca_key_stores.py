"""CA key stores: a tree CA's key sealed in the database (``file``) or in a PKCS#11 token.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02 18:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0015'
down_revision: str | None = '0014'
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('intermediate_cas') as batch:
        batch.add_column(sa.Column('key_ref', sa.String(length=512), nullable=True))
        batch.alter_column('private_key_enc', existing_type=sa.Text(), nullable=True)
    op.execute("UPDATE intermediate_cas SET key_store = 'file' WHERE key_store = 'box'")


def downgrade() -> None:
    # A token-held key cannot come back into the database: refuse rather than lose the CA.
    bind = op.get_bind()
    held = bind.execute(
        sa.text("SELECT count(*) FROM intermediate_cas WHERE key_store <> 'file'")
    ).scalar()
    if held:
        raise RuntimeError(
            f"{held} tree CA(s) keep their key in a PKCS#11 token; retire and delete them first"
        )
    op.execute("UPDATE intermediate_cas SET key_store = 'box' WHERE key_store = 'file'")
    with op.batch_alter_table('intermediate_cas') as batch:
        batch.alter_column('private_key_enc', existing_type=sa.Text(), nullable=False)
        batch.drop_column('key_ref')
