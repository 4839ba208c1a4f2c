"""ACME server: accounts, orders, authorizations, challenges, nonces and EAB keys.

Profiles gain the issuer their protocol clients are served from and their ACME modes;
managed certificates gain ``key_location`` (``client`` for keys that never reach certctl) and
``replace_by`` (an operator-scheduled replacement that ARI announces). ``acme_nonces`` is
UNLOGGED on PostgreSQL: an unused nonce is worth nothing after a crash.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 10:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0012'
down_revision: str | None = '0011'
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == 'postgresql'
    op.create_table('acme_nonces',
    sa.Column('value', sa.String(length=64), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('value', name=op.f('pk_acme_nonces')),
    prefixes=['UNLOGGED'] if postgres else [],
    )
    with op.batch_alter_table('acme_nonces', schema=None) as batch_op:
        batch_op.create_index('ix_acme_nonces_expires_at', ['expires_at'], unique=False)

    op.create_table('acme_accounts',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('profile_id', sa.String(length=40), nullable=False),
    sa.Column('jwk', sa.JSON(), nullable=False),
    sa.Column('thumbprint', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('contact', sa.JSON(), nullable=False),
    sa.Column('eab_key_id', sa.String(length=40), nullable=True),
    sa.Column('created_ip', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['profile_id'], ['certificate_profiles.id'], name=op.f('fk_acme_accounts_profile_id_certificate_profiles'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_acme_accounts')),
    sa.UniqueConstraint('profile_id', 'thumbprint', name=op.f('uq_acme_accounts_profile_id_thumbprint'))
    )
    with op.batch_alter_table('acme_accounts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_acme_accounts_profile_id'), ['profile_id'], unique=False)

    op.create_table('acme_eab_keys',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('profile_id', sa.String(length=40), nullable=True),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('hmac_enc', sa.Text(), nullable=False),
    sa.Column('created_by', sa.String(length=128), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('account_id', sa.String(length=40), nullable=True),
    sa.Column('bound_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['profile_id'], ['certificate_profiles.id'], name=op.f('fk_acme_eab_keys_profile_id_certificate_profiles'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_acme_eab_keys')),
    sa.UniqueConstraint('account_id', name=op.f('uq_acme_eab_keys_account_id'))
    )
    op.create_table('acme_orders',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('account_id', sa.String(length=40), nullable=False),
    sa.Column('profile_id', sa.String(length=40), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('identifiers', sa.JSON(), nullable=False),
    sa.Column('not_before', sa.DateTime(timezone=True), nullable=True),
    sa.Column('not_after', sa.DateTime(timezone=True), nullable=True),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('error', sa.JSON(), nullable=True),
    sa.Column('replaces', sa.String(length=255), nullable=True),
    sa.Column('certificate_id', sa.String(length=40), nullable=True),
    sa.Column('job_id', sa.String(length=40), nullable=True),
    sa.Column('version_id', sa.String(length=40), nullable=True),
    sa.Column('client_ip', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['acme_accounts.id'], name=op.f('fk_acme_orders_account_id_acme_accounts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_acme_orders')),
    sa.UniqueConstraint('version_id', name=op.f('uq_acme_orders_version_id'))
    )
    with op.batch_alter_table('acme_orders', schema=None) as batch_op:
        batch_op.create_index('ix_acme_orders_account_created', ['account_id', 'created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_acme_orders_certificate_id'), ['certificate_id'], unique=False)
        batch_op.create_index('ix_acme_orders_ip_created', ['client_ip', 'created_at'], unique=False)
        batch_op.create_index('ix_acme_orders_status_expires', ['status', 'expires_at'], unique=False)

    op.create_table('acme_authorizations',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('order_id', sa.String(length=40), nullable=False),
    sa.Column('account_id', sa.String(length=40), nullable=False),
    sa.Column('identifier_type', sa.String(length=8), nullable=False),
    sa.Column('identifier_value', sa.String(length=255), nullable=False),
    sa.Column('wildcard', sa.Boolean(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['order_id'], ['acme_orders.id'], name=op.f('fk_acme_authorizations_order_id_acme_orders'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_acme_authorizations'))
    )
    with op.batch_alter_table('acme_authorizations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_acme_authorizations_account_id'), ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_acme_authorizations_order_id'), ['order_id'], unique=False)
        batch_op.create_index('ix_acme_authorizations_status_expires', ['status', 'expires_at'], unique=False)

    op.create_table('acme_challenges',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('authz_id', sa.String(length=40), nullable=False),
    sa.Column('type', sa.String(length=16), nullable=False),
    sa.Column('token', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('validated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('error', sa.JSON(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['authz_id'], ['acme_authorizations.id'], name=op.f('fk_acme_challenges_authz_id_acme_authorizations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_acme_challenges'))
    )
    with op.batch_alter_table('acme_challenges', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_acme_challenges_authz_id'), ['authz_id'], unique=False)

    with op.batch_alter_table('certificate_profiles', schema=None) as batch_op:
        batch_op.add_column(sa.Column('issuer_id', sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column('acme_auth_mode', sa.String(length=24), nullable=True))
        batch_op.add_column(sa.Column('acme_eab_required', sa.Boolean(), nullable=True))
        batch_op.create_index(batch_op.f('ix_certificate_profiles_issuer_id'), ['issuer_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_certificate_profiles_issuer_id_connectors'), 'connectors', ['issuer_id'], ['id'])

    with op.batch_alter_table('managed_certificates', schema=None) as batch_op:
        batch_op.add_column(sa.Column('key_location', sa.String(length=8), nullable=False, server_default='server'))
        batch_op.add_column(sa.Column('replace_by', sa.DateTime(timezone=True), nullable=True))

    # The acme.admin permission, held by r-admin (which holds every permission).
    op.bulk_insert(sa.table('permissions', sa.column('name', sa.String()), sa.column('namespace', sa.String())),
                   [{'name': 'acme.admin', 'namespace': 'acme'}])
    op.bulk_insert(sa.table('role_permissions', sa.column('role_id', sa.String()), sa.column('permission', sa.String())),
                   [{'role_id': 'r-admin', 'permission': 'acme.admin'}])



def downgrade() -> None:
    op.execute("DELETE FROM role_permissions WHERE permission = 'acme.admin'")
    op.execute("DELETE FROM permissions WHERE name = 'acme.admin'")
    with op.batch_alter_table('managed_certificates', schema=None) as batch_op:
        batch_op.drop_column('replace_by')
        batch_op.drop_column('key_location')

    with op.batch_alter_table('certificate_profiles', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_certificate_profiles_issuer_id_connectors'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_certificate_profiles_issuer_id'))
        batch_op.drop_column('acme_eab_required')
        batch_op.drop_column('acme_auth_mode')
        batch_op.drop_column('issuer_id')

    with op.batch_alter_table('acme_challenges', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_acme_challenges_authz_id'))

    op.drop_table('acme_challenges')
    with op.batch_alter_table('acme_authorizations', schema=None) as batch_op:
        batch_op.drop_index('ix_acme_authorizations_status_expires')
        batch_op.drop_index(batch_op.f('ix_acme_authorizations_order_id'))
        batch_op.drop_index(batch_op.f('ix_acme_authorizations_account_id'))

    op.drop_table('acme_authorizations')
    with op.batch_alter_table('acme_orders', schema=None) as batch_op:
        batch_op.drop_index('ix_acme_orders_status_expires')
        batch_op.drop_index('ix_acme_orders_ip_created')
        batch_op.drop_index(batch_op.f('ix_acme_orders_certificate_id'))
        batch_op.drop_index('ix_acme_orders_account_created')

    op.drop_table('acme_orders')
    op.drop_table('acme_eab_keys')
    with op.batch_alter_table('acme_accounts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_acme_accounts_profile_id'))

    op.drop_table('acme_accounts')
    with op.batch_alter_table('acme_nonces', schema=None) as batch_op:
        batch_op.drop_index('ix_acme_nonces_expires_at')

    op.drop_table('acme_nonces')
