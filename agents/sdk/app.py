"""`AgentApp`: the FastAPI app and background loops every agent shares.

Imports only `opsloop.shared` (the JSON policy, the internal key check, the log writer, the hot
route declaration, gc tuning, the config report) and its own `config.py`: never the app."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from fastapi import FastAPI, Request
from starlette.exceptions import HTTPException
from starlette.responses import Response

from agents.sdk.config import AgentConfig
from opsloop.shared import jsonutil
from opsloop.shared.config_report import validate_config
from opsloop.shared.gc_tuning import tune_gc
from opsloop.shared.hot_routes import FastRoute, FastRoutes, HotRoutes
from opsloop.shared.keys import key_matches
from opsloop.shared.logwriter import LogWriter, SinkRejected

log = logging.getLogger("agents.sdk")
Handler = Callable[[dict[str, Any], "TaskContext"], Awaitable[Any]]


def _json(content: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(jsonutil.dumps(content), status_code=status, media_type="application/json", headers=headers)


def _error_response(exc: Exception) -> Response:
    """A handler's failure as JSON (a 413 from the body limit, or a 500 logged here)."""
    if isinstance(exc, HTTPException):
        return _json({"error": str(exc.detail)}, exc.status_code, exc.headers)
    log.error("task handler failed", exc_info=exc)
    return _json({"error": "internal error"}, 500)


@dataclass
class TaskContext:
    """What a handler gets besides the body: ids to log with, and the agent's log writer."""

    trace_id: str | None
    task_id: str | None
    correlation_id: str | None
    log: LogWriter

    def info(self, message: str, data: Any = None) -> None:
        self.log.info(message, data, task_id=self.task_id, trace_id=self.trace_id, correlation_id=self.correlation_id)


