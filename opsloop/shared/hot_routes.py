"""The busiest routes served ahead of the framework's middleware stack.

`POST /task` and `POST /log` (and an agent's task route) are most of the requests under load. Each
went through eight layers before its handler (error, telemetry and body-limit middleware, CORS,
exception handling, exit stacks, routing), about a quarter of the app's CPU per task (py-spy).
`HotRoutes` is added last, so it is the outermost middleware of our own, and hands a matching
request straight to its plain ASGI handler, keeping what those layers did for it:

- the body limit (413 by Content-Length, or while a chunked body is read);
- every error answered as JSON, as the app's exception handlers would (`on_error`);
- CORS and CSRF: a request that carries an `Origin` or `Sec-Fetch-Site` header takes the full
  stack, so browsers get the same headers and cross-site checks as on any route. Scripts, agents
  and the dispatcher send neither;
- JSON only: a body without `Content-Type: application/json` gets 415, as on every JSON route
  (`csrf.py`); one scan of the headers, no allocation for the usual value.

A hot route is declared once (`FastRoute`): the same declaration gives the handler `HotRoutes`
serves, the FastAPI route that documents it in OpenAPI (its body schema included) and serves
the requests that take the full stack (a browser's), and `FastRoutes` collects them per app. The
handler does its own auth and validates its body once, whichever way the request came.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from fastapi import APIRouter, FastAPI

from opsloop.shared.http import counting, declared_too_large, is_json, too_large_message

ErrorResponder = Callable[[Exception], Response]
Endpoint = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class FastRoute:
    """One hot route, declared once: its endpoint (auth, body parsed and validated once, answer)
    and what the OpenAPI document says of it. Called as a plain ASGI app by `HotRoutes`."""

    method: str
    path: str
    endpoint: Endpoint
    summary: str
    status_code: int = 200
    body_schema: dict[str, Any] | None = None
    tags: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)  # more OpenAPI operation fields

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await self.endpoint(Request(scope, receive))
        await response(scope, receive, send)

    def declare(self, table: APIRouter | FastAPI) -> None:
        """The framework's route for the same endpoint: the OpenAPI document, and the requests
        that take the full stack (a browser's: CORS and CSRF)."""
        endpoint = self.endpoint

        async def route(request: Request) -> Response:
            return await endpoint(request)

        route.__name__ = endpoint.__name__
        openapi_extra = dict(self.extra)
        if self.body_schema is not None:
            openapi_extra["requestBody"] = {"required": True, "content": {"application/json": {"schema": self.body_schema}}}
        table.add_api_route(
            self.path,
            route,
            methods=[self.method],
            summary=self.summary,
            status_code=self.status_code,
            tags=list(self.tags) or None,
            openapi_extra=openapi_extra or None,
        )


class FastRoutes:
    """An app's hot routes: `add` declares one on a route table and serves it from `table`
    (what `HotRoutes` looks requests up in; it may grow after start, as an agent's handlers do)."""

    def __init__(self) -> None:
        self.table: dict[tuple[str, str], ASGIApp] = {}

    def add(self, route: FastRoute, on: APIRouter | FastAPI) -> FastRoute:
        route.declare(on)
        self.table[(route.method, route.path)] = route
        return route


class HotRoutes:
    def __init__(self, app: ASGIApp, routes: dict[tuple[str, str], ASGIApp], body_limit: int, on_error: ErrorResponder) -> None:
        self.app = app
        self.routes = routes  # (method, path) -> handler; may grow after start (agent handlers)
        self.body_limit = body_limit
        self.on_error = on_error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = self.routes.get((scope.get("method", ""), scope["path"])) if scope["type"] == "http" else None
        if handler is None:
            await self.app(scope, receive, send)
            return
        json_body = False
        for name, value in scope["headers"]:
            if name == b"origin" or name == b"sec-fetch-site":  # a browser: CORS and CSRF checks are the full stack's
                await self.app(scope, receive, send)
                return
            if name == b"content-type":
                json_body = value == b"application/json" or is_json(value)
        if declared_too_large(scope["headers"], self.body_limit):
            await self.on_error(HTTPException(413, too_large_message(self.body_limit)))(scope, receive, send)
            return
        if not json_body:
            await self.on_error(HTTPException(415, "Content-Type must be application/json"))(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = True
            await send(message)

        try:
            await handler(scope, counting(receive, self.body_limit), tracked)
        except Exception as exc:
            if started:  # the answer is on its way: nothing sensible left to send
                raise
            await self.on_error(exc)(scope, receive, send)
