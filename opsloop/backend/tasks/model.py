"""Typed task values at the storage boundary: what a row of `tasks` / `task_events` is.

Rows become typed where they leave the database (`TaskStore`), so the rest of the code reads
attributes, not string keys. `.row()` gives back the snake_case dict that the API and the live
streams send, key for key in the table's column order, so every answer keeps its exact shape.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

Row = dict[str, Any]


class TaskStatus(StrEnum):
    """The one home of the status literals (the `tasks_status_check` constraint holds the same)."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    ERROR = "error"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in FINISHED


FINISHED = frozenset({TaskStatus.DONE, TaskStatus.ERROR, TaskStatus.CANCELLED})
STATUSES: tuple[str, ...] = tuple(s.value for s in TaskStatus)


@dataclass(frozen=True, slots=True)
class Task:
    """One row of `tasks` (see `models.Task` for the schema)."""

    id: uuid.UUID
    type: str
    source: str
    status: TaskStatus
    payload: Any
    result: Any
    error: Any
    correlation_id: str | None
    trace_id: str
    agent_slug: str | None
    idempotency_key: str | None
    version: int
    attempts: int
    max_attempts: int
    run_after: datetime
    lease_owner: str | None
    lease_expires_at: datetime | None
    cancel_requested: bool
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def from_row(cls, row: Row) -> Task:
        return cls(
            id=row["id"],
            type=row["type"],
            source=row["source"],
            status=TaskStatus(row["status"]),
            payload=row["payload"],
            result=row["result"],
            error=row["error"],
            correlation_id=row["correlation_id"],
            trace_id=row["trace_id"],
            agent_slug=row["agent_slug"],
            idempotency_key=row["idempotency_key"],
            version=row["version"],
            attempts=row["attempts"],
            max_attempts=row["max_attempts"],
            run_after=row["run_after"],
            lease_owner=row["lease_owner"],
            lease_expires_at=row["lease_expires_at"],
            cancel_requested=row["cancel_requested"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            started_at=row["started_at"],
            finished_at=row["finished_at"],
        )

    def row(self) -> Row:
        """The wire shape: the row as `SELECT *` returns it (snake_case, column order)."""
        return {
            "id": self.id,
            "type": self.type,
            "source": self.source,
            "status": self.status.value,
            "payload": self.payload,
            "result": self.result,
            "error": self.error,
            "correlation_id": self.correlation_id,
            "trace_id": self.trace_id,
            "agent_slug": self.agent_slug,
            "idempotency_key": self.idempotency_key,
            "version": self.version,
            "attempts": self.attempts,
            "max_attempts": self.max_attempts,
            "run_after": self.run_after,
            "lease_owner": self.lease_owner,
            "lease_expires_at": self.lease_expires_at,
            "cancel_requested": self.cancel_requested,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
        }


@dataclass(frozen=True, slots=True)
class TaskEvent:
    """One row of `task_events`: a step in a task's life, append-only."""

    id: int
    task_id: uuid.UUID
    actor: str
    kind: str
    data: Any
    correlation_id: str | None
    trace_id: str | None
    ts: datetime

    @classmethod
    def from_row(cls, row: Row) -> TaskEvent:
        return cls(
            id=row["id"],
            task_id=row["task_id"],
            actor=row["actor"],
            kind=row["kind"],
            data=row["data"],
            correlation_id=row["correlation_id"],
            trace_id=row["trace_id"],
            ts=row["ts"],
        )

    def row(self) -> Row:
        return {
            "id": self.id,
            "task_id": self.task_id,
            "actor": self.actor,
            "kind": self.kind,
            "data": self.data,
            "correlation_id": self.correlation_id,
            "trace_id": self.trace_id,
            "ts": self.ts,
        }

    def camel(self) -> Row:
        """The camelCase shape of `POST /task/event` and the WebSocket's TASK_EVENT frames."""
        return event_camel(self.row())


def event_camel(row: Row) -> Row:
    """`TaskEvent.camel` for a wire row (the live streams hold rows, see `live/bus.py`)."""
    return {
        "id": row["id"],
        "taskId": row["task_id"],
        "actor": row["actor"],
        "kind": row["kind"],
        "data": row["data"],
        "correlationId": row["correlation_id"],
        "traceId": row["trace_id"],
        "ts": row["ts"],
    }


@dataclass(frozen=True, slots=True)
class NewTask:
    """One create, validated and routed. `payload` is what the caller sent; the store encodes it
    on the caller's side (`jsonutil.storable`), so one bad payload fails its own request only."""

    type: str
    source: str
    payload: Any
    correlation_id: str | None
    trace_id: str
    agent_slug: str
    idempotency_key: str | None
    max_attempts: int


@dataclass(frozen=True, slots=True)
class Created:
    """What a create answers: the task's id, trace and agent, and whether this call created it
    (False: a task with the same idempotency key already existed, and this is that task)."""

    id: uuid.UUID
    trace_id: str
    status: TaskStatus
    agent_slug: str | None
    created: bool

    def row(self) -> Row:
        return {"id": self.id, "trace_id": self.trace_id, "status": self.status.value, "agent_slug": self.agent_slug}
