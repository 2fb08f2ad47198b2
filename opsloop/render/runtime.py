"""The Render plugin's runtime object: what one opsloop process holds for Render.

Built by :func:`start_render` when RENDER_API_TOKEN is set: the client, the agent and (with
RENDER_MONITOR_SERVICES) the monitor. The composition root registers the agent (handler,
registry row, heartbeat) and schedules the monitor from ``agents`` and ``jobs``, and finds it
again with ``Runtime.plugin(RenderRuntime)`` (:func:`require`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar, cast

from opsloop.backend.plugin import AgentLimits, Host, LocalAgent, PluginRuntime, ScheduledJob

from .agent import RenderAgent
from .client import RenderClient
from .errors import RenderFailure
from .monitor import RenderMonitor
from .task_types import LIMITS, LOCAL_URL, SLUG

if TYPE_CHECKING:
    from opsloop.backend.runtime import Runtime

NOT_CONFIGURED = "Render is not configured on this opsloop: set RENDER_API_TOKEN (and RENDER_API_BASE_URL for the local fake)"
HEARTBEAT_S = 10.0
T = TypeVar("T")


@dataclass
class RenderRuntime(PluginRuntime):
    """What a process holds for Render when a token is configured: the plugin's runtime object.

    Entry points (routes, dashboard, CLI, monitor) take it; the runtime registers its agent and
    jobs (`agents`, `jobs`) and closes it.
    """

    host: Host
    client: RenderClient
    agent: RenderAgent
    monitor: RenderMonitor | None = None
    base_url: str = ""
    _cache: dict[str, tuple[float, Any]] = field(default_factory=dict)
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)

    @property
    def agents(self) -> Sequence[LocalAgent]:
        limits = {t: AgentLimits(timeout_ms=v["timeoutMs"], max_attempts=v["maxAttempts"], backoff_ms=v["backoffMs"]) for t, v in LIMITS.items()}
        return (LocalAgent(SLUG, LOCAL_URL, limits, self.agent.handle, {"renderApi": self.base_url}, heartbeat_s=HEARTBEAT_S),)

    @property
    def jobs(self) -> Sequence[ScheduledJob]:
        if self.monitor is None:
            return ()
        every = max(0.1, self.host.settings.RENDER_MONITOR_INTERVAL_MS / 1000)
        return (ScheduledJob("render-monitor", self.monitor.tick, every, first_after_s=0.5),)

    async def close(self) -> None:
        await self.client.aclose()

    async def cached(self, key: str, max_age: float, load: Callable[[], Awaitable[T]]) -> T:
        """Single-flight TTL cache for dashboard reads (many open tabs, one Render call)."""
        hit = self._cache.get(key)
        if hit and time.monotonic() - hit[0] < max_age:
            return cast(T, hit[1])
        async with self._locks.setdefault(key, asyncio.Lock()):
            hit = self._cache.get(key)
            if hit and time.monotonic() - hit[0] < max_age:
                return cast(T, hit[1])
            value = await load()
            if len(self._cache) > 2000:
                self._cache.clear()
            self._cache[key] = (time.monotonic(), value)
            return value

    def forget(self, prefix: str = "") -> None:
        for key in [k for k in self._cache if k.startswith(prefix)]:
            self._cache.pop(key, None)


async def start_render(host: Host) -> RenderRuntime | None:
    """The Render plugin's runtime (agent, and the monitor when services are watched), or None
    without RENDER_API_TOKEN. The composition root registers the agent and schedules the jobs."""
    settings = host.settings
    if not settings.RENDER_API_TOKEN:
        return None
    client = RenderClient(settings.RENDER_API_BASE_URL, settings.RENDER_API_TOKEN)
    agent = RenderAgent(host, client, settings, host.writer)
    render = RenderRuntime(host=host, client=client, agent=agent, base_url=settings.RENDER_API_BASE_URL)
    if settings.monitored_services:
        render.monitor = RenderMonitor(host, client)
    host.writer.info(
        "render agent ready",
        {"api": settings.RENDER_API_BASE_URL, "monitor": settings.monitored_services, "intervalMs": settings.RENDER_MONITOR_INTERVAL_MS},
    )
    return render


def require(rt: Runtime) -> RenderRuntime:
    """The process's Render runtime, or a 503 saying how to configure it."""
    render = rt.plugin(RenderRuntime)
    if render is None:
        raise RenderFailure(503, NOT_CONFIGURED)
    return render
