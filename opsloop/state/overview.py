"""The overview charts: task outcomes and p95 duration per minute, log lines per minute by level."""

from __future__ import annotations

import reflex as rx

from opsloop.backend.runtime import get_runtime
from opsloop.backend.stats import WINDOWS, overview
from opsloop.state.live import watch


class OverviewState(rx.State):
    tasks: list[dict[str, float]] = []
    logs: list[dict[str, int]] = []
    totals: dict[str, int] = {}
    window: str = "1h"
    loading: bool = False

    async def _refresh(self) -> None:
        data = await overview(get_runtime().pool, self.window)
        self.tasks = data["tasks"]
        self.logs = data["logs"]
        self.totals = {k: int(v or 0) for k, v in data["totals"].items()}

    @rx.event
    async def load(self) -> None:
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

    @staticmethod
    def live_accepts(params: dict, msg: object) -> bool:
        return False

    async def _apply_live(self, msgs: list) -> None:
        return None

    async def _live_tick(self) -> None:
        await self._refresh()
