"""Render entry points shared by the REST routes, the dashboard and the monitor.

Writes go through the Render agent: :func:`run_task` creates a ``render.*`` task, waits for its
outcome on the live bus (with a slow database poll as a safety net, so it also works when
another instance runs the task) and returns the task's output, or raises :class:`RenderFailure`
carrying the HTTP status the caller should see and Render's own message. Reads (services,
deploys, plans) go to Render directly: they change nothing.

Every function takes the process's :class:`~opsloop.render.runtime.RenderRuntime`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from typing import TYPE_CHECKING, Any

from opsloop.backend.tasks.model import Task, TaskStatus
from opsloop.render.sealing import seal

from . import fixes, tasks
from .agent import (
    IN_PROGRESS_STATUSES,
    PayloadError,
    RenderConfigError,
    blueprint_path,
    blueprint_source,
    mask_env,
)
from .blueprint import BlueprintError, load_blueprint
from .blueprint_plan import plan_against
from .client import RenderAPIError
from .errors import RenderFailure, http_status
from .reference import project_root
from .runtime import RenderRuntime

if TYPE_CHECKING:
    from opsloop.backend.live.bus import LiveMessage

DEFAULT_WAIT_S = 120.0


def failure_from(exc: Exception) -> RenderFailure:
    if isinstance(exc, RenderFailure):
        return exc
    if isinstance(exc, RenderAPIError):
        return RenderFailure(http_status(exc.status), str(exc), renderStatus=exc.status or None, requestId=exc.request_id)
    if isinstance(exc, PayloadError | BlueprintError):
        return RenderFailure(400, str(exc).splitlines()[0], problems=getattr(exc, "problems", None) or None)
    if isinstance(exc, RenderConfigError):
        return RenderFailure(503, str(exc))
    return RenderFailure(502, f"{type(exc).__name__}: {exc}")


# ----- tasks --------------------------------------------------------------------------------


async def run_task(
    render: RenderRuntime,
    task_type: str,
    payload: dict[str, Any],
    *,
    source: str,
    correlation_id: str | None = None,
    idempotency_key: str | None = None,
    wait_s: float = DEFAULT_WAIT_S,
) -> Any:
    """Create a ``render.*`` task, wait for it, return its output (or raise RenderFailure)."""
    task = await create_task(render, task_type, payload, source=source, correlation_id=correlation_id, idempotency_key=idempotency_key)
    row = await wait_task(render, task.id, wait_s)
    return await outcome(render, row)


async def create_task(
    render: RenderRuntime,
    task_type: str,
    payload: dict[str, Any],
    *,
    source: str,
    correlation_id: str | None = None,
    idempotency_key: str | None = None,
) -> Task:
    return await tasks.create(render.host, task_type, payload, source=source, correlation_id=correlation_id, idempotency_key=idempotency_key)


async def wait_task(render: RenderRuntime, task_id: uuid.UUID, wait_s: float = DEFAULT_WAIT_S, poll_s: float = 1.0) -> Task:
    """The task once it is done, failed or cancelled: woken by the live bus, polled as a fallback."""

    def mine(msg: LiveMessage) -> bool:
        return msg.kind == "task" and msg.row.get("id") == task_id

    sub = render.host.bus.subscribe(accepts=mine, maxsize=100)
    deadline = time.monotonic() + wait_s
    try:
        while True:
            task = await render.host.tasks.get(task_id)
            if task.status.finished:
                return task
            left = deadline - time.monotonic()
            if left <= 0:
                raise RenderFailure(
                    504, f"task {task_id} is still {task.status} after {wait_s:g}s; follow it at GET /task/{task_id}", taskId=str(task_id)
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(sub.get(), timeout=min(poll_s, left))
    finally:
        render.host.bus.unsubscribe(sub)


async def outcome(render: RenderRuntime, task: Task) -> Any:
    """A finished task's output, or the RenderFailure its events describe."""
    task_id = str(task.id)
    if task.status is TaskStatus.DONE:
        return (task.result or {}).get("output")
    if task.status is TaskStatus.CANCELLED:
        raise RenderFailure(409, f"task {task_id} was cancelled", taskId=task_id)
    _, events = await tasks.get(render.host, task.id)
    errors = [e for e in events if e.kind == "render.error" and isinstance(e.data, dict)]
    message = str((task.error or {}).get("message") or "the Render task failed")
    extra: dict[str, Any] = {"taskId": task_id}
    for e in events:
        if e.kind == "render.apply.result" and isinstance(e.data, dict):
            extra.update({k: v for k, v in e.data.items() if k in ("ok", "plan", "result")})
    if errors:
        data = errors[-1].data
        status = int(data.get("status") or 0)
        extra["renderStatus"] = status or None
        extra["requestId"] = data.get("requestId")
        extra["problems"] = data.get("problems") or None
        own = data.get("method") is None  # opsloop refused it before Render was asked
        return_status = status if own and 400 <= status < 600 else http_status(status)
        raise RenderFailure(return_status, message, **extra)
    raise RenderFailure(502, message, **extra)


# ----- operations -----------------------------------------------------------------------------


