"""One task: its fields, event timeline and logs (live while it runs), with cancel and retry."""

from __future__ import annotations

import uuid
from typing import Any

import reflex as rx

from opsloop.backend.errors import DomainError
from opsloop.backend.live.bus import LiveMessage
from opsloop.backend.live.filter import live_filter
from opsloop.backend.logs.repository import search_logs
from opsloop.state.access import runtime
from opsloop.state.display import event_row, log_row, pretty_block, task_row
from opsloop.state.live import watch
from opsloop.state.live_view import LiveFilter, LiveParams, LiveView
from opsloop.state.merge import merge_task_detail
from opsloop.state.session import current_user

MAX_LINES = 300


class TaskDetailState(LiveView, rx.State):
    task: rx.Field[dict[str, str]] = rx.field(default_factory=dict)
    payload: rx.Field[str] = rx.field("")
    result: rx.Field[str] = rx.field("")
    task_error: rx.Field[str] = rx.field("")
    events: rx.Field[list[dict[str, str]]] = rx.field(default_factory=list)
    logs: rx.Field[list[dict[str, str]]] = rx.field(default_factory=list)
    found: rx.Field[bool] = rx.field(True)
    loading: rx.Field[bool] = rx.field(False)
    error: rx.Field[str] = rx.field("")
    notice: rx.Field[str] = rx.field("")

    @rx.var
    def can_cancel(self) -> bool:
        return self.task.get("status", "") in ("queued", "running")

    @rx.var
    def can_retry(self) -> bool:
        return self.task.get("status", "") in ("error", "cancelled")

    def _task_id(self) -> uuid.UUID | None:
        raw = (self.router.url.path or "").rstrip("/").rsplit("/", 1)[-1]
        try:
            return uuid.UUID(raw)
        except ValueError:
            return None

    def _show(self, row: dict[str, Any]) -> None:
        self.task = task_row(row)
        self.payload = pretty_block(row.get("payload"))
        self.result = pretty_block(row.get("result"))
        self.task_error = pretty_block(row.get("error"))

    @rx.event
    async def load(self) -> None:
        self.loading = True
        self.error = ""
        self.notice = ""
        task_id = self._task_id()
        rt = runtime()
        try:
            if task_id is None:
                raise DomainError("Task not found")
            task, events = await rt.tasks.get_with_events(task_id)
            logs, _ = await search_logs(rt.pool, task_id=task_id, limit=MAX_LINES)
        except DomainError:
            self.found = False
            self.task = {}
            self.events, self.logs = [], []
            self.loading = False
            return
        self.found = True
        self._show(task.row())
        self.events = [event_row(e.row()) for e in events[-MAX_LINES:]]
        self.logs = [log_row(entry) for entry in reversed(logs)]
        self.loading = False
        watch(self, {"task_id": str(task_id)})

    @classmethod
    def live_filter_for(cls, params: LiveParams) -> LiveFilter:
        """The task's own changes, its events and its log lines."""
        return live_filter(task_id=params.get("task_id", ""))

    async def _apply_live(self, msgs: list[LiveMessage]) -> None:
        merged = merge_task_detail(int(self.task.get("version") or 0), self.get_value("events"), self.get_value("logs"), msgs, max_lines=MAX_LINES)
        if merged.task is not None:
            self._show(merged.task)
        if merged.events is not None:
            self.events = merged.events
        if merged.logs is not None:
            self.logs = merged.logs

    async def _act(self, action: str) -> None:
        task_id = self._task_id()
        if task_id is None:
            return
        actor = current_user(self) or "dashboard"
        rt = runtime()
        try:
            if action == "cancel":
                task = await rt.tasks.cancel(task_id, actor=actor)
                await rt.notify_agent_cancel(task)
            else:
                task = await rt.tasks.retry(task_id, actor=actor)
        except DomainError as exc:
            self.error = exc.message
            return
        self.error = ""
        self.notice = "Task cancelled." if action == "cancel" else "Task queued again."
        self._show(task.row())

    @rx.event
    async def cancel(self) -> None:
        await self._act("cancel")

    @rx.event
    async def retry(self) -> None:
        await self._act("retry")
