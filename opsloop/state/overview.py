"""The overview charts: task outcomes and p95 duration per minute, log lines per minute by level."""

from __future__ import annotations

from collections.abc import AsyncIterator

import reflex as rx

from opsloop.backend.live.bus import LiveMessage
from opsloop.backend.stats import WINDOWS, overview
from opsloop.state.access import runtime
from opsloop.state.live import watch
from opsloop.state.live_view import LiveFilter, LiveParams, LiveView, no_messages


class OverviewState(LiveView, rx.State):
    tasks: rx.Field[list[dict[str, float]]] = rx.field(default_factory=list)
    logs: rx.Field[list[dict[str, int]]] = rx.field(default_factory=list)
    totals: rx.Field[dict[str, int]] = rx.field(default_factory=dict)
    window: rx.Field[str] = rx.field("1h")
    loading: rx.Field[bool] = rx.field(False)

    async def _refresh(self) -> None:
        data = await overview(runtime().pool, self.window)
        self.tasks = data["tasks"]
        self.logs = data["logs"]
        self.totals = {k: int(v or 0) for k, v in data["totals"].items()}

    @rx.event
    async def load(self) -> AsyncIterator[None]:
        window = self.router.url.query_parameters.get("window", "1h")
        self.window = window if window in WINDOWS else "1h"
        self.loading = True
        yield
        await self._refresh()
        self.loading = False
        watch(self)

    @rx.event
    def set_window(self, window: str | list[str]):
        value = window if isinstance(window, str) and window in WINDOWS else "1h"
        return rx.redirect(f"/?window={value}")

    @classmethod
    def live_filter_for(cls, params: LiveParams) -> LiveFilter:
        return no_messages  # refreshed by ticks only

    async def _apply_live(self, msgs: list[LiveMessage]) -> None:
        return None

    async def _live_tick(self) -> None:
        await self._refresh()
