"""RBAC: permission catalogue, roles, role grants, and the auth cache generation counter.

Seeds the catalogue and the seven built-in roles from a frozen copy of the tables in
``certctl.domain.auth.permissions`` (a migration must not change when the code does; a test
checks the two agree). Existing database keys keep their privileges: admin keys are granted
``r-admin``, the others ``r-viewer``; then the ``admin`` column goes.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 06:00:00.000000
"""

from collections.abc import Sequence
from datetime import UTC, datetime
import secrets

import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None

CATALOGUE = [
    ('cert.read', ('agent', 'cli', 'mcp', 'operator', 'viewer')),
    ('cert.issue', ('cli', 'mcp', 'operator')),
    ('cert.edit', ('cli', 'mcp', 'operator')),
    ('cert.revoke', ('cli', 'mcp', 'operator')),
    ('cert.delete', ('cli', 'operator')),
    ('profile.read', ('cli', 'mcp', 'operator', 'viewer')),
    ('profile.edit', ('cli', 'mcp', 'operator')),
    ('profile.delete', ()),
    ('issuer.read', ('cli', 'mcp', 'operator', 'viewer')),
    ('issuer.edit', ('cli', 'mcp', 'operator')),
    ('issuer.delete', ()),
    ('target.read', ('cli', 'mcp', 'operator', 'viewer')),
    ('target.edit', ('cli', 'mcp', 'operator')),
    ('target.delete', ('cli', 'operator')),
    ('agent.read', ('cli', 'mcp', 'operator', 'viewer')),
    ('agent.edit', ('cli', 'operator')),
    ('agent.retire', ()),
    ('agent.heartbeat', ('agent',)),
    ('agent.job.poll', ('agent',)),
    ('agent.job.complete', ('agent',)),
    ('agent.job.report', ('agent',)),
    ('audit.read', ('auditor', 'cli', 'mcp', 'operator', 'viewer')),
    ('audit.export', ('auditor',)),
    ('auth.role.list', ()),
    ('auth.role.create', ()),
    ('auth.role.edit', ()),
    ('auth.role.delete', ()),
    ('auth.role.assign', ()),
    ('auth.role.revoke', ()),
    ('auth.key.list', ('cli',)),
    ('auth.key.create', ('cli',)),
    ('auth.key.rotate', ('cli',)),
    ('auth.key.delete', ()),
    ('auth.bootstrap.use', ()),
    ('cert.bulk_revoke', ()),
    ('crl.admin', ()),
    ('scep.admin', ()),
    ('est.admin', ()),
    ('ca.hierarchy.manage', ()),
    ('auth.session.list', ()),
    ('auth.session.list.all', ()),
    ('auth.session.revoke', ()),
    ('auth.oidc.list', ()),
    ('auth.oidc.create', ()),
    ('auth.oidc.edit', ()),
    ('auth.oidc.delete', ()),
    ('auth.breakglass.admin', ()),
    ('auth.breakglass.login', ()),
    ('job.read', ('cli', 'mcp', 'operator', 'viewer')),
    ('job.cancel', ('cli', 'mcp', 'operator')),
    ('approval.read', ('cli', 'mcp', 'operator', 'viewer')),
    ('approval.approve', ('cli', 'mcp', 'operator')),
    ('approval.reject', ('cli', 'mcp', 'operator')),
    ('policy.read', ('cli', 'mcp', 'operator', 'viewer')),
    ('policy.edit', ('cli', 'operator')),
    ('policy.delete', ('cli', 'operator')),
    ('team.read', ('cli', 'mcp', 'operator', 'viewer')),
    ('team.edit', ('cli', 'operator')),
    ('team.delete', ('operator',)),
    ('owner.read', ('cli', 'mcp', 'operator', 'viewer')),
    ('owner.edit', ('cli', 'operator')),
    ('owner.delete', ('operator',)),
    ('notification.read', ('cli', 'mcp', 'operator', 'viewer')),
    ('notification.edit', ('cli', 'mcp', 'operator')),
    ('discovery.read', ('cli', 'mcp', 'operator', 'viewer')),
    ('discovery.run', ('agent', 'cli', 'operator')),
    ('discovery.claim', ('cli', 'mcp', 'operator')),
    ('network_scan.read', ('cli', 'mcp', 'operator', 'viewer')),
    ('network_scan.edit', ('cli', 'operator')),
    ('network_scan.run', ('cli', 'mcp', 'operator')),
    ('healthcheck.read', ('cli', 'mcp', 'operator', 'viewer')),
    ('healthcheck.edit', ('cli', 'operator')),
    ('healthcheck.delete', ('operator',)),
    ('healthcheck.acknowledge', ('cli', 'mcp', 'operator')),
    ('digest.read', ('cli', 'mcp', 'operator', 'viewer')),
    ('digest.send', ('cli', 'operator')),
    ('verification.read', ('cli', 'mcp', 'operator', 'viewer')),
    ('verification.run', ('cli', 'mcp', 'operator')),
    ('stats.read', ('cli', 'mcp', 'operator', 'viewer')),
    ('metrics.read', ('cli', 'mcp', 'operator', 'viewer')),
    ('auth.user.read', ('operator',)),
    ('auth.user.deactivate', ()),
    ('plugin.read', ('cli', 'mcp', 'operator', 'viewer')),
    ('scheduler.read', ('cli', 'mcp', 'operator', 'viewer')),
    ('scheduler.run', ('cli', 'operator')),
]
"""(permission, built-in roles other than admin holding it)."""

