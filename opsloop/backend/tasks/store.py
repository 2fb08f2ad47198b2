"""The task store: every statement on `tasks` and `task_events` (named in `sql/tasks.sql`).

Each method is one round trip (two where it must tell "not found" from "conflict"), every change
writes its event in the same statement, and rows leave as typed values (`model.py`). The live
bus is the exception on purpose: it gets wire rows (`Row`), since its frames are encoded from
them and it fetches every change of every instance.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from opsloop.backend.batching import GroupCommit
from opsloop.backend.db import DictPool, execute_prepared
from opsloop.backend.errors import BadRequest, Conflict, NotFound
from opsloop.backend.jsonutil import storable
from opsloop.backend.listing import Where, id_cursor, page
from opsloop.backend.paging import BadCursor, decode_cursor, encode_cursor
from opsloop.backend.sql import queries
from opsloop.backend.tasks.model import STATUSES, Created, NewTask, Row, Task, TaskEvent, TaskStatus

Q = queries("tasks")
MANUAL_RUNNING_LEASE_S = 600  # a task set `running` by hand is re-queued if still running after this
RETENTION_BATCH = 5000


@dataclass(frozen=True, slots=True)
class TaskFilter:
    """What `GET /tasks` and the dashboard's tasks view filter on (each has an index)."""

    status: str | None = None
    correlation_id: str | None = None
    trace_id: str | None = None
    type: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True, slots=True)
class EventFilter:
    """What `GET /task/events`, the activity view and the streams' replay filter on."""

    task_id: uuid.UUID | None = None
    trace_id: str | None = None
    correlation_id: str | None = None
    actor: str | None = None
    kind: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    after_id: int | None = None


@dataclass(frozen=True, slots=True)
class Answer:
    """An agent's answer to one attempt, its result already encoded (`jsonutil.storable`)."""

    task_id: uuid.UUID
    attempt: int
    result: Jsonb


def parse_task_id(raw: str) -> uuid.UUID:
    """A malformed id is simply a task that does not exist (404, never 500)."""
    try:
        return uuid.UUID(raw)
    except (ValueError, AttributeError, TypeError):
        raise NotFound("Task not found") from None


def new_trace_id() -> str:
    return uuid.uuid4().hex


def task_cursor(task: Task | Row) -> str:
    """The `list` cursor that continues after `task` (newest update first)."""
    if isinstance(task, Task):
        return encode_cursor([task.updated_at.isoformat(), str(task.id)])
    return encode_cursor([task["updated_at"].isoformat(), str(task["id"])])


def _check_status(status: str | None) -> None:
    if status is not None and status not in STATUSES:
        raise BadRequest(f"status must be one of {', '.join(STATUSES)}")


def _refused(exc: BaseException) -> BaseException:
    return BadRequest(f"the database refused a value: {exc}")


