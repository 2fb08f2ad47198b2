"""Registered agents and app instances, with their last heartbeat (refreshed every few seconds)."""

from __future__ import annotations

from datetime import UTC, datetime

import reflex as rx

from opsloop.backend.runtime import get_runtime
from opsloop.state.display import stamp
from opsloop.state.live import watch


class AgentsState(rx.State):
    rows: list[dict[str, str]] = []
    loading: bool = False

    async def _refresh(self) -> None:
        rows = await get_runtime().registry.list_rows()
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
    async def load(self) -> None:
        self.loading = True
        yield
        await self._refresh()
        self.loading = False
        watch(self)

    async def _apply_live(self, msgs: list) -> None:
        return None

    @staticmethod
    def live_accepts(params: dict, msg: object) -> bool:
        return False

    async def _live_tick(self) -> None:
        await self._refresh()
