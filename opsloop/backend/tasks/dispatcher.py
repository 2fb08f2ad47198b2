"""Runs queued tasks: claim with SKIP LOCKED, call the agent, record the outcome.

One dispatcher per app instance. It wakes on the live bus's task notifications (with a slow poll
as a safety net), claims in batches up to its free concurrency, holds a lease it renews while
agents work, and re-queues tasks whose lease expired because their instance died. Answers are
applied in batches, guarded by owner and attempt so a superseded attempt's answer is dropped.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import psycopg
from psycopg.types.json import Jsonb

from opsloop.backend import jsonutil
from opsloop.backend.agents.registry import Registry, TypeLimits
from opsloop.backend.batching import GroupCommit
from opsloop.backend.tasks.model import Task
from opsloop.backend.tasks.store import Answer, TaskStore
from opsloop.backend.tasks.unreachable import UnreachableAgents

log = logging.getLogger("opsloop.dispatcher")
# Idle agent connections are dropped before uvicorn's 5 s keep-alive closes them on the other
# side: reusing a connection the server is closing fails the request (and costs an attempt).
KEEPALIVE_S = 4.0

LocalHandler = Callable[[dict[str, Any]], Awaitable[Any]]
OnFailure = Callable[[Task, str], None]
ANSWER_BATCH = 500
ANSWER_GATHER_S = 0.002  # let a few answers gather: one statement for all


class PermanentFailure(Exception):
    """The agent refused the task (4xx), or answered what cannot be stored: retrying cannot help."""


class AgentUnreachable(Exception):
    """The connection to the agent was refused: the attempt never reached it."""


def backoff_s(attempt: int, base: float = 0.5, cap: float = 30.0) -> float:
    """Exponential backoff with full jitter (attempt 1 → up to `base` seconds)."""
    return random.uniform(base / 2, min(cap, base * 2 ** (attempt - 1)))


class Dispatcher:
    def __init__(
        self,
        store: TaskStore,
        registry: Registry,
        *,
        internal_key: str,
        instance_id: str | None = None,
        concurrency: int = 64,
        claim_batch: int = 32,
        lease_s: float = 15.0,
        poll_s: float = 2.0,
        backoff_base_s: float = 0.5,
        agent_wait_s: float = 300.0,
        local_handlers: dict[str, LocalHandler] | None = None,
        on_failure: OnFailure | None = None,
    ) -> None:
        self.store = store
        self.registry = registry
        self.internal_key = internal_key
        self.instance_id = instance_id or f"orchestrator-{uuid.uuid4().hex[:12]}"
        self.concurrency = concurrency
        self.claim_batch = claim_batch
        self.lease_s = lease_s
        self.poll_s = poll_s
        self.backoff_base_s = backoff_base_s
        self.local_handlers = local_handlers if local_handlers is not None else {}  # shared with the runtime, even when empty
        self.on_failure = on_failure
        self._inflight: dict[uuid.UUID, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        self._answers: GroupCommit[Answer, bool] = GroupCommit(
            self._complete, max_batch=ANSWER_BATCH, gather_s=ANSWER_GATHER_S, split_on=(psycopg.DataError,)
        )
        self._background: set[asyncio.Task[None]] = set()
        self._http: aiohttp.ClientSession | None = None  # made in the running loop, on first use
        self._stopping = False
        self._backlog = False
        self.stats = {"claimed": 0, "done": 0, "failed_attempts": 0, "stale_answers": 0, "given_back": 0}
        self.unreachable = UnreachableAgents(wait_s=agent_wait_s, url_of=self._agent_url, expire=self._expire_waits, on_back=self.wake)

    def wake(self) -> None:
        """There may be something to claim: a task was queued here, a slot freed up, or another
        instance created one (the runtime wakes it on a live notification of a new task:
        `live.codec.has_new_task`; other changes, such as claims, answers and events, would only
        cost an empty claim, and re-queues wake their own instance)."""
        self._wake.set()

    async def run(self) -> None:
        """Main loop plus its helpers (lease renewal, expiry reclaim); answers are written by
        their group commit."""
        helpers = [
            asyncio.create_task(self._renew_leases(), name="dispatcher-leases"),
            asyncio.create_task(self._reclaim_expired(), name="dispatcher-reclaim"),
        ]
        try:
            await self._claim_loop()
        finally:
            for t in helpers:
                t.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)

    async def stop(self, grace_s: float = 5.0) -> None:
        """Stop claiming, let running attempts finish for a moment, flush their answers."""
        self._stopping = True
        self._wake.set()
        if self._inflight:
            await asyncio.wait(list(self._inflight.values()), timeout=grace_s)
        try:  # bounded: with the database gone, the answers' leases expire and another instance redoes them
            await asyncio.wait_for(self._answers.drain(), timeout=grace_s)
        except TimeoutError:
            log.warning("stopped with %d answer(s) unrecorded; their tasks will be re-run after the lease", self._answers.pending)
        await self._answers.close()
        if self._background:
            await asyncio.wait(list(self._background), timeout=grace_s)
        await self.unreachable.close()
        if self._http is not None:
            await self._http.close()

    def _session(self) -> aiohttp.ClientSession:
        """One keep-alive session for every agent call. aiohttp rather than httpx: this is the hottest
        client in the system, and httpx's pool cost ~15x more CPU per request under concurrency."""
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.concurrency, keepalive_timeout=KEEPALIVE_S),
            )
        return self._http

    async def _claim_loop(self) -> None:
        while not self._stopping:
            self._wake.clear()
            free = self.concurrency - len(self._inflight)
            claimed = 0
            if free > 0:
                try:
                    claimed = await self._claim(min(free, self.claim_batch))
                except Exception as exc:  # database down: keep the loop, try again shortly
                    log.warning("claim failed: %s", exc)
                    await asyncio.sleep(1.0)
                    continue
            # Limited by our own capacity: more may be waiting, so a freed slot should claim again.
            self._backlog = free <= 0 or claimed == min(free, self.claim_batch)
            if claimed and claimed == min(free, self.claim_batch):
                continue  # likely more waiting: claim again right away
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self.poll_s)
            except TimeoutError:
                pass

    async def _claim(self, n: int) -> int:
        tasks = await self.store.claim(n, owner=self.instance_id, lease_s=self.lease_s, unreachable=self.unreachable.slugs)
        for task in tasks:
            self._inflight[task.id] = asyncio.create_task(self._execute(task))
        self.stats["claimed"] += len(tasks)
        return len(tasks)

    async def _execute(self, task: Task) -> None:
        try:
            output, channel = await self._call_agent(task)
            result = {"agent": {"slug": task.agent_slug, "channel": channel}, "status": "completed", "output": output}
            encoded = _storable_answer(task.agent_slug, result)  # alone: it can never fail the batch of answers
        except asyncio.CancelledError:
            raise
        except AgentUnreachable as exc:
            await self._give_back(task, str(exc))
        except Exception as exc:  # timeout, refusal, bad answer
            await self._fail(task, exc)
        else:
            answered = self._answers.submit(Answer(task.id, task.attempts, encoded))
            answered.add_done_callback(functools.partial(self._answered, task))
        finally:
            self._inflight.pop(task.id, None)
            if self._backlog or self._stopping:
                self._wake.set()

    async def _limits(self, task: Task) -> TypeLimits:
        agent = self.registry.cached(task.agent_slug) or await self.registry.get(task.agent_slug or "")
        return agent.limits_for(task.type) if agent is not None else TypeLimits()

    async def _call_agent(self, task: Task) -> tuple[Any, str]:
        slug = task.agent_slug or ""
        local = self.local_handlers.get(slug)
        if local is not None:  # in-process: the same per-type timeout as an HTTP agent's
            timeout_s = (await self._limits(task)).timeout_s
            try:
                async with asyncio.timeout(timeout_s):
                    return await local(task.row()), "local"
            except TimeoutError:
                raise RuntimeError(f"agent {slug} timed out after {timeout_s:g}s") from None
        agent = await self.registry.get(slug)
        if agent is None or not agent.url:
            raise RuntimeError(f"agent {slug!r} is not registered")
        limits = agent.limits_for(task.type)
        body = {
            "traceId": task.trace_id,
            "taskId": str(task.id),
            "type": task.type,
            "payload": task.payload,
            "correlationId": task.correlation_id,
            "attempt": task.attempts,
        }
        headers = {"X-Internal-Key": self.internal_key, "X-Trace-Id": task.trace_id}
        if task.correlation_id:
            headers["X-Correlation-Id"] = task.correlation_id
        headers["Content-Type"] = "application/json"
        try:
            async with self._session().post(
                agent.endpoint_url(), data=jsonutil.dumps(body), headers=headers, timeout=aiohttp.ClientTimeout(total=limits.timeout_s)
            ) as resp:
                status, raw = resp.status, await resp.read()
        except TimeoutError:
            raise RuntimeError(f"agent {slug} timed out after {limits.timeout_s:g}s") from None
        except aiohttp.ClientConnectorError as exc:  # refused or unresolvable: the request never left
            self.registry.invalidate()  # it may have moved: the retry reads its current URL
            raise AgentUnreachable(f"agent {slug} unreachable: {type(exc).__name__}") from None
        except aiohttp.ClientError as exc:
            self.registry.invalidate()
            raise RuntimeError(f"agent {slug} unreachable: {type(exc).__name__}") from None
        if 400 <= status < 500 and status not in (408, 429):
            text = raw[:200].decode(errors="replace")
            raise PermanentFailure(f"agent {slug} refused the task: HTTP {status} {text}")
        if status >= 300:
            raise RuntimeError(f"agent {slug} answered HTTP {status}")
        try:
            return jsonutil.parse(raw, "answer", jsonutil.ANSWER_DEPTH), "http"
        except jsonutil.JSONRejected as exc:
            if "not valid JSON" in exc.message:
                raise RuntimeError(f"agent {slug} answered non-JSON") from None
            raise PermanentFailure(f"agent {slug}'s {exc.message}") from None

    async def _fail(self, task: Task, exc: Exception) -> None:
        self.stats["failed_attempts"] += 1
        message = (str(exc) or type(exc).__name__).replace("\x00", "\ufffd")  # PostgreSQL text holds no NUL
        final = isinstance(exc, PermanentFailure)
        agent = self.registry.cached(task.agent_slug)
        base = agent.limits_for(task.type).backoff_s if agent else self.backoff_base_s
        delay = 0.0 if final else backoff_s(task.attempts, base)
        for _ in range(30):
            try:
                await self.store.fail_attempt(task, owner=self.instance_id, message=message, delay_s=delay, final=final)
                break
            except Exception as db_exc:  # keep the outcome until the database is back
                log.warning("recording a failed attempt failed: %s", db_exc)
                await asyncio.sleep(1.0)
        if not final:  # claim it again when due, not at the next slow poll
            asyncio.get_running_loop().call_later(delay, self._wake.set)
        if self.on_failure:
            self.on_failure(task, message)

    async def _give_back(self, task: Task, message: str) -> None:
        """The agent refused the connection: the task waits for it (see `unreachable.py`)."""
        self.unreachable.mark(task.agent_slug or "")
        for _ in range(30):
            try:
                await self.store.give_back(task, owner=self.instance_id, message=message, wait_s=self.unreachable.wait_s)
                self.stats["given_back"] += 1
                return
            except Exception as db_exc:  # keep the task until the database is back (its lease covers it)
                log.warning("giving back an attempt failed: %s", db_exc)
                await asyncio.sleep(1.0)

    async def _agent_url(self, slug: str) -> str | None:
        agent = await self.registry.get(slug)
        return agent.endpoint_url() if agent is not None and agent.url else None

    async def _expire_waits(self, slug: str, wait_s: float) -> int:
        message = f"agent {slug} unreachable for more than {wait_s:g}s (OPSLOOP_AGENT_WAIT_S)"
        return await self.store.expire_agent_waits(slug, wait_s=wait_s, message=message)

    async def _complete(self, answers: list[Answer]) -> list[bool | BaseException]:
        """One statement for a group of answers; with the database down they are kept and tried
        again (their leases are renewed meanwhile by nobody: past the lease, another attempt runs)."""
        while True:
            try:
                applied = await self.store.complete(answers, owner=self.instance_id)
                return [a.task_id in applied for a in answers]
            except psycopg.DataError:  # a value the database refuses: the group commit isolates it
                raise
            except Exception as exc:  # database down: keep the answers, try again
                log.warning("recording answers failed (%d kept): %s", len(answers), exc)
                await asyncio.sleep(0.5)

    def _answered(self, task: Task, answered: asyncio.Future[bool]) -> None:
        if answered.cancelled():
            return
        exc = answered.exception()
        if exc is None:
            if answered.result():
                self.stats["done"] += 1
            else:  # superseded: the lease expired and another attempt took over, or it was cancelled
                self.stats["stale_answers"] += 1
            return
        # refused by the database on its own: the attempt fails with the reason
        reason = PermanentFailure(f"the database refused agent {task.agent_slug}'s answer: {str(exc).splitlines()[0]}")
        failing = asyncio.create_task(self._fail(task, reason))
        self._background.add(failing)
        failing.add_done_callback(self._background.discard)

    async def _renew_leases(self) -> None:
        while True:
            await asyncio.sleep(self.lease_s / 3)
            ids = list(self._inflight)
            if not ids:
                continue
            try:
                await self.store.renew_leases(ids, owner=self.instance_id, lease_s=self.lease_s)
            except Exception as exc:
                log.warning("lease renewal failed: %s", exc)

    async def _reclaim_expired(self) -> None:
        while True:
            await asyncio.sleep(max(0.5, self.lease_s / 3))
            try:
                reclaimed = await self.store.reclaim_expired()
                if reclaimed:
                    log.warning("re-queued %d task(s) whose lease expired", reclaimed)
                    self._wake.set()
            except Exception as exc:
                log.warning("reclaim failed: %s", exc)


def _storable_answer(slug: str | None, result: dict[str, Any]) -> Jsonb:
    """The answer as its own jsonb parameter, or a PermanentFailure saying why it cannot be stored."""
    try:
        jsonutil.check(result["output"], "answer", jsonutil.ANSWER_DEPTH)  # as the agent sent it (local handlers too)
        return jsonutil.as_jsonb(jsonutil.encode(result, "answer"))  # the wrapper adds our own fields only: checked once
    except jsonutil.JSONRejected as exc:
        raise PermanentFailure(f"agent {slug}'s {exc.message}") from None
