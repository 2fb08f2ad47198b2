"""The live event bus of one process.

Triggers publish every committed task change, task event and log line on the PostgreSQL channel
`opsloop_live` as ids (see the initial migration). One LISTEN connection per process receives
them, fetches the rows in bounded batches on a connection of its own (so a busy pool never delays
live frames), and hands each message to every subscriber's bounded queue. A subscriber that
cannot keep up is closed (it reconnects and replays), so it never slows the others or the
writers. Because NOTIFY is delivered on commit, in commit order, whichever instance made the
change, every instance sees every change once.

After a lost connection the bus reconnects and catches up from the database: log lines and
events above the highest id it had seen, tasks updated since it was last known to be listening;
what was already delivered is not delivered again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import psycopg
from psycopg.rows import dict_row

from opsloop.backend.live import codec
from opsloop.backend.tasks.store import TaskStore

CHANNEL = "opsloop_live"
CATCH_UP_LIMIT = 100_000
# The log table's two statements (task rows and events come from the task store).
LOG_IDS_AFTER = "SELECT id FROM logs WHERE id > %s ORDER BY id LIMIT %s"
LOGS_BY_IDS = "SELECT * FROM logs WHERE id = ANY(%s)"
log = logging.getLogger("opsloop.live")

Kind = Literal["task", "event", "log"]
Reporter = Callable[[str, str, dict[str, Any]], None]


@dataclass(frozen=True)
class LiveMessage:
    """One committed change; `cache` holds its encoded frames so N consumers encode it once."""

    kind: Kind
    row: dict[str, Any]
    cache: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def id(self) -> Any:
        return self.row["id"]


Filter = Callable[[LiveMessage], bool]


@dataclass(eq=False)
class Subscription:
    """A consumer's bounded queue; `closed_reason` is set when the bus drops it.

    `get()` is safe to cancel (a timeout around it never loses a message): it only takes an item
    off the queue synchronously, and otherwise waits on an event.
    """

    queue: asyncio.Queue[LiveMessage]
    accepts: Filter | None = None
    route: tuple[str, str] | None = None
    closed_reason: str | None = None
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    ready: asyncio.Event = field(default_factory=asyncio.Event)

    def put(self, msg: LiveMessage) -> bool:
        """Queue without waiting; False when the queue is full."""
        try:
            self.queue.put_nowait(msg)
        except asyncio.QueueFull:
            return False
        self.ready.set()
        return True

    async def get(self) -> LiveMessage | None:
        """The next message, or None once the subscription was closed (overflow or shutdown)."""
        while True:
            if not self.queue.empty():
                return self.queue.get_nowait()
            if self.closed_reason is not None:
                return None
            self.ready.clear()
            await self.ready.wait()

    async def get_batch(self, limit: int, timeout: float | None = None) -> list[LiveMessage] | None:
        """Up to `limit` queued messages, waiting up to `timeout` for the first: [] on timeout,
        None once the subscription was closed. Consumers that write in bulk use this."""
        while True:
            if not self.queue.empty():
                return self.drain(limit)
            if self.closed_reason is not None:
                return None
            self.ready.clear()
            try:
                await asyncio.wait_for(self.ready.wait(), timeout)
            except TimeoutError:
                if self.queue.empty() and self.closed_reason is None:
                    return []

    def drain(self, limit: int) -> list[LiveMessage]:
        """Up to `limit` messages that are already queued (never waits)."""
        out: list[LiveMessage] = []
        while len(out) < limit and not self.queue.empty():
            out.append(self.queue.get_nowait())
        return out

    def close(self, reason: str) -> None:
        self.closed_reason = reason
        self.closed.set()
        self.ready.set()


class _Recent:
    """A bounded set of recently delivered ids (reconnect catch-up overlaps live notifications)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._set: set[int] = set()
        self._order: deque[int] = deque()

    def add(self, value: int) -> bool:
        """True if `value` was not seen recently (and remember it)."""
        if value in self._set:
            return False
        self._set.add(value)
        self._order.append(value)
        if len(self._order) > self.size:
            self._set.discard(self._order.popleft())
        return True


