"""initial schema: tasks, task_events, logs, agent_heartbeats, render_fixes, live triggers

The live triggers publish every committed row change on the `opsloop_live` channel as a small
payload of ids (`t:<id>:<version>`, `e:<id>`, `l:<id>`, comma-separated, chunked under
NOTIFY's 8000-byte limit), so no writer can forget to publish and each change is sent once.

Revision ID: 0001
Revises: 
Create Date: 2026-11-25 04:49:28.745975
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


LIVE_FUNCTIONS = """
CREATE OR REPLACE FUNCTION opsloop_notify_ids() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('opsloop_live', TG_ARGV[0] || string_agg(id::text, ','))
  FROM (SELECT id, (row_number() OVER ()) / 150 AS chunk FROM new_rows) s GROUP BY chunk;
  RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION opsloop_notify_tasks() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    PERFORM pg_notify('opsloop_live', 't:' || string_agg(id::text || ':' || version::text, ','))
    FROM (SELECT id, version, (row_number() OVER ()) / 150 AS chunk FROM new_rows) s GROUP BY chunk;
  ELSE
    PERFORM pg_notify('opsloop_live', 't:' || string_agg(id::text || ':' || version::text, ','))
    FROM (SELECT n.id, n.version, (row_number() OVER ()) / 150 AS chunk
          FROM new_rows n JOIN old_rows o USING (id) WHERE n.version <> o.version) s GROUP BY chunk;
  END IF;
  RETURN NULL;
