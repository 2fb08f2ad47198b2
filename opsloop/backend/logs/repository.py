"""Log storage and search: batches go in with one statement; every filter has an index."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from opsloop.backend.errors import BadRequest
from opsloop.backend.models import LOG_LEVELS
from opsloop.backend.paging import decode_cursor, encode_cursor

Row = dict[str, Any]

INSERT_BATCH = """
INSERT INTO logs (ts, service, level, message, data, task_id, correlation_id, trace_id)
SELECT coalesce(ts, now()), service, level, message, data, task_id, correlation_id, trace_id
FROM unnest(%(ts)s::timestamptz[], %(service)s::text[], %(level)s::text[], %(message)s::text[],
            %(data)s::jsonb[], %(task_id)s::uuid[], %(correlation_id)s::text[], %(trace_id)s::text[])
  AS e(ts, service, level, message, data, task_id, correlation_id, trace_id)
RETURNING *
"""

INSERT_BATCH_IDS = INSERT_BATCH.replace("RETURNING *", "RETURNING id")


def _columns(entries: list[dict[str, Any]]) -> dict[str, list[Any]]:
    cols: dict[str, list[Any]] = {k: [] for k in ("ts", "service", "level", "message", "data", "task_id", "correlation_id", "trace_id")}
    for e in entries:
        cols["ts"].append(e.get("ts"))
        cols["service"].append(e["service"])
        cols["level"].append(e.get("level") or "info")
        cols["message"].append(e["message"])
        data = e.get("data")
        cols["data"].append(Jsonb(data) if data is not None else None)
        cols["task_id"].append(e.get("task_id"))
        cols["correlation_id"].append(e.get("correlation_id"))
        cols["trace_id"].append(e.get("trace_id"))
    return cols


async def insert_logs(pool: AsyncConnectionPool, entries: list[dict[str, Any]], *, returning: bool = True) -> list[Row]:
    """Store a batch (snake_case keys) in one statement; returns the stored rows (or just ids)."""
    if not entries:
        return []
    async with pool.connection() as conn:
        cur = await conn.execute(INSERT_BATCH if returning else INSERT_BATCH_IDS, _columns(entries))
        return await cur.fetchall()


async def search_logs(
    pool: AsyncConnectionPool,
    *,
    service: str | None = None,
    level: str | None = None,
    correlation_id: str | None = None,
    trace_id: str | None = None,
    task_id: uuid.UUID | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    q: str | None = None,
    after_id: int | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> tuple[list[Row], str | None]:
    """Newest first, keyset-paged on id. `q` is a case-insensitive substring (trigram index)."""
    where, params = [], {"limit": limit + 1}
    if level is not None:
        if level not in LOG_LEVELS:
            raise BadRequest(f"level must be one of {', '.join(LOG_LEVELS)}")
        where.append("level = %(level)s")
        params["level"] = level
    for column, value in (
        ("service", service),
        ("correlation_id", correlation_id),
        ("trace_id", trace_id),
        ("task_id", task_id),
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
    if q:
        where.append("message ILIKE %(q)s")
        params["q"] = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    if after_id is not None:
        where.append("id > %(after_id)s")
        params["after_id"] = after_id
    if cursor:
        (last_id,) = decode_cursor(cursor, 1)
        where.append("id < %(c_id)s")
        params["c_id"] = int(last_id)
    sql = "SELECT * FROM logs"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY id DESC LIMIT %(limit)s"
    async with pool.connection() as conn:
        rows = await (await conn.execute(sql, params)).fetchall()
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor([rows[-1]["id"]])
    return rows, next_cursor


async def delete_older_than(pool: AsyncConnectionPool, table: str, cutoff: datetime, batch: int = 5000) -> int:
    """Retention: delete in small batches (short locks) until nothing older than `cutoff` is left."""
    if table not in ("logs", "task_events"):
        raise ValueError(table)
    ts = "ts"
    total = 0
    sql = f"DELETE FROM {table} WHERE id IN (SELECT id FROM {table} WHERE {ts} < %(cutoff)s LIMIT %(batch)s)"
    while True:
        async with pool.connection() as conn:
            cur = await conn.execute(sql, {"cutoff": cutoff, "batch": batch})
        total += cur.rowcount
        if cur.rowcount < batch:
            return total
