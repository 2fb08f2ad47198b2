"""Our own structured logging: a non-blocking, batched, bounded writer (the app's and every agent's).

`writer.log(...)` only appends to a bounded buffer; a background loop ships batches to a sink
(the database in the app, `POST /log` in agents). When the sink is down the buffer holds what it
can and retries with backoff; what had to be dropped is counted, exposed in `stats`, and reported
as a log line of its own once the sink is back, so loss is never silent. A sink that refuses a
batch for good raises `SinkRejected`: that batch is dropped (and counted) instead of blocking
every later line behind it.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from opsloop.shared.jsonutil import loggable

Sink = Callable[[list[dict[str, Any]]], Awaitable[None]]
log = logging.getLogger("opsloop.logwriter")

LEVELS = ("debug", "info", "warn", "error")
MAX_MESSAGE = 32_768  # what POST /log accepts
MAX_FIELD = 200


class SinkRejected(Exception):
    """Raised by a sink for a batch it will never accept (e.g. an HTTP 400): retrying is useless."""


def _clean(value: Any, limit: int) -> str:
    text = value if isinstance(value, str) else str(value)
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    return text[:limit]


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
        self.service = _clean(service, MAX_FIELD)
        self.sink = sink
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.max_backoff_s = max_backoff_s
        self.max_buffer = max_buffer
        self._buffer: deque[dict[str, Any]] = deque()
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._unreported_drops = 0
        self._unreported_rejects = 0
        self._failing_since: datetime | None = None
        self._failed_attempts = 0
        self.stats = {"written": 0, "dropped": 0, "failures": 0, "rejected": 0}

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
        """Queue one line; never blocks, never raises. A full buffer drops (and counts) the new line.

        The line is made storable here (known level, bounded text, no NUL, a real UUID), so one bad
        line can never poison the batch it travels in.
        """
        if len(self._buffer) >= self.max_buffer:
            self.stats["dropped"] += 1
            self._unreported_drops += 1
            return
        try:
            if task_id is not None and not isinstance(task_id, uuid.UUID):
                try:
                    task_id = uuid.UUID(str(task_id))
                except ValueError:
                    data = (
                        {"data": data, "taskId": _clean(task_id, MAX_FIELD)}
                        if not isinstance(data, dict)
                        else {**data, "taskId": _clean(task_id, MAX_FIELD)}
                    )
                    task_id = None
            self._buffer.append(
                {
                    "ts": datetime.now(UTC),
                    "service": self.service,
                    "level": level if level in LEVELS else "info",
                    "message": _clean(message, MAX_MESSAGE) or "(empty)",
                    "data": loggable(data),
                    "task_id": str(task_id) if task_id is not None else None,
                    "trace_id": _clean(trace_id, MAX_FIELD) if trace_id is not None else None,
                    "correlation_id": _clean(correlation_id, MAX_FIELD) if correlation_id is not None else None,
                }
            )
        except Exception:  # never let logging break the caller
            self.stats["dropped"] += 1
            self._unreported_drops += 1
            return
        if len(self._buffer) >= self.batch_size:
            self._ready.set()

    def debug(self, message: str, data: Any = None, **ids: Any) -> None:
        self.log("debug", message, data, **ids)

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
                self._failed_attempts += 1
                if self._failing_since is None:
                    self._failing_since = datetime.now(UTC)
                log.warning("log sink failed (%d buffered): %s", len(self._buffer), exc)
                await asyncio.sleep(backoff)
                backoff = min(self.max_backoff_s, backoff * 2)

    def _report_incidents(self) -> None:
        """Once the sink takes lines again: say what happened while it did not."""
        if self._unreported_drops and len(self._buffer) < self.max_buffer:
            dropped, self._unreported_drops = self._unreported_drops, 0
            self.log("warn", f"log buffer overflowed: {dropped} line(s) dropped", {"dropped": dropped, "maxBuffer": self.max_buffer})
        if self._unreported_rejects and len(self._buffer) < self.max_buffer:
            rejected, self._unreported_rejects = self._unreported_rejects, 0
            self.log("warn", f"log sink refused {rejected} line(s); they were dropped", {"dropped": rejected})

    async def _drain(self) -> None:
        self._report_incidents()
        while self._buffer:
            batch = [self._buffer[i] for i in range(min(self.batch_size, len(self._buffer)))]
            try:
                await self.sink(batch)  # raises: the batch stays buffered for the retry
            except SinkRejected as exc:
                self.stats["rejected"] += len(batch)
                self.stats["dropped"] += len(batch)
                self._unreported_rejects += len(batch)
                log.warning("log sink rejected %d line(s): %s", len(batch), exc)
            else:
                self.stats["written"] += len(batch)
            for _ in batch:
                self._buffer.popleft()
            if self._failing_since is not None:
                since, attempts = self._failing_since, self._failed_attempts
                self._failing_since, self._failed_attempts = None, 0
                self.log(
                    "warn",
                    f"log sink recovered after {attempts} failed attempt(s); buffered lines written late",
                    {"failingSince": since.isoformat(), "failedAttempts": attempts},
                )
            self._report_incidents()
