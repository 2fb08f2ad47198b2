"""Live streams: `GET /logs/stream` (Server-Sent Events) and the `/ws` WebSocket.

Both are fed by the process's live bus (every change on any instance, once). Each connection has
a bounded queue; a client that stops reading overflows it and is disconnected, which never slows
anyone else. SSE frames carry `id: <last log id>-<last event id>`, so a client reconnecting with
`Last-Event-ID` gets exactly what it missed, replayed from the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection, Request
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketState

from opsloop.backend import jsonutil
from opsloop.backend.api.deps import error, process_runtime
from opsloop.backend.api.identity import authenticate_limited
from opsloop.backend.auth import Principal
from opsloop.backend.config import get_settings
from opsloop.backend.live.bus import LiveMessage, Subscription
from opsloop.backend.live.filter import Accepts, route_of, stream_filter
from opsloop.backend.logs.repository import search_logs
from opsloop.backend.models import LOG_LEVELS
from opsloop.backend.runtime import Runtime
from opsloop.backend.tasks.model import event_camel
from opsloop.backend.tasks.store import EventFilter, TaskStore

log = logging.getLogger("opsloop.stream")
REPLAY_LIMIT = 10_000
COALESCE = 256  # SSE frames written in one send when a client is behind


def stream_caller(conn: HTTPConnection) -> Principal | None:
    """Header auth, or `?auth=base64(user:pass)` (browsers cannot set headers on these), behind
    the same per-address guessing limiter as every route: raises a 429 HTTPException while the
    address is blocked. A request with no credentials at all is not counted."""
    authorization, key, query = conn.headers.get("authorization"), conn.headers.get("x-internal-key"), conn.query_params.get("auth")
    if authorization is None and key is None and query is None:
        return None
    return authenticate_limited(conn, authorization, key, query)


def origin_allowed(conn: HTTPConnection) -> bool:
    """No Origin header means a non-browser client (already authenticated); a browser's must be listed."""
    origin = conn.headers.get("origin")
    return origin is None or origin.rstrip("/") in get_settings().allowed_origins


def check_params(params: dict[str, Any]) -> str | None:
    """A filter that can never match is a client bug: say so (400) instead of streaming nothing."""
    level = params.get("level")
    if level and level not in LOG_LEVELS:
        return f"level must be one of {', '.join(LOG_LEVELS)}"
    task_id = params.get("taskId")
    if task_id:
        try:
            params["taskId"] = str(uuid.UUID(task_id))
        except (ValueError, AttributeError, TypeError):
            return "taskId must be a UUID"
    return None


def make_filter(params: dict[str, Any]) -> Accepts:
    """Optional filters by service, level, task and trace id, and by message kind (`live/filter.py`)."""
    return stream_filter(params)


def _heartbeat_s() -> float:
    return get_settings().OPSLOOP_SSE_HEARTBEAT_S  # SPEC: at least every 15 s


def _queue_size() -> int:
    return get_settings().OPSLOOP_STREAM_QUEUE  # per connection; above the bus's fetch chunk


# -- Server-Sent Events ---------------------------------------------------------------------


def _sse_body(kind: str, row: dict[str, Any]) -> bytes:
    if kind == "log":
        return b"\nevent: log\ndata: " + jsonutil.dumps(row) + b"\n\n"
    return b"\nevent: event\ndata: " + jsonutil.dumps(event_camel(row)) + b"\n\n"


def _sse_frame(msg: LiveMessage, frame_id: bytes) -> bytes:
    body = msg.cache.get("sse")
    if body is None:
        body = msg.cache["sse"] = _sse_body(msg.kind, msg.row)
    return b"id: " + frame_id + body


def _position_id(last_log: int, last_event: int) -> bytes:
    return f"{last_log}-{last_event}".encode()


def _parse_last_event_id(raw: str | None) -> tuple[int, int] | None:
    if not raw:
        return None
    try:
        log_id, event_id = raw.split("-", 1)
        return int(log_id), int(event_id)
    except ValueError:
        return None


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "?"


def _chunk(body: bytes) -> dict[str, Any]:
    return {"type": "http.response.body", "body": body, "more_body": True}


