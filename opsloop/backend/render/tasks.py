"""Render's one door to the task core: every task it creates or reads goes through here.

Why one module: the core's task store and its `submit` path are being consolidated; keeping
Render's calls in one place makes the switch one edit (issue 12).
"""

from __future__ import annotations

import uuid
from typing import Any

from psycopg_pool import AsyncConnectionPool

from opsloop.backend.jsonutil import has_nul
from opsloop.backend.tasks import repository as repo

from .errors import RenderFailure
from .task_types import LIMITS, SLUG, TASK_TYPES

Row = dict[str, Any]
TERMINAL = frozenset({"done", "error", "cancelled"})
ACTIVE = frozenset({"queued", "running", "waiting"})


async def create(
    pool: AsyncConnectionPool,
    task_type: str,
    payload: dict[str, Any],
    *,
    source: str,
    correlation_id: str | None = None,
    idempotency_key: str | None = None,
) -> Row:
    """A new ``render.*`` task for the Render agent (or the first one with this idempotency key)."""
    if task_type not in TASK_TYPES:
        raise ValueError(f"not a Render task type: {task_type}")
    if has_nul(payload):  # PostgreSQL stores no NUL (text or jsonb): a 400, not a 500
        raise RenderFailure(400, "the request cannot contain the NUL character (\\u0000)")
    task, _ = await repo.create_task(
        pool,
        type=task_type,
        source=source,
        payload=payload,
        correlation_id=correlation_id,
        trace_id=repo.new_trace_id(),
        agent_slug=SLUG,
        idempotency_key=idempotency_key,
        max_attempts=LIMITS[task_type]["maxAttempts"],
    )
    return task


async def get(pool: AsyncConnectionPool, task_id: uuid.UUID) -> tuple[Row, list[Row]]:
    """A task and its events, oldest first."""
    return await repo.get_task(pool, task_id)


async def add_event(pool: AsyncConnectionPool, task_id: uuid.UUID, actor: str, kind: str, data: Any) -> None:
    """One step of a running task, as an event (ids are the task's own)."""
    await repo.add_event(pool, task_id=task_id, actor=actor, kind=kind, data=data, correlation_id=None, trace_id=None)


async def recent(pool: AsyncConnectionPool, limit: int = 10) -> list[Row]:
    """The latest ``render.*`` tasks, most recently changed first (bounded)."""
    sql = "SELECT * FROM tasks WHERE type = ANY(%(types)s) ORDER BY updated_at DESC, id DESC LIMIT %(limit)s"
    async with pool.connection() as conn:
        cur = await conn.execute(sql, {"types": list(TASK_TYPES), "limit": max(1, min(limit, 100))})
        rows: list[Row] = await cur.fetchall()
        return rows
