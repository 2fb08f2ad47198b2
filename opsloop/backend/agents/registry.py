"""Routing tasks to agents from the registry in `agent_heartbeats`.

Agents register themselves (slug, task types, URL, endpoint) over REST, so adding one needs no
change here. Each process keeps a small cache of the registry, refreshed every few seconds and
at once after a registration it served, so routing a task costs no query.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from psycopg.types.json import Jsonb

from opsloop.backend.db import DictPool
from opsloop.backend.sql import queries

Q = queries("agents")
STALE_AFTER_S = 30.0
DEFAULT_TIMEOUT_S = 10.0
DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_BACKOFF_S = 0.5


@dataclass(frozen=True)
class TypeLimits:
    """Per task type: how long one attempt may take, how many attempts a task gets, and the
    base of the exponential backoff between attempts (an agent that needs time to recover says so)."""

    timeout_s: float = DEFAULT_TIMEOUT_S
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    backoff_s: float = DEFAULT_BACKOFF_S


@dataclass(frozen=True)
class Agent:
    slug: str
    kind: str
    url: str | None
    endpoint: str | None
    task_types: tuple[str, ...]
    limits: dict[str, TypeLimits] = field(default_factory=dict)
    age_s: float = 0.0

    @property
    def live(self) -> bool:
        return self.age_s < STALE_AFTER_S

    def limits_for(self, task_type: str) -> TypeLimits:
        return self.limits.get(task_type, TypeLimits())

    def endpoint_url(self) -> str:
        return (self.url or "").rstrip("/") + (self.endpoint or "/")


def _agent(row: dict[str, Any]) -> Agent:
    meta = row.get("meta") or {}
    limits = {
        t: TypeLimits(
            timeout_s=max(0.05, float(v.get("timeoutMs", DEFAULT_TIMEOUT_S * 1000)) / 1000),
            max_attempts=max(1, int(v.get("maxAttempts", DEFAULT_MAX_ATTEMPTS))),
            backoff_s=max(0.0, float(v.get("backoffMs", DEFAULT_BACKOFF_S * 1000)) / 1000),
        )
        for t, v in (meta.get("limits") or {}).items()
        if isinstance(v, dict)
    }
    return Agent(
        slug=row["slug"],
        kind=row["kind"],
        url=row["url"],
        endpoint=row["endpoint"],
        task_types=tuple(row["task_types"] or ()),
        limits=limits,
        age_s=float(row.get("age_s") or 0.0),
    )


class Registry:
    """Cached view of the registry for routing; `refresh()` re-reads it."""

    def __init__(self, pool: DictPool, ttl_s: float = 3.0) -> None:
        self.pool = pool
        self.ttl_s = ttl_s
        self._agents: dict[str, Agent] = {}
        self._loaded_at = 0.0  # when the read behind `_agents` began
        self._invalidated_at = 0.0
        self._lock = asyncio.Lock()

    def _stale(self) -> bool:
        return self._loaded_at <= self._invalidated_at or time.monotonic() - self._loaded_at > self.ttl_s

    async def refresh(self) -> None:
        """Re-read the registry. Callers that pile up (64 attempts after one invalidation) share
        one query: a read that began after a caller asked is as fresh as its own would be."""
        asked = time.monotonic()
        async with self._lock:
            if self._loaded_at > asked:
                return
            began = time.monotonic()
            async with self.pool.connection() as conn:
                rows = await (await conn.execute(Q.list_all)).fetchall()
            self._agents = {r["slug"]: _agent(r) for r in rows}
            self._loaded_at = began

    async def agents(self) -> list[Agent]:
        if self._stale():
            await self.refresh()
        return list(self._agents.values())

    def invalidate(self) -> None:
        """Re-read on next use: an agent (re-)registered somewhere, or a call to one failed. A read
        already under way when this happens does not count as fresh."""
        self._invalidated_at = time.monotonic()

    def cached(self, slug: str | None) -> Agent | None:
        """The agent as last read, without a query (for decisions that may be slightly stale)."""
        return self._agents.get(slug) if slug else None

    async def get(self, slug: str) -> Agent | None:
        if slug not in self._agents or self._stale():
            await self.refresh()
        return self._agents.get(slug)

    async def route(self, task_type: str, agent_slug: str | None = None) -> Agent | None:
        """The agent for a task: the named one if it handles the type, else the freshest that does."""
        candidates = [a for a in await self.agents() if a.kind == "agent" and task_type in a.task_types]
        if not candidates:
            await self.refresh()
            candidates = [a for a in self._agents.values() if a.kind == "agent" and task_type in a.task_types]
        if agent_slug is not None:
            return next((a for a in candidates if a.slug == agent_slug), None)
        return min(candidates, key=lambda a: a.age_s, default=None)

    async def register(
        self,
        *,
        slug: str,
        url: str | None,
        task_types: list[str],
        endpoint: str | None,
        meta: dict[str, Any] | None,
        kind: str = "agent",
    ) -> dict[str, Any]:
        params = {
            "slug": slug,
            "kind": kind,
            "url": url,
            "task_types": task_types,
            "endpoint": endpoint,
            "meta": Jsonb(meta or {}),
        }
        async with self.pool.connection() as conn:
            row = await (await conn.execute(Q.register, params)).fetchone()
        await self.refresh()
        assert row is not None  # an upsert RETURNING always returns its row
        return row

    async def heartbeat(self, slug: str) -> dict[str, Any] | None:
        async with self.pool.connection() as conn:
            return await (await conn.execute(Q.heartbeat, {"slug": slug})).fetchone()

    async def list_rows(self) -> list[dict[str, Any]]:
        async with self.pool.connection() as conn:
            rows = await (await conn.execute(Q.list_all)).fetchall()
        for r in rows:
            r["live"] = float(r.pop("age_s") or 0) < STALE_AFTER_S
        return rows