END $$;
"""

LIVE_TRIGGERS = """
CREATE TRIGGER logs_live AFTER INSERT ON logs REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION opsloop_notify_ids('l:');
CREATE TRIGGER task_events_live AFTER INSERT ON task_events REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION opsloop_notify_ids('e:');
CREATE TRIGGER tasks_live_insert AFTER INSERT ON tasks REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION opsloop_notify_tasks();
CREATE TRIGGER tasks_live_update AFTER UPDATE ON tasks REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION opsloop_notify_tasks();
"""


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.create_table('agent_heartbeats',
    sa.Column('slug', sa.Text(), nullable=False),
    sa.Column('kind', sa.Text(), server_default='agent', nullable=False),
    sa.Column('url', sa.Text(), nullable=True),
    sa.Column('task_types', postgresql.ARRAY(sa.Text()), server_default='{}', nullable=False),
    sa.Column('endpoint', sa.Text(), nullable=True),
    sa.Column('meta', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('last_seen', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('slug')
    )
    op.create_index('agent_heartbeats_last_seen_idx', 'agent_heartbeats', ['last_seen'], unique=False)
    op.create_table('logs',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('ts', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('service', sa.Text(), nullable=False),
    sa.Column('level', sa.Text(), server_default='info', nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('data', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('task_id', sa.UUID(), nullable=True),
    sa.Column('correlation_id', sa.Text(), nullable=True),
    sa.Column('trace_id', sa.Text(), nullable=True),
    sa.CheckConstraint("level IN ('debug', 'info', 'warn', 'error')", name='logs_level_check'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('logs_correlation_idx', 'logs', ['correlation_id', sa.literal_column('id DESC')], unique=False)
    op.create_index('logs_level_ts_idx', 'logs', ['level', 'ts'], unique=False)
    op.create_index('logs_message_trgm_idx', 'logs', ['message'], unique=False, postgresql_using='gin', postgresql_ops={'message': 'gin_trgm_ops'})
    op.create_index('logs_service_idx', 'logs', ['service', sa.literal_column('id DESC')], unique=False)
    op.create_index('logs_task_idx', 'logs', ['task_id', sa.literal_column('id DESC')], unique=False)
    op.create_index('logs_trace_idx', 'logs', ['trace_id', sa.literal_column('id DESC')], unique=False)
    op.create_index('logs_ts_idx', 'logs', ['ts'], unique=False)
    op.create_table('render_fixes',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('service_id', sa.Text(), nullable=False),
    sa.Column('deploy_id', sa.Text(), nullable=True),
    sa.Column('problem', sa.Text(), nullable=False),
    sa.Column('fix', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('outcome', sa.Text(), server_default='pending', nullable=False),
    sa.Column('task_id', sa.UUID(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('render_fixes_service_idx', 'render_fixes', ['service_id', 'created_at'], unique=False)
    op.create_table('tasks',
    sa.Column('id', sa.UUID(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('type', sa.Text(), nullable=False),
    sa.Column('source', sa.Text(), nullable=False),
    sa.Column('status', sa.Text(), server_default='queued', nullable=False),
    sa.Column('payload', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('result', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('error', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('correlation_id', sa.Text(), nullable=True),
    sa.Column('trace_id', sa.Text(), nullable=False),
    sa.Column('agent_slug', sa.Text(), nullable=True),
    sa.Column('idempotency_key', sa.Text(), nullable=True),
    sa.Column('version', sa.Integer(), server_default='1', nullable=False),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('max_attempts', sa.Integer(), server_default='3', nullable=False),
    sa.Column('run_after', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('lease_owner', sa.Text(), nullable=True),
    sa.Column('lease_expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('cancel_requested', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('queued', 'running', 'done', 'error', 'cancelled')", name='tasks_status_check'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('tasks_claim_idx', 'tasks', ['run_after'], unique=False, postgresql_where=sa.text("status = 'queued'"))
    op.create_index('tasks_correlation_idx', 'tasks', ['correlation_id', sa.literal_column('updated_at DESC')], unique=False)
    op.create_index('tasks_created_idx', 'tasks', ['created_at'], unique=False)
    op.create_index('tasks_idempotency_key_uq', 'tasks', ['idempotency_key'], unique=True, postgresql_where=sa.text('idempotency_key IS NOT NULL'))
    op.create_index('tasks_lease_idx', 'tasks', ['lease_expires_at'], unique=False, postgresql_where=sa.text("status = 'running'"))
    op.create_index('tasks_status_updated_idx', 'tasks', ['status', sa.literal_column('updated_at DESC'), sa.literal_column('id DESC')], unique=False)
    op.create_index('tasks_trace_idx', 'tasks', ['trace_id'], unique=False)
    op.create_index('tasks_type_updated_idx', 'tasks', ['type', sa.literal_column('updated_at DESC'), sa.literal_column('id DESC')], unique=False)
    op.create_index('tasks_updated_idx', 'tasks', [sa.literal_column('updated_at DESC'), sa.literal_column('id DESC')], unique=False)
    op.create_table('task_events',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('task_id', sa.UUID(), nullable=False),
    sa.Column('actor', sa.Text(), nullable=False),
    sa.Column('kind', sa.Text(), nullable=False),
    sa.Column('data', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('correlation_id', sa.Text(), nullable=True),
    sa.Column('trace_id', sa.Text(), nullable=True),
    sa.Column('ts', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['task_id'], ['tasks.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('task_events_actor_idx', 'task_events', ['actor', 'id'], unique=False)
    op.create_index('task_events_correlation_idx', 'task_events', ['correlation_id', 'id'], unique=False)
    op.create_index('task_events_kind_idx', 'task_events', ['kind', 'id'], unique=False)
    op.create_index('task_events_task_idx', 'task_events', ['task_id', 'id'], unique=False)
    op.create_index('task_events_trace_idx', 'task_events', ['trace_id', 'id'], unique=False)
    op.create_index('task_events_ts_idx', 'task_events', ['ts'], unique=False)
    op.execute(LIVE_FUNCTIONS)
    op.execute(LIVE_TRIGGERS)


def downgrade() -> None:
    for trigger, table in (("logs_live", "logs"), ("task_events_live", "task_events"), ("tasks_live_insert", "tasks"), ("tasks_live_update", "tasks")):
        op.execute(f"DROP TRIGGER IF EXISTS {trigger} ON {table}")
    op.execute("DROP FUNCTION IF EXISTS opsloop_notify_ids()")
    op.execute("DROP FUNCTION IF EXISTS opsloop_notify_tasks()")
    op.drop_index('task_events_ts_idx', table_name='task_events')
    op.drop_index('task_events_trace_idx', table_name='task_events')
    op.drop_index('task_events_task_idx', table_name='task_events')
    op.drop_index('task_events_kind_idx', table_name='task_events')
    op.drop_index('task_events_correlation_idx', table_name='task_events')
    op.drop_index('task_events_actor_idx', table_name='task_events')
    op.drop_table('task_events')
    op.drop_index('tasks_updated_idx', table_name='tasks')
    op.drop_index('tasks_type_updated_idx', table_name='tasks')
    op.drop_index('tasks_trace_idx', table_name='tasks')
    op.drop_index('tasks_status_updated_idx', table_name='tasks')
    op.drop_index('tasks_lease_idx', table_name='tasks', postgresql_where=sa.text("status = 'running'"))
    op.drop_index('tasks_idempotency_key_uq', table_name='tasks', postgresql_where=sa.text('idempotency_key IS NOT NULL'))
    op.drop_index('tasks_created_idx', table_name='tasks')
    op.drop_index('tasks_correlation_idx', table_name='tasks')
    op.drop_index('tasks_claim_idx', table_name='tasks', postgresql_where=sa.text("status = 'queued'"))
    op.drop_table('tasks')
    op.drop_index('render_fixes_service_idx', table_name='render_fixes')
    op.drop_table('render_fixes')
    op.drop_index('logs_ts_idx', table_name='logs')
    op.drop_index('logs_trace_idx', table_name='logs')
    op.drop_index('logs_task_idx', table_name='logs')
    op.drop_index('logs_service_idx', table_name='logs')
    op.drop_index('logs_message_trgm_idx', table_name='logs', postgresql_using='gin', postgresql_ops={'message': 'gin_trgm_ops'})
    op.drop_index('logs_level_ts_idx', table_name='logs')
    op.drop_index('logs_correlation_idx', table_name='logs')
    op.drop_table('logs')
    op.drop_index('agent_heartbeats_last_seen_idx', table_name='agent_heartbeats')
    op.drop_table('agent_heartbeats')
