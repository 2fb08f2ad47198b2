"""Which live messages a consumer wants: the one filter of SSE, /ws and the dashboard's views.

Same rules everywhere: a service or level filter keeps only log lines; a task id matches a
task's own id or an event's / log line's task; empty values match anything.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

from opsloop.backend.live.bus import Kind, LiveMessage

Accepts = Callable[[LiveMessage], bool]
ALL_KINDS: frozenset[Kind] = frozenset(("task", "event", "log"))


def live_filter(
    *,
    kinds: Collection[Kind] = ALL_KINDS,
    task_id: str | None = None,
    trace_id: str | None = None,
    type: str | None = None,
    correlation_id: str | None = None,
    service: str | None = None,
    level: str | None = None,
) -> Accepts:
    """A predicate over bus messages. `type` and `correlation_id` are row fields (the tasks
    view filters on them); the streams use the others."""
    wanted = frozenset(kinds)

    def accepts(msg: LiveMessage) -> bool:
        if msg.kind not in wanted:
            return False
        row = msg.row
        if task_id and str(row["id"] if msg.kind == "task" else row.get("task_id")) != task_id:
            return False
        if trace_id and row.get("trace_id") != trace_id:
            return False
        if type and row.get("type") != type:
            return False
        if correlation_id and row.get("correlation_id") != correlation_id:
            return False
        if msg.kind == "log":
            return (not service or row["service"] == service) and (not level or row["level"] == level)
        return not service and not level

    return accepts


def stream_filter(params: dict[str, Any]) -> Accepts:
    """The filter of a stream's query parameters or subscribe frame (`service`, `level`,
    `taskId`, `traceId`, `kinds`)."""
    return live_filter(
        kinds=params.get("kinds") or ALL_KINDS,
        task_id=params.get("taskId"),
        trace_id=params.get("traceId"),
        service=params.get("service"),
        level=params.get("level"),
    )


def route_of(params: dict[str, Any]) -> tuple[str, str] | None:
    """The bus's shortcut for a trace or task filter (see `LiveBus.subscribe`)."""
    if params.get("traceId"):
        return ("trace", params["traceId"])
    if params.get("taskId"):
        return ("task", params["taskId"])
    return None
