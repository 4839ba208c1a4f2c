"""Notification queue, expiry alerts and renewal policies.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 21:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None

_POLICY_COLUMNS = ('certificate_profiles', 'managed_certificates')


def upgrade() -> None:
    op.create_table('notifications',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('event', sa.String(length=64), nullable=False),
    sa.Column('severity', sa.String(length=16), nullable=False),
    sa.Column('subject', sa.Text(), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('certificate_id', sa.String(length=40), nullable=True),
    sa.Column('notifier_id', sa.String(length=40), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('max_attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('lease_expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('claimed_by', sa.String(length=64), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('dedup_key', sa.String(length=255), nullable=False),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('read_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notifications')),
    sa.UniqueConstraint('dedup_key', name=op.f('uq_notifications_dedup_key'))
    )
    op.create_index('ix_notifications_certificate_id', 'notifications', ['certificate_id'], unique=False)
    op.create_index('ix_notifications_created_at_id', 'notifications', ['created_at', 'id'], unique=False)
    op.create_index('ix_notifications_notifier_id', 'notifications', ['notifier_id'], unique=False)
    op.create_index('ix_notifications_status_next_attempt_at', 'notifications', ['status', 'next_attempt_at'], unique=False)
    op.create_table('renewal_policies',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('renewal_window_days', sa.Integer(), nullable=False),
    sa.Column('renew_fraction', sa.Float(), nullable=True),
    sa.Column('jitter_percent', sa.Integer(), nullable=False),
    sa.Column('auto_renew', sa.Boolean(), nullable=False),
    sa.Column('max_retries', sa.Integer(), nullable=False),
    sa.Column('retry_interval_seconds', sa.Integer(), nullable=False),
    sa.Column('alert_thresholds_days', sa.JSON(), nullable=False),
    sa.Column('alert_severity_map', sa.JSON(), nullable=False),
    sa.Column('alert_notifier_ids', sa.JSON(), nullable=False),
    sa.Column('notify_events', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_renewal_policies')),
    sa.UniqueConstraint('name', name=op.f('uq_renewal_policies_name'))
    )
    sqlite = op.get_bind().dialect.name == 'sqlite'
    for table in _POLICY_COLUMNS:
        fk = f'fk_{table}_renewal_policy_id_renewal_policies'
        if sqlite:
            # ADD COLUMN with an inline REFERENCES: a batch rebuild would DROP the referenced
            # table with foreign keys on, cascading deletes into its children.
            op.execute(
                f'ALTER TABLE {table} ADD COLUMN renewal_policy_id VARCHAR(64) '
                f'CONSTRAINT {fk} REFERENCES renewal_policies (id)'
            )
        else:
            op.add_column(table, sa.Column('renewal_policy_id', sa.String(length=64), nullable=True))
            op.create_foreign_key(op.f(fk), table, 'renewal_policies', ['renewal_policy_id'], ['id'])
        op.create_index(op.f(f'ix_{table}_renewal_policy_id'), table, ['renewal_policy_id'], unique=False)


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == 'sqlite'
    for table in reversed(_POLICY_COLUMNS):
        op.drop_index(op.f(f'ix_{table}_renewal_policy_id'), table_name=table)
        if not sqlite:
            op.drop_constraint(op.f(f'fk_{table}_renewal_policy_id_renewal_policies'), table, type_='foreignkey')
        op.drop_column(table, 'renewal_policy_id')
    op.drop_table('renewal_policies')
    op.drop_index('ix_notifications_status_next_attempt_at', table_name='notifications')
    op.drop_index('ix_notifications_notifier_id', table_name='notifications')
    op.drop_index('ix_notifications_created_at_id', table_name='notifications')
    op.drop_index('ix_notifications_certificate_id', table_name='notifications')
    op.drop_table('notifications')
