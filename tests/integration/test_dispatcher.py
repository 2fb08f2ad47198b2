"""The dispatcher against real PostgreSQL through the task store, in this process: in-process
(local) handlers stand in for agents, so each test drives one behaviour — an answer recorded,
the type's timeout enforced on a local handler, retries then `error`, an expired lease
re-queued and run again, a superseded answer dropped, a cancel honoured.

A database of its own: a dispatcher claims any runnable task, so no other module's rows can
reach it (and it reaches none of theirs)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from opsloop.backend.agents.registry import Registry
from opsloop.backend.db import make_pool, upgrade_database
from opsloop.backend.tasks.dispatcher import Dispatcher
from opsloop.backend.tasks.model import Task, TaskStatus
from opsloop.backend.tasks.store import Answer, TaskStore
from opsloop.backend.tasks.submit import submit
from tests.support.database import fresh_database

Handler = Callable[[dict[str, Any]], Awaitable[Any]]


@pytest.fixture(scope="module")
def core_db() -> Iterator[str]:
    with fresh_database("opsloop_dispatcher") as url:
        upgrade_database(url)
        yield url


@dataclass
class Core:
    store: TaskStore
    registry: Registry
    dispatcher: Dispatcher
    handlers: dict[str, Handler]
    failures: list[tuple[Task, str]]

    async def agent(self, handler: Handler, *, timeout_ms: int = 5000, max_attempts: int = 3, backoff_ms: int = 10) -> str:
        """A local agent with one task type of the same name; its slug."""
        slug = "local-" + uuid.uuid4().hex[:8]
        limits = {slug: {"timeoutMs": timeout_ms, "maxAttempts": max_attempts, "backoffMs": backoff_ms}}
        await self.registry.register(slug=slug, url=f"local://{slug}", task_types=[slug], endpoint=None, meta={"local": True, "limits": limits})
        self.handlers[slug] = handler
        return slug

    async def submit(self, slug: str, payload: Any = None) -> uuid.UUID:
        created = await submit(self.store, self.registry, type=slug, source="test", payload=payload or {"n": 1})
        self.dispatcher.wake()
        return created.id

    async def until(self, task_id: uuid.UUID, *statuses: TaskStatus, timeout: float = 10.0) -> Task:
        deadline = time.monotonic() + timeout
        while True:
            task = await self.store.get(task_id)
            if task.status in statuses:
                return task
            assert time.monotonic() < deadline, f"task is {task.status}, expected {statuses}"
            await asyncio.sleep(0.02)

    async def kinds(self, task_id: uuid.UUID) -> list[str]:
        _, events = await self.store.get_with_events(task_id)
        return [e.kind for e in events]


@pytest.fixture
async def core(core_db: str) -> AsyncIterator[Core]:
    pool = make_pool(core_db, min_size=1, max_size=6, name="dispatcher-test")
    await pool.open(wait=True)
    store, registry = TaskStore(pool), Registry(pool)
    handlers: dict[str, Handler] = {}
    failures: list[tuple[Task, str]] = []
    dispatcher = Dispatcher(
        store,
        registry,
        internal_key="k",
        lease_s=0.6,
        poll_s=0.1,
        local_handlers=handlers,
        on_failure=lambda task, message: failures.append((task, message)),
    )
    running = asyncio.create_task(dispatcher.run())
    try:
        yield Core(store, registry, dispatcher, handlers, failures)
    finally:
        await dispatcher.stop(grace_s=1.0)
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await store.close()
        await pool.close()


async def test_a_local_answer_is_recorded_with_its_events(core: Core) -> None:
    async def echo(task: dict[str, Any]) -> Any:
        return {"echo": task["payload"]}

    slug = await core.agent(echo)
    task = await core.until(await core.submit(slug, {"x": [1, 2]}), TaskStatus.DONE)
    assert task.result == {"agent": {"slug": slug, "channel": "local"}, "status": "completed", "output": {"echo": {"x": [1, 2]}}}
    assert task.attempts == 1 and task.lease_owner is None and task.finished_at is not None
    assert await core.kinds(task.id) == ["created", "running", "done"]
    assert core.dispatcher.stats["done"] >= 1


async def test_a_local_handler_is_held_to_its_types_timeout(core: Core) -> None:
    started = asyncio.Event()

    async def stuck(task: dict[str, Any]) -> Any:
        started.set()
        await asyncio.sleep(30)

    slug = await core.agent(stuck, timeout_ms=300, max_attempts=1)
    t0 = time.monotonic()
    task = await core.until(await core.submit(slug), TaskStatus.ERROR)
    assert started.is_set() and time.monotonic() - t0 < 5
    assert task.error["message"] == f"agent {slug} timed out after 0.3s"
    assert await core.kinds(task.id) == ["created", "running", "error"]


async def test_failed_attempts_are_retried_then_end_in_error(core: Core) -> None:
    calls: list[int] = []

    async def flaky(task: dict[str, Any]) -> Any:
        calls.append(task["attempts"])
        raise RuntimeError("boom")

    slug = await core.agent(flaky, max_attempts=3)
    task = await core.until(await core.submit(slug), TaskStatus.ERROR)
    assert calls == [1, 2, 3]
    assert task.error == {"message": "boom", "attempts": 3}
    assert await core.kinds(task.id) == ["created", "running", "retry_scheduled", "running", "retry_scheduled", "running", "error"]
    assert [m for t, m in core.failures if t.id == task.id] == ["boom"] * 3


async def test_an_expired_lease_is_requeued_and_run_again(core: Core) -> None:
    async def ok(task: dict[str, Any]) -> Any:
        return "ran"

    slug = await core.agent(ok)
    core.dispatcher.concurrency = 0  # ours claims nothing meanwhile
    task_id = await core.submit(slug)
    # Another instance claims it and dies: its lease is never renewed.
    claimed = await core.store.claim(10, owner="dead-instance", lease_s=0.2, unreachable=[])
    assert task_id in {t.id for t in claimed}
    core.dispatcher.concurrency = 4
    task = await core.until(task_id, TaskStatus.DONE)
    assert task.attempts == 2
    kinds = await core.kinds(task_id)
    assert kinds[:3] == ["created", "running", "lease_expired"] and kinds[-1] == "done"


async def test_an_answer_from_a_superseded_attempt_is_dropped(core: Core) -> None:
    gate = asyncio.Event()

    async def slow(task: dict[str, Any]) -> Any:
        await gate.wait()
        return "late"

    slug = await core.agent(slow)
    task_id = await core.submit(slug)
    running = await core.until(task_id, TaskStatus.RUNNING)
    cancelled = await core.store.cancel(task_id, actor="operator")
    assert cancelled.status is TaskStatus.CANCELLED
    stale_before = core.dispatcher.stats["stale_answers"]
    gate.set()
    deadline = time.monotonic() + 5
    while core.dispatcher.stats["stale_answers"] == stale_before:
        assert time.monotonic() < deadline, "the late answer was never applied or dropped"
        await asyncio.sleep(0.02)
    task = await core.store.get(task_id)
    assert task.status is TaskStatus.CANCELLED and task.result is None
    assert await core.store.complete([Answer(task_id, running.attempts, task.result)], owner=core.dispatcher.instance_id) == set()
