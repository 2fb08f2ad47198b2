"""How each live view merges a batch of bus changes into what it shows: pure functions, rows in,
rows out, so the merge is tested without a browser (tests/unit/test_dashboard_merge.py) and the
states only read their vars, call one of these, and assign what changed.

They run once per open tab for every batch, so they stay cheap: each message is turned into a
row once for all tabs (`LiveMessage.cache`), and each result says whether anything changed
(every var a state assigns is sent to its tab).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from opsloop.backend.live.bus import LiveMessage
from opsloop.backend.tasks.store import task_cursor
from opsloop.state.display import activity_item, event_row, log_row, task_table_row
from opsloop.state.live_view import LiveFilter

Row = dict[str, str]
T = TypeVar("T")


def cached(msg: LiveMessage, name: str, make: Callable[[dict[str, Any]], T]) -> T:
    """`make(msg.row)`, computed once however many tabs show the message."""
    if name not in msg.cache:
        msg.cache[name] = make(msg.row)
    value: T = msg.cache[name]
    return value


# -- the tasks table -------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskPage:
    """What a tasks view shows: its rows (newest update first), the paging cursor of each row as
    it was when the row took its place, and whether "Older" leads anywhere."""

    rows: list[Row]
    placed: dict[str, str]
    has_next: bool


@dataclass(frozen=True)
class TaskPageMerge:
    page: TaskPage
    rows_changed: bool
    placed_changed: bool


def merge_task_page(shown: TaskPage, msgs: Sequence[LiveMessage], *, accepts: LiveFilter, page: int, status: str, page_size: int) -> TaskPageMerge:
    """Shown rows are updated in place (a newer version wins); on the first page, new matching
    tasks appear on top, newest first, and push the last rows off the page ("Older" then leads to
    them, continuing after the last row shown, so none is skipped). With a status filter, a row
    that leaves the status leaves the page. `accepts` is the tab's current live filter: the batch
    was chosen by the filters the tab had when it was gathered, and the tab may have loaded
    others since."""
    rows = list(shown.rows)
    index = {r["id"]: i for i, r in enumerate(rows)}
    fresh: list[Row] = []  # tasks new to this view, oldest first
    fresh_index: dict[str, int] = {}
    fresh_cursors: dict[str, str] = {}
    for msg in msgs:
        if not accepts(msg):
            continue
        new = cached(msg, "dashboard.task_table_row", task_table_row)
        if (i := index.get(new["id"])) is not None:
            if int(new["version"]) >= int(rows[i]["version"]):
                rows[i] = new
            continue
        if (i := fresh_index.get(new["id"])) is not None:
            if int(new["version"]) < int(fresh[i]["version"]):
                continue
            fresh[i] = new
        elif page == 1 and (not status or new["status"] == status):
            fresh_index[new["id"]] = len(fresh)
            fresh.append(new)
        else:
            continue
        fresh_cursors[new["id"]] = cached(msg, "dashboard.task_cursor", task_cursor)
    rows = fresh[::-1] + rows
    if status:
        rows = [r for r in rows if r["status"] == status]
    has_next = shown.has_next or len(rows) > page_size
    rows = rows[:page_size]
    if rows == shown.rows:
        return TaskPageMerge(TaskPage(shown.rows, shown.placed, has_next), rows_changed=False, placed_changed=False)
    placed = shown.placed
    if fresh:
        everything = {**shown.placed, **fresh_cursors}
        placed = {r["id"]: everything[r["id"]] for r in rows if r["id"] in everything}
    return TaskPageMerge(TaskPage(rows, placed, has_next), rows_changed=True, placed_changed=bool(fresh))


# -- the activity stream ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ActivityMerge:
    """The activity stream after a batch: new lines on top of `items`, or, while paused, of `held`
    (shown on resume); only the list that changed is set."""

    items: list[Row] | None
    held: list[Row] | None


def merge_activity(
    items: list[Row], held: list[Row], msgs: Sequence[LiveMessage], *, accepts: LiveFilter, paused: bool, max_items: int
) -> ActivityMerge:
    fresh = [_activity_item(m) for m in reversed(msgs) if accepts(m)]
    if not fresh:
        return ActivityMerge(None, None)
    if paused:
        return ActivityMerge(None, (fresh + held)[:max_items])
    return ActivityMerge((fresh + items)[:max_items], None)


def _activity_item(msg: LiveMessage) -> Row:
    if "dashboard.activity_item" not in msg.cache:
        msg.cache["dashboard.activity_item"] = activity_item(msg.kind, msg.row)
    item: Row = msg.cache["dashboard.activity_item"]
    return item


# -- one task --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskDetailMerge:
    """One task's view after a batch: its newest row (None when no newer version came), and its
    event timeline and log lines with the new ones appended (None when none came)."""

    task: dict[str, Any] | None
    events: list[Row] | None
    logs: list[Row] | None


def merge_task_detail(version: int, events: list[Row], logs: list[Row], msgs: Sequence[LiveMessage], *, max_lines: int) -> TaskDetailMerge:
    """`version` is the version of the task shown; lines already shown (by id) are not repeated."""
    task: dict[str, Any] | None = None
    seen_events = {e["id"] for e in events}
    seen_logs = {entry["id"] for entry in logs}
    new_events: list[Row] = []
    new_logs: list[Row] = []
    for msg in msgs:
        if msg.kind == "task":
            if int(msg.row["version"]) >= version:
                task, version = msg.row, int(msg.row["version"])
        elif msg.kind == "event" and str(msg.row["id"]) not in seen_events:
            seen_events.add(str(msg.row["id"]))
            new_events.append(event_row(msg.row))
        elif msg.kind == "log" and str(msg.row["id"]) not in seen_logs:
            seen_logs.add(str(msg.row["id"]))
            new_logs.append(log_row(msg.row))
    return TaskDetailMerge(
        task,
        (events + new_events)[-max_lines:] if new_events else None,
        (logs + new_logs)[-max_lines:] if new_logs else None,
    )
