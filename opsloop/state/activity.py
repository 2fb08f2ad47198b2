"""The activity stream: task updates, task events and log lines, newest on top, live.

At most MAX_ITEMS lines live in the browser; older ones are paged in from the server."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import reflex as rx

from opsloop.backend.live.bus import LiveMessage
from opsloop.backend.live.filter import live_filter
from opsloop.backend.logs.repository import search_logs
from opsloop.backend.models import LOG_LEVELS
from opsloop.backend.paging import encode_cursor
from opsloop.state.access import runtime
from opsloop.state.display import activity_item
from opsloop.state.live import watch
from opsloop.state.live_view import LiveFilter, LiveParams, LiveView
from opsloop.state.merge import merge_activity

MAX_ITEMS = 200
PAGE = 50


def activity_filter(params: LiveParams) -> LiveFilter:
    """Everything, or with a level or service filter only the log lines that match it."""
    return live_filter(level=params.get("level", ""), service=params.get("service", ""))


class ActivityState(LiveView, rx.State):
    items: rx.Field[list[dict[str, str]]] = rx.field(default_factory=list)
    level: rx.Field[str] = rx.field("")
    service: rx.Field[str] = rx.field("")
    paused: rx.Field[bool] = rx.field(False)
    pending: rx.Field[int] = rx.field(0)
    loading: rx.Field[bool] = rx.field(False)
    _oldest_log: int | None = None
    _oldest_event: int | None = None
    _held: list[dict[str, str]] = []

    @rx.event
    async def load(self) -> None:
        q = self.router.url.query_parameters
        self.level = q.get("level", "") if q.get("level", "") in LOG_LEVELS else ""
        self.service = q.get("service", "")[:200]
        self.items, self._held, self.pending, self.paused = [], [], 0, False
        self._oldest_log = self._oldest_event = None
        await self._page_older()
        watch(self, {"level": self.level, "service": self.service})

    async def _page_older(self) -> None:
        self.loading = True
        pool = runtime().pool
        logs, _ = await search_logs(
            pool,
            level=self.level or None,
            service=self.service or None,
            limit=PAGE,
            cursor=None if self._oldest_log is None else _cursor(self._oldest_log),
        )
        events: list[dict[str, Any]] = []
        if not self.level and not self.service:
            found, _ = await runtime().tasks.list_events(limit=PAGE, cursor=None if self._oldest_event is None else _cursor(self._oldest_event))
            events = [e.row() for e in found]
        if logs:
            self._oldest_log = logs[-1]["id"]
        if events:
            self._oldest_event = events[-1]["id"]
        merged = [("log", r["ts"], r) for r in logs] + [("event", r["ts"], r) for r in events]
        merged.sort(key=lambda x: x[1], reverse=True)
        self.items = self.items + [activity_item(kind, row) for kind, _, row in merged]
        self.loading = False

    @rx.event
    async def load_older(self) -> None:
        await self._page_older()

    @rx.event
    def set_filter(self, form: dict[str, Any]):
        params = {k: str(form.get(k) or "")[:200] for k in ("level", "service")}
        params = {k: v for k, v in params.items() if v and v != "any"}
        return rx.redirect("/dashboard/activity" + ("?" + urlencode(params) if params else ""))

    @rx.event
    def toggle_pause(self) -> None:
        self.paused = not self.paused
        if not self.paused and self._held:
            self.items = (self._held + self.items)[:MAX_ITEMS]
            self._held, self.pending = [], 0

    @classmethod
    def live_filter_for(cls, params: LiveParams) -> LiveFilter:
        return activity_filter(params)

    async def _apply_live(self, msgs: list[LiveMessage]) -> None:
        """New lines on top (`merge_activity`); while paused they are held and counted."""
        accepts = activity_filter({"level": self.level, "service": self.service})
        merged = merge_activity(self.get_value("items"), self.get_value("_held"), msgs, accepts=accepts, paused=self.paused, max_items=MAX_ITEMS)
        if merged.items is not None:
            self.items = merged.items
        if merged.held is not None:
            self._held = merged.held
            self.pending = len(merged.held)


def _cursor(last_id: int) -> str:
    return encode_cursor([last_id])
