"""Orchestrator routes: tasks and task events (SPEC section 3)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.types import Receive, Scope, Send

from opsloop.backend.api.deps import JSON, caller, corr_param, parse_limit, parse_time, read_json, runtime, text_param, validate
from opsloop.backend.api.schemas import TaskCreate, TaskEventCreate, TaskPatch
from opsloop.backend.auth import Principal
from opsloop.backend.errors import BadRequest, Unprocessable
from opsloop.backend.runtime import Runtime
from opsloop.backend.tasks import repository as repo
from opsloop.backend.tasks.submit import submit_task

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
        return repo.new_trace_id()
    if len(given) > MAX_TRACE_ID:
        raise BadRequest(f"X-Trace-Id is longer than {MAX_TRACE_ID} characters")
    return given


def _body_schema(model: type) -> dict:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": model.model_json_schema()}}}}


@router.post("/task", status_code=202, openapi_extra=_body_schema(TaskCreate), summary="Create a task")
async def create_task(request: Request, rt: Runtime = Depends(runtime)) -> JSON:
    body = validate(TaskCreate, await read_json(request))
    task, created = await submit_task(
        rt.pool,
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
        {"id": task["id"], "traceId": task["trace_id"], "status": task["status"], "agent": task["agent_slug"], "created": created},
        status_code=202,
    )


class CreateASGI:
    """`POST /task` as a plain ASGI endpoint placed ahead of the FastAPI routes (see `api/app.py`):
    the same handler as the route above, without FastAPI's routing and dependency layers, which
    cost more CPU than the create itself (about 0.3 ms of 0.45 per request). Errors raised here
    reach the app's exception handlers like any route's. The FastAPI route stays for the
    OpenAPI document."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        await caller(request)
        response = await create_task(request, await runtime())
        await response(scope, receive, send)


@router.get("/task/events", summary="Search task events")
async def list_events(request: Request, rt: Runtime = Depends(runtime)) -> JSON:
    q = request.query_params
    task_id = repo.parse_task_id(q["taskId"]) if q.get("taskId") else None
    events, next_cursor = await repo.list_events(
        rt.pool,
        task_id=task_id,
        trace_id=text_param(request, "traceId"),
        correlation_id=corr_param(request),
        actor=text_param(request, "actor"),
        kind=text_param(request, "kind"),
        since=parse_time(q.get("since"), "since"),
        until=parse_time(q.get("until"), "until"),
        limit=parse_limit(q.get("limit"), 100, 500),
        cursor=text_param(request, "cursor"),
    )
    return JSON({"events": events, "next_cursor": next_cursor})


@router.post("/task/event", status_code=202, openapi_extra=_body_schema(TaskEventCreate), summary="Record a task event")
async def create_event(request: Request, rt: Runtime = Depends(runtime)) -> JSON:
    body = validate(TaskEventCreate, await read_json(request))
    if body.kind in LIFECYCLE_KINDS:
        raise Unprocessable(f"kind {body.kind!r} is reserved for the engine's lifecycle events; report progress with another kind")
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
        status=text_param(request, "status"),
        correlation_id=corr_param(request),
        trace_id=text_param(request, "traceId"),
        type=text_param(request, "type"),
        since=parse_time(q.get("since"), "since"),
        until=parse_time(q.get("until"), "until"),
        limit=parse_limit(q.get("limit"), 50, 200),
        cursor=text_param(request, "cursor"),
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
    if task["status"] == "queued":
        rt.dispatcher.wake()
    return JSON({"task": task})


@router.post("/task/{task_id}/cancel", summary="Cancel a queued or running task")
async def cancel_task(task_id: str, rt: Runtime = Depends(runtime), who: Principal = Depends(caller)) -> JSON:
    task = await repo.cancel_task(rt.pool, repo.parse_task_id(task_id), actor=who.name)
    await rt.notify_agent_cancel(task)
    return JSON({"task": task})


@router.post("/task/{task_id}/retry", summary="Queue a failed or cancelled task again")
async def retry_task(task_id: str, rt: Runtime = Depends(runtime), who: Principal = Depends(caller)) -> JSON:
    task = await repo.retry_task(rt.pool, repo.parse_task_id(task_id), actor=who.name)
    rt.dispatcher.wake()  # queued again: claim it now, not at the next poll
    return JSON({"task": task})
