"""Submitting a task: route its type to an agent, then create it (through the insert batcher).

The one path every entry point takes (the REST route, the dashboard's form), so a type no agent
handles is refused the same way everywhere, before anything is written.
"""

from __future__ import annotations

from typing import Any

from psycopg_pool import AsyncConnectionPool

from opsloop.backend.agents.registry import Registry
from opsloop.backend.errors import Unprocessable
from opsloop.backend.tasks import repository as repo


async def submit_task(
    pool: AsyncConnectionPool,
    registry: Registry,
    *,
    type: str,
    source: str,
    payload: Any,
    correlation_id: str | None = None,
    agent_slug: str | None = None,
    idempotency_key: str | None = None,
    trace_id: str | None = None,
) -> tuple[dict[str, Any], bool]:
    """(task row, created); with a known idempotency key, the first task and False."""
    agent = await registry.route(type, agent_slug)
    if agent is None:
        if agent_slug:
            raise Unprocessable(f"Agent {agent_slug} does not handle task type {type}")
        raise Unprocessable(f"Unsupported task type: {type}")
    return await repo.create_batcher(pool).create(
        repo.NewTask(
            type=type,
            source=source,
            payload=payload,
            correlation_id=correlation_id,
            trace_id=trace_id or repo.new_trace_id(),
            agent_slug=agent.slug,
            idempotency_key=idempotency_key,
            max_attempts=agent.limits_for(type).max_attempts,
        )
    )