class LiveBus:
    def __init__(
        self,
        url: str,
        *,
        batch_window_s: float = 0.003,
        fetch_chunk: int = 500,
        idle_check_s: float = 5.0,
        report: Reporter | None = None,
    ) -> None:
        self.url = url
        self.batch_window_s = batch_window_s
        self.fetch_chunk = fetch_chunk
        self.idle_check_s = idle_check_s
        self.report = report
        self._subs: set[Subscription] = set()
        self._unrouted: set[Subscription] = set()
        self._routes: dict[tuple[str, str], set[Subscription]] = {}
        self._raw_listeners: list[Callable[[str], None]] = []
        self._pending: deque[tuple[str, str]] = deque()
        self._pending_ready = asyncio.Event()
        self._sent_versions: OrderedDict[str, int] = OrderedDict()
        self._recent = {"log": _Recent(200_000), "event": _Recent(50_000)}
        self._hwm: dict[str, int] | None = None  # highest log / event id notified so far
        self._alive_at: datetime | None = None  # database time we last knew we were listening
        self._lost_at: float | None = None
        self._fetch_conn: psycopg.AsyncConnection[dict[str, Any]] | None = None
        self.connected = asyncio.Event()
        self.stats = {"notifications": 0, "messages": 0, "dropped_subscribers": 0, "reconnects": 0, "caught_up": 0}

    # -- consumers -------------------------------------------------------------------------
    def subscribe(self, accepts: Filter | None = None, maxsize: int = 1000, route: tuple[str, str] | None = None) -> Subscription:
        """A new bounded subscription. `route` = ("trace", id) or ("task", id) says the consumer
        only wants changes of that trace or task (its filter still decides): such subscribers
        are looked up per change instead of every one of them being asked."""
        sub = Subscription(queue=asyncio.Queue(maxsize=maxsize), accepts=accepts, route=route)
        self._subs.add(sub)
        if route is None:
            self._unrouted.add(sub)
        else:
            self._routes.setdefault(route, set()).add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subs.discard(sub)
        if sub.route is None:
            self._unrouted.discard(sub)
        else:
            routed = self._routes.get(sub.route)
            if routed is not None:
                routed.discard(sub)
                if not routed:
                    del self._routes[sub.route]

    def on_notification(self, callback: Callable[[str], None]) -> None:
        """Raw payload callback (the dispatcher wakes on task notifications without a fetch)."""
        self._raw_listeners.append(callback)

    @property
    def subscriber_count(self) -> int:
        return len(self._subs)

    def _report(self, level: str, message: str, data: dict[str, Any]) -> None:
        if self.report is not None:
            with contextlib.suppress(Exception):
                self.report(level, message, data)

    # -- the loop ----------------------------------------------------------------------------
    async def run(self) -> None:
        fetcher = asyncio.create_task(self._fetch_loop(), name="live-fetch")
        try:
            backoff = 0.2
            while True:
                try:
                    await self._listen()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # any failure: the connection is gone or unusable
                    if self.connected.is_set():
                        self.connected.clear()
                        self._lost_at = time.monotonic()
                        self.stats["reconnects"] += 1
                        log.warning("live bus lost its connection (%s); reconnecting", exc)
                        self._report("warn", "live bus lost its database connection; reconnecting", {"error": str(exc)[:500]})
                        backoff = 0.2
                    await asyncio.sleep(backoff)
                    backoff = min(5.0, backoff * 2)
        finally:
            fetcher.cancel()
            await asyncio.gather(fetcher, return_exceptions=True)
            if self._fetch_conn is not None:
                with contextlib.suppress(Exception):
                    await self._fetch_conn.close()
            for sub in list(self._subs):
                self._close(sub, "shutdown")

    async def _listen(self) -> None:
        async with await psycopg.AsyncConnection.connect(self.url, autocommit=True, connect_timeout=5) as conn:
            await conn.execute(f"LISTEN {CHANNEL}")
            if self._hwm is None:
                last_log, last_event = await TaskStore.live_position(conn)
                self._hwm = {"log": last_log, "event": last_event}
            else:
                await self._catch_up(conn)
            self._alive_at = await self._clock(conn)
            self.connected.set()
            if self._lost_at is not None:
                down = round(time.monotonic() - self._lost_at, 3)
                self._lost_at = None
                log.warning("live bus reconnected after %.1fs", down)
                self._report("info", "live bus reconnected", {"down_s": down})
            while True:
                async for notify in conn.notifies(timeout=self.idle_check_s):
                    self._on_payload(notify.payload)
                # every few seconds: check the connection is really alive (a silently dropped
                # network would otherwise leave us listening to nothing), note when it was
                self._alive_at = await asyncio.wait_for(self._clock(conn), timeout=10)

    @staticmethod
    async def _clock(conn: psycopg.AsyncConnection[Any]) -> datetime:
        row = await (await conn.execute("SELECT clock_timestamp()")).fetchone()
        assert row is not None
        return row[0]

    def _on_payload(self, payload: str) -> None:
        self.stats["notifications"] += 1
        for cb in self._raw_listeners:
            try:
                cb(payload)
            except Exception:
                log.exception("live notification callback failed")
        note = codec.decode(payload)
        prefix, items = note.prefix, note.items
        if prefix in (codec.LOG, codec.EVENT) and self._hwm is not None:
            kind = codec.KIND_OF_PREFIX[prefix]
            top = max(int(i) for i in items)
            if top > self._hwm[kind]:
                self._hwm[kind] = top
        if not self._subs:
            return  # nobody to deliver to: skip the fetch
        self._pending.extend((prefix, item) for item in items)
        self._pending_ready.set()

    async def _catch_up(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """After a reconnect: queue what was committed while we were not listening."""
        assert self._hwm is not None
        found = 0
        for kind, prefix in (("event", codec.EVENT), ("log", codec.LOG)):
            if kind == "event":
                ids = await TaskStore.event_ids_after(conn, self._hwm[kind], CATCH_UP_LIMIT)
            else:
                ids = [int(r[0]) for r in await (await conn.execute(LOG_IDS_AFTER, (self._hwm[kind], CATCH_UP_LIMIT))).fetchall()]
            if ids:
                self._hwm[kind] = max(self._hwm[kind], ids[-1])
                if self._subs:
                    self._pending.extend((prefix, str(i)) for i in ids)
                found += len(ids)
        if self._alive_at is not None and self._subs:
            since = self._alive_at - timedelta(seconds=10)  # margin: transactions in flight when we lost it
            changes = await TaskStore.changed_since(conn, since, 10_000)
            self._pending.extend((codec.TASK, f"{task_id}:{version}") for task_id, version in changes)
            found += len(changes)
        self.stats["caught_up"] += found
        if self._pending:
            self._pending_ready.set()

    async def _fetch_loop(self) -> None:
        while True:
            await self._pending_ready.wait()
            if self.batch_window_s:
                await asyncio.sleep(self.batch_window_s)
            self._pending_ready.clear()
            while self._pending:
                n = min(self.fetch_chunk, len(self._pending))
                batch = [self._pending.popleft() for _ in range(n)]
                try:
                    await asyncio.wait_for(self._publish(batch), timeout=30)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # database unavailable: retry the batch shortly
                    log.warning("live fetch failed (%d pending): %s", len(batch) + len(self._pending), exc)
                    self._pending.extendleft(reversed(batch))
                    if self._fetch_conn is not None:
                        with contextlib.suppress(Exception):
                            await self._fetch_conn.close()
                        self._fetch_conn = None
                    await asyncio.sleep(0.5)
                    self._pending_ready.set()
                    break

    async def _connection(self) -> psycopg.AsyncConnection[dict[str, Any]]:
        if self._fetch_conn is None or self._fetch_conn.closed:
            self._fetch_conn = await psycopg.AsyncConnection.connect(self.url, autocommit=True, row_factory=dict_row, connect_timeout=5)
        return self._fetch_conn

    async def _publish(self, batch: list[tuple[str, str]]) -> None:
        if not self._subs:
            return
        task_ids = list(dict.fromkeys(uuid.UUID(codec.task_id_of(i)) for p, i in batch if p == codec.TASK))
        event_ids = [int(i) for p, i in batch if p == codec.EVENT]
        log_ids = [int(i) for p, i in batch if p == codec.LOG]
        tasks: dict[str, dict[str, Any]] = {}
        events: dict[int, dict[str, Any]] = {}
        logs: dict[int, dict[str, Any]] = {}
        conn = await self._connection()
        if task_ids:
            for r in await TaskStore.wire_tasks(conn, task_ids):
                tasks[str(r["id"])] = r
        if event_ids:
            for r in await TaskStore.wire_events(conn, event_ids):
                events[r["id"]] = r
        if log_ids:
            for r in await (await conn.execute(LOGS_BY_IDS, (log_ids,))).fetchall():
                logs[r["id"]] = r
        for prefix, item in batch:
            if prefix == codec.TASK:
                row = tasks.get(codec.task_id_of(item))
                if row is None or not self._first_time(str(row["id"]), row["version"]):
                    continue
                self._dispatch(LiveMessage("task", row))
            elif prefix == codec.EVENT:
                row = events.pop(int(item), None)
                if row is not None and self._recent["event"].add(row["id"]):
                    self._dispatch(LiveMessage("event", row))
            elif prefix == codec.LOG:
                row = logs.pop(int(item), None)
                if row is not None and self._recent["log"].add(row["id"]):
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
        candidates = list(self._unrouted)
        if self._routes:
            row = msg.row
            trace = row.get("trace_id")
            task = row["id"] if msg.kind == "task" else row.get("task_id")
            for route in (("trace", trace), ("task", str(task) if task is not None else None)):
                if route[1] is not None and route in self._routes:
                    candidates.extend(self._routes[route])
        for sub in candidates:
            if sub.accepts is not None and not sub.accepts(msg):
                continue
            if not sub.put(msg):
                self.stats["dropped_subscribers"] += 1
                self._close(sub, "overflow")

    def _close(self, sub: Subscription, reason: str) -> None:
        sub.close(reason)
        self.unsubscribe(sub)
