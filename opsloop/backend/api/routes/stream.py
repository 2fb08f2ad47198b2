"""Live streams: `GET /logs/stream` (Server-Sent Events) and the `/ws` WebSocket.

Both are fed by the process's live bus (every change on any instance, once). Each connection has
a bounded queue; a client that stops reading overflows it and is disconnected, which never slows
anyone else. SSE frames carry `id: <last log id>-<last event id>`, so a client reconnecting with
`Last-Event-ID` gets exactly what it missed, replayed from the database.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from starlette.requests import HTTPConnection, Request
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from opsloop.backend import jsonutil
from opsloop.backend.api.deps import error
from opsloop.backend.auth import Principal, authenticate
from opsloop.backend.config import get_settings
from opsloop.backend.live.bus import LiveMessage, Subscription
from opsloop.backend.runtime import get_runtime
from opsloop.backend.tasks.repository import event_camel

HEARTBEAT_S = 15.0
QUEUE_SIZE = 1000
REPLAY_LIMIT = 10_000


def stream_caller(conn: HTTPConnection) -> Principal | None:
    """Header auth, or `?auth=base64(user:pass)` (browsers cannot set headers on these)."""
    return authenticate(
        get_settings(),
        conn.headers.get("authorization"),
        conn.headers.get("x-internal-key"),
        conn.query_params.get("auth"),
    )


def origin_allowed(conn: HTTPConnection) -> bool:
    """No Origin header means a non-browser client (already authenticated); a browser's must be listed."""
    origin = conn.headers.get("origin")
    return origin is None or origin.rstrip("/") in get_settings().allowed_origins


def make_filter(params: dict[str, Any]) -> Callable[[LiveMessage], bool]:
    """Optional filters by service, level, task and trace id, and by message kind."""
    service, level = params.get("service"), params.get("level")
    task_id, trace_id = params.get("taskId"), params.get("traceId")
    kinds = set(params.get("kinds") or ("task", "event", "log"))

    def accepts(msg: LiveMessage) -> bool:
        if msg.kind not in kinds:
            return False
        row = msg.row
        if task_id and str(row["id"] if msg.kind == "task" else row.get("task_id")) != task_id:
            return False
        if trace_id and row.get("trace_id") != trace_id:
            return False
        if msg.kind == "log":
            return (not service or row["service"] == service) and (not level or row["level"] == level)
        return not service and not level

    return accepts


def _sse(event: str, data: Any, frame_id: str) -> bytes:
    return b"id: " + frame_id.encode() + b"\nevent: " + event.encode() + b"\ndata: " + jsonutil.dumps(data) + b"\n\n"


def _parse_last_event_id(raw: str | None) -> tuple[int, int] | None:
    if not raw:
        return None
    try:
        log_id, event_id = raw.split("-", 1)
        return int(log_id), int(event_id)
    except ValueError:
        return None


