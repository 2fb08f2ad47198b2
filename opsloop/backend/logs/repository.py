"""Log storage and search: batches go in with one statement; every filter has an index."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import orjson

from opsloop.backend.batching import GroupCommit
from opsloop.backend.db import DictPool, execute_prepared
from opsloop.backend.errors import BadRequest
from opsloop.backend.listing import Where, id_cursor, page
from opsloop.backend.models import LOG_LEVELS

Row = dict[str, Any]

# The batch travels as one JSON document that PostgreSQL unpacks (json_to_recordset): no
# per-value encoding in Python, and an API batch that passed validation is sent as it came.
_JSON_COLUMNS = 'service text, level text, message text, data json, "taskId" uuid, "correlationId" text, "traceId" text'
INSERT_JSON = f"""
INSERT INTO logs (ts, service, level, message, data, task_id, correlation_id, trace_id)
SELECT {{ts}}, e.service, coalesce(e.level, 'info'), e.message, nullif(e.data::jsonb, 'null'::jsonb),
       e."taskId", e."correlationId", e."traceId"
FROM json_to_recordset(%(batch)s::json) AS e({_JSON_COLUMNS}{{ts_column}}),
     (SELECT set_config('synchronous_commit', 'off', true)) AS async_commit
RETURNING {{returning}}
"""
STATEMENTS = {
    (with_ts, returning): INSERT_JSON.format(
        ts="coalesce(e.ts, now())" if with_ts else "now()",
        ts_column=", ts timestamptz" if with_ts else "",
        returning="*" if returning else "id",
    )
    for with_ts in (False, True)
    for returning in (False, True)
}


def _json_default(value: Any) -> str:
    return str(value)


def _dumps_batch(entries: list[dict[str, Any]]) -> str:
    """Our own lines as one JSON array: whatever our code logs (sets, objects) is stored as text
    rather than failing the batch, and NUL (which PostgreSQL text and jsonb refuse) is replaced.
    (The API refuses NUL before it gets here.)"""
    text = orjson.dumps(entries, default=_json_default, option=orjson.OPT_NON_STR_KEYS).decode()
    return text.replace("\\u0000", "\\ufffd") if "\\u0000" in text else text


async def _insert(pool: DictPool, batch: str, *, with_ts: bool, returning: bool) -> list[Row]:
    """Committed with `synchronous_commit = off` (for this transaction only, set inside the one
    statement, so it costs no round trip): every insert NOTIFYs (the live trigger), and
    PostgreSQL holds one server-wide lock from a NOTIFY until its commit is flushed, so with
    synchronous commits log writers would queue behind each other's fsync (about 450 commits/s
    in all on this machine's disk, whatever the concurrency). The cost: a crash of the database
    server itself (not of the app) can lose the last fraction of a second of acknowledged log
    lines; nothing is ever half-written. Task writes keep synchronous commits.
    """
    async with pool.connection() as conn:
        # prepared (per connection): the statement is the same whatever the batch size
        cur = await execute_prepared(conn, STATEMENTS[(with_ts, returning)], {"batch": batch})
        return await cur.fetchall()


async def insert_logs(pool: DictPool, entries: list[dict[str, Any]], *, returning: bool = True) -> list[Row]:
    """Store our own lines (snake_case keys, `ts` kept) in one statement; the rows (or just ids)."""
    if not entries:
        return []
    batch = [
        {
            "ts": e.get("ts"),
            "service": e["service"],
            "level": e.get("level") or "info",
            "message": e["message"],
            "data": e.get("data"),
            "taskId": e.get("task_id"),
            "correlationId": e.get("correlation_id"),
            "traceId": e.get("trace_id"),
        }
        for e in entries
    ]
    return await _insert(pool, _dumps_batch(batch), with_ts=True, returning=returning)


async def insert_json(pool: DictPool, batch: str, *, returning: bool = False) -> list[Row]:
    """Store a validated JSON array of API entries (camelCase, as POST /log takes them) as is."""
    return await _insert(pool, batch, with_ts=False, returning=returning)


def _dumps_group(group: list[bytes]) -> str:
    return (b"[" + b",".join(group) + b"]").decode()


class LogStore:
    """The log table's writes over one pool, with the group commit of single `POST /log` lines:
    lines that arrive together are stored together (one statement, one NOTIFY, one commit for
    every line that queued while earlier statements ran). Under no load a line goes in alone at
    once; under load the per-line database cost falls by the group size. Built by the runtime."""

    def __init__(self, pool: DictPool, max_inflight: int = 4, max_group: int = 1000) -> None:
        self.pool = pool
        self.singles: GroupCommit[bytes, Row] = GroupCommit(self._insert_group, max_batch=max_group, max_inflight=max_inflight)

    async def insert_one(self, entry: dict[str, Any]) -> Row:
        """Store one validated API entry (camelCase) and return its row; concurrent calls share statements."""
        encoded = orjson.dumps(entry)  # on the caller's side: an entry that cannot be encoded fails alone
        return await self.singles.submit(encoded)

    async def _insert_group(self, group: list[bytes]) -> list[Row]:
        return await insert_json(self.pool, _dumps_group(group), returning=True)

    async def insert_json(self, batch: str, *, returning: bool = False) -> list[Row]:
        return await insert_json(self.pool, batch, returning=returning)

    async def insert_many(self, entries: list[dict[str, Any]], *, returning: bool = True) -> list[Row]:
        return await insert_logs(self.pool, entries, returning=returning)

    async def delete_older_than(self, cutoff: datetime, batch: int = 5000, on_batch: Callable[[int], None] | None = None) -> int:
        return await delete_older_than(self.pool, cutoff, batch, on_batch)

    async def close(self) -> None:
        await self.singles.close()


_WORD = re.compile(r"[^\W_]+")


def _like_pattern(text: str) -> str:
    """`%text%` for ILIKE, with the pattern characters in `text` taken literally."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def index_word(q: str) -> str | None:
    """The part of a several-word `q` that the trigram index should look up, or None to look up
    `q` whole.

    pg_trgm splits a pattern into words and the index scan reads the posting list of every
    trigram of every word. Trigrams of everyday words ("items", "api") occur in most rows, and
    reading those lists dominated the query (about 40 ms on a million rows for `items/2345 `
    against 2 ms for `2345 `). So the index looks up the word most likely to be rare (one with
    digits: ids, numbers; else the longest), with the separator that follows it in `q` (its
    end-of-word trigram narrows the match; a start-of-word one, shared by every word with the
    same first letters, was measured to slow the scan), and the whole pattern is checked on the
    rows found: the same answer. When even that word is common the planner walks the primary
    key instead; it can tell because the check has its own statistics (migration 0003).
    """
    matches = [m for m in _WORD.finditer(q) if len(m.group()) >= 3]
    if not matches or (len(matches) == 1 and matches[0].group() == q):
        return None
    best = max(matches, key=lambda m: (any(c.isdigit() for c in m.group()), len(m.group())))
    part = q[best.start() : best.end() + 1]
    return None if part == q else part


