"""A state-socket client that waits for what it expects instead of sleeping: an attacker's (or a
tab's) view of Reflex's `/_event` socket, with a chosen client token and cookie."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import websockets

Update = dict[str, Any]


class StateSocket:
    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.updates: list[Update] = []
        self.closed = asyncio.Event()
        self._changed = asyncio.Condition()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for msg in self.ws:
                if msg == "2":
                    await self.ws.send("3")
                elif isinstance(msg, str) and msg.startswith("42/_event,"):
                    name, data = json.loads(msg[len("42/_event,") :])
                    if name == "event":
                        async with self._changed:
                            self.updates.append(data)
                            self._changed.notify_all()
                elif isinstance(msg, str) and msg.startswith("41/_event"):  # the server disconnected us
                    break
        except websockets.ConnectionClosed:
            pass
        finally:
            self.closed.set()
            async with self._changed:
                self._changed.notify_all()

    async def send(self, e: dict[str, Any]) -> None:
        await self.ws.send("42/_event," + json.dumps(["event", e]))

    async def wait_for(self, predicate: Callable[[Update], bool], timeout: float = 15.0) -> Update:
        """The first update (already received or coming) for which `predicate` holds."""

        async def find() -> Update:
            async with self._changed:
                seen = 0
                while True:
                    for u in self.updates[seen:]:
                        if predicate(u):
                            return u
                    seen = len(self.updates)
                    if self.closed.is_set():
                        raise ConnectionError("state socket closed")
                    await self._changed.wait()

        return await asyncio.wait_for(find(), timeout)

    def text(self) -> str:
        return json.dumps(self.updates)


def delta_has(prefix: str) -> Callable[[Update], bool]:
    """An update whose delta touches a state whose name contains `prefix` (e.g. `config_state`)."""
    return lambda u: any(prefix in k for k in u.get("delta", {}))


@contextlib.asynccontextmanager
async def state_socket(base_url: str, cookie: str | None = None, token: str | None = None) -> AsyncIterator[StateSocket]:
    url = base_url.replace("http", "ws", 1) + f"/_event/?EIO=4&transport=websocket&token={token or uuid.uuid4()}"
    async with websockets.connect(url, additional_headers={"Cookie": cookie} if cookie else None) as ws:
        assert (await ws.recv()).startswith("0")
        await ws.send("40/_event,")
        assert (await ws.recv()).startswith("40/_event,")
        sock = StateSocket(ws)
        try:
            yield sock
        finally:
            sock._reader.cancel()
