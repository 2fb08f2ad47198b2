"""Orchestrator routes: tasks and task events (SPEC section 3)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from opsloop.backend.api.deps import JSON, caller, corr_param, parse_limit, parse_time, read_json, runtime, validate
from opsloop.backend.api.schemas import TaskCreate, TaskEventCreate, TaskPatch
from opsloop.backend.auth import Principal
from opsloop.backend.errors import BadRequest, Unprocessable
from opsloop.backend.runtime import Runtime
from opsloop.backend.tasks import repository as repo

router = APIRouter(tags=["tasks"], dependencies=[Depends(caller)])


def _body_schema(model: type) -> dict:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": model.model_json_schema()}}}}


@router.post("/task", status_code=202, openapi_extra=_body_schema(TaskCreate), summary="Create a task")
async def create_task(request: Request, rt: Runtime = Depends(runtime)) -> JSON:
    body = validate(TaskCreate, await read_json(request))
    agent = await rt.registry.route(body.type, body.agentSlug)
    if agent is None:
        if body.agentSlug:
            raise Unprocessable(f"Agent {body.agentSlug} does not handle task type {body.type}")
        raise Unprocessable(f"Unsupported task type: {body.type}")
    task, created = await repo.create_task(
        rt.pool,
        type=body.type,
        source=body.source,
        payload=body.payload,
        correlation_id=body.correlationId,
        trace_id=request.headers.get("x-trace-id") or repo.new_trace_id(),
        agent_slug=agent.slug,
        idempotency_key=body.idempotencyKey,
        max_attempts=agent.limits_for(body.type).max_attempts,
    )
    return JSON(
        {"id": task["id"], "traceId": task["trace_id"], "status": task["status"], "agent": task["agent_slug"], "created": created},
        status_code=202,
    )


@router.get("/task/events", summary="Search task events")
async def list_events(request: Request, rt: Runtime = Depends(runtime)) -> JSON:
    q = request.query_params
    task_id = repo.parse_task_id(q["taskId"]) if q.get("taskId") else None
    events, next_cursor = await repo.list_events(
        rt.pool,
        task_id=task_id,
        trace_id=q.get("traceId") or None,
        correlation_id=corr_param(request),
        actor=q.get("actor") or None,
        kind=q.get("kind") or None,
        since=parse_time(q.get("since"), "since"),
        until=parse_time(q.get("until"), "until"),
        limit=parse_limit(q.get("limit"), 100, 500),
        cursor=q.get("cursor") or None,
    )
    return JSON({"events": events, "next_cursor": next_cursor})


@router.post("/task/event", status_code=202, openapi_extra=_body_schema(TaskEventCreate), summary="Record a task event")
async def create_event(request: Request, rt: Runtime = Depends(runtime)) -> JSON:
    body = validate(TaskEventCreate, await read_json(request))
    event = await repo.add_event(
        rt.pool,
        task_id=repo.parse_task_id(body.taskId),
        actor=body.actor,
        kind=body.kind,
        data=body.data,
        correlation_id=body.correlationId,
        trace_id=body.traceId,
    )
    return JSON({"event": repo.event_camel(event)}, status_code=202)


@router.get("/task/{task_id}", summary="A task with its events, oldest first")
async def get_task(task_id: str, rt: Runtime = Depends(runtime)) -> JSON:
    task, events = await repo.get_task(rt.pool, repo.parse_task_id(task_id))
    return JSON({"task": task, "events": events})


@router.get("/tasks", summary="List tasks, newest update first, keyset-paged")
async def list_tasks(request: Request, rt: Runtime = Depends(runtime)) -> JSON:
    q = request.query_params
    tasks, next_cursor = await repo.list_tasks(
        rt.pool,
        status=q.get("status") or None,
        correlation_id=corr_param(request),
        trace_id=q.get("traceId") or None,
        type=q.get("type") or None,
        since=parse_time(q.get("since"), "since"),
        until=parse_time(q.get("until"), "until"),
        limit=parse_limit(q.get("limit"), 50, 200),
        cursor=q.get("cursor") or None,
    )
    return JSON({"tasks": tasks, "next_cursor": next_cursor})


@router.patch("/task/{task_id}", openapi_extra=_body_schema(TaskPatch), summary="Update a task at a known version")
async def patch_task(task_id: str, request: Request, rt: Runtime = Depends(runtime), who: Principal = Depends(caller)) -> JSON:
    tid = repo.parse_task_id(task_id)
    data = await read_json(request)
    if isinstance(data, dict) and "ifVersion" not in data:
        raise BadRequest("ifVersion is required")
    body = validate(TaskPatch, data)
    fields = {"correlationId": "correlation_id"}
    changes = {fields.get(k, k): getattr(body, k) for k in body.model_fields_set if k != "ifVersion"}
    if not changes:
        raise BadRequest("nothing to change: give at least one of status, result, error, payload, correlationId")
    task = await repo.patch_task(rt.pool, tid, body.ifVersion, changes, actor=who.name)
    return JSON({"task": task})


@router.post("/task/{task_id}/cancel", summary="Cancel a queued or running task")
async def cancel_task(task_id: str, rt: Runtime = Depends(runtime), who: Principal = Depends(caller)) -> JSON:
    task = await repo.cancel_task(rt.pool, repo.parse_task_id(task_id), actor=who.name)
    await rt.notify_agent_cancel(task)
    return JSON({"task": task})


@router.post("/task/{task_id}/retry", summary="Queue a failed or cancelled task again")
async def retry_task(task_id: str, rt: Runtime = Depends(runtime), who: Principal = Depends(caller)) -> JSON:
    task = await repo.retry_task(rt.pool, repo.parse_task_id(task_id), actor=who.name)
    return JSON({"task": task})
