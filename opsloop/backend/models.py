"""Table definitions (SQLModel), the schema alembic migrates to.

Hot paths read and write these tables with plain SQL through psycopg (see `sql/`), so the
models exist for the schema, migrations and the autogenerate drift test; column names are the
REST contract's snake_case row fields.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlmodel import Field, SQLModel

from opsloop.backend.tasks.model import STATUSES, TaskStatus

TASK_STATUSES = STATUSES  # the values of tasks.model.TaskStatus
LOG_LEVELS = ("debug", "info", "warn", "error")

metadata = SQLModel.metadata


def _now_column() -> Any:
    return sa.Column(sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()"))


class Task(SQLModel, table=True):
    """A unit of work: created by an operator or a script, run by an agent."""

    __tablename__ = "tasks"
    __table_args__ = (
        sa.CheckConstraint(f"status IN {TASK_STATUSES!r}", name="tasks_status_check"),
        sa.Index("tasks_updated_idx", sa.text("updated_at DESC"), sa.text("id DESC")),
        sa.Index("tasks_status_updated_idx", "status", sa.text("updated_at DESC"), sa.text("id DESC")),
        sa.Index("tasks_type_updated_idx", "type", sa.text("updated_at DESC"), sa.text("id DESC")),
        sa.Index("tasks_correlation_idx", "correlation_id", sa.text("updated_at DESC")),
        sa.Index("tasks_trace_idx", "trace_id"),
        sa.Index("tasks_created_idx", "created_at"),
        sa.Index("tasks_claim_idx", "run_after", postgresql_where=sa.text("status = 'queued'")),
        sa.Index("tasks_lease_idx", "lease_expires_at", postgresql_where=sa.text("status = 'running'")),
        sa.Index(
            "tasks_idempotency_key_uq",
            "idempotency_key",
            unique=True,
            postgresql_where=sa.text("idempotency_key IS NOT NULL"),
        ),
        {"extend_existing": True},
    )

    id: uuid.UUID = Field(sa_column=sa.Column(pg.UUID(as_uuid=True), primary_key=True, server_default=sa.text("gen_random_uuid()")))
    type: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    source: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    status: str = Field(sa_column=sa.Column(sa.Text, nullable=False, server_default=TaskStatus.QUEUED.value))
    payload: Any = Field(default=None, sa_column=sa.Column(pg.JSONB, nullable=True))
    result: Any = Field(default=None, sa_column=sa.Column(pg.JSONB, nullable=True))
    error: Any = Field(default=None, sa_column=sa.Column(pg.JSONB, nullable=True))
    correlation_id: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    trace_id: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    agent_slug: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    idempotency_key: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    version: int = Field(sa_column=sa.Column(sa.Integer, nullable=False, server_default="1"))
    attempts: int = Field(sa_column=sa.Column(sa.Integer, nullable=False, server_default="0"))
    max_attempts: int = Field(sa_column=sa.Column(sa.Integer, nullable=False, server_default="3"))
    run_after: datetime = Field(sa_column=_now_column())
    lease_owner: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    lease_expires_at: datetime | None = Field(default=None, sa_column=sa.Column(sa.DateTime(timezone=True), nullable=True))
    cancel_requested: bool = Field(sa_column=sa.Column(sa.Boolean, nullable=False, server_default=sa.false()))
    created_at: datetime = Field(sa_column=_now_column())
    updated_at: datetime = Field(sa_column=_now_column())
    started_at: datetime | None = Field(default=None, sa_column=sa.Column(sa.DateTime(timezone=True), nullable=True))
    finished_at: datetime | None = Field(default=None, sa_column=sa.Column(sa.DateTime(timezone=True), nullable=True))


class TaskEvent(SQLModel, table=True):
    """One step in a task's life (created, claimed, agent answer, status change…), append-only."""

    __tablename__ = "task_events"
    __table_args__ = (
        sa.Index("task_events_task_idx", "task_id", "id"),
        sa.Index("task_events_trace_idx", "trace_id", "id"),
        sa.Index("task_events_correlation_idx", "correlation_id", "id"),
        sa.Index("task_events_actor_idx", "actor", "id"),
        sa.Index("task_events_kind_idx", "kind", "id"),
        sa.Index("task_events_ts_idx", "ts"),
        {"extend_existing": True},
    )

    id: int = Field(sa_column=sa.Column(sa.BigInteger, sa.Identity(), primary_key=True))
    task_id: uuid.UUID = Field(sa_column=sa.Column(pg.UUID(as_uuid=True), sa.ForeignKey("tasks.id", ondelete="CASCADE"), nullable=False))
    actor: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    kind: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    data: Any = Field(default=None, sa_column=sa.Column(pg.JSONB, nullable=True))
    correlation_id: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    trace_id: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    ts: datetime = Field(sa_column=_now_column())


