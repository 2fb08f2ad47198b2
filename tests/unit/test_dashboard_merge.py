"""The dashboard's live merge without a browser: what a batch of bus changes does to the rows a
tasks view, the activity stream and a task's view show (opsloop/state/merge.py), with the live
filters the views build (opsloop/state/live_view.py), and the live interface they declare."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import reflex as rx

from opsloop.backend.live.bus import LiveMessage
from opsloop.backend.tasks.store import task_cursor
from opsloop.state.activity import ActivityState, activity_filter
from opsloop.state.agents import AgentsState
from opsloop.state.display import task_table_row
from opsloop.state.live_view import LiveView, no_messages, ticks
from opsloop.state.merge import TaskPage, merge_activity, merge_task_detail, merge_task_page
from opsloop.state.overview import OverviewState
from opsloop.state.task_detail import TaskDetailState
from opsloop.state.tasks import TasksState, counts_key, tasks_filter

T0 = datetime(2026, 1, 1, tzinfo=UTC)
PAGE = 5


def task(n: int, *, version: int = 1, status: str = "queued", type: str = "echo", corr: str = "c1", trace: str | None = None) -> dict[str, Any]:
    """Task `n`'s row as the bus delivers it (a later `n` was updated later)."""
    return {
        "id": uuid.UUID(int=n),
        "type": type,
        "status": status,
        "source": "test",
        "agent_slug": None,
        "correlation_id": corr,
        "trace_id": trace or f"trace-{n}",
        "attempts": 0,
        "max_attempts": 3,
        "version": version,
        "created_at": T0 + timedelta(seconds=n),
        "updated_at": T0 + timedelta(seconds=n, milliseconds=version),
        "finished_at": None,
    }


def changed(row: dict[str, Any]) -> LiveMessage:
    return LiveMessage("task", row)


def shown(*ns: int, has_next: bool = False, **fields: Any) -> TaskPage:
    """A page showing tasks `ns` (in that order), as the view loaded it."""
    rows = [task(n, **fields) for n in ns]
    return TaskPage([task_table_row(r) for r in rows], {str(r["id"]): task_cursor(r) for r in rows}, has_next)


def ids(page: TaskPage) -> list[int]:
    return [uuid.UUID(r["id"]).int for r in page.rows]


def merge(page: TaskPage, msgs: list[LiveMessage], *, params: dict[str, str] | None = None, page_number: int = 1, status: str = ""):
    params = {**(params or {}), **({"status": status} if status else {})}
    return merge_task_page(page, msgs, accepts=tasks_filter(params), page=page_number, status=status, page_size=PAGE)


# -- the tasks table -------------------------------------------------------------------------------


def test_new_tasks_appear_on_top_newest_first() -> None:
    out = merge(shown(3, 2, 1), [changed(task(4)), changed(task(5))])
    assert ids(out.page) == [5, 4, 3, 2, 1]
    assert out.rows_changed and out.placed_changed and not out.page.has_next
    assert out.page.placed[str(uuid.UUID(int=5))] == task_cursor(task(5))


def test_an_update_changes_its_row_in_place_and_an_older_version_never_wins() -> None:
    out = merge(shown(3, 2, 1), [changed(task(2, version=3, status="done")), changed(task(2, version=2, status="running"))])
    assert ids(out.page) == [3, 2, 1]
    assert out.page.rows[1]["status"] == "done" and out.page.rows[1]["version"] == "3"
    assert out.rows_changed and not out.placed_changed  # the row keeps the place (and cursor) it had


def test_a_new_task_seen_twice_in_one_batch_appears_once_with_its_latest_version() -> None:
    out = merge(shown(1), [changed(task(2)), changed(task(2, version=2, status="running")), changed(task(2, version=1))])
    assert ids(out.page) == [2, 1]
    assert out.page.rows[0]["status"] == "running"


def test_rows_pushed_off_the_first_page_make_older_lead_to_them() -> None:
    before = shown(5, 4, 3, 2, 1)
    out = merge(before, [changed(task(6)), changed(task(7))])
    assert ids(out.page) == [7, 6, 5, 4, 3]
    assert out.page.has_next
    # "Older" continues after the last row shown (3), so 2 and 1 come next, none skipped.
    assert out.page.placed[str(uuid.UUID(int=3))] == before.placed[str(uuid.UUID(int=3))]
    assert set(out.page.placed) == {r["id"] for r in out.page.rows}


def test_on_a_later_page_new_tasks_do_not_appear_but_shown_ones_update() -> None:
    out = merge(shown(3, 2), [changed(task(9)), changed(task(2, version=2, status="done"))], page_number=2)
    assert ids(out.page) == [3, 2] and out.page.rows[1]["status"] == "done"


def test_filters_keep_other_tasks_out() -> None:
    batch = [changed(task(7, corr="other")), changed(task(8, type="render.deploy")), changed(task(9, trace="t-x")), changed(task(10))]
    assert ids(merge(shown(1), batch, params={"corr": "c1", "type": "echo", "trace": "t-x"}).page) == [9, 1]
    assert ids(merge(shown(1), batch, params={"corr": "c1", "type": "echo"}).page) == [10, 9, 1]
    out = merge(shown(1), batch, params={"corr": "nobody"})
    assert ids(out.page) == [1] and not out.rows_changed