class TaskStore:
    """All persistence of tasks and their events, over one pool. Built once by the runtime."""

    def __init__(self, pool: AsyncConnectionPool[Any], *, max_batch: int = 256, max_inflight: int = 2) -> None:
        self.pool: DictPool = pool  # made by `db.make_pool`: dict rows
        # Creates that arrive together are one statement (see `batching.py`).
        self.creates: GroupCommit[NewTask, Created] = GroupCommit(
            self._create_group, max_batch=max_batch, max_inflight=max_inflight, split_on=(psycopg.DataError,), refused=_refused
        )

    # -- create ------------------------------------------------------------------------------
    async def create(self, task: NewTask) -> Created:
        """Insert the task and its `created` event; with a known idempotency key, the first task."""
        payload = storable(task.payload, "payload")  # raises for this request alone, before it joins a group
        return await self.creates.submit(replace(task, payload=payload))

    async def _create_group(self, tasks: list[NewTask]) -> list[Created | BaseException]:
        ids = [uuid.uuid4() for _ in tasks]
        params = {
            "ids": ids,
            "types": [t.type for t in tasks],
            "sources": [t.source for t in tasks],
            "payloads": [t.payload for t in tasks],  # already encoded, one by one (`create`)
            "correlation_ids": [t.correlation_id for t in tasks],
            "trace_ids": [t.trace_id for t in tasks],
            "agent_slugs": [t.agent_slug for t in tasks],
            "idempotency_keys": [t.idempotency_key for t in tasks],
            "max_attempts": [t.max_attempts for t in tasks],
        }
        async with self.pool.connection() as conn:  # prepared per connection: the hot statement
            inserted = {r["id"] for r in await (await execute_prepared(conn, Q.create_tasks, params)).fetchall()}
            keys = [t.idempotency_key for i, t in zip(ids, tasks, strict=True) if i not in inserted and t.idempotency_key]
            existing: dict[str, Row] = {}
            if keys:
                rows = await (await conn.execute(Q.tasks_by_idempotency_keys, {"keys": keys})).fetchall()
                existing = {r["idempotency_key"]: r for r in rows}
        out: list[Created | BaseException] = []
        for task_id, task in zip(ids, tasks, strict=True):
            if task_id in inserted:
                out.append(Created(task_id, task.trace_id, TaskStatus.QUEUED, task.agent_slug, True))
            elif task.idempotency_key in existing:
                r = existing[task.idempotency_key]
                out.append(Created(r["id"], r["trace_id"], TaskStatus(r["status"]), r["agent_slug"], False))
            else:  # the first one was deleted by retention meanwhile
                out.append(Conflict("idempotency key is being used by a task that no longer exists"))
        return out

    # -- read --------------------------------------------------------------------------------
    async def get(self, task_id: uuid.UUID) -> Task:
        async with self.pool.connection() as conn:
            row = await (await execute_prepared(conn, Q.get_task, {"id": task_id})).fetchone()
        if row is None:
            raise NotFound("Task not found")
        return Task.from_row(row)

    async def get_with_events(self, task_id: uuid.UUID) -> tuple[Task, list[TaskEvent]]:
        """The task and its events, oldest first."""
        async with self.pool.connection() as conn:
            row = await (await execute_prepared(conn, Q.get_task, {"id": task_id})).fetchone()
            if row is None:
                raise NotFound("Task not found")
            events = await (await execute_prepared(conn, Q.task_events, {"id": task_id})).fetchall()
        return Task.from_row(row), [TaskEvent.from_row(e) for e in events]

    async def get_many(self, task_ids: Sequence[uuid.UUID]) -> list[Task]:
        """The current rows of these tasks (those that still exist), in no particular order."""
        if not task_ids:
            return []
        async with self.pool.connection() as conn:
            rows = await (await conn.execute(Q.tasks_by_ids, {"ids": list(task_ids)})).fetchall()
        return [Task.from_row(r) for r in rows]

    async def list_by_types(self, types: Sequence[str], limit: int) -> list[Task]:
        """The latest tasks of these types, newest update first (one indexed scan per type)."""
        async with self.pool.connection() as conn:
            rows = await (await conn.execute(Q.tasks_by_types, {"types": list(types), "limit": limit})).fetchall()
        return [Task.from_row(r) for r in rows]

    async def count_by_status(self, filters: TaskFilter = TaskFilter()) -> dict[str, int]:
        """Counts per status for the dashboard's filter chips (bounded by the same filters;
        `status` and `until` are not among them: the chips show every status)."""
        where = (
            Where()
            .eq("type", filters.type or None)
            .eq("correlation_id", filters.correlation_id or None)
            .eq("trace_id", filters.trace_id or None)
            .since("updated_at", filters.since)
        )
        sql = where.sql("SELECT status, count(*) AS n FROM tasks", "GROUP BY status")
        async with self.pool.connection() as conn:
            rows = await (await conn.execute(sql, where.params)).fetchall()
        counts = dict.fromkeys(STATUSES, 0)
        counts.update({r["status"]: r["n"] for r in rows})
        return counts

    # -- change by hand ----------------------------------------------------------------------
    async def patch(self, task_id: uuid.UUID, if_version: int, changes: dict[str, Any], actor: str) -> Task:
        """Optimistic update: applies only at `if_version`; one event describes the change."""
        status = changes.get("status")
        _check_status(status)
        params: dict[str, Any] = {"id": task_id, "if_version": if_version, "actor": actor, "status": status, "manual_lease_s": MANUAL_RUNNING_LEASE_S}
        for field in ("result", "error", "payload"):
            params[f"set_{field}"] = field in changes
            params[field] = storable(changes.get(field), field)
        params["set_correlation_id"] = "correlation_id" in changes
        params["correlation_id"] = changes.get("correlation_id")
        params["kind"] = "status" if status else "updated"
        params["event_data"] = Jsonb({"fields": sorted(changes), "status": status, "version": if_version + 1})
        async with self.pool.connection() as conn:
            row = await (await conn.execute(Q.patch_task, params)).fetchone()
            if row is not None:
                return Task.from_row(row)
            exists = await (await conn.execute(Q.get_task, {"id": task_id})).fetchone()
        if exists is None:
            raise NotFound("Task not found")
        raise Conflict("Version conflict")

    async def cancel(self, task_id: uuid.UUID, actor: str) -> Task:
        """Cancel a queued or running task (its agent's late answer is then ignored)."""
        return await self._transition(Q.cancel_task, task_id, actor, "only a queued or running task can be cancelled")

    async def retry(self, task_id: uuid.UUID, actor: str) -> Task:
        """Queue a failed or cancelled task again, with its attempts reset."""
        return await self._transition(Q.retry_task, task_id, actor, "only a failed or cancelled task can be retried")

    async def _transition(self, sql: str, task_id: uuid.UUID, actor: str, refusal: str) -> Task:
        async with self.pool.connection() as conn:
            row = await (await conn.execute(sql, {"id": task_id, "actor": actor})).fetchone()
            if row is not None:
                row.pop("previous_status", None)
                return Task.from_row(row)
            current = await (await conn.execute(Q.get_task, {"id": task_id})).fetchone()
        if current is None:
            raise NotFound("Task not found")
        raise Conflict(f"Task is {current['status']}: {refusal}")

    # -- events ------------------------------------------------------------------------------
    async def add_event(
        self, task_id: uuid.UUID, *, actor: str, kind: str, data: Any, correlation_id: str | None = None, trace_id: str | None = None
    ) -> TaskEvent:
        """An event reported by an agent or a script; ids default to the task's own."""
        params = {
            "task_id": task_id,
            "actor": actor,
            "kind": kind,
            "data": storable(data, "data"),
            "correlation_id": correlation_id,
            "trace_id": trace_id,
        }
        async with self.pool.connection() as conn:
            row = await (await conn.execute(Q.insert_event, params)).fetchone()
        if row is None:
            raise NotFound("Task not found")
        return TaskEvent.from_row(row)

    async def list_events(
        self, filters: EventFilter = EventFilter(), *, limit: int = 100, cursor: str | None = None, oldest_first: bool = False
    ) -> tuple[list[TaskEvent], str | None]:
        """Task events, newest first by default, keyset-paged on id."""
        where = (
            Where(limit=limit + 1)
            .eq("task_id", filters.task_id)
            .eq("trace_id", filters.trace_id)
            .eq("correlation_id", filters.correlation_id)
            .eq("actor", filters.actor)
            .eq("kind", filters.kind)
            .since("ts", filters.since)
            .until("ts", filters.until)
        )
        if filters.after_id is not None:
            where.add("id > %(after_id)s", after_id=filters.after_id)
        where.after_id(cursor, oldest_first)
        sql = where.sql("SELECT * FROM task_events", f"ORDER BY id {'ASC' if oldest_first else 'DESC'} LIMIT %(limit)s")
        async with self.pool.connection() as conn:
            rows = await (await conn.execute(sql, where.params)).fetchall()
        events, next_cursor = page(rows, limit, id_cursor)
        return [TaskEvent.from_row(r) for r in events], next_cursor

    async def delete_events_older_than(self, cutoff: datetime, batch: int = RETENTION_BATCH, on_batch: Callable[[int], None] | None = None) -> int:
        """Retention: delete in small batches, each its own short transaction, until none is left."""
        total = 0
        while True:
            async with self.pool.connection() as conn:
                cur = await conn.execute(Q.delete_old_events, {"cutoff": cutoff, "batch": batch})
            total += cur.rowcount
            if on_batch is not None:
                on_batch(cur.rowcount)
            if cur.rowcount < batch:
                return total

    # -- the dispatcher's statements ---------------------------------------------------------
    async def claim(self, n: int, *, owner: str, lease_s: float, unreachable: list[str]) -> list[Task]:
        """Take up to `n` runnable tasks (SKIP LOCKED), set them running under a lease."""
        params = {"n": n, "owner": owner, "lease_s": lease_s, "unreachable": unreachable}
        async with self.pool.connection() as conn:
            rows = await (await execute_prepared(conn, Q.claim_tasks, params)).fetchall()
        return [Task.from_row(r) for r in rows]

    async def complete(self, answers: Sequence[Answer], *, owner: str) -> set[uuid.UUID]:
        """Record answers in one statement; the ids it applied (others were superseded)."""
        params = {
            "ids": [a.task_id for a in answers],
            "attempts": [a.attempt for a in answers],
            "results": [a.result for a in answers],
            "owner": owner,
        }
        async with self.pool.connection() as conn:
            return {r["id"] for r in await (await execute_prepared(conn, Q.complete_tasks, params)).fetchall()}

    async def fail_attempt(self, task: Task, *, owner: str, message: str, delay_s: float, final: bool) -> None:
        """The attempt failed: queued again after `delay_s`, or `error` past the limit or when `final`."""
        params = {"id": task.id, "owner": owner, "attempt": task.attempts, "message": message, "delay_s": delay_s, "final": final}
        async with self.pool.connection() as conn:
            await execute_prepared(conn, Q.fail_attempt, params)

    async def give_back(self, task: Task, *, owner: str, message: str, wait_s: float) -> None:
        """The agent could not be reached: the attempt did not happen (see `unreachable.py`)."""
        params = {"id": task.id, "owner": owner, "attempt": task.attempts, "message": message, "wait_s": wait_s}
        async with self.pool.connection() as conn:
            await execute_prepared(conn, Q.give_back_attempt, params)

    async def expire_agent_waits(self, agent_slug: str, *, wait_s: float, message: str) -> int:
        """End (`error`) the queued tasks of an unreachable agent that waited longer than `wait_s`."""
        async with self.pool.connection() as conn:
            rows = await (await conn.execute(Q.expire_agent_waits, {"agent": agent_slug, "wait_s": wait_s, "message": message})).fetchall()
        return len(rows)

    async def renew_leases(self, task_ids: list[uuid.UUID], *, owner: str, lease_s: float) -> None:
        async with self.pool.connection() as conn:
            await execute_prepared(conn, Q.renew_leases, {"ids": task_ids, "owner": owner, "lease_s": lease_s})

    async def reclaim_expired(self) -> int:
        """Tasks whose instance died (lease not renewed): queued again, or `error` past the limit."""
        async with self.pool.connection() as conn:
            rows = await (await conn.execute(Q.reclaim_expired)).fetchall()
        return len(rows)

    # -- the overview charts -----------------------------------------------------------------
    async def outcomes(self, window: str, unit: str) -> tuple[list[Row], Row]:
        """Finished tasks per `unit` bucket over `window` (an interval), and the current totals."""
        params = {"window": window, "unit": unit}
        async with self.pool.connection() as conn:
            buckets = await (await conn.execute(Q.outcomes_by_bucket, params)).fetchall()
            totals = await (await conn.execute(Q.totals, params)).fetchone()
        return buckets, totals or {}

    # -- the live bus: wire rows, on the bus's own connection --------------------------------
    @staticmethod
    async def live_position(conn: psycopg.AsyncConnection[Any]) -> tuple[int, int]:
        """(highest log id, highest task event id): where a live stream starts."""
        rows = await _fetch(conn, Q.live_position, {})
        return int(rows[0]["log"]), int(rows[0]["event"])

    @staticmethod
    async def wire_tasks(conn: psycopg.AsyncConnection[Any], task_ids: list[uuid.UUID]) -> list[Row]:
        return await _fetch(conn, Q.tasks_by_ids, {"ids": task_ids})

    @staticmethod
    async def wire_events(conn: psycopg.AsyncConnection[Any], event_ids: list[int]) -> list[Row]:
        return await _fetch(conn, Q.events_by_ids, {"ids": event_ids})

    @staticmethod
    async def event_ids_after(conn: psycopg.AsyncConnection[Any], after: int, limit: int) -> list[int]:
        return [r["id"] for r in await _fetch(conn, Q.event_ids_after, {"after": after, "limit": limit})]

    @staticmethod
    async def changed_since(conn: psycopg.AsyncConnection[Any], since: datetime, limit: int) -> list[tuple[uuid.UUID, int]]:
        """(id, version) of every task changed since `since`, oldest change first."""
        return [(r["id"], r["version"]) for r in await _fetch(conn, Q.tasks_changed_since, {"since": since, "limit": limit})]

    async def close(self) -> None:
        """Wait for the creates in flight (bounded by the pool's timeout)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.creates.drain(), timeout=5)
        await self.creates.close()

    # Last in the class: below it, `list` in an annotation would name this method (mypy).
    async def list(self, filters: TaskFilter = TaskFilter(), *, limit: int = 50, cursor: str | None = None) -> tuple[list[Task], str | None]:
        """Newest `updated_at` first, keyset-paged on (updated_at, id); each filter has an index."""
        _check_status(filters.status)
        where = (
            Where(limit=limit + 1)
            .eq("status", filters.status)
            .eq("correlation_id", filters.correlation_id)
            .eq("trace_id", filters.trace_id)
            .eq("type", filters.type)
            .since("updated_at", filters.since)
            .until("updated_at", filters.until)
        )
        if cursor:
            ts, last_id = decode_cursor(cursor, 2)
            try:
                c_ts, c_id = datetime.fromisoformat(ts), uuid.UUID(last_id)
            except (TypeError, ValueError, AttributeError):
                raise BadCursor("cursor is not valid") from None
            where.add("(updated_at, id) < (%(c_ts)s, %(c_id)s)", c_ts=c_ts, c_id=c_id)
        sql = where.sql("SELECT * FROM tasks", "ORDER BY updated_at DESC, id DESC LIMIT %(limit)s")
        async with self.pool.connection() as conn:
            rows = await (await conn.execute(sql, where.params)).fetchall()
        return page([Task.from_row(r) for r in rows], limit, task_cursor)


async def _fetch(conn: psycopg.AsyncConnection[Any], sql: str, params: dict[str, Any]) -> list[Row]:
    """Dict rows on any connection (the bus's LISTEN connection returns tuples by default)."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql, params)
        return await cur.fetchall()