async def create_service(render: RenderRuntime, service: dict[str, Any], env: dict[str, str] | None, *, source: str) -> dict[str, Any]:
    # env values travel sealed: the task row (and GET /task/{id}) shows only their keys
    raw_given = service.get("envVars")
    given: list[Any] = raw_given if isinstance(raw_given, list) else []
    body = {k: v for k, v in service.items() if k != "envVars"}
    keys = sorted({*(env or {}), *(str(e["key"]) for e in given if isinstance(e, dict) and isinstance(e.get("key"), str))})
    payload = {"service": body, "sealedEnv": seal({"env": env or {}, "envVars": given}), "envKeys": keys}
    out = await run_task(render, "render.create", payload, source=source, correlation_id=_corr(service.get("name")))
    render.forget()
    return out


async def set_env(render: RenderRuntime, service_id: str, env: dict[str, str], clear: bool, *, source: str, deploy: bool = True) -> dict[str, Any]:
    """Merge (or replace) a service's env; a change is deployed unless ``deploy`` is false."""
    payload = {"serviceId": service_id, "sealedEnv": seal(env), "envKeys": sorted(env), "clear": clear, "deploy": deploy}
    return await run_task(render, "render.env", payload, source=source, correlation_id=_corr(service_id))


async def deploy(render: RenderRuntime, service_id: str, clear_cache: bool, *, source: str) -> dict[str, Any]:
    out = await run_task(
        render, "render.deploy", {"serviceId": service_id, "clearCache": clear_cache}, source=source, correlation_id=_corr(service_id)
    )
    render.forget(f"deploys:{service_id}")
    return out


async def plan_blueprint(render: RenderRuntime, path: str | None = None, secrets: dict[str, str] | None = None) -> dict[str, Any]:
    """The plan of render.yaml against the account (a read: no task). ``secrets``: the
    operator's ``sync: false`` values, only compared (the plan shows them masked)."""
    try:
        resolved = blueprint_path(path)
        repo_url, branch = blueprint_source()
        blueprint = load_blueprint(resolved, repo=repo_url, branch=branch)
        owner = await render.agent.owner_id()
        plan_ = await plan_against(render.client, blueprint, owner, secrets)
    except (RenderAPIError, PayloadError, BlueprintError, RenderConfigError) as exc:
        raise failure_from(exc) from None
    body = plan_.to_dict()
    body["path"] = str(resolved.relative_to(project_root().resolve()))
    body["secretKeys"] = sorted({key for _, key in blueprint.secret_keys()})
    return body


async def apply_blueprint(
    render: RenderRuntime, path: str | None = None, *, source: str, secrets: dict[str, str] | None = None, wait: bool = False
) -> dict[str, Any]:
    try:
        blueprint_path(path)  # refuse a bad path before queueing anything
    except PayloadError as exc:
        raise failure_from(exc) from None
    payload: dict[str, Any] = {"path": path} if path else {}
    if secrets:  # sealed: the task row shows only the keys
        payload |= {"sealedEnv": seal(secrets), "envKeys": sorted(secrets)}
    if wait:
        payload["wait"] = True
    out = await run_task(render, "render.apply", payload, source=source, correlation_id="render:blueprint", wait_s=3600)
    render.forget()
    return out


async def list_services(render: RenderRuntime, type: str | None = None, name: str | None = None) -> list[dict[str, Any]]:
    try:
        return await render.client.list_services(type=_csv(type), name=_csv(name))
    except RenderAPIError as exc:
        raise failure_from(exc) from None


async def list_deploys(render: RenderRuntime, service_id: str, limit: int = 20, cursor: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
    try:
        return await render.client.list_deploys(service_id, limit=limit, cursor=cursor)
    except RenderAPIError as exc:
        raise failure_from(exc) from None


async def list_env(render: RenderRuntime, service_id: str) -> dict[str, str]:
    try:
        return mask_env({e["key"]: e["value"] for e in await render.client.list_env_vars(service_id)})
    except RenderAPIError as exc:
        raise failure_from(exc) from None


# ----- dashboard reads (cached: every open tab shares one Render call) ------------------------


async def services_snapshot(render: RenderRuntime, max_age: float = 15.0) -> list[dict[str, Any]]:
    return await render.cached("services", max_age, lambda: list_services(render))


async def latest_deploy(render: RenderRuntime, service_id: str, max_age: float = 8.0, busy_max_age: float = 2.0) -> dict[str, Any] | None:
    """The latest deploy, cached; one still in progress is looked at again sooner."""
    hit = render._cache.get(f"deploys:{service_id}")
    if hit and isinstance(hit[1], dict) and hit[1].get("status") in IN_PROGRESS_STATUSES and time.monotonic() - hit[0] > busy_max_age:
        render.forget(f"deploys:{service_id}")

    async def load() -> dict[str, Any] | None:
        deploys, _ = await list_deploys(render, service_id, limit=1)
        return deploys[0] if deploys else None

    return await render.cached(f"deploys:{service_id}", max_age, load)


async def recent_fixes(render: RenderRuntime, limit: int = 20) -> list[dict[str, Any]]:
    return await fixes.recent(render.host.pool, limit)


async def recent_tasks(render: RenderRuntime, limit: int = 10) -> list[Task]:
    """The latest ``render.*`` tasks (bounded)."""
    return await tasks.recent(render.host, limit)


def _csv(value: str | None) -> list[str] | None:
    if not value:
        return None
    return [v.strip() for v in value.split(",") if v.strip()] or None


def _corr(value: Any) -> str | None:
    return f"render:{value}"[:200] if isinstance(value, str) and value else None