async def search_logs(
    pool: DictPool,
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
    oldest_first: bool = False,
) -> tuple[list[Row], str | None]:
    """Newest first (or oldest first: SSE replay), keyset-paged on id. `q` is a case-insensitive
    substring (trigram index)."""
    if level is not None and level not in LOG_LEVELS:
        raise BadRequest(f"level must be one of {', '.join(LOG_LEVELS)}")
    where = (
        Where(limit=limit + 1)
        .eq("level", level)
        .eq("service", service)
        .eq("correlation_id", correlation_id)
        .eq("trace_id", trace_id)
        .eq("task_id", task_id)
        .since("ts", since)
        .until("ts", until)
    )
    if q:
        word = index_word(q)
        if word is None:
            where.add("message ILIKE %(q)s", q=_like_pattern(q))
        else:
            # The index looks up one word; `message || ''` keeps the whole pattern out of the
            # index condition (checked on the rows found), see index_word().
            where.add("message ILIKE %(q_word)s AND (message || '') ILIKE %(q)s", q=_like_pattern(q), q_word=_like_pattern(word))
    if after_id is not None:
        where.add("id > %(after_id)s", after_id=after_id)
    where.after_id(cursor, oldest_first)
    sql = where.sql("SELECT * FROM logs", f"ORDER BY id {'ASC' if oldest_first else 'DESC'} LIMIT %(limit)s")
    async with pool.connection() as conn:
        rows = await (await conn.execute(sql, where.params)).fetchall()
    return page(rows, limit, id_cursor)


async def delete_older_than(
    pool: DictPool,
    cutoff: datetime,
    batch: int = 5000,
    on_batch: Callable[[int], None] | None = None,
) -> int:
    """Retention: delete in small batches, each its own short transaction (row locks on at most
    `batch` rows, found through the `ts` index), until nothing older than `cutoff` is left."""
    total = 0
    while True:
        async with pool.connection() as conn:
            cur = await conn.execute(DELETE_OLD, {"cutoff": cutoff, "batch": batch})
        total += cur.rowcount
        if on_batch is not None:
            on_batch(cur.rowcount)
        if cur.rowcount < batch:
            return total


DELETE_OLD = "DELETE FROM logs WHERE id IN (SELECT id FROM logs WHERE ts < %(cutoff)s LIMIT %(batch)s)"
