"""Logging routes: ingest one entry or a batch, and search (SPEC section 3)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import TypeAdapter

from opsloop.backend.api.deps import (
    JSON,
    caller,
    corr_param,
    parse_limit,
    parse_time,
    read_json,
    runtime,
    validate,
    validate_list,
)
from opsloop.backend.api.schemas import LogCreate
from opsloop.backend.errors import BadRequest
from opsloop.backend.logs import repository as repo
from opsloop.backend.runtime import Runtime
from opsloop.backend.tasks.repository import parse_task_id

router = APIRouter(tags=["logs"], dependencies=[Depends(caller)])
MAX_BATCH = 5000
_entries = TypeAdapter(list[LogCreate])


def _row(entry: LogCreate) -> dict[str, Any]:
    return {
        "service": entry.service,
        "level": entry.level,
        "message": entry.message,
        "data": entry.data,
        "task_id": entry.taskId,
        "correlation_id": entry.correlationId,
        "trace_id": entry.traceId,
    }


@router.post(
    "/log",
    status_code=202,
    summary="Store a log entry, or a JSON array of entries in one statement",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"oneOf": [LogCreate.model_json_schema(), {"type": "array", "items": LogCreate.model_json_schema()}]}}
            },
        }
    },
)
async def ingest(request: Request, rt: Runtime = Depends(runtime)) -> JSON:
    data = await read_json(request)
    if isinstance(data, list):
        if not data:
            raise BadRequest("the array of log entries is empty")
        if len(data) > MAX_BATCH:
            raise BadRequest(f"at most {MAX_BATCH} entries per request")
        entries = validate_list(_entries, data)
        rows = await repo.insert_logs(rt.pool, [_row(e) for e in entries], returning=False)
        return JSON({"logs": [r["id"] for r in rows], "count": len(rows)}, status_code=202)
    entry = validate(LogCreate, data)
    (row,) = await repo.insert_logs(rt.pool, [_row(entry)])
    return JSON({"log": row}, status_code=202)


@router.get("/logs", summary="Search logs, newest first, keyset-paged")
async def search(request: Request, rt: Runtime = Depends(runtime)) -> JSON:
    q = request.query_params
    logs, next_cursor = await repo.search_logs(
        rt.pool,
        service=q.get("service") or None,
        level=q.get("level") or None,
        correlation_id=corr_param(request),
        trace_id=q.get("traceId") or None,
        task_id=parse_task_id(q["taskId"]) if q.get("taskId") else None,
        since=parse_time(q.get("since"), "since"),
        until=parse_time(q.get("until"), "until"),
        q=q.get("q") or None,
        limit=parse_limit(q.get("limit"), 100, 500),
        cursor=q.get("cursor") or None,
    )
    return JSON({"logs": logs, "next_cursor": next_cursor})