class AgentApp:
    def __init__(
        self,
        *,
        slug: str,
        service: str,
        task_types: list[str],
        endpoint: str,
        public_url: str,
        config_service: str,
        limits: dict[str, dict[str, int]] | None = None,
        heartbeat_s: float = 10.0,
        config: AgentConfig | None = None,
    ) -> None:
        self.slug = slug
        self.service = service
        self.task_types = task_types
        self.endpoint = endpoint
        self.public_url = public_url
        self.config_service = config_service
        self.limits = limits or {}
        self.heartbeat_s = heartbeat_s
        self.config = config or AgentConfig.from_env()
        self.orchestrator = self.config.opsloop_url.rstrip("/")
        self.log_url = (self.config.logging_url or self.config.opsloop_url).rstrip("/") + "/log"
        self.http = httpx.AsyncClient(timeout=5.0, headers={"X-Internal-Key": self.config.internal_key})
        self.log = LogWriter(service, self._ship_logs)
        self.registered = asyncio.Event()
        self.cancelled: set[str] = set()
        self._handlers: dict[str, Handler] = {}
        self._fast = FastRoutes()  # task routes: served ahead of FastAPI's stack, documented by it
        self.app = self._build()

    async def _ship_logs(self, batch: list[dict[str, Any]]) -> None:
        body = [
            {
                "service": e["service"],
                "level": e["level"],
                "message": e["message"],
                "data": e["data"],
                "taskId": e["task_id"],
                "traceId": e["trace_id"],
                "correlationId": e["correlation_id"],
            }
            for e in batch
        ]
        resp = await self.http.post(self.log_url, content=jsonutil.dumps(body), headers={"content-type": "application/json"})
        if resp.status_code >= 500 or resp.status_code in (401, 403, 408, 429):
            raise RuntimeError(f"log sink answered HTTP {resp.status_code}")  # kept and retried
        if resp.status_code >= 400:  # refused as such: dropped, counted and reported by the writer
            raise SinkRejected(f"log sink refused the batch: HTTP {resp.status_code} {resp.text[:200]}")

    def handler(self, path: str) -> Callable[[Handler], Handler]:
        """Register an internal-key-only POST route that takes a task body and returns JSON."""

        def register(fn: Handler) -> Handler:
            self._handlers[path] = fn
            # Served ahead of FastAPI's middleware and routing (HotRoutes): the framework's layers
            # cost more CPU than the handler itself. One declaration gives both ways in.
            self._fast.add(FastRoute("POST", path, self._wrap(fn), f"Run a task ({path})"), self.app)
            return fn

        return register

    def _auth(self, request: Request) -> Response | None:
        if key_matches(request.headers.get("x-internal-key"), self.config.internal_key):
            return None
        if request.headers.get("authorization"):
            return _json({"error": "This service takes the internal key (X-Internal-Key)"}, 403)
        return _json({"error": "Unauthorized"}, 401, {"WWW-Authenticate": 'Basic realm="opsloop-agent"'})

    def _wrap(self, fn: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def route(request: Request) -> Response:
            refused = self._auth(request)
            if refused:
                return refused
            raw = await request.body()
            if len(raw) > self.config.max_body_bytes:
                return _json({"error": "request body too large"}, 413)
            try:
                body = jsonutil.parse(raw) if raw else None
            except jsonutil.JSONRejected as exc:
                return _json({"error": exc.message}, 400)
            if not isinstance(body, dict):
                return _json({"error": "request body must be a JSON object"}, 400)
            for key in ("traceId", "taskId", "correlationId"):
                if body.get(key) is not None and not isinstance(body[key], str):
                    return _json({"error": f"{key} must be a string"}, 400)
            ctx = TaskContext(body.get("traceId"), body.get("taskId"), body.get("correlationId"), self.log)
            output = await fn(body, ctx)
            try:  # checked here, so the orchestrator is told why instead of storing what it cannot
                encoded = jsonutil.encode_checked(output, "task result", jsonutil.ANSWER_DEPTH)
            except jsonutil.JSONRejected as exc:
                ctx.log.error(f"task result refused: {exc.message}", task_id=ctx.task_id, trace_id=ctx.trace_id)
                return _json({"error": exc.message}, 422)
            return Response(encoded, media_type="application/json")

        route.__name__ = fn.__name__
        return route

    def _build(self) -> FastAPI:
        @contextlib.asynccontextmanager
        async def lifespan(_: FastAPI) -> AsyncIterator[None]:
            self.log.start()
            loop = asyncio.create_task(self._register_and_beat())
            tune_gc()
            try:
                yield
            finally:
                loop.cancel()
                await asyncio.gather(loop, return_exceptions=True)
                await self.log.stop(timeout_s=3)
                await self.http.aclose()

        app = FastAPI(title=self.service, lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
        app.add_middleware(HotRoutes, routes=self._fast.table, body_limit=self.config.max_body_bytes, on_error=_error_response)

        @app.get("/health", summary="Liveness (public)")
        async def health() -> Response:
            return _json(
                {
                    "service": self.service,
                    "status": "ok",
                    "timestamp": datetime.now(UTC).isoformat(),
                    "registered": self.registered.is_set(),
                    "logWriter": {"buffered": self.log.buffered, **self.log.stats},
                }
            )

        @app.get("/config/validate", summary="This agent's configuration report (no values)")
        async def config_validate(request: Request) -> Response:
            refused = self._auth(request)
            if refused:  # operators read it through the app's config page; here: the key only
                return refused
            return _json({**validate_config(self.config_service).as_json(), "service": self.service})

        @app.post("/cancel", summary="The orchestrator cancelled a task this agent may be running")
        async def cancel(request: Request) -> Response:
            refused = self._auth(request)
            if refused:
                return refused
            try:
                body = jsonutil.parse(await request.body())
            except jsonutil.JSONRejected as exc:
                return _json({"error": exc.message}, 400)
            task_id = body.get("taskId") if isinstance(body, dict) else None
            if not isinstance(task_id, str):
                return _json({"error": "taskId is required"}, 400)
            self.cancelled.add(task_id)
            self.log.info("task cancelled by the orchestrator", task_id=task_id, trace_id=body.get("traceId"))
            return _json({"cancelled": task_id})

        return app

    async def _register_and_beat(self) -> None:
        """Register (retrying while the orchestrator is not up), then heartbeat; re-register if forgotten."""
        body = {
            "slug": self.slug,
            "url": self.public_url,
            "taskTypes": self.task_types,
            "endpoint": self.endpoint,
            "limits": self.limits,
        }
        delay = 0.2
        while True:
            try:
                if not self.registered.is_set():
                    resp = await self.http.post(self.orchestrator + "/agents/register", json=body)
                    if resp.status_code == 200:
                        self.registered.set()
                        self.log.info(f"registered with {self.orchestrator} as {self.slug}", {"taskTypes": self.task_types})
                        delay = self.heartbeat_s
                    else:
                        delay = min(5.0, delay * 2)
                else:
                    resp = await self.http.post(self.orchestrator + "/agents/heartbeat", json={"slug": self.slug})
                    if resp.status_code == 404:
                        self.registered.clear()
                        delay = 0.2
                        continue
            except httpx.HTTPError:
                delay = min(5.0, delay * 2) if not self.registered.is_set() else self.heartbeat_s
            await asyncio.sleep(delay)
