"""Render entry points shared by the REST routes, the dashboard and the monitor.

Writes go through the Render agent: :func:`run_task` creates a ``render.*`` task, waits for its
outcome on the live bus (with a slow database poll as a safety net, so it also works when
another instance runs the task) and returns the task's output, or raises :class:`RenderFailure`
carrying the HTTP status the caller should see and Render's own message. Reads (services,
deploys, plans) go to Render directly: they change nothing.

:func:`start_render` wires it all into a :class:`~opsloop.backend.runtime.Runtime` when
RENDER_API_TOKEN is set: the client, the agent (``local_handlers["render"]`` and its registry
row), its heartbeat, and the monitor job.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from opsloop.backend.errors import DomainError
from opsloop.backend.jsonutil import has_nul
from opsloop.backend.sealing import seal
from opsloop.backend.tasks import repository as repo

from .agent import (
    IN_PROGRESS_STATUSES,
    LIMITS,
    LOCAL_URL,
    SLUG,
    TASK_TYPES,
    PayloadError,
    RenderAgent,
    RenderConfigError,
    blueprint_path,
    blueprint_source,
)
from .blueprint import BlueprintError, load_blueprint
from .blueprint_plan import plan_against
from .client import RenderAPIError, RenderClient
from .openapi_check import project_root

if TYPE_CHECKING:
    from opsloop.backend.live.bus import LiveMessage
    from opsloop.backend.runtime import Runtime

    from .monitor import RenderMonitor

NOT_CONFIGURED = "Render is not configured on this opsloop: set RENDER_API_TOKEN (and RENDER_API_BASE_URL for the local fake)"
TERMINAL = frozenset({"done", "error", "cancelled"})
DEFAULT_WAIT_S = 120.0
HEARTBEAT_S = 10.0


class RenderFailure(DomainError):
    """A Render operation failed: ``status`` for the HTTP answer, ``extra`` fields beside ``error``."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.extra = {k: v for k, v in extra.items() if v is not None}

    def body(self) -> dict[str, Any]:
        return {"error": self.message, **self.extra}


def http_status(render_status: int) -> int:
    """The status opsloop answers for a Render answer: the caller's mistakes stay 4xx, the rest 502.

    Render's 401/403 mean *opsloop's* token is refused: a gateway problem for our caller, not
    theirs (a 401 here would read as "your opsloop credentials are wrong").
    """
    if render_status in (400, 404, 409, 422, 429):
        return render_status
    return 502


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


@dataclass
class RenderRuntime:
    """What a runtime holds for Render when a token is configured."""

    client: RenderClient
    agent: RenderAgent
    monitor: RenderMonitor | None = None
    base_url: str = ""
    _cache: dict[str, tuple[float, Any]] = field(default_factory=dict)
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)

    async def close(self) -> None:
        await self.client.aclose()

    async def cached(self, key: str, max_age: float, load: Any) -> Any:
        """Single-flight TTL cache for dashboard reads (many open tabs, one Render call)."""
        hit = self._cache.get(key)
        if hit and time.monotonic() - hit[0] < max_age:
            return hit[1]
        async with self._locks.setdefault(key, asyncio.Lock()):
            hit = self._cache.get(key)
            if hit and time.monotonic() - hit[0] < max_age:
                return hit[1]
            value = await load()
            if len(self._cache) > 2000:
                self._cache.clear()
            self._cache[key] = (time.monotonic(), value)
            return value

    def forget(self, prefix: str = "") -> None:
        for key in [k for k in self._cache if k.startswith(prefix)]:
            self._cache.pop(key, None)


async def start_render(rt: Runtime) -> RenderRuntime | None:
    """Register the Render agent (and schedule the monitor) when RENDER_API_TOKEN is set."""
    settings = rt.settings
    if not settings.RENDER_API_TOKEN:
        return None
    client = RenderClient(settings.RENDER_API_BASE_URL, settings.RENDER_API_TOKEN)
    agent = RenderAgent(rt.pool, client, settings, rt.writer)
    render = RenderRuntime(client=client, agent=agent, base_url=settings.RENDER_API_BASE_URL)
    rt.local_handlers[SLUG] = agent.handle
    # Dispatcher(local_handlers=...) keeps `handlers or {}`: an empty dict given at construction is
    # replaced by a new one, so register with the dispatcher's own mapping too.
    rt.dispatcher.local_handlers[SLUG] = agent.handle
    meta = {"local": True, "limits": LIMITS, "renderApi": settings.RENDER_API_BASE_URL}
    await rt.registry.register(slug=SLUG, url=LOCAL_URL, task_types=list(TASK_TYPES), endpoint=None, meta=meta, kind="agent")

    async def heartbeat() -> None:
        with contextlib.suppress(Exception):
            await rt.registry.heartbeat(SLUG)

    rt.scheduler.add_job(heartbeat, "interval", seconds=HEARTBEAT_S, id="render-agent-heartbeat", max_instances=1, coalesce=True)
    if settings.monitored_services:
        from .monitor import RenderMonitor

        render.monitor = RenderMonitor(rt, render)
        rt.scheduler.add_job(
            render.monitor.tick,
            "interval",
            seconds=max(0.1, settings.RENDER_MONITOR_INTERVAL_MS / 1000),
            id="render-monitor",
            max_instances=1,
            coalesce=True,
            next_run_time=datetime.now(UTC) + timedelta(seconds=0.5),
        )
    rt.writer.info(
        "render agent ready",
        {"api": settings.RENDER_API_BASE_URL, "monitor": settings.monitored_services, "intervalMs": settings.RENDER_MONITOR_INTERVAL_MS},
    )
    return render


