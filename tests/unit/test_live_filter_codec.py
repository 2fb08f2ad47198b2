"""The one live filter (opsloop.backend.live.filter) and the notification codec
(opsloop.backend.live.codec)."""

from __future__ import annotations

import uuid

from opsloop.backend.live import codec
from opsloop.backend.live.bus import LiveMessage
from opsloop.backend.live.filter import live_filter, route_of, stream_filter

TASK = uuid.uuid4()
TASK_ROW = {"id": TASK, "type": "echo", "trace_id": "tr", "correlation_id": "co"}
EVENT_ROW = {"id": 5, "task_id": TASK, "trace_id": "tr", "correlation_id": "co"}
LOG_ROW = {"id": 6, "task_id": TASK, "trace_id": "tr", "service": "api", "level": "warn"}
MESSAGES = {"task": LiveMessage("task", TASK_ROW), "event": LiveMessage("event", EVENT_ROW), "log": LiveMessage("log", LOG_ROW)}


def kinds_taken(accepts: object) -> set[str]:
    return {kind for kind, msg in MESSAGES.items() if accepts(msg)}  # type: ignore[operator]


def test_no_filter_takes_everything() -> None:
    assert kinds_taken(live_filter()) == {"task", "event", "log"}


def test_task_and_trace_ids_match_a_task_and_whatever_belongs_to_it() -> None:
    assert kinds_taken(live_filter(task_id=str(TASK))) == {"task", "event", "log"}
    assert kinds_taken(live_filter(task_id=str(uuid.uuid4()))) == set()
    assert kinds_taken(live_filter(trace_id="tr")) == {"task", "event", "log"}
    assert kinds_taken(live_filter(trace_id="other")) == set()


def test_service_and_level_keep_only_log_lines() -> None:
    assert kinds_taken(live_filter(service="api")) == {"log"}
    assert kinds_taken(live_filter(level="warn")) == {"log"}
    assert kinds_taken(live_filter(level="error")) == set()


def test_kinds_type_and_correlation_for_the_tasks_view() -> None:
    assert kinds_taken(live_filter(kinds=("task",), type="echo", correlation_id="co")) == {"task"}
    assert kinds_taken(live_filter(kinds=("task",), type="other")) == set()
    assert kinds_taken(live_filter(kinds=("event", "log"))) == {"event", "log"}


def test_empty_values_match_anything() -> None:
    assert kinds_taken(live_filter(task_id="", trace_id="", type="", correlation_id="", service="", level="")) == {"task", "event", "log"}


def test_stream_parameters() -> None:
    assert kinds_taken(stream_filter({"kinds": ("event", "log"), "traceId": "tr"})) == {"event", "log"}
    assert kinds_taken(stream_filter({"service": "api", "level": "warn"})) == {"log"}
    assert route_of({"traceId": "tr", "taskId": str(TASK)}) == ("trace", "tr")
    assert route_of({"taskId": str(TASK)}) == ("task", str(TASK))
    assert route_of({}) is None


def test_codec_round_trip() -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    payload = codec.encode_tasks([codec.TaskChange(a, 1), codec.TaskChange(b, 12)])
    assert payload == f"t:{a}:1,{b}:12"
    note = codec.decode(payload)
    assert note.prefix == codec.TASK
    assert [codec.task_change(i) for i in note.items] == [codec.TaskChange(a, 1), codec.TaskChange(b, 12)]
    assert codec.task_id_of(note.items[1]) == str(b)
    assert codec.decode("e:4,5") == codec.Notification("e", ["4", "5"])
    assert codec.decode("a:echo") == codec.Notification("a", ["echo"])


def test_only_a_version_one_row_is_a_new_task() -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    assert codec.has_new_task(f"t:{a}:1")
    assert codec.has_new_task(f"t:{a}:3,{b}:1")
    assert not codec.has_new_task(f"t:{a}:11,{b}:21")
    assert not codec.has_new_task("e:1,2")
