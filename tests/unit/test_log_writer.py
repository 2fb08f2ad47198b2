"""The non-blocking log writer against fake sinks: an outage is buffered and retried, overflow is
counted and reported as a log line of its own, a refused batch never blocks the rest, and
`log()` returns at once whatever the sink does."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest

from opsloop.shared.logwriter import LogWriter, SinkRejected


class FlakySink:
    """Fails while `down`; records every batch it accepts."""

    def __init__(self) -> None:
        self.down = False
        self.batches: list[list[dict[str, Any]]] = []
        self.calls = 0

    async def __call__(self, batch: list[dict[str, Any]]) -> None:
        self.calls += 1
        if self.down:
            raise ConnectionError("database unavailable")
        self.batches.append(list(batch))

    @property
    def lines(self) -> list[dict[str, Any]]:
        return [line for batch in self.batches for line in batch]

    def messages(self) -> list[str]:
        return [line["message"] for line in self.lines]


async def until(predicate: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def writer(sink: Any, **kw: Any) -> LogWriter:
    options = {"flush_interval_s": 0.01, "max_backoff_s": 0.05, "batch_size": 50, **kw}
    return LogWriter("unit", sink, **options)


async def test_lines_are_shipped_in_batches_in_order() -> None:
    sink = FlakySink()
    w = writer(sink)
    w.start()
    for i in range(120):
        w.info(f"line {i}", {"i": i}, trace_id="t1")
    await until(lambda: len(sink.lines) == 120)
    await w.stop()
    assert sink.messages() == [f"line {i}" for i in range(120)]
    assert max(len(b) for b in sink.batches) <= 50
    assert w.stats["written"] == 120 and w.stats["dropped"] == 0
    assert all(line["service"] == "unit" and line["level"] == "info" and line["trace_id"] == "t1" for line in sink.lines)


async def test_outage_is_buffered_retried_and_reported() -> None:
    sink = FlakySink()
    sink.down = True
    w = writer(sink)
    w.start()
    for i in range(30):
        w.warn(f"during outage {i}")
    await until(lambda: sink.calls >= 3)  # it keeps trying
    assert sink.lines == [] and w.buffered == 30 and w.stats["failures"] >= 3
    sink.down = False
    await until(lambda: any("recovered" in m for m in sink.messages()))
    await w.stop()
    messages = sink.messages()
    assert messages[:30] == [f"during outage {i}" for i in range(30)], "every buffered line, once, in order"
    (report,) = [line for line in sink.lines if "recovered" in line["message"]]
    assert report["level"] == "warn" and report["data"]["failedAttempts"] >= 3
    assert w.buffered == 0


async def test_overflow_is_counted_and_reported_never_silent() -> None:
    sink = FlakySink()
    sink.down = True
    w = writer(sink, max_buffer=10)
    w.start()
    for i in range(25):
        w.info(f"line {i}")
    assert w.buffered == 10 and w.stats["dropped"] == 15
    sink.down = False
    await until(lambda: any("overflowed" in m for m in sink.messages()))
    await w.stop()
    messages = sink.messages()
    assert messages[:10] == [f"line {i}" for i in range(10)], "the oldest lines are kept"
    (report,) = [line for line in sink.lines if "overflowed" in line["message"]]
    assert report["data"]["dropped"] == 15 and "15 line(s) dropped" in report["message"] and report["level"] == "warn"


async def test_log_never_blocks_even_when_the_sink_hangs() -> None:
    never = asyncio.Event()

    async def hanging(batch: list[dict[str, Any]]) -> None:
        await never.wait()

    w = writer(hanging, max_buffer=5000)
    w.start()
    t0 = time.perf_counter()
    for i in range(20_000):
        w.info(f"line {i}", {"i": i})
    elapsed = time.perf_counter() - t0
    assert elapsed < 1.0, f"20,000 log() calls took {elapsed:.2f}s"
    t1 = time.perf_counter()
    await asyncio.sleep(0.02)
    assert time.perf_counter() - t1 < 0.5, "the event loop stays free"
    assert w.buffered == 5000 and w.stats["dropped"] == 15_000
    await w.stop(timeout_s=0.1)  # gives up on the hung sink, bounded


async def test_a_refused_batch_is_dropped_counted_and_does_not_block_the_rest() -> None:
    accepted: list[str] = []

    async def picky(batch: list[dict[str, Any]]) -> None:
        if any(line["message"] == "poison" for line in batch):
            raise SinkRejected("HTTP 400")
        accepted.extend(line["message"] for line in batch)

    w = writer(picky, batch_size=1)
    w.start()
    w.info("before")
    w.info("poison")
    w.info("after")
    await until(lambda: any("dropped" in m for m in accepted))
    await w.stop()
    assert accepted[:2] == ["before", "after"]
    assert w.stats["rejected"] == 1 and w.stats["dropped"] == 1


async def test_lines_are_made_storable() -> None:
    sink = FlakySink()
    w = writer(sink)
    task = uuid.uuid4()
    w.log("fatal", "nul\x00inside", {"k": 1}, task_id=task)
    w.log("error", "x" * 40_000, task_id="not-a-uuid", correlation_id="c" * 500)
    w.start()
    await until(lambda: len(sink.lines) == 2)
    await w.stop()
    first, second = sink.lines
    assert first["level"] == "info" and "\x00" not in first["message"] and first["task_id"] == str(task)
    assert len(second["message"]) == 32_768 and second["task_id"] is None and second["data"] == {"data": None, "taskId": "not-a-uuid"}
    assert len(second["correlation_id"]) == 200


@pytest.mark.parametrize("lines", [0, 7])
async def test_stop_flushes_what_is_buffered(lines: int) -> None:
    sink = FlakySink()
    w = writer(sink, flush_interval_s=60)  # only stop() will flush
    w.start()
    for i in range(lines):
        w.info(f"line {i}")
    await w.stop()
    assert sink.messages() == [f"line {i}" for i in range(lines)]
