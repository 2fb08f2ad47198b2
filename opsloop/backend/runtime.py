"""The composition root: one `Runtime` per process builds the pool, the task store (with its
create group commit), the log store, the session store, the registry, the live bus, the
dispatcher, the log writer, the scheduler and the plugins once, and owns their lifetime.

Both ways of running the app start it: the Reflex app (as a lifespan task) and the headless API
(`opsloop serve`, FastAPI lifespan). `get_runtime()` is called only at the edges: `api/deps.py`
(routes receive typed dependencies), `opsloop/opsloop.py` and the dashboard's one accessor
(`state/access.py`); domain modules receive what they need.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from opsloop.backend import db
from opsloop.backend.agents.registry import Registry
from opsloop.backend.config import Settings, get_settings
from opsloop.backend.gc_tuning import tune_gc
from opsloop.backend.live import codec
from opsloop.backend.live.bus import LiveBus
from opsloop.backend.logs import repository as logs_repo
from opsloop.backend.logs.writer import LogWriter
from opsloop.backend.plugin import P, PluginRuntime
from opsloop.backend.plugins import installed as installed_plugins
from opsloop.backend.retention import PURGEABLE, purge
from opsloop.backend.sessions import SessionStore
from opsloop.backend.tasks.dispatcher import Dispatcher
from opsloop.backend.tasks.model import Task
from opsloop.backend.tasks.store import TaskStore

log = logging.getLogger("opsloop.runtime")
APP_SERVICE = "opsloop"


class Runtime:
    def __init__(self, settings: Settings | None = None, *, dispatch: bool | None = None) -> None:
        self.settings = settings or get_settings()
        self.url = db.database_url()
        self.instance_id = f"orchestrator-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.dispatch_enabled = dispatch if dispatch is not None else self.settings.OPSLOOP_DISPATCH == "1"
        pool_size = max(4, min(20, self.settings.DISPATCH_CONCURRENCY // 4 + 4))
        self.pool = db.make_pool(self.url, min_size=2, max_size=pool_size, name="opsloop-app")
        self.registry = Registry(self.pool)
        self.sessions = SessionStore(self.pool, self.settings)  # signed-in sessions, cached and revocable
        self.tasks = TaskStore(self.pool)  # every statement on tasks and task events; owns the create group commit
        self.logs = logs_repo.LogStore(self.pool)  # log lines; owns the single-line group commit of POST /log
        self.bus = LiveBus(self.url, report=lambda level, message, data: self.writer.log(level, message, data))
        self.writer = LogWriter(APP_SERVICE, self._write_logs)
        self.local_handlers: dict[str, Any] = {}
        self.dispatcher = Dispatcher(
            self.tasks,
            self.registry,
            internal_key=self.settings.INTERNAL_KEY or "",
            instance_id=self.instance_id,
            concurrency=self.settings.DISPATCH_CONCURRENCY,
            lease_s=self.settings.OPSLOOP_LEASE_S,
            agent_wait_s=self.settings.OPSLOOP_AGENT_WAIT_S,
            local_handlers=self.local_handlers,
            on_failure=self._log_failure,
        )
        self.scheduler = AsyncIOScheduler(timezone=UTC)
        self._plugins: dict[type[PluginRuntime], PluginRuntime] = {}  # what each configured plugin runs here
        self._tasks: list[asyncio.Task[Any]] = []
        self.started = False

    async def _write_logs(self, batch: list[dict[str, Any]]) -> None:
        await self.logs.insert_many(batch, returning=False)

    def _log_failure(self, task: Task, message: str) -> None:
        self.writer.warn(
            f"attempt {task.attempts} of {task.type} failed: {message}",
            {"attempt": task.attempts, "agent": task.agent_slug},
            task_id=task.id,
            trace_id=task.trace_id,
            correlation_id=task.correlation_id,
        )

    async def start(self) -> None:
        await self.pool.open(wait=True, timeout=30)
        self.writer.start()
        self._tasks.append(asyncio.create_task(self.bus.run(), name="live-bus"))
        self.bus.on_notification(self._on_notification)
        await self.registry.register(slug=self.instance_id, url=None, task_types=[], endpoint=None, meta={"pid": os.getpid()}, kind="orchestrator")
        self._tasks.append(asyncio.create_task(self._heartbeat_loop(), name="orchestrator-heartbeat"))
        if self.dispatch_enabled:
            self._tasks.append(asyncio.create_task(self.dispatcher.run(), name="dispatcher"))
        self.scheduler.add_job(self.retention, "interval", hours=1, id="retention", next_run_time=datetime.now(UTC) + timedelta(minutes=1))
        for plugin in installed_plugins():  # e.g. Render's agent and monitor, when a token is set
            started = await plugin.start(self)
            if started is not None:
                await self._install(started)
        self.scheduler.start()
        self.started = True
        tune_gc()  # everything built so far lives as long as the process
        self.writer.info("instance started", {"instance": self.instance_id, "dispatch": self.dispatch_enabled})

    async def _install(self, started: PluginRuntime) -> None:
        """Register a plugin's in-process agents (handler, registry row, heartbeat) and schedule its jobs."""
        self._plugins[type(started)] = started
        for agent in started.agents:
            self.dispatcher.local_handlers[agent.slug] = agent.handle
            limits = {t: lim.to_dict() for t, lim in agent.limits.items()}
            meta = {"local": True, "limits": limits, **agent.meta}
            await self.registry.register(slug=agent.slug, url=agent.url, task_types=list(agent.limits), endpoint=None, meta=meta, kind="agent")

            async def heartbeat(slug: str = agent.slug) -> None:
                with contextlib.suppress(Exception):
                    await self.registry.heartbeat(slug)

            beat = f"{agent.slug}-agent-heartbeat"
            self.scheduler.add_job(heartbeat, "interval", seconds=agent.heartbeat_s, id=beat, max_instances=1, coalesce=True)
        for job in started.jobs:
            first = {} if job.first_after_s is None else {"next_run_time": datetime.now(UTC) + timedelta(seconds=job.first_after_s)}
            self.scheduler.add_job(job.run, "interval", seconds=job.every_s, id=job.id, max_instances=1, coalesce=True, **first)

    def plugin(self, kind: type[P]) -> P | None:
        """The runtime object of a configured plugin, by its class (None when not configured here)."""
        found = self._plugins.get(kind)
        return found if isinstance(found, kind) else None

    def _on_notification(self, payload: str) -> None:
        if codec.has_new_task(payload):  # only a new task (version 1) can be claimable
            self.dispatcher.wake()
        elif payload.startswith(codec.AGENT + ":"):  # an agent (re-)registered, maybe at a new URL
            self.registry.invalidate()

    async def notify_agent_cancel(self, task: Task | dict[str, Any]) -> None:
        """Best effort: tell the agent of a cancelled running task (its late answer is ignored anyway)."""
        if isinstance(task, Task):
            task = task.row()
        agent = await self.registry.get(task["agent_slug"]) if task.get("agent_slug") else None
        if agent is None or not agent.url or not agent.url.startswith("http"):
            return
        try:
            async with httpx.AsyncClient(timeout=2.0) as client:
                await client.post(
                    agent.url.rstrip("/") + "/cancel",
                    json={"taskId": str(task["id"]), "traceId": task["trace_id"]},
                    headers={"X-Internal-Key": self.settings.INTERNAL_KEY or ""},
                )
        except httpx.HTTPError:
            pass

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(10)
            with contextlib.suppress(Exception):
                await self.registry.heartbeat(self.instance_id)

    async def retention(self) -> dict[str, int]:
        """Delete logs and task events older than LOG_RETENTION_DAYS, in small batches."""
        cutoff = datetime.now(UTC) - timedelta(days=self.settings.LOG_RETENTION_DAYS)
        deleted = {table: await purge(self.pool, table, cutoff) for table in PURGEABLE}
        if any(deleted.values()):
            self.writer.info("retention deleted old rows", deleted)
        return deleted

    async def stop(self) -> None:
        if not self.started:
            return
        self.started = False
        with contextlib.suppress(Exception):
            self.scheduler.shutdown(wait=False)
        if self.dispatch_enabled:
            await self.dispatcher.stop()
        for started in self._plugins.values():
            with contextlib.suppress(Exception):
                await started.close()
        self._plugins.clear()
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.writer.stop()
        await self.tasks.close()
        await self.logs.close()
        await self.pool.close(timeout=5)


_runtime: Runtime | None = None


def get_runtime() -> Runtime:
    """The process's runtime (created on first use, started by the app's lifespan)."""
    global _runtime
    if _runtime is None:
        _runtime = Runtime()
    return _runtime


def set_runtime(runtime: Runtime | None) -> None:
    global _runtime
    _runtime = runtime