def test_with_a_status_filter_a_row_that_leaves_the_status_leaves_the_page() -> None:
    out = merge(shown(3, 2, 1), [changed(task(2, version=2, status="cancelled")), changed(task(4, status="running"))], status="queued")
    assert ids(out.page) == [3, 1]  # 2 was cancelled, 4 is not queued
    out = merge(shown(3, 1), [changed(task(4))], status="queued")
    assert ids(out.page) == [4, 3, 1]


def test_nothing_relevant_changes_nothing() -> None:
    before = shown(2, 1)
    out = merge(before, [LiveMessage("log", {"id": 1, "service": "s", "level": "info", "task_id": None, "trace_id": None})])
    assert out.page.rows is before.rows and not out.rows_changed and not out.placed_changed


def test_the_counts_key_ignores_the_status_and_empty_filters() -> None:
    assert counts_key({"status": "done", "corr": "c1", "type": ""}) == counts_key({"corr": "c1"}) == (("corr", "c1"),)


# -- the activity stream ---------------------------------------------------------------------------


def log_line(i: int, *, level: str = "info", service: str = "svc") -> LiveMessage:
    return LiveMessage("log", {"id": i, "ts": T0, "service": service, "level": level, "message": f"line {i}", "task_id": None, "trace_id": None})


def event(i: int) -> LiveMessage:
    return LiveMessage("event", {"id": i, "task_id": uuid.UUID(int=1), "ts": T0, "actor": "dispatcher", "kind": "running", "data": None})


def keys(items: list[dict[str, str]] | None) -> list[str]:
    assert items is not None
    return [i["key"] for i in items]


def test_activity_lines_arrive_newest_on_top_and_are_bounded() -> None:
    everything = activity_filter({})
    out = merge_activity([], [], [log_line(1), event(2), changed(task(3))], accepts=everything, paused=False, max_items=10)
    assert keys(out.items) == ["t00000000-0000-0000-0000-000000000003:1", "e2", "l1"] and out.held is None
    more = merge_activity(out.items or [], [], [log_line(i) for i in range(10, 20)], accepts=everything, paused=False, max_items=10)
    assert keys(more.items) == [f"l{i}" for i in range(19, 9, -1)]


def test_paused_activity_holds_new_lines() -> None:
    out = merge_activity([], [], [log_line(1), log_line(2)], accepts=activity_filter({}), paused=True, max_items=10)
    assert out.items is None and keys(out.held) == ["l2", "l1"]


def test_activity_with_a_level_or_service_keeps_only_matching_log_lines() -> None:
    batch = [log_line(1, level="warn"), log_line(2, level="info"), log_line(3, level="warn", service="other"), event(4), changed(task(5))]
    out = merge_activity([], [], batch, accepts=activity_filter({"level": "warn", "service": "svc"}), paused=False, max_items=10)
    assert keys(out.items) == ["l1"]
    assert merge_activity([], [], [event(4)], accepts=activity_filter({"level": "warn"}), paused=False, max_items=10).items is None


# -- one task --------------------------------------------------------------------------------------


def test_task_detail_takes_newer_versions_and_new_lines_once() -> None:
    log = LiveMessage("log", {"id": 7, "ts": T0, "service": "echo", "level": "info", "message": "hi", "task_id": uuid.UUID(int=1), "trace_id": None})
    out = merge_task_detail(
        2, [], [], [changed(task(1, version=3, status="done")), changed(task(1, version=1)), event(5), event(5), log], max_lines=10
    )
    assert out.task is not None and out.task["status"] == "done"
    assert [e["id"] for e in out.events or []] == ["5"] and [entry["id"] for entry in out.logs or []] == ["7"]
    again = merge_task_detail(3, out.events or [], out.logs or [], [event(5), changed(task(1, version=2))], max_lines=10)
    assert again == type(again)(None, None, None)


def test_the_detail_filter_takes_the_task_its_events_and_its_lines() -> None:
    accepts = TaskDetailState.live_filter_for({"task_id": str(uuid.UUID(int=1))})
    assert accepts(changed(task(1))) and accepts(event(5))
    assert not accepts(changed(task(2))) and not accepts(log_line(1))


# -- the interface ---------------------------------------------------------------------------------


def test_the_live_views_declare_the_interface() -> None:
    for view in (TasksState, ActivityState, TaskDetailState, OverviewState, AgentsState):
        assert issubclass(view, LiveView)
    assert ticks(TasksState) and ticks(OverviewState) and ticks(AgentsState)
    assert not ticks(ActivityState) and not ticks(TaskDetailState)
    assert OverviewState.live_filter_for({}) is no_messages


def test_a_view_without_its_merge_is_refused_at_import() -> None:
    with pytest.raises(TypeError, match="_apply_live"):

        class Incomplete(LiveView, rx.State):
            @classmethod
            def live_filter_for(cls, params):
                return no_messages
