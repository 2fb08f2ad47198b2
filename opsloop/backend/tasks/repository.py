"""Deprecated: the pool-and-dict functions of before the task store, kept only until their last
callers (the dashboard's states and Render's `render/tasks.py`) call `TaskStore` and `submit`.
No SQL here: each call goes through a `TaskStore` over the given pool. Delete with the callers.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from psycopg_pool import AsyncConnectionPool

from opsloop.backend.tasks.model import NewTask, Row, event_camel
from opsloop.backend.tasks.store import EventFilter, TaskFilter, TaskStore, new_trace_id, parse_task_id, task_cursor

__all__ = ["event_camel", "new_trace_id", "parse_task_id", "task_cursor"]


async def create_task(
    pool: AsyncConnectionPool,
    *,
    type: str,
    source: str,
    payload: Any,
    correlation_id: str | None,
    trace_id: str,
    agent_slug: str,
    idempotency_key: str | None,
    max_attempts: int,
) -> tuple[Row, bool]:
    """Render's create (no routing): use `tasks.submit.submit` instead."""
    store = TaskStore(pool)
    created = await store.create(NewTask(type, source, payload, correlation_id, trace_id, agent_slug, idempotency_key, max_attempts))
    return (await store.get(created.id)).row(), created.created


async def get_task(pool: AsyncConnectionPool, task_id: uuid.UUID) -> tuple[Row, list[Row]]:
    task, events = await TaskStore(pool).get_with_events(task_id)
    return task.row(), [e.row() for e in events]


async def list_tasks(pool: AsyncConnectionPool, *, limit: int = 50, cursor: str | None = None, **filters: Any) -> tuple[list[Row], str | None]:
    tasks, next_cursor = await TaskStore(pool).list(TaskFilter(**filters), limit=limit, cursor=cursor)
    return [t.row() for t in tasks], next_cursor


async def count_by_status(pool: AsyncConnectionPool, **filters: Any) -> dict[str, int]:
    known = {k: filters.get(k) for k in ("type", "correlation_id", "trace_id", "since")}
    return await TaskStore(pool).count_by_status(TaskFilter(**known))


async def cancel_task(pool: AsyncConnectionPool, task_id: uuid.UUID, actor: str) -> Row:
    return (await TaskStore(pool).cancel(task_id, actor)).row()


async def retry_task(pool: AsyncConnectionPool, task_id: uuid.UUID, actor: str) -> Row:
    return (await TaskStore(pool).retry(task_id, actor)).row()


async def add_event(
    pool: AsyncConnectionPool, *, task_id: uuid.UUID, actor: str, kind: str, data: Any, correlation_id: str | None, trace_id: str | None
) -> Row:
    event = await TaskStore(pool).add_event(task_id, actor=actor, kind=kind, data=data, correlation_id=correlation_id, trace_id=trace_id)
    return event.row()


async def list_events(
    pool: AsyncConnectionPool,
    *,
    limit: int = 100,
    cursor: str | None = None,
    oldest_first: bool = False,
    since: datetime | None = None,
    **filters: Any,
) -> tuple[list[Row], str | None]:
    events, next_cursor = await TaskStore(pool).list_events(
        EventFilter(since=since, **filters), limit=limit, cursor=cursor, oldest_first=oldest_first
    )
    return [e.row() for e in events], next_cursor
