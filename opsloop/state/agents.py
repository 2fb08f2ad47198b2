"""Registered agents and app instances, with their last heartbeat (refreshed every few seconds)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import reflex as rx

from opsloop.backend.live.bus import LiveMessage
from opsloop.state.access import runtime
from opsloop.state.display import stamp
from opsloop.state.live import watch
from opsloop.state.live_view import LiveFilter, LiveParams, LiveView, no_messages


class AgentsState(LiveView, rx.State):
    rows: rx.Field[list[dict[str, str]]] = rx.field(default_factory=list)
    loading: rx.Field[bool] = rx.field(False)

    async def _refresh(self) -> None:
        rows = await runtime().registry.list_rows()
        now = datetime.now(UTC)
        self.rows = [
            {
                "slug": r["slug"],
                "kind": r["kind"],
                "url": r["url"] or "",
                "types": ", ".join(r["task_types"]) or "-",
                "last_seen": stamp(r["last_seen"]),
                "age": f"{(now - r['last_seen']).total_seconds():.0f}s ago",
                "live": "live" if r["live"] else "stale",
            }
            for r in rows
        ]

    @rx.event
    async def load(self) -> AsyncIterator[None]:
        self.loading = True
        yield
        await self._refresh()
        self.loading = False
        watch(self)

    async def _apply_live(self, msgs: list[LiveMessage]) -> None:
        return None

    @classmethod
    def live_filter_for(cls, params: LiveParams) -> LiveFilter:
        return no_messages  # refreshed by ticks only

    async def _live_tick(self) -> None:
        await self._refresh()
