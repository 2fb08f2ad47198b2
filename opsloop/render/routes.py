"""renderctl routes (SPEC section 3): Render services, env, deploys and render.yaml.

Reads go to Render directly; every write is a ``render.*`` task run by the Render agent (so it is
recorded with its events) and the answer is the task's output. Without RENDER_API_TOKEN every
route answers 503 saying so; Render's refusals come back as 4xx with Render's message, and
anything Render itself got wrong as 502 — never a 500.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel

from opsloop.backend.api.deps import JSON, RuntimeDep, caller, parse_limit, read_json, validate
from opsloop.backend.errors import BadRequest
from opsloop.render import service as render
from opsloop.render.agent import PayloadError, env_of, service_id_of
from opsloop.render.errors import RenderFailure
from opsloop.render.runtime import RenderRuntime, require
from opsloop.render.schemas import BlueprintApply, RenderDeploy, RenderEnvPatch, RenderServiceCreate

router = APIRouter(prefix="/render", tags=["render"], dependencies=[Depends(caller)])
SOURCES = {"cli", "api"}


async def render_runtime(rt: RuntimeDep) -> RenderRuntime:
    """This process's Render runtime; a 503 naming RENDER_API_TOKEN when Render is not configured."""
    return require(rt)


RenderDep = Annotated[RenderRuntime, Depends(render_runtime)]


def _body_schema(model: type[BaseModel], required: bool = True) -> dict[str, Any]:
    return {"requestBody": {"required": required, "content": {"application/json": {"schema": model.model_json_schema()}}}}


def _source(request: Request) -> str:
    """`X-Opsloop-Source: cli` marks tasks created by `opsloop render …`; anything else is `api`."""
    given = (request.headers.get("x-opsloop-source") or "").strip().lower()
    return given if given in SOURCES else "api"


async def _optional_json(request: Request) -> dict[str, Any]:
    """A body that may be left out entirely (`POST /render/deploy/{id}`)."""
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadRequest("request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise BadRequest("request body must be a JSON object")
    return data


def _sid(service_id: str) -> str:
    try:
        return service_id_of(service_id)
    except PayloadError as exc:
        raise BadRequest(str(exc)) from None


def _filter(request: Request, name: str) -> str | None:
    value = request.query_params.get(name) or None
    if value is not None and ("\x00" in value or len(value) > 1000):
        raise BadRequest(f"{name} must be a short comma-separated list")
    return value


def _answer(exc: RenderFailure) -> JSON:
    return JSON(exc.body(), status_code=exc.status)


@router.get("/services", summary="Render services (every page), optionally by type and name")
async def list_services(request: Request, rr: RenderDep) -> JSON:
    try:
        services = await render.list_services(rr, type=_filter(request, "type"), name=_filter(request, "name"))
    except RenderFailure as exc:
        return _answer(exc)
    return JSON({"services": services})


@router.post("/services", status_code=201, openapi_extra=_body_schema(RenderServiceCreate), summary="Create a Render service (a render.create task)")
async def create_service(request: Request, rr: RenderDep) -> JSON:
    body = validate(RenderServiceCreate, await read_json(request))
    try:
        env = env_of(body.env or {})
        out = await render.create_service(rr, body.service, env, source=_source(request))
    except PayloadError as exc:
        raise BadRequest(str(exc)) from None
    except RenderFailure as exc:
        return _answer(exc)
    return JSON({"service": out["service"], "env": out["env"], "deployId": out.get("deployId")}, status_code=201)


@router.patch(
    "/services/{service_id}/env", openapi_extra=_body_schema(RenderEnvPatch), summary="Merge env vars into a service, or replace them (clear)"
)
async def patch_env(service_id: str, request: Request, rr: RenderDep) -> JSON:
    sid = _sid(service_id)
    body = validate(RenderEnvPatch, await read_json(request))
    try:
        env = env_of(body.env)
        if body.clear and not env:
            raise PayloadError("clear with an empty env would delete every variable; send at least one")
        out = await render.set_env(rr, sid, env, body.clear, source=_source(request), deploy=body.deploy)
    except PayloadError as exc:
        raise BadRequest(str(exc)) from None
    except RenderFailure as exc:
        return _answer(exc)
    return JSON({"env": out["env"], "changed": out.get("changed"), "deploy": out.get("deploy")})


@router.post(
    "/deploy/{service_id}",
    status_code=202,
    openapi_extra=_body_schema(RenderDeploy, required=False),
    summary="Deploy a service (a render.deploy task)",
)
async def deploy(service_id: str, request: Request, rr: RenderDep) -> JSON:
    sid = _sid(service_id)
    body = validate(RenderDeploy, await _optional_json(request))
    try:
        out = await render.deploy(rr, sid, body.clearCache, source=_source(request))
    except RenderFailure as exc:
        return _answer(exc)
    return JSON({"deploy": out["deploy"]}, status_code=202)


@router.get("/services/{service_id}/deploys", summary="A page of a service's deploys, newest first")
async def list_deploys(service_id: str, request: Request, rr: RenderDep) -> JSON:
    sid = _sid(service_id)
    limit = parse_limit(request.query_params.get("limit"), 20, 100)
    cursor = _filter(request, "cursor")
    try:
        deploys, next_cursor = await render.list_deploys(rr, sid, limit=limit, cursor=cursor)
    except RenderFailure as exc:
        return _answer(exc)
    return JSON({"deploys": deploys, "next_cursor": next_cursor})


@router.post(
    "/blueprint/apply",
    openapi_extra=_body_schema(BlueprintApply, required=False),
    summary="Plan (dryRun) or apply render.yaml (a render.apply task)",
)
async def blueprint_apply(request: Request, rr: RenderDep) -> JSON:
    body = validate(BlueprintApply, await _optional_json(request))
    try:
        secrets = env_of(body.env or {})
    except PayloadError as exc:
        raise BadRequest(str(exc)) from None
    try:
        if body.dryRun:
            return JSON({"dryRun": True, "plan": await render.plan_blueprint(rr, body.path, secrets)})
        out = await render.apply_blueprint(rr, body.path, source=_source(request), secrets=secrets, wait=body.wait)
    except RenderFailure as exc:
        return _answer(exc)
    return JSON({"dryRun": False, **out})
