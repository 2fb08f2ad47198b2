"""The plugin interface: how a plugin (Render is the first) adds itself to opsloop.

Why: the core (tasks, agents, logs, live) must not know any one integration. A plugin is a
leaf: it imports the core, the core never imports it. `opsloop.backend.plugins` names the installed
plugins by import string; four places iterate them, each for one hook:

- the composition root (`opsloop.backend.runtime.Runtime.start/stop`): `start(host)` returns
  the plugin's `PluginRuntime` for that process (or None when unconfigured). The runtime
  registers its in-process agents (task types, limits, handler) and schedules its jobs, keeps
  it (typed lookup: `Runtime.plugin(RenderRuntime)`) and closes it at stop;
- the API app (`opsloop.backend.api.app`): `routers()`;
- the dashboard (`opsloop.opsloop`): `pages()`;
- the CLI (`opsloop.cli.main`): `add_commands(sub, url_help)`.

Hooks other than `start` run at import or parse time and must stay cheap: no configuration,
no database (`opsloop --help` works without either).
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, TypeVar

if TYPE_CHECKING:
    from fastapi import APIRouter
    from reflex.components.component import Component
    from reflex.event import IndividualEventType

    from opsloop.backend.agents.registry import Registry
    from opsloop.backend.config import Settings
    from opsloop.backend.db import DictPool
    from opsloop.backend.live.bus import LiveBus
    from opsloop.backend.logs.writer import LogWriter
    from opsloop.backend.tasks.dispatcher import LocalHandler
    from opsloop.backend.tasks.store import TaskStore


@dataclass(frozen=True)
class AgentLimits:
    """What an agent declares per task type when it registers (as a remote agent does)."""

    timeout_ms: int
    max_attempts: int
    backoff_ms: int

    def to_dict(self) -> dict[str, int]:
        return {"timeoutMs": self.timeout_ms, "maxAttempts": self.max_attempts, "backoffMs": self.backoff_ms}


@dataclass(frozen=True)
class LocalAgent:
    """An agent run inside the opsloop process: the dispatcher calls `handle` for its task types."""

    slug: str
    url: str  # shown in the registry; `local://…` says no HTTP call is made
    limits: Mapping[str, AgentLimits]  # task type -> limits (the timeout applies to `handle`)
    handle: LocalHandler
    meta: Mapping[str, object] = field(default_factory=dict)
    heartbeat_s: float = 10.0


@dataclass(frozen=True)
class ScheduledJob:
    """An interval job the runtime schedules (one run at a time, missed runs coalesced)."""

    id: str
    run: Callable[[], Awaitable[object]]
    every_s: float
    first_after_s: float | None = None  # None: after one interval


class PluginRuntime:
    """What a plugin runs in one process; subclass it to hold the plugin's own objects."""

    @property
    def agents(self) -> Sequence[LocalAgent]:
        return ()

    @property
    def jobs(self) -> Sequence[ScheduledJob]:
        return ()

    async def close(self) -> None:
        """Release what `Plugin.start` opened (clients, connections)."""


P = TypeVar("P", bound=PluginRuntime)


class Host(Protocol):
    """What a plugin may use of the process's runtime (the composition root is one)."""

    @property
    def settings(self) -> Settings: ...
    @property
    def pool(self) -> DictPool: ...
    @property
    def writer(self) -> LogWriter: ...
    @property
    def bus(self) -> LiveBus: ...
    @property
    def registry(self) -> Registry: ...
    @property
    def tasks(self) -> TaskStore: ...  # with `opsloop.backend.tasks.submit.submit`: a plugin's only way to tasks


@dataclass(frozen=True)
class NavItem:
    label: str
    icon: str  # a lucide icon name, as rx.icon takes it


@dataclass(frozen=True)
class Page:
    """A signed-in dashboard page; the app adds the login check before `on_load`."""

    route: str
    component: Callable[[], Component]
    title: str
    on_load: Sequence[IndividualEventType[()]] = ()
    nav: NavItem | None = None


class Plugin(Protocol):
    """A plugin: see the module docstring for who calls which hook."""

    @property
    def name(self) -> str: ...

    async def start(self, host: Host) -> PluginRuntime | None:
        """Build this process's plugin runtime; None when the plugin is not configured."""
        ...

    def routers(self) -> Sequence[APIRouter]: ...

    def pages(self) -> Sequence[Page]: ...

    def add_commands(self, sub: argparse._SubParsersAction[argparse.ArgumentParser], url_help: str) -> None: ...
