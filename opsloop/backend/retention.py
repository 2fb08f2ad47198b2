"""Retention: the tables whose old rows are purged (logs and task events), in small batches."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from opsloop.backend.db import DictPool
from opsloop.backend.logs.repository import delete_older_than as delete_old_logs
from opsloop.backend.tasks.store import TaskStore

PURGEABLE = ("logs", "task_events")


async def purge(pool: DictPool, table: str, cutoff: datetime, batch: int = 5000, on_batch: Callable[[int], None] | None = None) -> int:
    """Delete the rows of `table` older than `cutoff`, each batch its own short transaction."""
    if table == "logs":
        return await delete_old_logs(pool, cutoff, batch, on_batch)
    if table == "task_events":
        return await TaskStore(pool).delete_events_older_than(cutoff, batch, on_batch)
    raise ValueError(table)
