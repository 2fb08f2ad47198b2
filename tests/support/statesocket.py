"""A minimal client of Reflex's state socket (Engine.IO v4 / Socket.IO v5 at `/_event`), to send
events the way an attacker could, without a browser."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import websockets


def event(name: str, payload: dict[str, Any] | None = None, path: str = "/") -> dict[str, Any]:
    return {"name": name, "payload": payload or {}, "router_data": {"pathname": path, "asPath": path}}


async def send_events(base_url: str, events: list[dict[str, Any]], cookie: str | None = None, wait: float = 1.5) -> list[dict[str, Any]]:
    """Open one state socket, send `events`, return every state update the server emitted."""
    url = base_url.replace("http", "ws", 1) + f"/_event/?EIO=4&transport=websocket&token={uuid.uuid4()}"
    got: list[dict[str, Any]] = []
    async with websockets.connect(url, additional_headers={"Cookie": cookie} if cookie else None) as ws:
        assert (await ws.recv()).startswith("0")
        await ws.send("40/_event,")
        assert (await ws.recv()).startswith("40/_event,")

        async def reader() -> None:
            async for msg in ws:
                if msg == "2":
                    await ws.send("3")
                elif isinstance(msg, str) and msg.startswith("42/_event,"):
                    name, data = json.loads(msg[len("42/_event,") :])
                    if name == "event":
                        got.append(data)

        task = asyncio.create_task(reader())
        for e in events:
            await ws.send("42/_event," + json.dumps(["event", e]))
            await asyncio.sleep(0.2)
        await asyncio.sleep(wait)
        task.cancel()
    return got


def handler_name(state_cls: type, handler: str) -> str:
    from reflex_base.utils.format import format_event_handler

    return format_event_handler(state_cls.event_handlers[handler])


def send_events_sync(base_url: str, events: list[dict[str, Any]], cookie: str | None = None, wait: float = 1.5) -> list[dict[str, Any]]:
    """`send_events` from sync code, in its own thread (Playwright's sync API owns this thread's loop)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, send_events(base_url, events, cookie, wait)).result()
