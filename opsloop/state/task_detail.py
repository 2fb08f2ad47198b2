"""One task: its fields, event timeline and logs (live while it runs), with cancel and retry."""

from __future__ import annotations

import uuid

import reflex as rx

from opsloop.backend.errors import DomainError
from opsloop.backend.live.bus import LiveMessage
from opsloop.backend.logs.repository import search_logs
from opsloop.backend.runtime import get_runtime
from opsloop.backend.tasks import repository as repo
from opsloop.state.display import event_row, log_row, pretty_block, task_row
from opsloop.state.live import watch
from opsloop.state.session import current_user

MAX_LINES = 300


class TaskDetailState(rx.State):
    task: dict[str, str] = {}
    payload: str = ""
    result: str = ""
    task_error: str = ""
    events: list[dict[str, str]] = []
    logs: list[dict[str, str]] = []
    found: bool = True
    loading: bool = False
    error: str = ""
    notice: str = ""

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

    def _show(self, row: dict) -> None:
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
        rt = get_runtime()
        try:
            if task_id is None:
                raise DomainError("Task not found")
            row, events = await repo.get_task(rt.pool, task_id)
            logs, _ = await search_logs(rt.pool, task_id=task_id, limit=MAX_LINES)
        except DomainError:
            self.found = False
            self.task = {}
            self.events, self.logs = [], []
            self.loading = False
            return
        self.found = True
        self._show(row)
        self.events = [event_row(e) for e in events[-MAX_LINES:]]
        self.logs = [log_row(entry) for entry in reversed(logs)]
        self.loading = False
        watch(self, {"task_id": str(task_id)})

    @staticmethod
    def live_accepts(params: dict, msg: LiveMessage) -> bool:
        key = "id" if msg.kind == "task" else "task_id"
        return str(msg.row.get(key)) == params.get("task_id")

    async def _apply_live(self, msgs: list[LiveMessage]) -> None:
        seen_events = {e["id"] for e in self.events}
        seen_logs = {entry["id"] for entry in self.logs}
        events, logs = list(self.events), list(self.logs)
        for msg in msgs:
            if msg.kind == "task":
                if int(msg.row["version"]) >= int(self.task.get("version") or 0):
                    self._show(msg.row)
            elif msg.kind == "event" and str(msg.row["id"]) not in seen_events:
                events.append(event_row(msg.row))
            elif msg.kind == "log" and str(msg.row["id"]) not in seen_logs:
                logs.append(log_row(msg.row))
        self.events = events[-MAX_LINES:]
        self.logs = logs[-MAX_LINES:]

    async def _act(self, action: str) -> None:
        task_id = self._task_id()
        if task_id is None:
            return
        actor = current_user(self) or "dashboard"
        rt = get_runtime()
        try:
            if action == "cancel":
                row = await repo.cancel_task(rt.pool, task_id, actor=actor)
                await rt.notify_agent_cancel(row)
            else:
                row = await repo.retry_task(rt.pool, task_id, actor=actor)
        except DomainError as exc:
            self.error = exc.message
            return
        self.error = ""
        self.notice = "Task cancelled." if action == "cancel" else "Task queued again."
        self._show(row)

    @rx.event
    async def cancel(self) -> None:
        await self._act("cancel")

    @rx.event
    async def retry(self) -> None:
        await self._act("retry")
