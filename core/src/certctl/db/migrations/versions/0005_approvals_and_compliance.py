"""Approvals and compliance policy rules.

Profiles gain ``required_san_patterns`` and ``requires_approval``; ``approval_requests`` holds
two-person decisions; ``policy_rules`` and ``policy_violations`` hold compliance rules (the
reference's four defaults are seeded) and what they currently report.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 21:50:00.000000
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None

SEEDED_RULES = [
    ('rule-require-owner', 'require-owner', 'Certificates carry an owner tag.',
     'RequiredMetadata', {'required_keys': ['owner']}, 'Warning'),
    ('rule-allowed-environments', 'allowed-environments',
     'Certificates belong to a known environment.', 'AllowedEnvironments',
     {'allowed': ['production', 'staging', 'development']}, 'Error'),
    ('rule-max-certificate-lifetime', 'max-certificate-lifetime',
     'Certificates live at most 90 days.', 'CertificateLifetime', {'max_days': 90}, 'Critical'),
    ('rule-min-renewal-window', 'min-renewal-window',
     'Certificates are renewed at least 14 days before they expire.', 'RenewalLeadTime',
     {'lead_time_days': 14}, 'Warning'),
]


def upgrade() -> None:
    with op.batch_alter_table('certificate_profiles') as batch:
        batch.add_column(sa.Column('required_san_patterns', sa.JSON(), nullable=False, server_default='[]'))
        batch.add_column(sa.Column('requires_approval', sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_table('approval_requests',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('kind', sa.String(length=24), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('certificate_id', sa.String(length=40), nullable=True),
    sa.Column('job_id', sa.String(length=40), nullable=True),
    sa.Column('profile_id', sa.String(length=40), nullable=True),
    sa.Column('requested_by', sa.String(length=128), nullable=False),
    sa.Column('decided_by', sa.String(length=128), nullable=True),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['certificate_id'], ['managed_certificates.id'], name=op.f('fk_approval_requests_certificate_id_managed_certificates'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], name=op.f('fk_approval_requests_job_id_jobs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_approval_requests')),
    sa.UniqueConstraint('job_id', name=op.f('uq_approval_requests_job_id'))
    )
    op.create_index('ix_approval_requests_state_created_at', 'approval_requests', ['state', 'created_at'], unique=False)
    op.create_index(op.f('ix_approval_requests_certificate_id'), 'approval_requests', ['certificate_id'], unique=False)
    op.create_index(op.f('ix_approval_requests_profile_id'), 'approval_requests', ['profile_id'], unique=False)
    rules = op.create_table('policy_rules',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('type', sa.String(length=32), nullable=False),
    sa.Column('config', sa.JSON(), nullable=False),
    sa.Column('severity', sa.String(length=16), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_policy_rules')),
    sa.UniqueConstraint('name', name=op.f('uq_policy_rules_name'))
    )
    op.create_table('policy_violations',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('rule_id', sa.String(length=40), nullable=False),
    sa.Column('certificate_id', sa.String(length=40), nullable=False),
    sa.Column('severity', sa.String(length=16), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('first_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['certificate_id'], ['managed_certificates.id'], name=op.f('fk_policy_violations_certificate_id_managed_certificates'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['rule_id'], ['policy_rules.id'], name=op.f('fk_policy_violations_rule_id_policy_rules'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_policy_violations')),
    sa.UniqueConstraint('rule_id', 'certificate_id', name=op.f('uq_policy_violations_rule_id_certificate_id'))
    )
    op.create_index(op.f('ix_policy_violations_certificate_id'), 'policy_violations', ['certificate_id'], unique=False)
    # SQLite keeps naive UTC (see UTCDateTime); PostgreSQL takes the aware value as is.
    now = datetime.now(UTC)
    if op.get_bind().dialect.name == 'sqlite':
        now = now.replace(tzinfo=None)
    op.bulk_insert(rules, [
        {'id': rule_id, 'name': name, 'description': description, 'type': type_,
         'config': config, 'severity': severity, 'enabled': True,
         'created_at': now, 'updated_at': now}
        for rule_id, name, description, type_, config, severity in SEEDED_RULES
    ])


def downgrade() -> None:
    op.drop_index(op.f('ix_policy_violations_certificate_id'), table_name='policy_violations')
    op.drop_table('policy_violations')
    op.drop_table('policy_rules')
    op.drop_index(op.f('ix_approval_requests_profile_id'), table_name='approval_requests')
    op.drop_index(op.f('ix_approval_requests_certificate_id'), table_name='approval_requests')
    op.drop_index('ix_approval_requests_state_created_at', table_name='approval_requests')
    op.drop_table('approval_requests')
    with op.batch_alter_table('certificate_profiles') as batch:
        batch.drop_column('requires_approval')
        batch.drop_column('required_san_patterns')
