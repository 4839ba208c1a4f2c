"""Initial schema: connectors, profiles, certificates, versions, jobs, audit, API keys, flags.

Revision ID: 0001
Revises: 
Create Date: 2026-11-23 11:55:25.383761
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0001'
down_revision: str | None = None
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('api_keys',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('key_hash', sa.String(length=64), nullable=False),
    sa.Column('admin', sa.Boolean(), nullable=False),
    sa.Column('created_by', sa.String(length=128), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_keys')),
    sa.UniqueConstraint('key_hash', name=op.f('uq_api_keys_key_hash'))
    )
    op.create_table('system_flags',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('value', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_system_flags'))
    )
    op.create_table('audit_events',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('timestamp', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=128), nullable=False),
    sa.Column('actor_type', sa.String(length=16), nullable=False),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('resource_type', sa.String(length=32), nullable=False),
    sa.Column('resource_id', sa.String(length=255), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('category', sa.String(length=24), nullable=False),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_events'))
    )
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.create_index('ix_audit_events_actor', ['actor'], unique=False)
        batch_op.create_index('ix_audit_events_resource', ['resource_type', 'resource_id'], unique=False)
        batch_op.create_index('ix_audit_events_timestamp', ['timestamp'], unique=False)

    op.create_table('certificate_profiles',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('allowed_key_algorithms', sa.JSON(), nullable=False),
    sa.Column('max_ttl_seconds', sa.Integer(), nullable=False),
    sa.Column('allowed_san_patterns', sa.JSON(), nullable=False),
    sa.Column('allowed_ekus', sa.JSON(), nullable=False),
    sa.Column('must_staple', sa.Boolean(), nullable=False),
    sa.Column('renew_before_days', sa.Integer(), nullable=True),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_certificate_profiles')),
    sa.UniqueConstraint('name', name=op.f('uq_certificate_profiles_name'))
    )
    op.create_table('connectors',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('family', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('kind', sa.String(length=64), nullable=False),
    sa.Column('config', sa.JSON(), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_tested_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('test_status', sa.String(length=16), nullable=True),
    sa.Column('test_message', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_connectors')),
    sa.UniqueConstraint('family', 'name', name=op.f('uq_connectors_family_name'))
    )
    with op.batch_alter_table('connectors', schema=None) as batch_op:
        batch_op.create_index('ix_connectors_family_kind', ['family', 'kind'], unique=False)

    op.create_table('connector_state',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('connector_id', sa.String(length=40), nullable=False),
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['connector_id'], ['connectors.id'], name=op.f('fk_connector_state_connector_id_connectors'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_connector_state')),
    sa.UniqueConstraint('connector_id', 'key', name=op.f('uq_connector_state_connector_id_key'))
    )
    op.create_table('managed_certificates',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('common_name', sa.String(length=255), nullable=False),
    sa.Column('sans', sa.JSON(), nullable=False),
    sa.Column('key_type', sa.String(length=16), nullable=False),
    sa.Column('ekus', sa.JSON(), nullable=False),
    sa.Column('validity_seconds', sa.Integer(), nullable=False),
    sa.Column('renew_before_days', sa.Integer(), nullable=True),
    sa.Column('issuer_id', sa.String(length=40), nullable=False),
    sa.Column('profile_id', sa.String(length=40), nullable=True),
    sa.Column('environment', sa.String(length=64), nullable=False),
    sa.Column('tags', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=24), nullable=False),
    sa.Column('serial_number', sa.String(length=64), nullable=True),
    sa.Column('fingerprint_sha256', sa.String(length=64), nullable=True),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('renew_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('current_version_id', sa.String(length=40), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('last_renewal_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_deployment_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('created_by', sa.String(length=128), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['issuer_id'], ['connectors.id'], name=op.f('fk_managed_certificates_issuer_id_connectors')),
    sa.ForeignKeyConstraint(['profile_id'], ['certificate_profiles.id'], name=op.f('fk_managed_certificates_profile_id_certificate_profiles')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_managed_certificates'))
    )
    with op.batch_alter_table('managed_certificates', schema=None) as batch_op:
        batch_op.create_index('ix_managed_certificates_created_at_id', ['created_at', 'id'], unique=False)
        batch_op.create_index('ix_managed_certificates_expires_at', ['expires_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_managed_certificates_issuer_id'), ['issuer_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_managed_certificates_profile_id'), ['profile_id'], unique=False)
        batch_op.create_index('ix_managed_certificates_status_renew_at', ['status', 'renew_at'], unique=False)

    op.create_table('certificate_targets',
    sa.Column('certificate_id', sa.String(length=40), nullable=False),
    sa.Column('target_id', sa.String(length=40), nullable=False),
    sa.ForeignKeyConstraint(['certificate_id'], ['managed_certificates.id'], name=op.f('fk_certificate_targets_certificate_id_managed_certificates'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['target_id'], ['connectors.id'], name=op.f('fk_certificate_targets_target_id_connectors'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('certificate_id', 'target_id', name=op.f('pk_certificate_targets'))
    )
    op.create_table('certificate_versions',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('certificate_id', sa.String(length=40), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('serial_number', sa.String(length=64), nullable=False),
    sa.Column('fingerprint_sha256', sa.String(length=64), nullable=False),
    sa.Column('not_before', sa.DateTime(timezone=True), nullable=False),
    sa.Column('not_after', sa.DateTime(timezone=True), nullable=False),
    sa.Column('certificate_pem', sa.Text(), nullable=False),
    sa.Column('chain_pem', sa.Text(), nullable=False),
    sa.Column('csr_pem', sa.Text(), nullable=False),
    sa.Column('key_type', sa.String(length=16), nullable=False),
    sa.Column('private_key_enc', sa.Text(), nullable=True),
    sa.Column('job_id', sa.String(length=40), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['certificate_id'], ['managed_certificates.id'], name=op.f('fk_certificate_versions_certificate_id_managed_certificates'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_certificate_versions')),
    sa.UniqueConstraint('certificate_id', 'version', name=op.f('uq_certificate_versions_certificate_id_version')),
    sa.UniqueConstraint('job_id', name=op.f('uq_certificate_versions_job_id'))
    )
    with op.batch_alter_table('certificate_versions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_certificate_versions_certificate_id'), ['certificate_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_certificate_versions_serial_number'), ['serial_number'], unique=False)

    op.create_table('deployments',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('certificate_id', sa.String(length=40), nullable=False),
    sa.Column('target_id', sa.String(length=40), nullable=False),
    sa.Column('version_id', sa.String(length=40), nullable=False),
    sa.Column('job_id', sa.String(length=40), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('changed', sa.Boolean(), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('verified_serial', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['certificate_id'], ['managed_certificates.id'], name=op.f('fk_deployments_certificate_id_managed_certificates'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_deployments')),
    sa.UniqueConstraint('job_id', name=op.f('uq_deployments_job_id'))
    )
    with op.batch_alter_table('deployments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_deployments_certificate_id'), ['certificate_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_deployments_target_id'), ['target_id'], unique=False)

    op.create_table('jobs',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('type', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=24), nullable=False),
    sa.Column('certificate_id', sa.String(length=40), nullable=True),
    sa.Column('target_id', sa.String(length=40), nullable=True),
    sa.Column('version_id', sa.String(length=40), nullable=True),
    sa.Column('idempotency_key', sa.String(length=200), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('max_attempts', sa.Integer(), nullable=False),
    sa.Column('next_run_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('lease_expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('claimed_by', sa.String(length=64), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('result', sa.JSON(), nullable=False),
    sa.Column('requested_by', sa.String(length=128), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['certificate_id'], ['managed_certificates.id'], name=op.f('fk_jobs_certificate_id_managed_certificates'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_jobs')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_jobs_idempotency_key'))
    )
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.create_index('ix_jobs_certificate_id_status', ['certificate_id', 'status'], unique=False)
        batch_op.create_index('ix_jobs_status_next_run_at', ['status', 'next_run_at'], unique=False)

    _audit_append_only()


def _audit_append_only() -> None:
    """The audit trail is append-only: the database itself refuses UPDATE and DELETE."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE OR REPLACE FUNCTION audit_events_append_only() RETURNS trigger AS $$ "
            "BEGIN RAISE EXCEPTION 'audit_events is append-only'; END; $$ LANGUAGE plpgsql"
        )
        op.execute(
            "CREATE TRIGGER audit_events_no_change BEFORE UPDATE OR DELETE ON audit_events "
            "FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()"
        )
        op.execute(
            "CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only()"
        )
    else:
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER audit_events_no_{verb.lower()} BEFORE {verb} ON audit_events "
                "BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_change ON audit_events")
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_truncate ON audit_events")
        op.execute("DROP FUNCTION IF EXISTS audit_events_append_only()")
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index('ix_jobs_status_next_run_at')
        batch_op.drop_index('ix_jobs_certificate_id_status')

    op.drop_table('jobs')
    with op.batch_alter_table('deployments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_deployments_target_id'))
        batch_op.drop_index(batch_op.f('ix_deployments_certificate_id'))

    op.drop_table('deployments')
    with op.batch_alter_table('certificate_versions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_certificate_versions_serial_number'))
        batch_op.drop_index(batch_op.f('ix_certificate_versions_certificate_id'))

    op.drop_table('certificate_versions')
    op.drop_table('certificate_targets')
    with op.batch_alter_table('managed_certificates', schema=None) as batch_op:
        batch_op.drop_index('ix_managed_certificates_status_renew_at')
        batch_op.drop_index(batch_op.f('ix_managed_certificates_profile_id'))
        batch_op.drop_index(batch_op.f('ix_managed_certificates_issuer_id'))
        batch_op.drop_index('ix_managed_certificates_expires_at')
        batch_op.drop_index('ix_managed_certificates_created_at_id')

    op.drop_table('managed_certificates')
    op.drop_table('connector_state')
    with op.batch_alter_table('connectors', schema=None) as batch_op:
        batch_op.drop_index('ix_connectors_family_kind')

    op.drop_table('connectors')
    op.drop_table('certificate_profiles')
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_events_timestamp')
        batch_op.drop_index('ix_audit_events_resource')
        batch_op.drop_index('ix_audit_events_actor')

    op.drop_table('audit_events')
    op.drop_table('system_flags')
    op.drop_table('api_keys')
