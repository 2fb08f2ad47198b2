"""The activity stream: task updates, task events and log lines, newest on top, live.

At most MAX_ITEMS lines live in the browser; older ones are paged in from the server."""

from __future__ import annotations

import reflex as rx

from opsloop.backend.live.bus import LiveMessage
from opsloop.backend.logs.repository import search_logs
from opsloop.backend.models import LOG_LEVELS
from opsloop.backend.runtime import get_runtime
from opsloop.backend.tasks.repository import list_events
from opsloop.state.display import activity_item
from opsloop.state.live import watch

MAX_ITEMS = 200
PAGE = 50


class ActivityState(rx.State):
    items: list[dict[str, str]] = []
    level: str = ""
    service: str = ""
    paused: bool = False
    pending: int = 0
    loading: bool = False
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
        pool = get_runtime().pool
        logs, _ = await search_logs(
            pool,
            level=self.level or None,
            service=self.service or None,
            limit=PAGE,
            cursor=None if self._oldest_log is None else _cursor(self._oldest_log),
        )
        events: list[dict] = []
        if not self.level and not self.service:
            events, _ = await list_events(pool, limit=PAGE, cursor=None if self._oldest_event is None else _cursor(self._oldest_event))
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
    def set_filter(self, form: dict):
        from urllib.parse import urlencode

        params = {k: str(form.get(k) or "")[:200] for k in ("level", "service")}
        params = {k: v for k, v in params.items() if v and v != "any"}
        return rx.redirect("/dashboard/activity" + ("?" + urlencode(params) if params else ""))

    @rx.event
    def toggle_pause(self) -> None:
        self.paused = not self.paused
        if not self.paused and self._held:
            self.items = (self._held + self.items)[:MAX_ITEMS]
            self._held, self.pending = [], 0

    @staticmethod
    def live_accepts(params: dict, msg: LiveMessage) -> bool:
        if params.get("level") or params.get("service"):
            return (
                msg.kind == "log"
                and (not params.get("level") or msg.row["level"] == params["level"])
                and (not params.get("service") or msg.row["service"] == params["service"])
            )
        return True

    async def _apply_live(self, msgs: list[LiveMessage]) -> None:
        fresh = [activity_item(m.kind, m.row) for m in reversed(msgs)]
        if self.paused:
            self._held = (fresh + self._held)[:MAX_ITEMS]
            self.pending = len(self._held)
            return
        self.items = (fresh + self.items)[:MAX_ITEMS]


def _cursor(last_id: int) -> str:
    from opsloop.backend.paging import encode_cursor

    return encode_cursor([last_id])
