"""The live event bus of one process.

Triggers publish every committed task change, task event and log line on the PostgreSQL channel
`opsloop_live` as ids (see the initial migration). One LISTEN connection per process receives
them, fetches the rows in batches, and hands each message to every subscriber's bounded queue.
A subscriber that cannot keep up is closed (it reconnects and replays), so it never slows the
others or the writers. Because NOTIFY is delivered on commit, in commit order, whichever
instance made the change, every instance sees every change once.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

CHANNEL = "opsloop_live"
log = logging.getLogger("opsloop.live")

Kind = Literal["task", "event", "log"]


@dataclass(frozen=True)
class LiveMessage:
    kind: Kind
    row: dict[str, Any]

    @property
    def id(self) -> Any:
        return self.row["id"]


Filter = Callable[[LiveMessage], bool]


@dataclass(eq=False)
class Subscription:
    """A consumer's bounded queue; `closed_reason` is set when the bus drops it."""

    queue: asyncio.Queue[LiveMessage]
    accepts: Filter | None = None
    closed_reason: str | None = None
    closed: asyncio.Event = field(default_factory=asyncio.Event)

    async def get(self) -> LiveMessage | None:
        """The next message, or None once the subscription was closed (overflow or shutdown)."""
        if self.closed_reason and self.queue.empty():
            return None
        getter = asyncio.ensure_future(self.queue.get())
        closer = asyncio.ensure_future(self.closed.wait())
        done, pending = await asyncio.wait({getter, closer}, return_when=asyncio.FIRST_COMPLETED)
        for p in pending:
            p.cancel()
        if getter in done:
            return getter.result()
        return None


