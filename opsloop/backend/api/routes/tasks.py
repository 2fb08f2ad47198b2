"""Orchestrator routes: tasks and task events (SPEC section 3)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel

from opsloop.backend.api.deps import (
    JSON,
    Caller,
    RuntimeDep,
    TaskStoreDep,
    caller,
    corr_param,
    parse_limit,
    parse_time,
    read_json,
    runtime,
    text_param,
    validate,
)
from opsloop.backend.api.schemas import TaskCreate, TaskEventCreate, TaskPatch
from opsloop.backend.errors import BadRequest, Unprocessable
from opsloop.backend.tasks.model import TaskStatus
from opsloop.backend.tasks.store import EventFilter, TaskFilter, new_trace_id, parse_task_id
from opsloop.backend.tasks.submit import submit
from opsloop.shared.hot_routes import FastRoute

router = APIRouter(tags=["tasks"], dependencies=[Depends(caller)])
MAX_TRACE_ID = 200
# Kinds the engine writes for a task's lifecycle (sql/tasks.sql): an agent or a script reporting
# one would make a trail that says a task ended, or ran, when it did not.
LIFECYCLE_KINDS = frozenset(
    ("created", "running", "done", "error", "cancelled", "retried", "retry_scheduled", "lease_expired", "status", "updated", "agent_unreachable")
)


def _trace_id(request: Request) -> str:
    """A caller's X-Trace-Id (kept so its own logs line up), else a new one."""
    given = request.headers.get("x-trace-id")
    if not given:
        return new_trace_id()
    if len(given) > MAX_TRACE_ID:
        raise BadRequest(f"X-Trace-Id is longer than {MAX_TRACE_ID} characters")
    return given


def _body_schema(model: type[BaseModel]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": model.model_json_schema()}}}}


async def create_task(request: Request) -> JSON:
    """`POST /task`: the hot route's one endpoint (served ahead of the framework's layers, which
    cost more CPU than the create itself: about 0.3 ms of 0.45 per request)."""
    await caller(request)
    rt = await runtime()
    body = validate(TaskCreate, await read_json(request))
    task = await submit(
        rt.tasks,
        rt.registry,
        type=body.type,
        source=body.source,
        payload=body.payload,
        correlation_id=body.correlationId,
        agent_slug=body.agentSlug,
        idempotency_key=body.idempotencyKey,
        trace_id=_trace_id(request),
    )
    return JSON(
        {"id": task.id, "traceId": task.trace_id, "status": task.status.value, "agent": task.agent_slug, "created": task.created},
        status_code=202,
    )


CREATE = FastRoute("POST", "/task", create_task, "Create a task", status_code=202, body_schema=TaskCreate.model_json_schema(), tags=("tasks",))


@router.get("/task/events", summary="Search task events")
async def list_events(request: Request, store: TaskStoreDep) -> JSON:
    q = request.query_params
    filters = EventFilter(
        task_id=parse_task_id(q["taskId"]) if q.get("taskId") else None,
        trace_id=text_param(request, "traceId"),
        correlation_id=corr_param(request),
        actor=text_param(request, "actor"),
        kind=text_param(request, "kind"),
        since=parse_time(q.get("since"), "since"),
        until=parse_time(q.get("until"), "until"),
    )
    events, next_cursor = await store.list_events(filters, limit=parse_limit(q.get("limit"), 100, 500), cursor=text_param(request, "cursor"))
    return JSON({"events": [e.row() for e in events], "next_cursor": next_cursor})


@router.post("/task/event", status_code=202, openapi_extra=_body_schema(TaskEventCreate), summary="Record a task event")
async def create_event(request: Request, store: TaskStoreDep) -> JSON:
    body = validate(TaskEventCreate, await read_json(request))
    if body.kind in LIFECYCLE_KINDS:
        raise Unprocessable(f"kind {body.kind!r} is reserved for the engine's lifecycle events; report progress with another kind")
    event = await store.add_event(
        parse_task_id(body.taskId),
        actor=body.actor,
        kind=body.kind,
        data=body.data,
        correlation_id=body.correlationId,
        trace_id=body.traceId,
    )
    return JSON({"event": event.camel()}, status_code=202)


@router.get("/task/{task_id}", summary="A task with its events, oldest first")
async def get_task(task_id: str, store: TaskStoreDep) -> JSON:
    task, events = await store.get_with_events(parse_task_id(task_id))
    return JSON({"task": task.row(), "events": [e.row() for e in events]})


@router.get("/tasks", summary="List tasks, newest update first, keyset-paged")
async def list_tasks(request: Request, store: TaskStoreDep) -> JSON:
    q = request.query_params
    filters = TaskFilter(
        status=text_param(request, "status"),
        correlation_id=corr_param(request),
        trace_id=text_param(request, "traceId"),
        type=text_param(request, "type"),
        since=parse_time(q.get("since"), "since"),
        until=parse_time(q.get("until"), "until"),
    )
    tasks, next_cursor = await store.list(filters, limit=parse_limit(q.get("limit"), 50, 200), cursor=text_param(request, "cursor"))
    return JSON({"tasks": [t.row() for t in tasks], "next_cursor": next_cursor})


@router.patch("/task/{task_id}", openapi_extra=_body_schema(TaskPatch), summary="Update a task at a known version")
async def patch_task(task_id: str, request: Request, rt: RuntimeDep, who: Caller) -> JSON:
    tid = parse_task_id(task_id)
    data = await read_json(request)
    if isinstance(data, dict) and "ifVersion" not in data:
        raise BadRequest("ifVersion is required")
    body = validate(TaskPatch, data)
    fields = {"correlationId": "correlation_id"}
    changes = {fields.get(k, k): getattr(body, k) for k in body.model_fields_set if k != "ifVersion"}
    if not changes:
        raise BadRequest("nothing to change: give at least one of status, result, error, payload, correlationId")
    task = await rt.tasks.patch(tid, body.ifVersion, changes, actor=who.name)
    if task.status is TaskStatus.QUEUED:
        rt.dispatcher.wake()
    return JSON({"task": task.row()})


@router.post("/task/{task_id}/cancel", summary="Cancel a queued or running task")
async def cancel_task(task_id: str, rt: RuntimeDep, who: Caller) -> JSON:
    task = await rt.tasks.cancel(parse_task_id(task_id), actor=who.name)
    await rt.notify_agent_cancel(task)
    return JSON({"task": task.row()})


@router.post("/task/{task_id}/retry", summary="Queue a failed or cancelled task again")
async def retry_task(task_id: str, rt: RuntimeDep, who: Caller) -> JSON:
    task = await rt.tasks.retry(parse_task_id(task_id), actor=who.name)
    rt.dispatcher.wake()  # queued again: claim it now, not at the next poll
    return JSON({"task": task.row()})
