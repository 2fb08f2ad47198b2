"""The tasks table: filters live in the URL, keyset paging on the server, rows updated live."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import reflex as rx

from opsloop.backend.errors import DomainError
from opsloop.backend.live.bus import Kind, LiveMessage
from opsloop.backend.live.filter import live_filter
from opsloop.backend.models import TASK_STATUSES
from opsloop.backend.tasks.store import TaskFilter, task_cursor
from opsloop.state.access import CountsKey, dashboard, runtime
from opsloop.state.display import task_table_row
from opsloop.state.live import watch
from opsloop.state.live_view import LiveFilter, LiveParams, LiveView
from opsloop.state.merge import TaskPage, merge_task_page

log = logging.getLogger("opsloop.dashboard.tasks")
PAGE_SIZE = 25
WINDOWS = {"15m": timedelta(minutes=15), "1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7)}
FILTER_KEYS = ("status", "type", "corr", "trace", "window")
TASK_CHANGES: frozenset[Kind] = frozenset({"task"})


def counts_key(params: LiveParams) -> CountsKey:
    """The counts by status depend on every filter but the status."""
    return tuple(sorted((k, v) for k, v in params.items() if v and k != "status"))


def _count_query(params: LiveParams) -> Callable[[], Awaitable[dict[str, int]]]:
    async def count() -> dict[str, int]:
        return await runtime().tasks.count_by_status(replace(task_filter(params), status=None))  # "since" as of the query

    return count


async def cached_counts(params: LiveParams) -> dict[str, int]:
    """Counts by status, shared by every tab with the same filters for `COUNTS_TTL_S` (a count over
    a big table is the most expensive thing the tasks view does)."""
    return await dashboard().task_counts.get(counts_key(params), _count_query(params))


def live_counts(params: LiveParams, changed: bool = True) -> dict[str, int] | None:
    """Counts for a live push or tick, without waiting: the cached ones (None before the first
    query); a refresh runs in the background and is pushed to the tasks views with these filters
    when done (`SharedCache.peek`)."""
    key = counts_key(params)
    board = dashboard()

    def push() -> None:
        board.pusher.refresh_soon(TasksState, lambda watched: counts_key(watched) == key)

    return board.task_counts.peek(key, _count_query(params), changed, push)


def tasks_filter(params: LiveParams) -> LiveFilter:
    """The tasks view's live filter: task changes matching its type, correlation and trace id
    (the status is applied by the merge: a row that leaves the status leaves the page)."""
    return live_filter(kinds=TASK_CHANGES, type=params.get("type", ""), correlation_id=params.get("corr", ""), trace_id=params.get("trace", ""))


def task_filter(params: LiveParams) -> TaskFilter:
    """The store's filter for the view's URL filters (an unknown status or window is ignored)."""
    window = WINDOWS.get(params.get("window", ""))
    return TaskFilter(
        status=params["status"] if params.get("status") in TASK_STATUSES else None,
        type=params.get("type") or None,
        correlation_id=params.get("corr") or None,
        trace_id=params.get("trace") or None,
        since=datetime.now(UTC) - window if window else None,
    )


class TaskRowsState(rx.State):
    """The rows shown, in a state of their own: every component that reads a state re-renders when
    any var of that state changes, and live updates change the rows many times a second, so they
    should re-render the table and nothing else (not the filters, selects and buttons)."""

    rows: rx.Field[list[dict[str, str]]] = rx.field(default_factory=list)


class TasksState(LiveView, rx.State):
    counts: rx.Field[list[list[str]]] = rx.field(default_factory=list)
    status: rx.Field[str] = rx.field("")
    type: rx.Field[str] = rx.field("")
    corr: rx.Field[str] = rx.field("")
    trace: rx.Field[str] = rx.field("")
    window: rx.Field[str] = rx.field("")
    page: rx.Field[int] = rx.field(1)
    has_next: rx.Field[bool] = rx.field(False)
    loading: rx.Field[bool] = rx.field(False)
    error: rx.Field[str] = rx.field("")
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
        try:
            tasks, self._next_cursor = await runtime().tasks.list(task_filter(self._params()), limit=PAGE_SIZE, cursor=self._cursors[self.page - 1])
            counts = await cached_counts(self._params())
        except DomainError as exc:
            self.error = exc.message
            tasks, counts = [], {}
        (await self.get_state(TaskRowsState)).rows = [task_table_row(t.row()) for t in tasks]
        self._placed = {str(t.id): task_cursor(t) for t in tasks}
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
        cursor = (self._placed.get(shown[-1]["id"]) if shown else None) or self._next_cursor
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

    @classmethod
    def live_filter_for(cls, params: LiveParams) -> LiveFilter:
        return tasks_filter(params)

    async def _apply_live(self, msgs: list[LiveMessage]) -> None:
        """Merge the batch into the shown rows (`merge_task_page`). The rows are read without
        Reflex's change tracking proxies, and a var is only assigned when its value changed."""
        params = self._params()
        table = await self.get_state(TaskRowsState)
        shown = TaskPage(table.get_value("rows"), self.get_value("_placed"), self.has_next)
        merged = merge_task_page(shown, msgs, accepts=tasks_filter(params), page=self.page, status=self.status, page_size=PAGE_SIZE)
        if merged.page.has_next != shown.has_next:
            self.has_next = merged.page.has_next  # rows were pushed off this page: "Older" now leads to them
        if merged.rows_changed:
            table.rows = merged.page.rows
        if merged.placed_changed:
            self._placed = merged.page.placed
        self._show_counts(live_counts(params))

    async def _live_tick(self) -> None:
        """After a count refresh, and every few seconds: show the cached counts (a refresh is
        started when they have expired, and pushed when it is done; a tick never waits for it)."""
        self._show_counts(live_counts(self._params(), changed=False))

    def _show_counts(self, counts: dict[str, int] | None) -> None:
        """Assign the counts only when they changed (every assigned var is sent to the tab)."""
        if counts is not None and (items := _count_items(counts)) != self.get_value("counts"):
            self.counts = items


def _count_items(counts: dict[str, int]) -> list[list[str]]:
    return [[s, str(counts.get(s, 0))] for s in TASK_STATUSES]
