"""Logging routes: ingest one entry or a batch, search (SPEC section 3), and the retention trigger.

`POST /log` is the hottest route of the app, so it stays lean: auth is checked inline (FastAPI's
dependency machinery costs more than the check), a batch whose entries are all plainly valid goes
to PostgreSQL as the very JSON it arrived in, and only a doubtful entry goes through the model,
whose error names the field and the entry's index.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Request
from pydantic import TypeAdapter

from opsloop.backend.api.deps import (
    JSON,
    Caller,
    RuntimeDep,
    caller,
    corr_param,
    parse_limit,
    parse_time,
    read_json,
    runtime,
    service_caller,
    text_param,
    validate,
    validate_list,
)
from opsloop.backend.api.schemas import LogCreate
from opsloop.backend.errors import BadRequest
from opsloop.backend.logs import repository as repo
from opsloop.shared.hot_routes import FastRoute

router = APIRouter(tags=["logs"])
MAX_BATCH = 5000
_entries = TypeAdapter(list[LogCreate])
LEVELS = frozenset(("debug", "info", "warn", "error"))
_PLAIN_UUID = re.compile(r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}")


def _plainly_valid(e: Any) -> bool:
    """The common case, checked fast: every field well-typed and within the model's bounds, the
    task id in a spelling PostgreSQL reads. Anything else goes through the model."""
    if type(e) is not dict:
        return False
    service, message = e.get("service"), e.get("message")
    if type(service) is not str or not 0 < len(service) <= 200 or type(message) is not str or not 0 < len(message) <= 32_768:
        return False
    if "level" in e and (type(e["level"]) is not str or e["level"] not in LEVELS):
        return False
    for key in ("correlationId", "traceId"):
        value = e.get(key)
        if value is not None and (type(value) is not str or not 0 < len(value) <= 200):
            return False
    task_id = e.get("taskId")
    return task_id is None or (type(task_id) is str and _PLAIN_UUID.fullmatch(task_id) is not None)


def _canonical(entry: LogCreate, index: int | None) -> dict[str, Any]:
    """A model-validated entry as the insert takes it (the task id spelled the standard way)."""
    task_id = None
    if entry.taskId is not None:
        try:
            task_id = str(uuid.UUID(entry.taskId))
        except ValueError:
            where = "taskId" if index is None else f"entry {index}: taskId"
            raise BadRequest(f"{where}: must be a UUID") from None
    return {
        "service": entry.service,
        "level": entry.level,
        "message": entry.message,
        "data": entry.data,
        "taskId": task_id,
        "correlationId": entry.correlationId,
        "traceId": entry.traceId,
    }


async def ingest(request: Request) -> JSON:
    """`POST /log`: the hot route's one endpoint (served ahead of the framework's layers: about
    half the CPU of a one-line request)."""
    await caller(request)
    rt = await runtime()
    raw = await request.body()
    data = await read_json(request)  # the JSON policy: depth, 64-bit integers, NUL (named by entry and field)
    batch = isinstance(data, list)
    if batch:
        if not data:
            raise BadRequest("the array of log entries is empty")
        if len(data) > MAX_BATCH:
            raise BadRequest(f"at most {MAX_BATCH} entries per request (got {len(data)})")
        if all(_plainly_valid(e) for e in data):
            body = raw.decode()  # valid as it is: PostgreSQL unpacks the request body itself
        else:
            entries = validate_list(_entries, data)
            body = orjson.dumps([_canonical(e, i) for i, e in enumerate(entries)]).decode()
        rows = await rt.logs.insert_json(body)
        return JSON({"logs": [r["id"] for r in rows], "count": len(rows)}, status_code=202)
    entry = data if _plainly_valid(data) else _canonical(validate(LogCreate, data), None)
    row = await rt.logs.insert_one(entry)
    return JSON({"log": row}, status_code=202)


INGEST = FastRoute(
    "POST",
    "/log",
    ingest,
    "Store a log entry, or a JSON array of entries in one statement",
    status_code=202,
    body_schema={"oneOf": [LogCreate.model_json_schema(), {"type": "array", "items": LogCreate.model_json_schema()}]},
    tags=("logs",),
)


@router.get("/logs", summary="Search logs, newest first, keyset-paged")
async def search(request: Request, _: Caller, rt: RuntimeDep) -> JSON:
    q = request.query_params
    task_id = None
    if q.get("taskId"):
        try:
            task_id = uuid.UUID(q["taskId"])
        except ValueError:
            raise BadRequest("taskId must be a UUID") from None
    logs, next_cursor = await repo.search_logs(
        rt.pool,
        service=text_param(request, "service"),
        level=text_param(request, "level"),
        correlation_id=corr_param(request),
        trace_id=text_param(request, "traceId"),
        task_id=task_id,
        since=parse_time(q.get("since"), "since"),
        until=parse_time(q.get("until"), "until"),
        q=text_param(request, "q"),
        limit=parse_limit(q.get("limit"), 100, 500),
        cursor=text_param(request, "cursor"),
    )
    return JSON({"logs": logs, "next_cursor": next_cursor})


@router.post(
    "/admin/retention",
    dependencies=[Depends(service_caller)],
    summary="Run the retention job now (internal key only): delete logs and task events older than LOG_RETENTION_DAYS",
)
async def retention(rt: RuntimeDep) -> JSON:
    return JSON({"deleted": await rt.retention(), "retentionDays": rt.settings.LOG_RETENTION_DAYS})
