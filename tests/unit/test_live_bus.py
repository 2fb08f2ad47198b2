"""The live bus's fan-out without a database: bounded queues, overflow closes only the slow
subscriber, a timed-out wait never loses a message, routed subscribers, hwm from payloads."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from opsloop.backend.api.routes.stream import check_params, make_filter, route_of
from opsloop.backend.live.bus import LiveBus, LiveMessage


def bus() -> LiveBus:
    return LiveBus("postgresql://unused")


def log(i: int, **row: Any) -> LiveMessage:
    return LiveMessage("log", {"id": i, "service": "s", "level": "info", "trace_id": None, "task_id": None, **row})


async def test_a_timed_out_wait_never_swallows_the_next_message() -> None:
    b = bus()
    sub = b.subscribe()
    for _ in range(3):  # what an SSE heartbeat does between changes
        try:
            await asyncio.wait_for(sub.get(), timeout=0.01)
        except TimeoutError:
            pass
    b._dispatch(log(1))
    b._dispatch(log(2))
    assert [(await sub.get()).id, (await sub.get()).id] == [1, 2]  # type: ignore[union-attr]
    assert await sub.get_batch(10, timeout=0.01) == []


async def test_overflow_closes_only_the_slow_subscriber() -> None:
    b = bus()
    slow, fast = b.subscribe(maxsize=5), b.subscribe(maxsize=5)
    got: list[int] = []
    for i in range(20):
        b._dispatch(log(i))
        got += [m.id for m in fast.drain(100)]
    assert got == list(range(20))
    assert slow.closed_reason == "overflow" and b.subscriber_count == 1 and b.stats["dropped_subscribers"] == 1
    assert [m.id for m in slow.drain(100)] == [0, 1, 2, 3, 4]  # what it had, then the end
    assert await slow.get() is None


async def test_routed_subscribers_get_only_their_trace_or_task() -> None:
    b = bus()
    task = str(uuid.uuid4())
    everyone = b.subscribe(make_filter({}))
    params: dict[str, Any] = {"traceId": "t-1"}
    by_trace = b.subscribe(make_filter(params), route=route_of(params))
    params = {"taskId": task.upper()}
    assert check_params(params) is None and params["taskId"] == task
    by_task = b.subscribe(make_filter(params), route=route_of(params))
    b._dispatch(log(1, trace_id="t-1"))
    b._dispatch(log(2, trace_id="t-2", task_id=uuid.UUID(task)))
    b._dispatch(LiveMessage("task", {"id": uuid.UUID(task), "trace_id": "t-3", "version": 2}))
    b._dispatch(log(3))
    assert [m.id for m in everyone.drain(10)] == [1, 2, uuid.UUID(task), 3]
    assert [m.id for m in by_trace.drain(10)] == [1]
    assert [m.id for m in by_task.drain(10)] == [2, uuid.UUID(task)]
    b.unsubscribe(by_trace)
    b._dispatch(log(4, trace_id="t-1"))
    assert by_trace.drain(10) == [] and b._routes.get(("trace", "t-1")) is None


def test_payloads_raise_the_high_water_mark_and_skip_fetches_nobody_needs() -> None:
    b = bus()
    b._hwm = {"log": 10, "event": 5}
    b._on_payload("l:11,12,13")
    b._on_payload("e:4")
    assert b._hwm == {"log": 13, "event": 5}
    assert not b._pending, "no subscriber: nothing to fetch"
    b.subscribe()
    b._on_payload("t:" + str(uuid.uuid4()) + ":3")
    assert len(b._pending) == 1


def test_filters_refuse_impossible_parameters() -> None:
    assert check_params({"level": "fatal"}) == "level must be one of debug, info, warn, error"
    assert check_params({"taskId": "nope"}) == "taskId must be a UUID"
    assert check_params({"service": "x", "level": "warn"}) is None