class SSEStream:
    """`GET /logs/stream` as a raw ASGI endpoint, so a stuck client can be cut off."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            who = stream_caller(request)
        except HTTPException as exc:  # this address is guessing: 429 with Retry-After
            await error(exc.status_code, str(exc.detail), exc.headers)(scope, receive, send)
            return
        if who is None:
            await error(401, "Unauthorized", {"WWW-Authenticate": 'Basic realm="opsloop"'})(scope, receive, send)
            return
        if not origin_allowed(request):
            await error(403, "Origin not allowed")(scope, receive, send)
            return
        params: dict[str, Any] = dict(request.query_params)
        problem = check_params(params)
        if problem:
            await error(400, problem)(scope, receive, send)
            return
        rt = process_runtime()
        if not rt.started:
            await error(503, "opsloop is starting")(scope, receive, send)
            return
        params["kinds"] = ("event", "log")
        sub = rt.bus.subscribe(make_filter(params), maxsize=_queue_size(), route=route_of(params))  # before reading the position
        try:
            position = _parse_last_event_id(request.headers.get("last-event-id") or params.get("lastEventId"))
            resumed = position is not None
            if position is None:
                try:
                    position = await _current_position(rt)
                except Exception:
                    await error(503, "database unavailable")(scope, receive, send)
                    return
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
            pump = asyncio.create_task(self._pump(send, sub, rt, params, position, resumed))
            gone = asyncio.create_task(_wait_disconnect(receive))
            dropped = asyncio.create_task(sub.closed.wait())
            done, pending = await asyncio.wait({pump, gone, dropped}, return_when=asyncio.FIRST_COMPLETED)
            for t in pending:
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            if sub.closed_reason == "overflow":
                log.warning("SSE client %s dropped: it stopped reading and its queue of %d overflowed", _client(scope), _queue_size())
            if pump in done and pump.exception() is None:
                # orderly end (shutdown): finish the response. A stuck client is simply cut off.
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(send({"type": "http.response.body", "body": b"", "more_body": False}), 1.0)
        finally:
            rt.bus.unsubscribe(sub)

    async def _pump(self, send: Send, sub: Subscription, rt: Runtime, params: dict[str, Any], position: tuple[int, int], resumed: bool) -> None:
        last_log, last_event = position
        await send(_chunk(b"retry: 2000\n: connected\n\n"))
        replayed: dict[str, set[int]] = {"log": set(), "event": set()}
        if resumed:
            parts: list[bytes] = []
            for msg in await _replay(rt, params, last_log, last_event):
                replayed[msg.kind].add(msg.id)
                if msg.kind == "log":
                    last_log = max(last_log, msg.id)
                else:
                    last_event = max(last_event, msg.id)
                parts.append(_sse_frame(msg, _position_id(last_log, last_event)))
                if len(parts) >= COALESCE:
                    await send(_chunk(b"".join(parts)))
                    parts = []
            if parts:
                await send(_chunk(b"".join(parts)))
        while True:
            batch = await sub.get_batch(COALESCE, timeout=_heartbeat_s())
            if batch is None:
                return
            if not batch:
                beat = (
                    b"id: " + _position_id(last_log, last_event) + b"\nevent: heartbeat\ndata: " + jsonutil.dumps({"ts": datetime.now(UTC)}) + b"\n\n"
                )
                await send(_chunk(beat))
                continue
            parts = []
            for msg in batch:
                seen = replayed.get(msg.kind)
                if seen and msg.id in seen:
                    seen.discard(msg.id)  # already sent by the replay
                    continue
                # Max ids, not the last one: rows committed out of id order are still sent live.
                if msg.kind == "log":
                    last_log = max(last_log, msg.id)
                else:
                    last_event = max(last_event, msg.id)
                parts.append(_sse_frame(msg, _position_id(last_log, last_event)))
            if parts:
                await send(_chunk(b"".join(parts)))


async def _current_position(rt: Runtime) -> tuple[int, int]:
    async with rt.pool.connection() as conn:
        return await TaskStore.live_position(conn)


async def _replay(rt: Runtime, params: dict[str, Any], last_log: int, last_event: int) -> list[LiveMessage]:
    """What a reconnecting client missed, oldest first (the oldest REPLAY_LIMIT of each kind)."""
    task_id = uuid.UUID(params["taskId"]) if params.get("taskId") else None
    logs, _ = await search_logs(
        rt.pool,
        service=params.get("service") or None,
        level=params.get("level") or None,
        trace_id=params.get("traceId") or None,
        task_id=task_id,
        after_id=last_log,
        limit=REPLAY_LIMIT,
        oldest_first=True,
    )
    events: list[dict[str, Any]] = []
    if not params.get("service") and not params.get("level"):
        found, _ = await rt.tasks.list_events(
            EventFilter(task_id=task_id, trace_id=params.get("traceId") or None, after_id=last_event), limit=REPLAY_LIMIT, oldest_first=True
        )
        events = [e.row() for e in found]
    merged = [LiveMessage("log", r) for r in logs] + [LiveMessage("event", r) for r in events]
    merged.sort(key=lambda m: (m.row["ts"], m.kind == "log", m.id))
    return merged


async def _wait_disconnect(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


# -- WebSocket ------------------------------------------------------------------------------

WS_TYPES = {"task": "TASK_UPDATE", "event": "TASK_EVENT", "log": "LOG"}
KIND_BY_TYPE = {v: k for k, v in WS_TYPES.items()}


def ws_frame(msg: LiveMessage, position: str) -> str:
    """The frame's JSON text: encoded once per change whatever the number of connections, then
    given this connection's position (`id`, as SSE's: `<last log id>-<last event id>`)."""
    text = msg.cache.get("ws")
    if text is None:
        if msg.kind == "task":
            data: Any = {"task": msg.row}
        elif msg.kind == "event":
            data = event_camel(msg.row)
        else:
            data = msg.row
        text = msg.cache["ws"] = jsonutil.dumps_str({"ts": datetime.now(UTC), "type": WS_TYPES[msg.kind], "data": data})
    return text[:-1] + ',"id":"' + position + '"}'


class Position:
    """Where a WebSocket client is in the logs and events it was sent; a reconnect with
    `?lastEventId=` resumes from it (task rows have no sequence: the replay sends the current row
    of every task whose events were missed)."""

    def __init__(self, last_log: int, last_event: int) -> None:
        self.last_log, self.last_event = last_log, last_event

    def advance(self, msg: LiveMessage) -> str:
        # Max ids, not the last one: rows committed out of id order are still sent live.
        if msg.kind == "log":
            self.last_log = max(self.last_log, msg.id)
        elif msg.kind == "event":
            self.last_event = max(self.last_event, msg.id)
        return f"{self.last_log}-{self.last_event}"


def _control(kind: str, data: Any) -> str:
    return jsonutil.dumps_str({"ts": datetime.now(UTC), "type": kind, "data": data})


async def _deny(ws: WebSocket, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
    """Refuse the handshake with a real HTTP answer (401, 403, 503), as every other route does."""
    if "websocket.http.response" in ws.scope.get("extensions", {}):
        await ws.send_denial_response(error(status, message, headers))
    else:  # a server without the denial extension: close before accepting (the client sees 403)
        await ws.close(code=4000 + status, reason=message)


async def websocket_endpoint(ws: WebSocket) -> None:
    """`/ws`: TASK_UPDATE, TASK_EVENT and LOG frames; `{"type": "subscribe", ...}` narrows them.
    Every frame carries `id`; reconnecting with `?lastEventId=<id>` replays what was missed."""
    try:
        who = stream_caller(ws)
    except HTTPException as exc:  # this address is guessing: 429 with Retry-After
        await _deny(ws, exc.status_code, str(exc.detail), exc.headers)
        return
    if who is None:
        await _deny(ws, 401, "Unauthorized", {"WWW-Authenticate": 'Basic realm="opsloop"'})
        return
    if not origin_allowed(ws):
        await _deny(ws, 403, "Origin not allowed")
        return
    rt = process_runtime()
    params, problem = _ws_params(dict(ws.query_params))
    resume = _parse_last_event_id(ws.query_params.get("lastEventId"))
    if not problem and ws.query_params.get("lastEventId") and resume is None:
        problem = "lastEventId must be the id of a frame (<log id>-<event id>)"
    holder: dict[str, Subscription] = {
        "sub": rt.bus.subscribe(make_filter(params), maxsize=_queue_size(), route=route_of(params))
    }  # before the position
    try:
        start = resume or (await _current_position(rt) if not problem else (0, 0))
    except Exception:
        rt.bus.unsubscribe(holder["sub"])
        await _deny(ws, 503, "database unavailable; try again shortly", {"Retry-After": "2"})
        return
    await ws.accept()
    if problem:
        rt.bus.unsubscribe(holder["sub"])
        await ws.send_text(_control("ERROR", {"error": problem}))
        await ws.close(code=4400, reason=problem[:120])
        return
    position = Position(*start)
    replayed: dict[str, set[int]] = {"log": set(), "event": set()}

    async def pump() -> None:
        if resume is not None:
            for msg in await _ws_replay(rt, params, position):
                if msg.kind in replayed:
                    replayed[msg.kind].add(msg.id)
                await ws.send_text(ws_frame(msg, position.advance(msg)))
        while True:
            sub = holder["sub"]
            batch = await sub.get_batch(COALESCE)
            if batch is None:
                if sub.closed_reason == "resubscribe":
                    continue
                return
            for msg in batch:
                seen = replayed.get(msg.kind)
                if seen and msg.id in seen:
                    seen.discard(msg.id)  # already sent by the replay
                    continue
                await ws.send_text(ws_frame(msg, position.advance(msg)))

    async def read() -> None:
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            raw = message.get("text")
            if raw is None:
                raw = (message.get("bytes") or b"").decode("utf-8", errors="replace")
            try:
                body = jsonutil.parse(raw, "frame")
            except jsonutil.JSONRejected as exc:
                await ws.send_text(_control("ERROR", {"error": exc.message}))
                continue
            kind = body.get("type") if isinstance(body, dict) else None
            if kind == "ping":
                await ws.send_text(_control("PONG", {}))
            elif kind == "subscribe":
                raw_filter = body.get("filter")
                new_params, problem = _ws_params(raw_filter if isinstance(raw_filter, dict) else {})
                if problem:
                    await ws.send_text(_control("ERROR", {"error": problem}))
                    continue
                old = holder["sub"]
                holder["sub"] = rt.bus.subscribe(make_filter(new_params), maxsize=_queue_size(), route=route_of(new_params))
                rt.bus.unsubscribe(old)
                old.close("resubscribe")
                await ws.send_text(_control("SUBSCRIBED", new_params))
            else:
                await ws.send_text(_control("ERROR", {"error": "unknown frame type (expected ping or subscribe)"}))

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
            log.warning("WebSocket client %s dropped: it stopped reading and its queue of %d overflowed", _client(ws.scope), _queue_size())
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(code=4008, reason="too slow: queue overflowed"), timeout=1)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        rt.bus.unsubscribe(holder["sub"])
        if ws.client_state == WebSocketState.CONNECTED and ws.application_state == WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), timeout=1)


async def _ws_replay(rt: Runtime, params: dict[str, Any], position: Position) -> list[LiveMessage]:
    """SSE's replay (logs and events after the position), then the current row of every task whose
    events were missed, for clients that take TASK_UPDATE frames."""
    kinds = set(params.get("kinds") or ("task", "event", "log"))
    missed = await _replay(rt, params, position.last_log, position.last_event)
    out = [m for m in missed if m.kind in kinds]
    if "task" in kinds and not params.get("service") and not params.get("level"):
        task_ids = list(dict.fromkeys(m.row["task_id"] for m in missed if m.kind == "event"))
        out.extend(LiveMessage("task", task.row()) for task in await rt.tasks.get_many(task_ids))
    return out


def _ws_params(raw: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """Filters from the query string or a subscribe frame; the error names the bad one."""
    params: dict[str, Any] = {k: raw[k] for k in ("service", "level", "taskId", "traceId") if isinstance(raw.get(k), str) and raw[k]}
    types = raw.get("types")
    if isinstance(types, str):
        types = types.split(",")
    if isinstance(types, list):
        unknown = [t for t in types if t not in KIND_BY_TYPE]
        if unknown:
            return params, f"types: unknown frame type {unknown[0]!r} (expected {', '.join(KIND_BY_TYPE)})"
        params["kinds"] = tuple(KIND_BY_TYPE[t] for t in types)
    return params, check_params(params)