ROLES = [
    ('r-admin', 'admin', 'Everything, including RBAC, SSO and break-glass administration.'),
    ('r-operator', 'operator', 'Certificate lifecycle and configuration; no RBAC administration.'),
    ('r-viewer', 'viewer', 'Read-only access to inventory, configuration and the audit trail.'),
    ('r-agent', 'agent', 'Machine identity of a pull-only agent: heartbeat, jobs, discovery.'),
    ('r-mcp', 'mcp', 'AI assistants through the MCP server: operator without destructive verbs.'),
    ('r-cli', 'cli', 'The command-line client: operator-like, plus managing its own keys.'),
    ('r-auditor', 'auditor', 'Reads and exports the audit trail and lists users; nothing else.'),
]


def upgrade() -> None:
    permissions = op.create_table('permissions',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('namespace', sa.String(length=32), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_permissions'))
    )
    roles = op.create_table('roles',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('builtin', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_roles')),
    sa.UniqueConstraint('name', name=op.f('uq_roles_name'))
    )
    role_permissions = op.create_table('role_permissions',
    sa.Column('role_id', sa.String(length=40), nullable=False),
    sa.Column('permission', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['permission'], ['permissions.name'], name=op.f('fk_role_permissions_permission_permissions'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['role_id'], ['roles.id'], name=op.f('fk_role_permissions_role_id_roles'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('role_id', 'permission', name=op.f('pk_role_permissions'))
    )
    grants = op.create_table('role_grants',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('actor_type', sa.String(length=16), nullable=False),
    sa.Column('actor_id', sa.String(length=255), nullable=False),
    sa.Column('role_id', sa.String(length=40), nullable=False),
    sa.Column('scope_type', sa.String(length=16), nullable=False),
    sa.Column('scope_id', sa.String(length=64), nullable=False),
    sa.Column('granted_by', sa.String(length=128), nullable=False),
    sa.Column('granted_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['role_id'], ['roles.id'], name=op.f('fk_role_grants_role_id_roles'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_role_grants')),
    sa.UniqueConstraint('actor_type', 'actor_id', 'role_id', 'scope_type', 'scope_id', name=op.f('uq_role_grants_actor_type_actor_id_role_id_scope_type_scope_id'))
    )
    with op.batch_alter_table('role_grants', schema=None) as batch_op:
        batch_op.create_index('ix_role_grants_actor', ['actor_type', 'actor_id'], unique=False)
    generation = op.create_table('auth_generation',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('value', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_auth_generation'))
    )

    now = datetime.now(UTC)
    op.bulk_insert(permissions, [{'name': p, 'namespace': p.split('.', 1)[0]} for p, _ in CATALOGUE])
    op.bulk_insert(roles, [
        {'id': rid, 'name': name, 'description': text, 'builtin': True,
         'created_at': now, 'updated_at': now}
        for rid, name, text in ROLES
    ])
    op.bulk_insert(role_permissions, [
        {'role_id': rid, 'permission': p}
        for rid, name, _ in ROLES
        for p, holders in CATALOGUE
        if name == 'admin' or name in holders
    ])
    op.bulk_insert(generation, [{'id': 1, 'value': 0}])

    keys = op.get_bind().execute(sa.text('SELECT name, admin FROM api_keys WHERE revoked_at IS NULL')).all()
    seen = set()
    rows = []
    for name, admin in keys:
        role = 'r-admin' if admin else 'r-viewer'
        if (name, role) in seen:
            continue
        seen.add((name, role))
        rows.append({'id': 'rg-' + secrets.token_hex(8), 'actor_type': 'APIKey', 'actor_id': name,
                     'role_id': role, 'scope_type': 'global', 'scope_id': '',
                     'granted_by': 'migration', 'granted_at': now, 'expires_at': None})
    if rows:
        op.bulk_insert(grants, rows)
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.drop_column('admin')


def downgrade() -> None:
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.add_column(sa.Column('admin', sa.Boolean(), nullable=False, server_default=sa.false()))
    op.execute(
        "UPDATE api_keys SET admin = TRUE WHERE name IN "
        "(SELECT actor_id FROM role_grants WHERE actor_type = 'APIKey' AND role_id = 'r-admin')"
    )
    op.drop_table('auth_generation')
    with op.batch_alter_table('role_grants', schema=None) as batch_op:
        batch_op.drop_index('ix_role_grants_actor')
    op.drop_table('role_grants')
    op.drop_table('role_permissions')
    op.drop_table('roles')
    op.drop_table('permissions')
