"""The tasks table: filters live in the URL, keyset paging on the server, rows updated live."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import reflex as rx

from opsloop.backend.errors import DomainError
from opsloop.backend.live.bus import LiveMessage
from opsloop.backend.models import TASK_STATUSES
from opsloop.backend.runtime import get_runtime
from opsloop.backend.tasks import repository as repo
from opsloop.state.display import task_table_row
from opsloop.state.live import refresh_soon, watch

log = logging.getLogger("opsloop.dashboard.tasks")
PAGE_SIZE = 25
WINDOWS = {"15m": timedelta(minutes=15), "1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7)}
FILTER_KEYS = ("status", "type", "corr", "trace", "window")
COUNTS_TTL_S = 2.0
_count_cache: dict[tuple, tuple[float, dict[str, int]]] = {}
_count_locks: dict[tuple, asyncio.Lock] = {}


def _fresh(hit: tuple[float, dict[str, int]] | None, newer_than: float | None = None) -> bool:
    """A cached count is fresh for COUNTS_TTL_S after its query started (and, with `newer_than`,
    only if the query started after that moment: it must include what changed then)."""
    return hit is not None and time.monotonic() - hit[0] < COUNTS_TTL_S and (newer_than is None or hit[0] >= newer_than)


async def cached_counts(params: dict[str, str], newer_than: float | None = None) -> dict[str, int]:
    """Counts by status, shared by every tab with the same filters for COUNTS_TTL_S.

    Single-flight: when twenty open dashboards ask at once, one query runs and the rest wait for
    its answer (a count over a big table is the most expensive thing the tasks view does).
    """
    key = _counts_key(params)
    hit = _count_cache.get(key)
    if _fresh(hit, newer_than):
        return hit[1]  # type: ignore[index]
    async with _count_locks.setdefault(key, asyncio.Lock()):
        hit = _count_cache.get(key)
        if _fresh(hit, newer_than):
            return hit[1]  # type: ignore[index]
        filters = {k: v for k, v in query_filters(params).items() if k != "status"}
        started = time.monotonic()
        counts = await repo.count_by_status(get_runtime().pool, **filters)
        if len(_count_cache) > 500:
            _count_cache.clear()
        _count_cache[key] = (started, counts)
    return counts


_count_refreshes: dict[tuple, asyncio.Task] = {}
_counts_changed: set[tuple] = set()


def live_counts(params: dict[str, str], changed: bool = True) -> dict[str, int] | None:
    """Counts for a live push or tick, without waiting: the cached ones (None before the first query).

    A push never waits for the count query (over many tasks it takes longer than the push itself,
    and every open tab would wait for it). Instead one refresh per filter set runs when the cached
    counts expire, and again as long as changes keep coming (each refresh only accepts a count
    whose query started after the changes it follows); each refresh is then pushed to the open
    tasks views with those filters. So the counts settle at most COUNTS_TTL_S after the last
    change, and are queried at most once per COUNTS_TTL_S. `changed=False` (a tick) only asks for
    a refresh when the cached counts have expired."""
    key = _counts_key(params)
    hit = _count_cache.get(key)
    if changed or not _fresh(hit):
        _counts_changed.add(key)
        if key not in _count_refreshes:
            _count_refreshes[key] = asyncio.create_task(_refresh_counts(key, params))
    return hit[1] if hit else None


async def _refresh_counts(key: tuple, params: dict[str, str]) -> None:
    try:
        while key in _counts_changed:
            hit = _count_cache.get(key)
            await asyncio.sleep(max(0.0, hit[0] + COUNTS_TTL_S - time.monotonic()) if hit else 0.0)
            changes_until = time.monotonic()
            _counts_changed.discard(key)
            await cached_counts(params, newer_than=changes_until)
            refresh_soon(TasksState, lambda watched: _counts_key(watched) == key)
    except Exception as exc:  # the database is away: wait a while (no retry per push), then let the next change try
        log.warning("refreshing the task counts failed: %r", exc)
        await asyncio.sleep(COUNTS_TTL_S)
    finally:
        _count_refreshes.pop(key, None)


def _counts_key(params: dict[str, str]) -> tuple:
    return tuple(sorted((k, v) for k, v in params.items() if v and k != "status"))


def query_filters(params: dict[str, str]) -> dict[str, Any]:
    window = WINDOWS.get(params.get("window", ""))
    return {
        "status": params.get("status") if params.get("status") in TASK_STATUSES else None,
        "type": params.get("type") or None,
        "correlation_id": params.get("corr") or None,
        "trace_id": params.get("trace") or None,
        "since": datetime.now(UTC) - window if window else None,
    }


class TaskRowsState(rx.State):
    """The rows shown, in a state of their own: every component that reads a state re-renders when
    any var of that state changes, and live updates change the rows many times a second, so they
    should re-render the table and nothing else (not the filters, selects and buttons)."""

    rows: list[dict[str, str]] = []


class TasksState(rx.State):
    counts: list[list[str]] = []
    status: str = ""
    type: str = ""
    corr: str = ""
    trace: str = ""
    window: str = ""
    page: int = 1
    has_next: bool = False
    loading: bool = False
    error: str = ""
    _cursors: list[str | None] = [None]
    _next_cursor: str | None = None
    # The paging cursor of each shown row as it was when the row took its place: after live
    # updates push rows off the first page, "Older" starts after the last row shown, so the rows
    # pushed off come next instead of being skipped.
    _placed: dict[str, str] = {}

    def _params(self) -> dict[str, str]:
        return {k: getattr(self, k) for k in FILTER_KEYS if getattr(self, k)}

    @rx.event
    async def load(self) -> None:
        """on_load: filters from the URL, first page."""
        q = self.router.url.query_parameters
        for key in FILTER_KEYS:
            setattr(self, key, q.get(key, ""))
        self._cursors = [None]
        self.page = 1
        await self._fetch()
        watch(self, self._params())

    async def _fetch(self) -> None:
        self.loading = True
        self.error = ""
        filters = query_filters(self._params())
        try:
            rows, self._next_cursor = await repo.list_tasks(get_runtime().pool, limit=PAGE_SIZE, cursor=self._cursors[self.page - 1], **filters)
            counts = await cached_counts(self._params())
        except DomainError as exc:
            self.error = exc.message
            rows, counts = [], {}
        (await self.get_state(TaskRowsState)).rows = [task_table_row(r) for r in rows]
        self._placed = {str(r["id"]): repo.task_cursor(r) for r in rows}
        self.has_next = self._next_cursor is not None
        self.counts = _count_items(counts)
        self.loading = False

    @rx.event
    def apply_filters(self, form: dict[str, Any]):
        """Put the filters in the URL (shareable); the page's on_load then fetches."""
        params = {k: str(form.get(k) or "").strip()[:200] for k in FILTER_KEYS}
        params = {k: v for k, v in params.items() if v and v != "any"}
        return rx.redirect("/dashboard/tasks" + ("?" + urlencode(params) if params else ""))

    @rx.event
    def filter_status(self, status: str):
        params = {**self._params(), "status": status if status in TASK_STATUSES and status != self.status else ""}
        params = {k: v for k, v in params.items() if v}
        return rx.redirect("/dashboard/tasks" + ("?" + urlencode(params) if params else ""))

    @rx.event
    def clear_filters(self):
        return rx.redirect("/dashboard/tasks")

    @rx.event
    async def next_page(self) -> None:
        shown = (await self.get_state(TaskRowsState)).get_value("rows")
        last = shown[-1]["id"] if shown else None
        cursor = self._placed.get(last) or self._next_cursor
        if cursor is None:
            return
        self._cursors = [*self._cursors[: self.page], cursor]
        self.page += 1
        await self._fetch()

    @rx.event
    async def prev_page(self) -> None:
        if self.page > 1:
            self.page -= 1
            await self._fetch()

    @staticmethod
    def live_accepts(params: dict[str, Any], msg: LiveMessage) -> bool:
        if msg.kind != "task":
            return False
        row = msg.row
        return (
            (not params.get("type") or row["type"] == params["type"])
            and (not params.get("corr") or row["correlation_id"] == params["corr"])
            and (not params.get("trace") or row["trace_id"] == params["trace"])
        )

    async def _apply_live(self, msgs: list[LiveMessage]) -> None:
        """Update shown rows in place; on the first page, new matching tasks appear on top.

        Runs once per open tab for every batch of changes, so it stays cheap: each message is
        turned into a row once for all tabs (`_cached`), the rows are read without Reflex's change
        tracking proxies, and a var is only assigned when its value changed (every assigned var
        is sent to the tab)."""
        params = self._params()
        # Filtered again: the batch was chosen by the filters this tab had when it was gathered,
        # and the tab may have loaded other filters since.
        msgs = [m for m in msgs if self.live_accepts(params, m)]
        table = await self.get_state(TaskRowsState)
        current: list[dict[str, str]] = table.get_value("rows")
        rows = list(current)
        index = {r["id"]: i for i, r in enumerate(rows)}
        fresh: list[dict[str, str]] = []  # tasks new to this view, oldest first
        fresh_index: dict[str, int] = {}
        fresh_cursors: dict[str, str] = {}
        for msg in msgs:
            new = _cached(msg, "dashboard.task_table_row", task_table_row)
            if (i := index.get(new["id"])) is not None:
                if int(new["version"]) >= int(rows[i]["version"]):
                    rows[i] = new
                continue
            if (i := fresh_index.get(new["id"])) is not None:
                if int(new["version"]) < int(fresh[i]["version"]):
                    continue
                fresh[i] = new
            elif self.page == 1 and (not self.status or new["status"] == self.status):
                fresh_index[new["id"]] = len(fresh)
                fresh.append(new)
            else:
                continue
            fresh_cursors[new["id"]] = _cached(msg, "dashboard.task_cursor", repo.task_cursor)
        rows = fresh[::-1] + rows
        if self.status:
            rows = [r for r in rows if r["status"] == self.status]
        if len(rows) > PAGE_SIZE and not self.has_next:
            self.has_next = True  # rows were pushed off this page: "Older" now leads to them
        rows = rows[:PAGE_SIZE]
        if rows != current:
            table.rows = rows
            if fresh:
                placed = {**self._placed, **fresh_cursors}
                self._placed = {r["id"]: placed[r["id"]] for r in rows if r["id"] in placed}
        self._show_counts(live_counts(params))

    async def _live_tick(self) -> None:
        """After a count refresh, and every few seconds: show the cached counts (a refresh is
        started when they have expired, and pushed when it is done; a tick never waits for it)."""
        self._show_counts(live_counts(self._params(), changed=False))

    def _show_counts(self, counts: dict[str, int] | None) -> None:
        """Assign the counts only when they changed (every assigned var is sent to the tab)."""
        if counts is not None and (items := _count_items(counts)) != self.get_value("counts"):
            self.counts = items


def _cached(msg: LiveMessage, name: str, make: Callable[[dict[str, Any]], Any]) -> Any:
    """`make(msg.row)`, computed once however many tabs show the message."""
    if name not in msg.cache:
        msg.cache[name] = make(msg.row)
    return msg.cache[name]


def _count_items(counts: dict[str, int]) -> list[list[str]]:
    return [[s, str(counts.get(s, 0))] for s in TASK_STATUSES]
