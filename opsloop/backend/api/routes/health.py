"""`GET /health` (public) and `GET /config/validate`.

The public health answer names no host and no process (the instance id carries both): an
operator finds each instance, with its PID, in the authenticated `GET /agents`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from opsloop.backend.api.deps import JSON, caller, process_runtime
from opsloop.backend.api.openapi import PUBLIC
from opsloop.backend.config import validate_config
from opsloop.backend.runtime import APP_SERVICE

public = APIRouter(tags=["health"])
router = APIRouter(tags=["config"], dependencies=[Depends(caller)])


class HealthOk(BaseModel):
    service: str
    status: Literal["ok"]
    timestamp: str
    logWriter: dict[str, int]
    live: dict[str, Any]


class HealthError(BaseModel):
    service: str
    status: Literal["error"]
    error: str
    timestamp: str


class ConfigError(BaseModel):
    """ajv-shaped, as the earlier system's clients read it; never a value."""

    instancePath: str
    message: str
    keyword: str
    params: dict[str, Any]


class ConfigReport(BaseModel):
    service: str
    status: Literal["ok", "error"]
    required: dict[str, Literal["present", "missing"]]
    optional: dict[str, Literal["present", "absent"]]
    errors: list[ConfigError]


class ServiceReport(BaseModel):
    """One service of the matrix; an agent that cannot be read is `unreachable`."""

    service: str
    slug: str
    status: Literal["ok", "error", "unreachable"]
    required: dict[str, str]
    optional: dict[str, str]
    errors: list[ConfigError]


class ConfigMatrix(BaseModel):
    services: list[ServiceReport]


@public.get(
    "/health",
    summary="Liveness and database check (public)",
    responses={200: {"model": HealthOk}, 503: {"model": HealthError, "description": "Database unavailable, or the instance is starting"}},
    openapi_extra={"security": PUBLIC},
)
async def health() -> JSON:
    rt = process_runtime()
    now = datetime.now(UTC).isoformat()
    try:
        if not rt.started:
            raise RuntimeError("starting")
        async with rt.pool.connection(timeout=2) as conn:
            await conn.execute("SELECT 1")
    except Exception as exc:
        reason = "starting" if str(exc) == "starting" else "database unavailable"
        return JSON({"service": APP_SERVICE, "status": "error", "error": reason, "timestamp": now}, status_code=503)
    return JSON(
        {
            "service": APP_SERVICE,
            "status": "ok",
            "timestamp": now,
            "logWriter": {"buffered": rt.writer.buffered, **rt.writer.stats},
            "live": {"subscribers": rt.bus.subscriber_count, "connected": rt.bus.connected.is_set()},
        }
    )


@router.get("/config/validate", summary="This service's configuration report (no values)", responses={200: {"model": ConfigReport}})
async def config_validate() -> JSON:
    report = validate_config("app")
    return JSON({**report.as_json(), "service": APP_SERVICE})


@router.get(
    "/config/matrix",
    summary="Every service's configuration report (the app and each registered agent)",
    responses={200: {"model": ConfigMatrix}},
)
async def config_matrix() -> JSON:
    from opsloop.backend.config_matrix import collect_reports

    return JSON({"services": await collect_reports(process_runtime())})
