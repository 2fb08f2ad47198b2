"""Orchestrator routes: tasks and task events (SPEC section 3)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel
from starlette.types import Receive, Scope, Send

from opsloop.backend.api.deps import JSON, caller, corr_param, parse_limit, parse_time, read_json, runtime, validate
from opsloop.backend.api.schemas import TaskCreate, TaskEventCreate, TaskPatch
from opsloop.backend.auth import Principal
from opsloop.backend.errors import BadRequest
from opsloop.backend.jsonutil import has_nul
from opsloop.backend.runtime import Runtime
from opsloop.backend.tasks import repository as repo
from opsloop.backend.tasks.submit import submit_task

router = APIRouter(tags=["tasks"], dependencies=[Depends(caller)])
NUL_ESCAPE = b"\\u0000"
MAX_TRACE_ID = 200


async def _refuse_nul(request: Request, body: BaseModel) -> None:
    """PostgreSQL stores no NUL character (neither text nor jsonb): a 400 naming the field, not a
    500 from the database. The raw-bytes test keeps the walk off the hot path."""
    if NUL_ESCAPE not in await request.body():
        return
    for name in body.model_fields_set:
        if has_nul(getattr(body, name)):
            raise BadRequest(f"{name} cannot contain the NUL character (\\u0000)")


def _param(request: Request, name: str) -> str | None:
    value = request.query_params.get(name) or None
    if value is not None and "\x00" in value:
        raise BadRequest(f"{name} cannot contain the NUL character")
    return value


def _corr(request: Request) -> str | None:
    value = corr_param(request)
    if value is not None and "\x00" in value:
        raise BadRequest("correlationId cannot contain the NUL character")
    return value


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
    await _refuse_nul(request, body)
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
        trace_id=_param(request, "traceId"),
        correlation_id=_corr(request),
        actor=_param(request, "actor"),
        kind=_param(request, "kind"),
        since=parse_time(q.get("since"), "since"),
        until=parse_time(q.get("until"), "until"),
        limit=parse_limit(q.get("limit"), 100, 500),
        cursor=_param(request, "cursor"),
    )
    return JSON({"events": events, "next_cursor": next_cursor})


@router.post("/task/event", status_code=202, openapi_extra=_body_schema(TaskEventCreate), summary="Record a task event")
async def create_event(request: Request, rt: Runtime = Depends(runtime)) -> JSON:
    body = validate(TaskEventCreate, await read_json(request))
    await _refuse_nul(request, body)
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
        status=_param(request, "status"),
        correlation_id=_corr(request),
        trace_id=_param(request, "traceId"),
        type=_param(request, "type"),
        since=parse_time(q.get("since"), "since"),
        until=parse_time(q.get("until"), "until"),
        limit=parse_limit(q.get("limit"), 50, 200),
        cursor=_param(request, "cursor"),
    )
    return JSON({"tasks": tasks, "next_cursor": next_cursor})


@router.patch("/task/{task_id}", openapi_extra=_body_schema(TaskPatch), summary="Update a task at a known version")
async def patch_task(task_id: str, request: Request, rt: Runtime = Depends(runtime), who: Principal = Depends(caller)) -> JSON:
    tid = repo.parse_task_id(task_id)
    data = await read_json(request)
    if isinstance(data, dict) and "ifVersion" not in data:
        raise BadRequest("ifVersion is required")
    body = validate(TaskPatch, data)
    await _refuse_nul(request, body)
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
