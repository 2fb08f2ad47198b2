"""Render's one door to the task core: every task it creates or reads goes through here.

Creates go through the core's one `submit` (routing to the Render agent, its attempt limit, the
store's group commit), reads and events through the runtime's `TaskStore`; rows come back typed.
"""

from __future__ import annotations

import uuid
from typing import Any

from opsloop.backend.jsonutil import has_nul
from opsloop.backend.plugin import Host
from opsloop.backend.tasks.model import Task, TaskEvent, TaskStatus
from opsloop.backend.tasks.submit import submit

from .errors import RenderFailure
from .task_types import SLUG, TASK_TYPES

ACTIVE = frozenset({TaskStatus.QUEUED, TaskStatus.RUNNING})


async def create(
    host: Host,
    task_type: str,
    payload: dict[str, Any],
    *,
    source: str,
    correlation_id: str | None = None,
    idempotency_key: str | None = None,
) -> Task:
    """A new ``render.*`` task for the Render agent (or the first one with this idempotency key)."""
    if task_type not in TASK_TYPES:
        raise ValueError(f"not a Render task type: {task_type}")
    if has_nul(payload):  # PostgreSQL stores no NUL (text or jsonb): a 400 saying so, before anything else
        raise RenderFailure(400, "the request cannot contain the NUL character (\\u0000)")
    created = await submit(
        host.tasks,
        host.registry,
        type=task_type,
        source=source,
        payload=payload,
        correlation_id=correlation_id,
        agent_slug=SLUG,
        idempotency_key=idempotency_key,
    )
    return await host.tasks.get(created.id)


async def get(host: Host, task_id: uuid.UUID) -> tuple[Task, list[TaskEvent]]:
    """A task and its events, oldest first."""
    return await host.tasks.get_with_events(task_id)


async def add_event(host: Host, task_id: uuid.UUID, actor: str, kind: str, data: Any) -> None:
    """One step of a running task, as an event (ids are the task's own)."""
    await host.tasks.add_event(task_id, actor=actor, kind=kind, data=data)


async def recent(host: Host, limit: int = 10) -> list[Task]:
    """The latest ``render.*`` tasks, most recently changed first (bounded)."""
    return await host.tasks.list_by_types(list(TASK_TYPES), max(1, min(limit, 100)))
