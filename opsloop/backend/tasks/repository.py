"""Task persistence: every function is one round trip, and every change writes its event in the
same statement (see `sql/tasks.sql`)."""

from __future__ import annotations

import asyncio
import uuid
import weakref
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from opsloop.backend.db import execute_prepared
from opsloop.backend.errors import BadRequest, Conflict, NotFound
from opsloop.backend.jsonutil import storable
from opsloop.backend.models import TASK_STATUSES
from opsloop.backend.paging import BadCursor, decode_cursor, encode_cursor
from opsloop.backend.sql import queries

Q = queries("tasks")
Row = dict[str, Any]


def parse_task_id(raw: str) -> uuid.UUID:
    """A malformed id is simply a task that does not exist (404, never 500)."""
    try:
        return uuid.UUID(raw)
    except (ValueError, AttributeError, TypeError):
        raise NotFound("Task not found") from None


def new_trace_id() -> str:
    return uuid.uuid4().hex


async def create_task(
    pool: AsyncConnectionPool,
    *,
    type: str,
    source: str,
    payload: Any,
    correlation_id: str | None,
    trace_id: str,
    agent_slug: str,
    idempotency_key: str | None,
    max_attempts: int,
) -> tuple[Row, bool]:
    """Insert the task and its `created` event; with a known idempotency key, the first task."""
    params = {
        "type": type,
        "source": source,
        "payload": storable(payload, "payload"),
        "correlation_id": correlation_id,
        "trace_id": trace_id,
        "agent_slug": agent_slug,
        "idempotency_key": idempotency_key,
        "max_attempts": max_attempts,
    }
    async with pool.connection() as conn:
        row = await (await conn.execute(Q.create_task, params)).fetchone()
        if row is not None:
            return row, True
        existing = await (await conn.execute(Q.task_by_idempotency_key, params)).fetchone()
        if existing is None:  # the first one was deleted by retention meanwhile
            raise Conflict("idempotency key is being used by a task that no longer exists")
        return existing, False


@dataclass(frozen=True)
class NewTask:
    """One create request, validated and routed. `payload` is what the caller sent; the batcher
    encodes it on the caller's side (`storable`), so one bad payload fails its own request only."""

    type: str
    source: str
    payload: Any
    correlation_id: str | None
    trace_id: str
    agent_slug: str
    idempotency_key: str | None
    max_attempts: int


