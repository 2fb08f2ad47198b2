"""Agent registry routes: agents register and send heartbeats with the internal key."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from opsloop.backend.api.deps import JSON, RuntimeDep, caller, read_json, service_caller, validate
from opsloop.backend.api.schemas import AgentHeartbeat, AgentRegistration
from opsloop.backend.errors import NotFound

router = APIRouter(tags=["agents"])


@router.post("/agents/register", dependencies=[Depends(service_caller)], summary="An agent announces itself")
async def register(request: Request, rt: RuntimeDep) -> JSON:
    body = validate(AgentRegistration, await read_json(request))
    meta = {"limits": body.limits or {}, "configUrl": body.configUrl}
    row = await rt.registry.register(slug=body.slug, url=body.url, task_types=body.taskTypes, endpoint=body.endpoint, meta=meta)
    rt.dispatcher.unreachable.back(body.slug)  # (re)started: its waiting tasks need not wait for the next probe
    rt.writer.info(f"agent {body.slug} registered", {"slug": body.slug, "taskTypes": body.taskTypes, "url": body.url})
    return JSON({"agent": row})


@router.post("/agents/heartbeat", dependencies=[Depends(service_caller)], summary="An agent is alive")
async def heartbeat(request: Request, rt: RuntimeDep) -> JSON:
    body = validate(AgentHeartbeat, await read_json(request))
    row = await rt.registry.heartbeat(body.slug)
    if row is None:
        raise NotFound(f"agent {body.slug} is not registered")
    return JSON({"agent": row})


@router.get("/agents", dependencies=[Depends(caller)], summary="Registered agents and app instances")
async def list_agents(rt: RuntimeDep) -> JSON:
    return JSON({"agents": await rt.registry.list_rows()})
