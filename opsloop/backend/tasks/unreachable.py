"""Agents that cannot be reached, and how their tasks wait for them.

An agent that refuses connections (restarting, being deployed) has not failed a task: nothing
ran. Spending attempts on it turned a 4 s restart into 10-15 % failed tasks, since the whole
retry budget was gone in 1.5 s. Instead the dispatcher gives the attempt back, stops claiming the
agent's tasks, and probes the agent with growing intervals (a TCP connect, up to `max_probe_s`
apart) until it answers; tasks that have been due for longer than `wait_s` end in `error`.
Nothing here writes to the database; the dispatcher passes the expiry in as a callback.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

log = logging.getLogger("opsloop.dispatcher")

UrlOf = Callable[[str], Awaitable[str | None]]
Expire = Callable[[str, float], Awaitable[int]]


async def accepts_connections(url: str, timeout_s: float = 1.0) -> bool:
    """Whether something listens at the URL's host and port (what a refused connection denied)."""
    parts = urlsplit(url)
    if not parts.hostname:
        return False
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(parts.hostname, port), timeout_s)
    except (OSError, TimeoutError):
        return False
    writer.close()
    return True


class UnreachableAgents:
    def __init__(self, *, wait_s: float, url_of: UrlOf, expire: Expire, on_back: Callable[[], None], max_probe_s: float = 5.0) -> None:
        self.wait_s = wait_s
        self.max_probe_s = max_probe_s
        self._url_of = url_of
        self._expire = expire
        self._on_back = on_back
        self._since: dict[str, float] = {}
        self._probes: dict[str, asyncio.Task[None]] = {}

    @property
    def slugs(self) -> list[str]:
        """Agents whose tasks are not claimed now (a parameter of the claim)."""
        return list(self._since)

    def mark(self, slug: str) -> None:
        """`slug` refused a connection: hold its tasks and probe it until it answers."""
        if slug in self._since:
            return
        self._since[slug] = time.monotonic()
        log.warning("agent %s cannot be reached: its tasks wait for it (up to %gs each) without spending attempts", slug, self.wait_s)
        self._probes[slug] = asyncio.create_task(self._probe(slug), name=f"probe-{slug}")

    def back(self, slug: str) -> None:
        """`slug` answers again (a probe connected, or it registered): claim its tasks again."""
        since = self._since.pop(slug, None)
        probe = self._probes.pop(slug, None)
        if probe is not None and probe is not asyncio.current_task():
            probe.cancel()
        if since is not None:
            log.warning("agent %s is reachable again after %.1fs; its tasks run now", slug, time.monotonic() - since)
            self._on_back()

    async def close(self) -> None:
        probes = list(self._probes.values())
        for probe in probes:
            probe.cancel()
        await asyncio.gather(*probes, return_exceptions=True)
        self._probes.clear()
        self._since.clear()

    async def _probe(self, slug: str) -> None:
        interval = 0.1
        while slug in self._since:
            await asyncio.sleep(interval)
            interval = min(self.max_probe_s, interval * 2)
            try:
                url = await self._url_of(slug)  # the registry's current URL: it may come back elsewhere
                if url and await accepts_connections(url):
                    self.back(slug)
                    return
                if time.monotonic() - self._since.get(slug, time.monotonic()) >= self.wait_s:
                    ended = await self._expire(slug, self.wait_s)
                    if ended:
                        log.warning("%d task(s) of agent %s ended in error: unreachable for more than %gs", ended, slug, self.wait_s)
            except Exception as exc:  # the database may be down too: keep probing
                log.warning("probing agent %s failed: %s", slug, exc)