class CreateBatcher:
    """Groups the creates that arrive together into one statement.

    Each create is a commit, and commits of rows with live triggers are serialised by NOTIFY;
    grouping them costs no latency (a request arriving alone is written at once; others wait
    only for the write in flight) and turns N commits, trigger runs and NOTIFYs into one.
    A request is answered after its row is committed, exactly as with a single insert.
    """

    def __init__(self, pool: AsyncConnectionPool, *, max_batch: int = 256, max_inflight: int = 2) -> None:
        self.pool = pool
        self.max_batch = max_batch
        self.max_inflight = max_inflight
        self._queue: list[tuple[NewTask, asyncio.Future[tuple[Row, bool]]]] = []
        self._inflight = 0
        self._flushers: set[asyncio.Task[None]] = set()

    async def create(self, task: NewTask) -> tuple[Row, bool]:
        """`({id, trace_id, status, agent_slug}, created)`; with a known idempotency key, the first task."""
        payload = storable(task.payload, "payload")  # raises for this request alone, before it joins a batch
        future: asyncio.Future[tuple[Row, bool]] = asyncio.get_running_loop().create_future()
        self._queue.append((replace(task, payload=payload), future))
        if self._inflight < self.max_inflight:
            self._inflight += 1
            flusher = asyncio.create_task(self._flush())
            self._flushers.add(flusher)
            flusher.add_done_callback(self._flushers.discard)
        return await future

    async def _flush(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
                try:
                    await self._write(batch)
                except psycopg.DataError as exc:  # one bad value fails the statement: isolate it
                    if len(batch) == 1:
                        _settle(batch[0][1], exc=BadRequest(f"the database refused a value: {exc}"))
                    else:
                        for item in batch:
                            await self._write_or_settle([item])
                except Exception as exc:  # database down: every waiting request gets the error
                    for _, future in batch:
                        _settle(future, exc=exc)
        finally:
            self._inflight -= 1

    async def _write_or_settle(self, batch: list[tuple[NewTask, asyncio.Future[tuple[Row, bool]]]]) -> None:
        try:
            await self._write(batch)
        except psycopg.DataError as exc:
            _settle(batch[0][1], exc=BadRequest(f"the database refused a value: {exc}"))
        except Exception as exc:
            _settle(batch[0][1], exc=exc)

    async def _write(self, batch: list[tuple[NewTask, asyncio.Future[tuple[Row, bool]]]]) -> None:
        ids = [uuid.uuid4() for _ in batch]
        tasks = [t for t, _ in batch]
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
            existing = {}
            if keys:
                rows = await (await conn.execute(Q.tasks_by_idempotency_keys, {"keys": keys})).fetchall()
                existing = {r.pop("idempotency_key"): r for r in rows}
        for task_id, (task, future) in zip(ids, batch, strict=True):
            if task_id in inserted:
                _settle(future, ({"id": task_id, "trace_id": task.trace_id, "status": "queued", "agent_slug": task.agent_slug}, True))
            elif task.idempotency_key in existing:
                _settle(future, (existing[task.idempotency_key], False))
            else:  # the first one was deleted by retention meanwhile
                _settle(future, exc=Conflict("idempotency key is being used by a task that no longer exists"))


def _settle(future: asyncio.Future[Any], value: Any = None, exc: BaseException | None = None) -> None:
    if future.done():  # the request went away (client disconnected); its row stands
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(value)


_batchers: weakref.WeakKeyDictionary[AsyncConnectionPool, CreateBatcher] = weakref.WeakKeyDictionary()


def create_batcher(pool: AsyncConnectionPool) -> CreateBatcher:
    """The process's batcher for `pool` (one per pool, made on first use)."""
    batcher = _batchers.get(pool)
    if batcher is None:
        batcher = _batchers[pool] = CreateBatcher(pool)
    return batcher


async def get_task(pool: AsyncConnectionPool, task_id: uuid.UUID) -> tuple[Row, list[Row]]:
    async with pool.connection() as conn:
        task = await (await execute_prepared(conn, Q.get_task, {"id": task_id})).fetchone()
        if task is None:
            raise NotFound("Task not found")
        events = await (await execute_prepared(conn, Q.task_events, {"id": task_id})).fetchall()
    return task, events


async def get_tasks(pool: AsyncConnectionPool, task_ids: list[uuid.UUID]) -> list[Row]:
    """The current rows of these tasks (those that still exist), in no particular order."""
    if not task_ids:
        return []
    async with pool.connection() as conn:
        return await (await conn.execute(Q.tasks_by_ids, {"ids": task_ids})).fetchall()


async def list_tasks(
    pool: AsyncConnectionPool,
    *,
    status: str | None = None,
    correlation_id: str | None = None,
    trace_id: str | None = None,
    type: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[Row], str | None]:
    """Newest `updated_at` first, keyset-paged on (updated_at, id); each filter has an index."""
    where, params = [], {"limit": limit + 1}
    if status is not None:
        if status not in TASK_STATUSES:
            raise BadRequest(f"status must be one of {', '.join(TASK_STATUSES)}")
        where.append("status = %(status)s")
        params["status"] = status
    for column, value in (("correlation_id", correlation_id), ("trace_id", trace_id), ("type", type)):
        if value is not None:
            where.append(f"{column} = %({column})s")
            params[column] = value
    if since is not None:
        where.append("updated_at >= %(since)s")
        params["since"] = since
    if until is not None:
        where.append("updated_at < %(until)s")
        params["until"] = until
    if cursor:
        ts, last_id = decode_cursor(cursor, 2)
        try:
            c_ts, c_id = datetime.fromisoformat(ts), uuid.UUID(last_id)
        except (TypeError, ValueError, AttributeError):
            raise BadCursor("cursor is not valid") from None
        where.append("(updated_at, id) < (%(c_ts)s, %(c_id)s)")
        params.update(c_ts=c_ts, c_id=c_id)
    sql = "SELECT * FROM tasks"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY updated_at DESC, id DESC LIMIT %(limit)s"
    async with pool.connection() as conn:
        rows = await (await conn.execute(sql, params)).fetchall()
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = task_cursor(rows[-1])
    return rows, next_cursor


def task_cursor(task: Row) -> str:
    """The `list_tasks` cursor that continues after `task` (newest update first)."""
    return encode_cursor([task["updated_at"].isoformat(), str(task["id"])])


async def count_by_status(pool: AsyncConnectionPool, **filters: Any) -> dict[str, int]:
    """Counts per status for the dashboard's filter chips (bounded by the same filters)."""
    where, params = [], {}
    for column in ("type", "correlation_id", "trace_id"):
        if filters.get(column):
            where.append(f"{column} = %({column})s")
            params[column] = filters[column]
    if filters.get("since"):
        where.append("updated_at >= %(since)s")
        params["since"] = filters["since"]
    sql = "SELECT status, count(*) AS n FROM tasks"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " GROUP BY status"
    async with pool.connection() as conn:
        rows = await (await conn.execute(sql, params)).fetchall()
    counts = dict.fromkeys(TASK_STATUSES, 0)
    counts.update({r["status"]: r["n"] for r in rows})
    return counts


PATCHABLE = ("status", "result", "error", "payload", "correlation_id")
MANUAL_RUNNING_LEASE_S = 600  # a task set `running` by hand is re-queued if still running after this


async def patch_task(pool: AsyncConnectionPool, task_id: uuid.UUID, if_version: int, changes: dict[str, Any], actor: str) -> Row:
    """Optimistic update: applies only at `if_version`; one event describes the change."""
    status = changes.get("status")
    if status is not None and status not in TASK_STATUSES:
        raise BadRequest(f"status must be one of {', '.join(TASK_STATUSES)}")
    params: dict[str, Any] = {"id": task_id, "if_version": if_version, "actor": actor, "status": status, "manual_lease_s": MANUAL_RUNNING_LEASE_S}
    for field in ("result", "error", "payload"):
        params[f"set_{field}"] = field in changes
        params[field] = storable(changes.get(field), field)
    params["set_correlation_id"] = "correlation_id" in changes
    params["correlation_id"] = changes.get("correlation_id")
    params["kind"] = "status" if status else "updated"
    params["event_data"] = Jsonb({"fields": sorted(changes), "status": status, "version": if_version + 1})
    async with pool.connection() as conn:
        row = await (await conn.execute(Q.patch_task, params)).fetchone()
        if row is not None:
            return row
        exists = await (await conn.execute(Q.get_task, {"id": task_id})).fetchone()
    if exists is None:
        raise NotFound("Task not found")
    raise Conflict("Version conflict")


async def cancel_task(pool: AsyncConnectionPool, task_id: uuid.UUID, actor: str) -> Row:
    return await _transition(pool, Q.cancel_task, task_id, actor, "only a queued or running task can be cancelled")


async def retry_task(pool: AsyncConnectionPool, task_id: uuid.UUID, actor: str) -> Row:
    return await _transition(pool, Q.retry_task, task_id, actor, "only a failed or cancelled task can be retried")


async def _transition(pool: AsyncConnectionPool, sql: str, task_id: uuid.UUID, actor: str, refusal: str) -> Row:
    async with pool.connection() as conn:
        row = await (await conn.execute(sql, {"id": task_id, "actor": actor})).fetchone()
        if row is not None:
            row.pop("previous_status", None)
            return row
        current = await (await conn.execute(Q.get_task, {"id": task_id})).fetchone()
    if current is None:
        raise NotFound("Task not found")
    raise Conflict(f"Task is {current['status']}: {refusal}")


async def add_event(
    pool: AsyncConnectionPool,
    *,
    task_id: uuid.UUID,
    actor: str,
    kind: str,
    data: Any,
    correlation_id: str | None,
    trace_id: str | None,
) -> Row:
    """An event reported by an agent or a script; ids default to the task's own."""
    params = {
        "task_id": task_id,
        "actor": actor,
        "kind": kind,
        "data": storable(data, "data"),
        "correlation_id": correlation_id,
        "trace_id": trace_id,
    }
    async with pool.connection() as conn:
        row = await (await conn.execute(Q.insert_event, params)).fetchone()
    if row is None:
        raise NotFound("Task not found")
    return row


async def list_events(
    pool: AsyncConnectionPool,
    *,
    task_id: uuid.UUID | None = None,
    trace_id: str | None = None,
    correlation_id: str | None = None,
    actor: str | None = None,
    kind: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    after_id: int | None = None,
    limit: int = 100,
    cursor: str | None = None,
    oldest_first: bool = False,
) -> tuple[list[Row], str | None]:
    """Task events, newest first by default, keyset-paged on id."""
    where, params = [], {"limit": limit + 1}
    for column, value in (
        ("task_id", task_id),
        ("trace_id", trace_id),
        ("correlation_id", correlation_id),
        ("actor", actor),
        ("kind", kind),
    ):
        if value is not None:
            where.append(f"{column} = %({column})s")
            params[column] = value
    if since is not None:
        where.append("ts >= %(since)s")
        params["since"] = since
    if until is not None:
        where.append("ts < %(until)s")
        params["until"] = until
    if after_id is not None:
        where.append("id > %(after_id)s")
        params["after_id"] = after_id
    if cursor:
        (last_id,) = decode_cursor(cursor, 1)
        if isinstance(last_id, bool) or not isinstance(last_id, int):
            raise BadCursor("cursor is not valid")
        where.append("id > %(c_id)s" if oldest_first else "id < %(c_id)s")
        params["c_id"] = last_id
    sql = "SELECT * FROM task_events"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY id {'ASC' if oldest_first else 'DESC'} LIMIT %(limit)s"
    async with pool.connection() as conn:
        rows = await (await conn.execute(sql, params)).fetchall()
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor([rows[-1]["id"]])
    return rows, next_cursor


def event_camel(row: Row) -> dict[str, Any]:
    """The camelCase event shape of `POST /task/event` and the WebSocket's TASK_EVENT frames."""
    return {
        "id": row["id"],
        "taskId": row["task_id"],
        "actor": row["actor"],
        "kind": row["kind"],
        "data": row["data"],
        "correlationId": row["correlation_id"],
        "traceId": row["trace_id"],
        "ts": row["ts"],
    }
