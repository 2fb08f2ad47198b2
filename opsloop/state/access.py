"""The dashboard's one way to the process's runtime, and the objects it keeps beside it.

States call `runtime()` (never `get_runtime()`), and reach the dashboard-wide objects (the live
pusher, the shared task counts, the sessions bound to client tokens) through `dashboard()`. They
are built together, for one runtime, and end with it: a new runtime (a test that replaces it)
gets a new `Dashboard`, so no state module keeps wiring of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from opsloop.backend.runtime import Runtime, get_runtime
from opsloop.state.pusher import LivePusher
from opsloop.state.shared_cache import SharedCache

COUNTS_TTL_S = 2.0  # the tasks view's counts by status are shared by all tabs for this long

CountsKey = tuple[tuple[str, str], ...]


@dataclass(eq=False)
class Dashboard:
    """What the dashboard keeps for one runtime."""

    runtime: Runtime
    pusher: LivePusher
    task_counts: SharedCache[CountsKey, dict[str, int]] = field(default_factory=lambda: SharedCache(COUNTS_TTL_S))
    # client token -> session id, for the tokens this process serves (the gate binds, the sweeper ends)
    sessions: dict[str, str] = field(default_factory=dict)

    def close(self) -> None:
        self.task_counts.close()


_current: Dashboard | None = None


def dashboard() -> Dashboard:
    """The dashboard objects of the process's runtime (built on first use)."""
    global _current
    rt = get_runtime()  # the only call of it in the dashboard
    if _current is None or _current.runtime is not rt:
        if _current is not None:
            _current.close()
        _current = Dashboard(rt, LivePusher(rt.bus))
    return _current


def runtime() -> Runtime:
    """The process's runtime (pool, registry, bus, …)."""
    return dashboard().runtime
