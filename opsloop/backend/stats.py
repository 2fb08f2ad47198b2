"""Aggregates for the overview charts, computed in SQL over a bounded time window."""

from __future__ import annotations

from typing import Any

from opsloop.backend.db import DictPool
from opsloop.backend.tasks.store import TaskStore

WINDOWS = {"1h": ("1 hour", "minute"), "24h": ("24 hours", "hour")}

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


async def overview(pool: DictPool, window: str = "1h", tasks: TaskStore | None = None) -> dict[str, Any]:
    """Per-bucket task outcomes with p95 duration, log lines by level, and current totals."""
    interval, unit = WINDOWS.get(window, WINDOWS["1h"])
    buckets, totals = await (tasks or TaskStore(pool)).outcomes(interval, unit)
    async with pool.connection() as conn:
        logs = await (await conn.execute(LOGS_BY_LEVEL, {"window": interval, "unit": unit})).fetchall()
    return {
        "tasks": [{k: (float(v) if k == "p95_ms" else v) for k, v in r.items()} for r in buckets],
        "logs": logs,
        "totals": totals,
    }
