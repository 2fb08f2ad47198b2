"""Our own structured logging: a non-blocking, batched, bounded writer.

`writer.log(...)` only appends to a bounded buffer; a background loop ships batches to a sink
(the database in the app, `POST /log` in agents). When the sink is down the buffer holds what it
can and retries; what had to be dropped is counted, exposed in `stats`, and reported as a log
line of its own once the sink is back, so loss is never silent.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

Sink = Callable[[list[dict[str, Any]]], Awaitable[None]]
log = logging.getLogger("opsloop.logwriter")


class LogWriter:
    def __init__(
        self,
        service: str,
        sink: Sink,
        *,
        max_buffer: int = 50_000,
        batch_size: int = 500,
        flush_interval_s: float = 0.05,
        max_backoff_s: float = 5.0,
    ) -> None:
        self.service = service
        self.sink = sink
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.max_backoff_s = max_backoff_s
        self.max_buffer = max_buffer
        self._buffer: deque[dict[str, Any]] = deque()
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._unreported_drops = 0
        self.stats = {"written": 0, "dropped": 0, "failures": 0}

    def log(
        self,
        level: str,
        message: str,
        data: Any = None,
        *,
        task_id: Any = None,
        trace_id: str | None = None,
        correlation_id: str | None = None,
    ) -> None:
        """Queue one line; never blocks, never raises. A full buffer drops (and counts) the new line."""
        if len(self._buffer) >= self.max_buffer:
            self.stats["dropped"] += 1
            self._unreported_drops += 1
            return
        self._buffer.append(
            {
                "ts": datetime.now(UTC),
                "service": self.service,
                "level": level,
                "message": message,
                "data": data,
                "task_id": str(task_id) if task_id is not None else None,
                "trace_id": trace_id,
                "correlation_id": correlation_id,
            }
        )
        if len(self._buffer) >= self.batch_size:
            self._ready.set()

    def info(self, message: str, data: Any = None, **ids: Any) -> None:
        self.log("info", message, data, **ids)

    def warn(self, message: str, data: Any = None, **ids: Any) -> None:
        self.log("warn", message, data, **ids)

    def error(self, message: str, data: Any = None, **ids: Any) -> None:
        self.log("error", message, data, **ids)

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"logwriter-{self.service}")

    async def stop(self, timeout_s: float = 5.0) -> None:
        """Flush what is buffered (bounded by `timeout_s`), then stop."""
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        try:
            await asyncio.wait_for(self._drain(), timeout=timeout_s)
        except (TimeoutError, Exception) as exc:
            log.warning("log writer stopped with %d line(s) unsent: %s", len(self._buffer), exc)

    async def _run(self) -> None:
        backoff = self.flush_interval_s
        while True:
            try:
                await asyncio.wait_for(self._ready.wait(), timeout=self.flush_interval_s)
            except TimeoutError:
                pass
            self._ready.clear()
            try:
                await self._drain()
                backoff = self.flush_interval_s
            except Exception as exc:
                self.stats["failures"] += 1
                log.warning("log sink failed (%d buffered): %s", len(self._buffer), exc)
                await asyncio.sleep(backoff)
                backoff = min(self.max_backoff_s, backoff * 2)

    async def _drain(self) -> None:
        if self._unreported_drops and len(self._buffer) < self.max_buffer:
            dropped, self._unreported_drops = self._unreported_drops, 0
            self.log("warn", f"log buffer overflowed: {dropped} line(s) dropped", {"dropped": dropped})
        while self._buffer:
            batch = [self._buffer[i] for i in range(min(self.batch_size, len(self._buffer)))]
            await self.sink(batch)  # raises: the batch stays buffered for the retry
            for _ in batch:
                self._buffer.popleft()
            self.stats["written"] += len(batch)