class SSEStream:
    """`GET /logs/stream` as a raw ASGI endpoint, so a stuck client can be cut off."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        if stream_caller(request) is None:
            await error(401, "Unauthorized", {"WWW-Authenticate": 'Basic realm="opsloop"'})(scope, receive, send)
            return
        if not origin_allowed(request):
            await error(403, "Origin not allowed")(scope, receive, send)
            return
        rt = get_runtime()
        params = dict(request.query_params)
        params["kinds"] = ("event", "log")
        accepts = make_filter(params)
        sub = rt.bus.subscribe(accepts, maxsize=QUEUE_SIZE)
        position = _parse_last_event_id(request.headers.get("last-event-id") or params.get("lastEventId"))
        try:
            if position is None:
                position = await _current_position(rt)
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", b"text/event-stream; charset=utf-8"),
                        (b"cache-control", b"no-cache"),
                        (b"x-accel-buffering", b"no"),
                    ],
                }
            )
            pump = asyncio.create_task(self._pump(send, sub, rt, params, position))
            gone = asyncio.create_task(_wait_disconnect(receive))
            dropped = asyncio.create_task(sub.closed.wait())
            done, pending = await asyncio.wait({pump, gone, dropped}, return_when=asyncio.FIRST_COMPLETED)
            for t in pending:
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            if pump in done and pump.exception() is None:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            rt.bus.unsubscribe(sub)

    async def _pump(self, send: Send, sub: Subscription, rt: Any, params: dict[str, Any], position: tuple[int, int]) -> None:
        last_log, last_event = position
        await send({"type": "http.response.body", "body": b"retry: 2000\n: connected\n\n", "more_body": True})
        for kind, row in await _replay(rt, params, last_log, last_event):
            if kind == "log":
                last_log = max(last_log, row["id"])
            else:
                last_event = max(last_event, row["id"])
            await send({"type": "http.response.body", "body": _frame(kind, row, last_log, last_event), "more_body": True})
        while True:
            try:
                msg = await asyncio.wait_for(sub.get(), timeout=HEARTBEAT_S)
            except TimeoutError:
                beat = _sse("heartbeat", {"ts": datetime.now(UTC)}, f"{last_log}-{last_event}")
                await send({"type": "http.response.body", "body": beat, "more_body": True})
                continue
            if msg is None:
                return
            if msg.kind == "log":
                if msg.id <= last_log:
                    continue  # already sent by the replay
                last_log = msg.id
            else:
                if msg.id <= last_event:
                    continue
                last_event = msg.id
            await send({"type": "http.response.body", "body": _frame(msg.kind, msg.row, last_log, last_event), "more_body": True})


def _frame(kind: str, row: dict[str, Any], last_log: int, last_event: int) -> bytes:
    if kind == "log":
        return _sse("log", row, f"{last_log}-{last_event}")
    return _sse("event", event_camel(row), f"{last_log}-{last_event}")


async def _current_position(rt: Any) -> tuple[int, int]:
    async with rt.pool.connection() as conn:
        row = await (
            await conn.execute("SELECT (SELECT coalesce(max(id), 0) FROM logs) AS l, (SELECT coalesce(max(id), 0) FROM task_events) AS e")
        ).fetchone()
    return int(row["l"]), int(row["e"])


async def _replay(rt: Any, params: dict[str, Any], last_log: int, last_event: int) -> list[tuple[str, dict[str, Any]]]:
    """What a reconnecting client missed, oldest first (bounded)."""
    from opsloop.backend.logs.repository import search_logs
    from opsloop.backend.tasks.repository import list_events, parse_task_id

    task_id = parse_task_id(params["taskId"]) if params.get("taskId") else None
    logs, _ = await search_logs(
        rt.pool,
        service=params.get("service") or None,
        level=params.get("level") or None,
        trace_id=params.get("traceId") or None,
        task_id=task_id,
        after_id=last_log,
        limit=REPLAY_LIMIT,
    )
    events: list[dict[str, Any]] = []
    if not params.get("service") and not params.get("level"):
        events, _ = await list_events(rt.pool, task_id=task_id, trace_id=params.get("traceId") or None, after_id=last_event, limit=REPLAY_LIMIT)
    merged = [("log", r) for r in logs] + [("event", r) for r in events]
    merged.sort(key=lambda kr: (kr[1]["ts"], kr[1]["id"]))
    return merged


async def _wait_disconnect(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


# -- WebSocket ------------------------------------------------------------------------------

WS_TYPES = {"task": "TASK_UPDATE", "event": "TASK_EVENT", "log": "LOG"}
KIND_BY_TYPE = {v: k for k, v in WS_TYPES.items()}


def ws_frame(msg: LiveMessage) -> bytes:
    if msg.kind == "task":
        data: Any = {"task": msg.row}
    elif msg.kind == "event":
        data = event_camel(msg.row)
    else:
        data = msg.row
    return jsonutil.dumps({"ts": datetime.now(UTC), "type": WS_TYPES[msg.kind], "data": data})


async def websocket_endpoint(ws: WebSocket) -> None:
    """`/ws`: TASK_UPDATE, TASK_EVENT and LOG frames; `{"type": "subscribe", ...}` narrows them."""
    if stream_caller(ws) is None:
        await ws.close(code=4401, reason="Unauthorized")
        return
    if not origin_allowed(ws):
        await ws.close(code=4403, reason="Origin not allowed")
        return
    rt = get_runtime()
    await ws.accept()
    params = _ws_params(dict(ws.query_params))
    holder: dict[str, Subscription] = {"sub": rt.bus.subscribe(make_filter(params), maxsize=QUEUE_SIZE)}

    async def pump() -> None:
        while True:
            msg = await holder["sub"].get()
            if msg is None:
                if holder["sub"].closed_reason == "resubscribe":
                    continue
                return
            await ws.send_text(ws_frame(msg).decode())

    async def read() -> None:
        while True:
            try:
                raw = await ws.receive_text()
            except WebSocketDisconnect:
                return
            try:
                message = jsonutil.loads(raw)
            except ValueError:
                await ws.send_text(jsonutil.dumps_str({"type": "ERROR", "data": {"error": "frame is not valid JSON"}}))
                continue
            kind = message.get("type") if isinstance(message, dict) else None
            if kind == "ping":
                await ws.send_text(jsonutil.dumps_str({"ts": datetime.now(UTC), "type": "PONG", "data": {}}))
            elif kind == "subscribe":
                old = holder["sub"]
                new_params = _ws_params(message.get("filter") or {})
                holder["sub"] = rt.bus.subscribe(make_filter(new_params), maxsize=QUEUE_SIZE)
                rt.bus.unsubscribe(old)
                old.closed_reason = "resubscribe"
                old.closed.set()
                await ws.send_text(jsonutil.dumps_str({"ts": datetime.now(UTC), "type": "SUBSCRIBED", "data": new_params}))

    async def watch_overflow() -> None:
        """A client that stopped reading may be blocked in a send: cut it off from here."""
        while True:
            sub = holder["sub"]
            await sub.closed.wait()
            if sub.closed_reason != "resubscribe":
                return

    tasks = [asyncio.create_task(pump()), asyncio.create_task(read()), asyncio.create_task(watch_overflow())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        if holder["sub"].closed_reason == "overflow":
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(code=4008, reason="too slow: queue overflowed"), timeout=1)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        rt.bus.unsubscribe(holder["sub"])
        if ws.client_state == WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):
                await ws.close()


def _ws_params(raw: dict[str, Any]) -> dict[str, Any]:
    params = {k: raw[k] for k in ("service", "level", "taskId", "traceId") if isinstance(raw.get(k), str) and raw[k]}
    types = raw.get("types")
    if isinstance(types, str):
        types = types.split(",")
    if isinstance(types, list):
        params["kinds"] = tuple(KIND_BY_TYPE[t] for t in types if t in KIND_BY_TYPE)
    return params