def require(rt: Runtime) -> RenderRuntime:
    render = getattr(rt, "render", None)
    if render is None:
        raise RenderFailure(503, NOT_CONFIGURED)
    return render


# ----- tasks --------------------------------------------------------------------------------


async def run_task(
    rt: Runtime,
    task_type: str,
    payload: dict[str, Any],
    *,
    source: str,
    correlation_id: str | None = None,
    idempotency_key: str | None = None,
    wait_s: float = DEFAULT_WAIT_S,
) -> Any:
    """Create a ``render.*`` task, wait for it, return its output (or raise RenderFailure)."""
    task = await create_task(rt, task_type, payload, source=source, correlation_id=correlation_id, idempotency_key=idempotency_key)
    row = await wait_task(rt, task["id"], wait_s)
    return await outcome(rt, row)


async def create_task(
    rt: Runtime,
    task_type: str,
    payload: dict[str, Any],
    *,
    source: str,
    correlation_id: str | None = None,
    idempotency_key: str | None = None,
) -> dict[str, Any]:
    require(rt)
    if task_type not in TASK_TYPES:
        raise ValueError(f"not a Render task type: {task_type}")
    if has_nul(payload):  # PostgreSQL stores no NUL (text or jsonb): a 400, not a 500
        raise RenderFailure(400, "the request cannot contain the NUL character (\\u0000)")
    task, _ = await repo.create_task(
        rt.pool,
        type=task_type,
        source=source,
        payload=payload,
        correlation_id=correlation_id,
        trace_id=repo.new_trace_id(),
        agent_slug=SLUG,
        idempotency_key=idempotency_key,
        max_attempts=LIMITS[task_type]["maxAttempts"],
    )
    return task


