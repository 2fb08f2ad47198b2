"""Aggregates for the overview charts, computed in SQL over a bounded time window."""

from __future__ import annotations

from typing import Any

from psycopg_pool import AsyncConnectionPool

WINDOWS = {"1h": ("1 hour", "minute"), "24h": ("24 hours", "hour")}

TASKS_BY_STATUS = """
SELECT to_char(date_trunc(%(unit)s, finished_at), 'HH24:MI') AS bucket,
       count(*) FILTER (WHERE status = 'done') AS done,
       count(*) FILTER (WHERE status = 'error') AS error,
       count(*) FILTER (WHERE status = 'cancelled') AS cancelled,
       coalesce(round((percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - created_at) * 1000)
         FILTER (WHERE status = 'done'))::numeric, 1), 0) AS p95_ms
FROM tasks
WHERE finished_at >= now() - %(window)s::interval AND status IN ('done', 'error', 'cancelled')
GROUP BY date_trunc(%(unit)s, finished_at)
ORDER BY date_trunc(%(unit)s, finished_at)
"""

LOGS_BY_LEVEL = """
SELECT to_char(date_trunc(%(unit)s, ts), 'HH24:MI') AS bucket,
       count(*) FILTER (WHERE level = 'debug') AS debug,
       count(*) FILTER (WHERE level = 'info') AS info,
       count(*) FILTER (WHERE level = 'warn') AS warn,
       count(*) FILTER (WHERE level = 'error') AS error
FROM logs
WHERE ts >= now() - %(window)s::interval
GROUP BY date_trunc(%(unit)s, ts)
ORDER BY date_trunc(%(unit)s, ts)
"""

TOTALS = """
SELECT count(*) FILTER (WHERE status = 'queued') AS queued,
       count(*) FILTER (WHERE status = 'running') AS running,
       count(*) FILTER (WHERE status = 'done' AND finished_at >= now() - %(window)s::interval) AS done,
       count(*) FILTER (WHERE status = 'error' AND finished_at >= now() - %(window)s::interval) AS error
FROM tasks
WHERE status IN ('queued', 'running') OR finished_at >= now() - %(window)s::interval
"""


async def overview(pool: AsyncConnectionPool, window: str = "1h") -> dict[str, Any]:
    """Per-bucket task outcomes with p95 duration, log lines by level, and current totals."""
    interval, unit = WINDOWS.get(window, WINDOWS["1h"])
    params = {"window": interval, "unit": unit}
    async with pool.connection() as conn:
        tasks = await (await conn.execute(TASKS_BY_STATUS, params)).fetchall()
        logs = await (await conn.execute(LOGS_BY_LEVEL, params)).fetchall()
        totals = await (await conn.execute(TOTALS, params)).fetchone()
    return {
        "tasks": [{k: (float(v) if k == "p95_ms" else v) for k, v in r.items()} for r in tasks],
        "logs": logs,
        "totals": totals or {},
    }
