"""Submitting a task: route its type to an agent, then create it through the store's group commit.

Every entry point creates tasks here (the REST route, the dashboard's form, Render, the monitor),
so a type no agent handles is refused the same way everywhere, before anything is written, and
every payload meets the same JSON policy.
"""

from __future__ import annotations

from typing import Any

from opsloop.backend.agents.registry import Registry
from opsloop.backend.errors import Unprocessable
from opsloop.backend.tasks.model import Created, NewTask
from opsloop.backend.tasks.store import TaskStore, new_trace_id


async def submit(
    store: TaskStore,
    registry: Registry,
    *,
    type: str,
    source: str,
    payload: Any,
    correlation_id: str | None = None,
    agent_slug: str | None = None,
    idempotency_key: str | None = None,
    trace_id: str | None = None,
) -> Created:
    """The created task (`created` False: a task with this idempotency key already existed)."""
    agent = await registry.route(type, agent_slug)
    if agent is None:
        if agent_slug:
            raise Unprocessable(f"Agent {agent_slug} does not handle task type {type}")
        raise Unprocessable(f"Unsupported task type: {type}")
    return await store.create(
        NewTask(
            type=type,
            source=source,
            payload=payload,
            correlation_id=correlation_id,
            trace_id=trace_id or new_trace_id(),
            agent_slug=agent.slug,
            idempotency_key=idempotency_key,
            max_attempts=agent.limits_for(type).max_attempts,
        )
    )