class LogEntry(SQLModel, table=True):
    """A structured log line from any service; `message` has a trigram index for `q` search."""

    __tablename__ = "logs"
    __table_args__ = (
        sa.CheckConstraint(f"level IN {LOG_LEVELS!r}", name="logs_level_check"),
        sa.Index("logs_service_idx", "service", sa.text("id DESC")),
        sa.Index("logs_level_idx", "level", sa.text("id DESC")),
        sa.Index("logs_trace_idx", "trace_id", sa.text("id DESC")),
        sa.Index("logs_task_idx", "task_id", sa.text("id DESC")),
        sa.Index("logs_correlation_idx", "correlation_id", sa.text("id DESC")),
        sa.Index("logs_ts_idx", "ts"),
        sa.Index("logs_message_trgm_idx", "message", postgresql_using="gin", postgresql_ops={"message": "gin_trgm_ops"}),
        {"extend_existing": True},
    )

    id: int = Field(sa_column=sa.Column(sa.BigInteger, sa.Identity(), primary_key=True))
    ts: datetime = Field(sa_column=_now_column())
    service: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    level: str = Field(sa_column=sa.Column(sa.Text, nullable=False, server_default="info"))
    message: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    data: Any = Field(default=None, sa_column=sa.Column(pg.JSONB, nullable=True))
    task_id: uuid.UUID | None = Field(default=None, sa_column=sa.Column(pg.UUID(as_uuid=True), nullable=True))
    correlation_id: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    trace_id: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))


class AgentHeartbeat(SQLModel, table=True):
    """The registry: every agent and app instance, what it handles and when it was last seen."""

    __tablename__ = "agent_heartbeats"
    __table_args__ = (sa.Index("agent_heartbeats_last_seen_idx", "last_seen"), {"extend_existing": True})

    slug: str = Field(sa_column=sa.Column(sa.Text, primary_key=True))
    kind: str = Field(sa_column=sa.Column(sa.Text, nullable=False, server_default="agent"))
    url: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    task_types: list[str] = Field(sa_column=sa.Column(pg.ARRAY(sa.Text), nullable=False, server_default="{}"))
    endpoint: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    meta: Any = Field(default=None, sa_column=sa.Column(pg.JSONB, nullable=True))
    started_at: datetime = Field(sa_column=_now_column())
    last_seen: datetime = Field(sa_column=_now_column())


class RenderFix(SQLModel, table=True):
    """The Render monitor's memory: each fix it tried on a service, so a restart forgets nothing."""

    __tablename__ = "render_fixes"
    __table_args__ = (sa.Index("render_fixes_service_idx", "service_id", "created_at"), {"extend_existing": True})

    id: int = Field(sa_column=sa.Column(sa.BigInteger, sa.Identity(), primary_key=True))
    service_id: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    deploy_id: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    problem: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    fix: Any = Field(default=None, sa_column=sa.Column(pg.JSONB, nullable=True))
    outcome: str = Field(sa_column=sa.Column(sa.Text, nullable=False, server_default="pending"))
    task_id: uuid.UUID | None = Field(default=None, sa_column=sa.Column(pg.UUID(as_uuid=True), nullable=True))
    created_at: datetime = Field(sa_column=_now_column())


class DashboardSession(SQLModel, table=True):
    """A dashboard login: the cookie names it (by a random id, stored hashed); logout and expiry end it."""

    __tablename__ = "sessions"
    __table_args__ = (sa.Index("sessions_expires_idx", "expires_at"), {"extend_existing": True})

    id: str = Field(sa_column=sa.Column(sa.Text, primary_key=True))
    username: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    created_at: datetime = Field(sa_column=_now_column())
    expires_at: datetime = Field(sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False))
    revoked_at: datetime | None = Field(default=None, sa_column=sa.Column(sa.DateTime(timezone=True), nullable=True))


class AppSecret(SQLModel, table=True):
    """Secrets the app generates for itself, shared by every instance (the session signing key)."""

    __tablename__ = "app_secrets"
    __table_args__ = ({"extend_existing": True},)

    name: str = Field(sa_column=sa.Column(sa.Text, primary_key=True))
    value: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    created_at: datetime = Field(sa_column=_now_column())