class LiveBus:
    def __init__(self, url: str, pool: AsyncConnectionPool, *, batch_window_s: float = 0.003) -> None:
        self.url = url
        self.pool = pool
        self.batch_window_s = batch_window_s
        self._subs: set[Subscription] = set()
        self._raw_listeners: list[Callable[[str], None]] = []
        self._pending: list[tuple[str, str]] = []
        self._pending_ready = asyncio.Event()
        self._sent_versions: OrderedDict[str, int] = OrderedDict()
        self._hwm = {"log": 0, "event": 0}
        self.connected = asyncio.Event()
        self.stats = {"notifications": 0, "messages": 0, "dropped_subscribers": 0, "reconnects": 0}

    # -- consumers -------------------------------------------------------------------------
    def subscribe(self, accepts: Filter | None = None, maxsize: int = 1000) -> Subscription:
        sub = Subscription(queue=asyncio.Queue(maxsize=maxsize), accepts=accepts)
        self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subs.discard(sub)

    def on_notification(self, callback: Callable[[str], None]) -> None:
        """Raw payload callback (the dispatcher wakes on task notifications without a fetch)."""
        self._raw_listeners.append(callback)

    @property
    def subscriber_count(self) -> int:
        return len(self._subs)

    # -- the loop ----------------------------------------------------------------------------
    async def run(self) -> None:
        fetcher = asyncio.create_task(self._fetch_loop(), name="live-fetch")
        try:
            backoff = 0.2
            first = True
            while True:
                try:
                    await self._listen(catch_up=not first)
                except (psycopg.OperationalError, OSError) as exc:
                    self.connected.clear()
                    log.warning("live bus lost its connection (%s); reconnecting", exc)
                    self.stats["reconnects"] += 1
                    first = False
                    await asyncio.sleep(backoff)
                    backoff = min(5.0, backoff * 2)
        finally:
            fetcher.cancel()
            for sub in list(self._subs):
                self._close(sub, "shutdown")

    async def _listen(self, catch_up: bool) -> None:
        async with await psycopg.AsyncConnection.connect(self.url, autocommit=True) as conn:
            await conn.execute(f"LISTEN {CHANNEL}")
            self.connected.set()
            if catch_up:
                await self._catch_up()
            async for notify in conn.notifies():
                self.stats["notifications"] += 1
                payload = notify.payload
                for cb in self._raw_listeners:
                    cb(payload)
                prefix, _, ids = payload.partition(":")
                for item in ids.split(","):
                    self._pending.append((prefix, item))
                self._pending_ready.set()

    async def _catch_up(self) -> None:
        """After a reconnect: queue what was committed while we were not listening."""
        async with self.pool.connection() as conn:
            for kind, table, prefix in (("log", "logs", "l"), ("event", "task_events", "e")):
                rows = await (await conn.execute(f"SELECT id FROM {table} WHERE id > %s ORDER BY id LIMIT 10000", (self._hwm[kind],))).fetchall()
                self._pending.extend((prefix, str(r["id"])) for r in rows)
        self._pending_ready.set()

    async def _fetch_loop(self) -> None:
        while True:
            await self._pending_ready.wait()
            await asyncio.sleep(self.batch_window_s)
            self._pending_ready.clear()
            batch, self._pending = self._pending, []
            try:
                await self._publish(batch)
            except Exception as exc:  # database unavailable: retry the batch shortly
                log.warning("live fetch failed (%d pending): %s", len(batch), exc)
                self._pending[:0] = batch
                await asyncio.sleep(0.5)
                self._pending_ready.set()

    async def _publish(self, batch: list[tuple[str, str]]) -> None:
        task_ids = list(dict.fromkeys(uuid.UUID(i.split(":")[0]) for p, i in batch if p == "t"))
        event_ids = [int(i) for p, i in batch if p == "e"]
        log_ids = [int(i) for p, i in batch if p == "l"]
        tasks: dict[str, dict[str, Any]] = {}
        events: dict[int, dict[str, Any]] = {}
        logs: dict[int, dict[str, Any]] = {}
        async with self.pool.connection() as conn:
            conn.row_factory = dict_row
            if task_ids:
                for r in await (await conn.execute("SELECT * FROM tasks WHERE id = ANY(%s)", (task_ids,))).fetchall():
                    tasks[str(r["id"])] = r
            if event_ids:
                for r in await (await conn.execute("SELECT * FROM task_events WHERE id = ANY(%s)", (event_ids,))).fetchall():
                    events[r["id"]] = r
            if log_ids:
                for r in await (await conn.execute("SELECT * FROM logs WHERE id = ANY(%s)", (log_ids,))).fetchall():
                    logs[r["id"]] = r
        for prefix, item in batch:
            if prefix == "t":
                row = tasks.get(item.split(":")[0])
                if row is None or not self._first_time(str(row["id"]), row["version"]):
                    continue
                self._dispatch(LiveMessage("task", row))
            elif prefix == "e":
                row = events.pop(int(item), None)
                if row is not None:
                    self._hwm["event"] = max(self._hwm["event"], row["id"])
                    self._dispatch(LiveMessage("event", row))
            elif prefix == "l":
                row = logs.pop(int(item), None)
                if row is not None:
                    self._hwm["log"] = max(self._hwm["log"], row["id"])
                    self._dispatch(LiveMessage("log", row))

    def _first_time(self, task_id: str, version: int) -> bool:
        """Each task version is sent once, even when two notifications fetched the same row."""
        if self._sent_versions.get(task_id, 0) >= version:
            return False
        self._sent_versions[task_id] = version
        self._sent_versions.move_to_end(task_id)
        if len(self._sent_versions) > 100_000:
            self._sent_versions.popitem(last=False)
        return True

    def _dispatch(self, msg: LiveMessage) -> None:
        self.stats["messages"] += 1
        for sub in list(self._subs):
            if sub.accepts is not None and not sub.accepts(msg):
                continue
            try:
                sub.queue.put_nowait(msg)
            except asyncio.QueueFull:
                self.stats["dropped_subscribers"] += 1
                self._close(sub, "overflow")

    def _close(self, sub: Subscription, reason: str) -> None:
        sub.closed_reason = reason
        sub.closed.set()
        self._subs.discard(sub)