async def wait_task(rt: Runtime, task_id: uuid.UUID, wait_s: float = DEFAULT_WAIT_S, poll_s: float = 1.0) -> dict[str, Any]:
    """The task once it is done, failed or cancelled: woken by the live bus, polled as a fallback."""

    def mine(msg: LiveMessage) -> bool:
        return msg.kind == "task" and msg.row.get("id") == task_id

    sub = rt.bus.subscribe(accepts=mine, maxsize=100)
    deadline = time.monotonic() + wait_s
    try:
        while True:
            task, _ = await repo.get_task(rt.pool, task_id)
            if task["status"] in TERMINAL:
                return task
            left = deadline - time.monotonic()
            if left <= 0:
                raise RenderFailure(
                    504, f"task {task_id} is still {task['status']} after {wait_s:g}s; follow it at GET /task/{task_id}", taskId=str(task_id)
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(sub.get(), timeout=min(poll_s, left))
    finally:
        rt.bus.unsubscribe(sub)


async def outcome(rt: Runtime, task: dict[str, Any]) -> Any:
    """A finished task's output, or the RenderFailure its events describe."""
    task_id = str(task["id"])
    if task["status"] == "done":
        output = (task.get("result") or {}).get("output")
        return output
    if task["status"] == "cancelled":
        raise RenderFailure(409, f"task {task_id} was cancelled", taskId=task_id)
    _, events = await repo.get_task(rt.pool, task["id"])
    errors = [e for e in events if e["kind"] == "render.error" and isinstance(e.get("data"), dict)]
    message = str((task.get("error") or {}).get("message") or "the Render task failed")
    extra: dict[str, Any] = {"taskId": task_id}
    for e in events:
        if e["kind"] == "render.apply.result" and isinstance(e.get("data"), dict):
            extra.update({k: v for k, v in e["data"].items() if k in ("ok", "plan", "result")})
    if errors:
        data = errors[-1]["data"]
        status = int(data.get("status") or 0)
        extra["renderStatus"] = status or None
        extra["requestId"] = data.get("requestId")
        extra["problems"] = data.get("problems") or None
        own = data.get("method") is None  # opsloop refused it before Render was asked
        return_status = status if own and 400 <= status < 600 else http_status(status)
        raise RenderFailure(return_status, message, **extra)
    raise RenderFailure(502, message, **extra)


# ----- operations -----------------------------------------------------------------------------


async def create_service(rt: Runtime, service: dict[str, Any], env: dict[str, str] | None, *, source: str) -> dict[str, Any]:
    # env values travel sealed: the task row (and GET /task/{id}) shows only their keys
    given = service.get("envVars") if isinstance(service.get("envVars"), list) else []
    body = {k: v for k, v in service.items() if k != "envVars"}
    keys = sorted({*(env or {}), *(e.get("key") for e in given if isinstance(e, dict) and isinstance(e.get("key"), str))})
    payload = {"service": body, "sealedEnv": seal({"env": env or {}, "envVars": given}), "envKeys": keys}
    out = await run_task(rt, "render.create", payload, source=source, correlation_id=_corr(service.get("name")))
    require(rt).forget()
    return out


async def set_env(rt: Runtime, service_id: str, env: dict[str, str], clear: bool, *, source: str, deploy: bool = True) -> dict[str, Any]:
    """Merge (or replace) a service's env; a change is deployed unless ``deploy`` is false."""
    payload = {"serviceId": service_id, "sealedEnv": seal(env), "envKeys": sorted(env), "clear": clear, "deploy": deploy}
    return await run_task(rt, "render.env", payload, source=source, correlation_id=_corr(service_id))


async def deploy(rt: Runtime, service_id: str, clear_cache: bool, *, source: str) -> dict[str, Any]:
    out = await run_task(rt, "render.deploy", {"serviceId": service_id, "clearCache": clear_cache}, source=source, correlation_id=_corr(service_id))
    require(rt).forget(f"deploys:{service_id}")
    return out


async def plan_blueprint(rt: Runtime, path: str | None = None, secrets: dict[str, str] | None = None) -> dict[str, Any]:
    """The plan of render.yaml against the account (a read: no task). ``secrets``: the
    operator's ``sync: false`` values, only compared (the plan shows them masked)."""
    render = require(rt)
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
    rt: Runtime, path: str | None = None, *, source: str, secrets: dict[str, str] | None = None, wait: bool = False
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
    out = await run_task(rt, "render.apply", payload, source=source, correlation_id="render:blueprint", wait_s=3600)
    require(rt).forget()
    return out


async def list_services(rt: Runtime, type: str | None = None, name: str | None = None) -> list[dict[str, Any]]:
    render = require(rt)
    try:
        return await render.client.list_services(type=_csv(type), name=_csv(name))
    except RenderAPIError as exc:
        raise failure_from(exc) from None


async def list_deploys(rt: Runtime, service_id: str, limit: int = 20, cursor: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
    render = require(rt)
    try:
        return await render.client.list_deploys(service_id, limit=limit, cursor=cursor)
    except RenderAPIError as exc:
        raise failure_from(exc) from None


async def list_env(rt: Runtime, service_id: str) -> dict[str, str]:
    from .agent import mask_env

    render = require(rt)
    try:
        return mask_env({e["key"]: e["value"] for e in await render.client.list_env_vars(service_id)})
    except RenderAPIError as exc:
        raise failure_from(exc) from None


# ----- dashboard reads (cached: every open tab shares one Render call) ------------------------


async def services_snapshot(rt: Runtime, max_age: float = 15.0) -> list[dict[str, Any]]:
    render = require(rt)
    return await render.cached("services", max_age, lambda: list_services(rt))


async def latest_deploy(rt: Runtime, service_id: str, max_age: float = 8.0, busy_max_age: float = 2.0) -> dict[str, Any] | None:
    """The latest deploy, cached; one still in progress is looked at again sooner."""
    render = require(rt)
    hit = render._cache.get(f"deploys:{service_id}")
    if hit and isinstance(hit[1], dict) and hit[1].get("status") in IN_PROGRESS_STATUSES and time.monotonic() - hit[0] > busy_max_age:
        render.forget(f"deploys:{service_id}")

    async def load() -> dict[str, Any] | None:
        deploys, _ = await list_deploys(rt, service_id, limit=1)
        return deploys[0] if deploys else None

    return await render.cached(f"deploys:{service_id}", max_age, load)


async def recent_fixes(rt: Runtime, limit: int = 20) -> list[dict[str, Any]]:
    from .fixes import recent

    return await recent(rt.pool, limit)


async def recent_tasks(rt: Runtime, limit: int = 10) -> list[dict[str, Any]]:
    """The latest ``render.*`` tasks (one indexed scan per type, bounded)."""
    sql = "SELECT * FROM tasks WHERE type = ANY(%(types)s) ORDER BY updated_at DESC, id DESC LIMIT %(limit)s"
    async with rt.pool.connection() as conn:
        return await (await conn.execute(sql, {"types": list(TASK_TYPES), "limit": max(1, min(limit, 100))})).fetchall()


def _csv(value: str | None) -> list[str] | None:
    if not value:
        return None
    return [v.strip() for v in value.split(",") if v.strip()] or None


def _corr(value: Any) -> str | None:
    return f"render:{value}"[:200] if isinstance(value, str) and value else None
