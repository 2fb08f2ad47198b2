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

The routes stay registered in the app as well (OpenAPI document, auth matrix, and the path a
browser's request takes).
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from opsloop.backend.api.body_limit import counting, declared_too_large, too_large_message
from opsloop.backend.api.csrf import is_json

ErrorResponder = Callable[[Exception], Response]


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
