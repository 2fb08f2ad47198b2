"""A value shared by every open tab for a short while: one query at a time per key, refreshed in
the background when a push must not wait for it (the tasks view's counts by status)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
log = logging.getLogger("opsloop.dashboard.cache")


class SharedCache(Generic[K, V]):
    """Values by key, fresh for `ttl_s` after their query started. Owned by the dashboard
    (`state/access.py`), so it lives and ends with the runtime it queries."""

    def __init__(self, ttl_s: float, max_keys: int = 500) -> None:
        self.ttl_s = ttl_s
        self.max_keys = max_keys
        self._values: dict[K, tuple[float, V]] = {}
        self._locks: dict[K, asyncio.Lock] = {}
        self._refreshes: dict[K, asyncio.Task[None]] = {}
        self._changed: set[K] = set()

    def _fresh(self, key: K, newer_than: float | None = None) -> V | None:
        """The cached value if its query started less than `ttl_s` ago (and, with `newer_than`,
        after that moment: it must include what changed then)."""
        hit = self._values.get(key)
        if hit is None or time.monotonic() - hit[0] >= self.ttl_s or (newer_than is not None and hit[0] < newer_than):
            return None
        return hit[1]

    async def get(self, key: K, query: Callable[[], Awaitable[V]], newer_than: float | None = None) -> V:
        """The value, querying it when stale. Single-flight: when twenty open dashboards ask at
        once, one query runs and the rest wait for its answer."""
        if (value := self._fresh(key, newer_than)) is not None:
            return value
        async with self._locks.setdefault(key, asyncio.Lock()):
            if (value := self._fresh(key, newer_than)) is not None:
                return value
            started = time.monotonic()
            value = await query()
            if len(self._values) > self.max_keys:
                self._values.clear()
            self._values[key] = (started, value)
        return value

    def peek(self, key: K, query: Callable[[], Awaitable[V]], changed: bool, then: Callable[[], None]) -> V | None:
        """The cached value without waiting (None before the first query), starting a refresh.

        A push never waits for the query. Instead one refresh per key runs when the cached value
        expires, and again as long as changes keep coming (each refresh only accepts a value whose
        query started after the changes it follows); `then` runs after each refresh (it pushes the
        value to the tabs that show it). So a value settles at most `ttl_s` after the last change
        and is queried at most once per `ttl_s`. `changed=False` (a tick) only asks for a refresh
        when the cached value has expired."""
        hit = self._values.get(key)
        if changed or self._fresh(key) is None:
            self._changed.add(key)
            if key not in self._refreshes:
                self._refreshes[key] = asyncio.create_task(self._refresh(key, query, then))
        return hit[1] if hit else None

    async def _refresh(self, key: K, query: Callable[[], Awaitable[V]], then: Callable[[], None]) -> None:
        try:
            while key in self._changed:
                hit = self._values.get(key)
                await asyncio.sleep(max(0.0, hit[0] + self.ttl_s - time.monotonic()) if hit else 0.0)
                changes_until = time.monotonic()
                self._changed.discard(key)
                await self.get(key, query, newer_than=changes_until)
                then()
        except Exception as exc:  # the database is away: wait a while (no retry per push), then let the next change try
            log.warning("refreshing a shared value failed: %r", exc)
            await asyncio.sleep(self.ttl_s)
        finally:
            self._refreshes.pop(key, None)

    def close(self) -> None:
        """Stop the refreshes (the runtime they query is going away)."""
        for task in list(self._refreshes.values()):
            task.cancel()
