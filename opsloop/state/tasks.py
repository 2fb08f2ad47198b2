"""The tasks table: filters live in the URL, keyset paging on the server, rows updated live."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import reflex as rx

from opsloop.backend.errors import DomainError
from opsloop.backend.live.bus import LiveMessage
from opsloop.backend.models import TASK_STATUSES
from opsloop.backend.runtime import get_runtime
from opsloop.backend.tasks import repository as repo
from opsloop.state.display import task_row
from opsloop.state.live import watch

PAGE_SIZE = 25
WINDOWS = {"15m": timedelta(minutes=15), "1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7)}
FILTER_KEYS = ("status", "type", "corr", "trace", "window")
COUNTS_TTL_S = 2.0
_count_cache: dict[tuple, tuple[float, dict[str, int]]] = {}
_count_locks: dict[tuple, asyncio.Lock] = {}


async def cached_counts(params: dict[str, str]) -> dict[str, int]:
    """Counts by status, shared by every tab with the same filters for COUNTS_TTL_S.

    Single-flight: when twenty open dashboards ask at once, one query runs and the rest wait for
    its answer (a count over a big table is the most expensive thing a live push does).
    """
    key = tuple(sorted((k, v) for k, v in params.items() if v and k != "status"))
    hit = _count_cache.get(key)
    if hit and time.monotonic() - hit[0] < COUNTS_TTL_S:
        return hit[1]
    async with _count_locks.setdefault(key, asyncio.Lock()):
        hit = _count_cache.get(key)
        if hit and time.monotonic() - hit[0] < COUNTS_TTL_S:
            return hit[1]
        filters = {k: v for k, v in query_filters(params).items() if k != "status"}
        counts = await repo.count_by_status(get_runtime().pool, **filters)
        if len(_count_cache) > 500:
            _count_cache.clear()
        _count_cache[key] = (time.monotonic(), counts)
    return counts


def query_filters(params: dict[str, str]) -> dict[str, Any]:
    window = WINDOWS.get(params.get("window", ""))
    return {
        "status": params.get("status") if params.get("status") in TASK_STATUSES else None,
        "type": params.get("type") or None,
        "correlation_id": params.get("corr") or None,
        "trace_id": params.get("trace") or None,
        "since": datetime.now(UTC) - window if window else None,
    }


class TasksState(rx.State):
    rows: list[dict[str, str]] = []
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
        self.rows = [task_row(r) for r in rows]
        self.has_next = self._next_cursor is not None
        self.counts = [[s, str(counts.get(s, 0))] for s in TASK_STATUSES]
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
        if self._next_cursor is None:
            return
        self._cursors = [*self._cursors[: self.page], self._next_cursor]
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
        """Update shown rows in place; on the first page, new matching tasks appear on top."""
        rows = list(self.rows)
        index = {r["id"]: i for i, r in enumerate(rows)}
        for msg in msgs:
            new = task_row(msg.row)
            if new["id"] in index:
                i = index[new["id"]]
                if int(new["version"]) >= int(rows[i]["version"]):
                    rows[i] = new
            elif self.page == 1 and (not self.status or new["status"] == self.status):
                rows.insert(0, new)
                index = {r["id"]: i for i, r in enumerate(rows)}
        if self.status:
            rows = [r for r in rows if r["status"] == self.status]
        self.rows = rows[:PAGE_SIZE]
        counts = await cached_counts(self._params())
        self.counts = [[s, str(counts.get(s, 0))] for s in TASK_STATUSES]
