"""The monitor's memory in ``render_fixes``: what it did (or declined to do) about each failed deploy.

One row per failed deploy the monitor looked at (``deploy_id``), so a deploy is handled once
whatever the number of instances or restarts. ``outcome``:

- ``pending``: a fix was applied (``task_id``, a ``render.autofix`` task) and its redeploy is awaited;
- ``fixed``: the redeploy went live; ``failed``: it failed too (the fix did not help: never repeated);
- ``error``: the autofix task itself failed (Render refused the change);
- ``left_to_person``: nothing applied (unrecognised failure, fix already in place or already tried,
  attempt cap reached); the reason is in ``fix.reason``.

``fix`` (jsonb) holds ``{serviceName, problems, changes: [{field, from, to}], patch, redeployId,
reason}`` as far as known. Applied fixes (pending, fixed, failed, error) count toward the cap.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from opsloop.backend.db import DictPool

APPLIED = ("pending", "fixed", "failed", "error")
Row = dict[str, Any]

_FOR_DEPLOY = "SELECT * FROM render_fixes WHERE service_id = %(sid)s AND deploy_id = %(did)s ORDER BY id LIMIT 1"
_PENDING = "SELECT * FROM render_fixes WHERE service_id = %(sid)s AND outcome = 'pending' ORDER BY id"
_FAILED = "SELECT fix FROM render_fixes WHERE service_id = %(sid)s AND outcome = 'failed' ORDER BY id DESC LIMIT 100"
_APPLIED_SINCE = "SELECT count(*) AS n FROM render_fixes WHERE service_id = %(sid)s AND outcome = ANY(%(applied)s) AND created_at >= %(since)s"
_INSERT = """
INSERT INTO render_fixes (service_id, deploy_id, problem, fix, outcome, task_id)
VALUES (%(sid)s, %(did)s, %(problem)s, %(fix)s, %(outcome)s, %(task_id)s)
RETURNING *
"""
_SETTLE = """
UPDATE render_fixes SET outcome = %(outcome)s, fix = coalesce(fix, '{}'::jsonb) || %(extra)s
WHERE id = %(id)s AND outcome = 'pending'
RETURNING *
"""
_NOTE = "UPDATE render_fixes SET fix = coalesce(fix, '{}'::jsonb) || %(extra)s WHERE id = %(id)s"
_RECENT = "SELECT * FROM render_fixes ORDER BY created_at DESC, id DESC LIMIT %(limit)s"


async def for_deploy(conn: AsyncConnection[DictRow], service_id: str, deploy_id: str) -> Row | None:
    return await (await conn.execute(_FOR_DEPLOY, {"sid": service_id, "did": deploy_id})).fetchone()


async def pending(conn: AsyncConnection[DictRow], service_id: str) -> list[Row]:
    return await (await conn.execute(_PENDING, {"sid": service_id})).fetchall()


async def failed_fixes(conn: AsyncConnection[DictRow], service_id: str) -> list[dict[str, Any]]:
    rows = await (await conn.execute(_FAILED, {"sid": service_id})).fetchall()
    return [r["fix"] or {} for r in rows]


async def applied_since(conn: AsyncConnection[DictRow], service_id: str, since: datetime) -> int:
    row = await (await conn.execute(_APPLIED_SINCE, {"sid": service_id, "applied": list(APPLIED), "since": since})).fetchone()
    return int(row["n"]) if row else 0


async def insert(
    conn: AsyncConnection[DictRow], service_id: str, deploy_id: str, problem: str, fix: dict[str, Any], outcome: str, task_id: uuid.UUID | None = None
) -> Row:
    params = {"sid": service_id, "did": deploy_id, "problem": problem, "fix": Jsonb(fix), "outcome": outcome, "task_id": task_id}
    row = await (await conn.execute(_INSERT, params)).fetchone()
    assert row is not None
    return row


async def settle(conn: AsyncConnection[DictRow], fix_id: int, outcome: str, extra: dict[str, Any]) -> Row | None:
    """Close a pending fix (only once: a fix already settled is left as it is)."""
    return await (await conn.execute(_SETTLE, {"id": fix_id, "outcome": outcome, "extra": Jsonb(extra)})).fetchone()


async def note(conn: AsyncConnection[DictRow], fix_id: int, extra: dict[str, Any]) -> None:
    await conn.execute(_NOTE, {"id": fix_id, "extra": Jsonb(extra)})


async def recent(pool: DictPool, limit: int = 20) -> list[Row]:
    async with pool.connection() as conn:
        return await (await conn.execute(_RECENT, {"limit": max(1, min(limit, 200))})).fetchall()
