"""The FastAPI app that carries opsloop's REST API, SSE and WebSocket routes.

The Reflex app mounts itself under it (`api_transformer`), and `opsloop serve` runs it alone
(headless instances for scale-out). `create_api(manage_runtime=True)` also starts and stops the
runtime with the app's lifespan; under Reflex the runtime is started as a lifespan task instead.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

import psycopg
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from psycopg_pool import PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from opsloop.backend.api import openapi
from opsloop.backend.api.body_limit import counting, declared_too_large, too_large_message
from opsloop.backend.api.csrf import CrossSiteGuard
from opsloop.backend.api.deps import JSON, caller, error, process_runtime
from opsloop.backend.api.routes import agents, health, logs, session, stream, tasks
from opsloop.backend.api.security_headers import SecurityHeaders
from opsloop.backend.config import get_settings
from opsloop.backend.errors import DomainError
from opsloop.backend.plugins import installed as installed_plugins
from opsloop.shared.hot_routes import FastRoutes, HotRoutes

log = logging.getLogger("opsloop.api")


class BodyLimit:
    """413 for bodies over MAX_BODY_BYTES, by Content-Length or by counting a chunked body."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if declared_too_large(scope["headers"], self.limit):
            await error(413, too_large_message(self.limit))(scope, receive, send)
            return
        await self.app(scope, counting(receive, self.limit), send)


def create_api(*, manage_runtime: bool = False) -> FastAPI:
    settings = get_settings()

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if manage_runtime:
            rt = process_runtime()
            await rt.start()
            try:
                yield
            finally:
                await rt.stop()
        else:
            yield

    api = FastAPI(
        title="opsloop",
        version="1.0.0",
        description=(
            "REST API of opsloop. Every route takes Basic Auth (operators, scripts) or the "
            "X-Internal-Key header (services), except GET /health. Streams also take ?auth=base64(user:pass)."
        ),
        lifespan=lifespan,
        openapi_url=None,  # served below, behind auth like every route but /health
        docs_url=None,
        redoc_url=None,
    )

    # Every error answers `{error}`, on the full stack and on the hot routes alike.
    for exc_class in (DomainError, StarletteHTTPException, RequestValidationError, psycopg.OperationalError, PoolTimeout, Exception):
        api.add_exception_handler(exc_class, _handle)  # StarletteHTTPException: also the router's own 404 and 405

    docs = APIRouter(tags=["docs"], dependencies=[Depends(caller)])
    api.openapi = lambda: openapi.cached_openapi(api)  # type: ignore[method-assign]

    @docs.get("/openapi.json", include_in_schema=False)
    async def openapi_document() -> JSON:
        return JSON(api.openapi())

    @docs.get("/docs", include_in_schema=False)
    async def docs_page() -> HTMLResponse:
        return openapi.docs_page("/openapi.json")

    @docs.get(openapi.DOCS_ASSETS_PATH + "/{name}", include_in_schema=False)
    async def docs_asset(name: str) -> Response:
        return openapi.docs_asset(name)

    for router in (health.public, session.router):
        api.include_router(router, responses=openapi.COMMON_RESPONSES)
    plugin_routers = [router for plugin in installed_plugins() for router in plugin.routers()]
    for router in (docs, health.router, tasks.router, logs.router, agents.router, *plugin_routers):
        api.include_router(router, responses={**openapi.COMMON_RESPONSES, **openapi.AUTH_RESPONSES})
    hot = FastRoutes()  # declared once: served ahead of the stack, documented and reachable through it
    fast = APIRouter()
    for route in (tasks.CREATE, logs.INGEST):
        hot.add(route, fast)
    api.include_router(fast, responses={**openapi.COMMON_RESPONSES, **openapi.AUTH_RESPONSES})
    api.router.routes.append(Route("/logs/stream", stream.SSEStream(), methods=["GET"], name="logs_stream"))
    api.router.routes.append(WebSocketRoute("/ws", stream.websocket_endpoint, name="ws"))
    api.add_middleware(
        CORSMiddleware,
        allow_origins=settings.allowed_origins,
        allow_methods=["GET", "POST", "PATCH", "OPTIONS"],
        allow_headers=["Authorization", "Content-Type", "X-Internal-Key", "Last-Event-ID"],
        allow_credentials=False,
    )
    api.add_middleware(CrossSiteGuard, allowed_origins=settings.allowed_origins)  # CSRF: cross-site writes, non-JSON bodies
    api.add_middleware(BodyLimit, limit=settings.MAX_BODY_BYTES)
    api.add_middleware(HotRoutes, routes=hot.table, body_limit=settings.MAX_BODY_BYTES, on_error=error_response)
    api.add_middleware(SecurityHeaders)  # outermost: CSP and friends on every answer, the hot routes' too
    return api


def error_response(exc: Exception) -> Response:
    """The `{error}` answer for an exception raised by a route."""
    if isinstance(exc, DomainError):
        return error(exc.status, exc.message)
    if isinstance(exc, StarletteHTTPException):
        return error(exc.status_code, str(exc.detail), exc.headers)
    if isinstance(exc, RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {"loc": ["body"], "msg": "invalid request"}
        return error(400, f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}")
    if isinstance(exc, psycopg.OperationalError | PoolTimeout):  # the database is down or restarting: try again shortly
        log.warning("database unavailable: %s", str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        return error(503, "database unavailable; try again shortly", {"Retry-After": "2"})
    log.error("unhandled error", exc_info=exc)
    return error(500, "internal error")


async def _handle(_: Request, exc: Exception) -> Response:
    return error_response(exc)


def route_table(app: object) -> list[tuple[str, str, str]]:
    """Every (kind, method, path) an app serves, walking included routers: for docs and the auth matrix."""
    out: list[tuple[str, str, str]] = []

    def walk(routes: list[object]) -> None:
        for r in routes:
            inner = getattr(getattr(r, "original_router", None), "routes", None)
            if inner is not None:
                walk(inner)
            elif isinstance(r, WebSocketRoute) or type(r).__name__ == "APIWebSocketRoute":
                out.append(("ws", "WS", r.path))  # type: ignore[attr-defined]
            elif hasattr(r, "methods") and r.methods:
                for m in sorted(r.methods - {"HEAD"}):
                    out.append(("http", m, r.path))  # type: ignore[attr-defined]

    walk(getattr(app, "routes", []))
    return out
